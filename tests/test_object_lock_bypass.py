"""Object Lock and permissions, as on S3: bypassing GOVERNANCE takes s3:BypassGovernanceRetention
(without it the header bypasses nothing); a write's own lock takes s3:PutObjectRetention and
s3:PutObjectLegalHold; GET/HEAD show a lock only to who may read it; a locked bucket's creation
takes the lock and versioning permissions. The owner's root user has them all; a user by policy."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import pytest_twisted

from tests.s3helpers import Server, error_code

EVERYTHING = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
NO_BYPASS = {"Effect": "Deny", "Action": "s3:BypassGovernanceRetention", "Resource": "*"}
BYPASS = {"x-amz-bypass-governance-retention": "true"}


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def md5(body: bytes) -> dict[str, str]:
    return {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}


async def user(server: Server, name: str, *statements: dict[str, Any]) -> dict[str, str]:
    tenant = await server.catalog.ensure_tenant("default")
    policy = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    await server.catalog.create_user(tenant.id, name, policy)
    await server.catalog.add_credential(tenant.id, f"AK{name.upper()}", f"secret-{name}", name)
    return {"access": f"AK{name.upper()}", "secret": f"secret-{name}"}


async def governed(server: Server, key: str) -> str:
    lock = {"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": iso(time.time() + 86400)}
    r = await server.request("PUT", f"/vault/{key}", b"x", headers={**lock, **md5(b"x")})
    assert r.code == 200, r.body
    return r.headers.getRawHeaders("x-amz-version-id")[0]


@pytest_twisted.ensureDeferred
async def test_bypass_needs_the_permission(tmp_path: Any) -> None:
    server = Server(str(tmp_path))
    await server.start()
    try:
        r = await server.request("PUT", "/vault", headers={"x-amz-bucket-object-lock-enabled": "true"})
        assert r.code == 200, r.body
        ops = await user(server, "ops", EVERYTHING, NO_BYPASS)
        admin = await user(server, "admin", EVERYTHING)

        version = await governed(server, "k")
        r = await server.request("DELETE", "/vault/k", query=f"versionId={version}", headers=BYPASS, **ops)
        assert (r.code, error_code(r)) == (403, "AccessDenied"), r.body
        shorter = (
            f"<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>{iso(time.time() + 60)}</RetainUntilDate></Retention>"
        ).encode()
        query = f"retention=&versionId={version}"
        r = await server.request("PUT", "/vault/k", shorter, query=query, headers={**BYPASS, **md5(shorter)}, **ops)
        assert (r.code, error_code(r)) == (403, "AccessDenied"), r.body
        r = await server.request("PUT", "/vault/k", shorter, query=query, headers={**BYPASS, **md5(shorter)}, **admin)
        assert r.code == 200, r.body
        r = await server.request("DELETE", "/vault/k", query=f"versionId={version}", headers=BYPASS, **admin)
        assert r.code == 204, r.body

        # DeleteObjects decides per key; the owner's root user needs no policy.
        other = await governed(server, "other")
        body = f"<Delete><Object><Key>other</Key><VersionId>{other}</VersionId></Object></Delete>".encode()
        r = await server.request("POST", "/vault", body, query="delete=", headers={**BYPASS, **md5(body)}, **ops)
        assert r.code == 200 and b"<Code>AccessDenied</Code>" in r.body, r.body
        r = await server.request("POST", "/vault", body, query="delete=", headers={**BYPASS, **md5(body)})
        assert r.code == 200 and b"<Deleted>" in r.body, r.body
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_get_and_head_tell_the_lock_only_to_who_may_read_it(tmp_path: Any) -> None:
    server = Server(str(tmp_path))
    await server.start()
    try:
        r = await server.request("PUT", "/vault", headers={"x-amz-bucket-object-lock-enabled": "true"})
        assert r.code == 200, r.body
        reader = await user(server, "reader", {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
        admin = await user(server, "admin", EVERYTHING)
        await governed(server, "k")
        r = await server.request(
            "PUT",
            "/vault/k",
            b"<LegalHold><Status>ON</Status></LegalHold>",
            query="legal-hold=",
            headers=md5(b"<LegalHold><Status>ON</Status></LegalHold>"),
        )
        assert r.code == 200, r.body
        lock_headers = ("x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date", "x-amz-object-lock-legal-hold")
        for method in ("GET", "HEAD"):
            for who, sees in (({}, True), (admin, True), (reader, False)):
                r = await server.request(method, "/vault/k", **who)
                assert r.code == 200, r.body
                assert all(r.headers.hasHeader(name) is sees for name in lock_headers), (method, who)
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_a_writes_own_lock_takes_the_lock_permissions(tmp_path: Any) -> None:
    server = Server(str(tmp_path))
    await server.start()
    try:
        r = await server.request("PUT", "/vault", headers={"x-amz-bucket-object-lock-enabled": "true"})
        assert r.code == 200, r.body
        writer = await user(server, "writer", {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"})
        lock = {"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": iso(time.time() + 60)}
        for headers in (lock, {"x-amz-object-lock-legal-hold": "ON"}):
            r = await server.request("PUT", "/vault/k", b"x", headers={**headers, **md5(b"x")}, **writer)
            assert (r.code, error_code(r)) == (403, "AccessDenied"), r.body
        r = await server.request("PUT", "/vault/k", b"x", headers=md5(b"x"), **writer)
        assert r.code == 200, r.body
        r = await server.request("PUT", "/vault/k", b"x", headers={**lock, **md5(b"x")})  # the owner
        assert r.code == 200, r.body
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_creating_a_locked_bucket_takes_the_lock_and_versioning_permissions(tmp_path: Any) -> None:
    server = Server(str(tmp_path))
    await server.start()
    try:
        creator = await user(server, "creator", {"Effect": "Allow", "Action": "s3:CreateBucket", "Resource": "*"})
        locker = await user(
            server,
            "locker",
            {
                "Effect": "Allow",
                "Action": ["s3:CreateBucket", "s3:PutBucketObjectLockConfiguration", "s3:PutBucketVersioning"],
                "Resource": "*",
            },
        )
        lock = {"x-amz-bucket-object-lock-enabled": "true"}
        r = await server.request("PUT", "/denied", headers=lock, **creator)
        assert (r.code, error_code(r)) == (403, "AccessDenied"), r.body
        assert (await server.request("HEAD", "/denied")).code == 404  # nothing was created
        assert (await server.request("PUT", "/plain", **creator)).code == 200
        r = await server.request("PUT", "/allowed", headers=lock, **locker)
        assert r.code == 200, r.body
        r = await server.request("GET", "/allowed", query="object-lock=")
        assert r.code == 200 and b"<ObjectLockEnabled>Enabled</ObjectLockEnabled>" in r.body, r.body
    finally:
        await server.stop()
