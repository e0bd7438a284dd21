"""The authorization step through the whole stack, in process (issue 14): users limited by their
identity policies, bucket policies, other tenants and anonymous callers, denial events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest_twisted
from twisted.internet import threads

from tests.s3helpers import Server, error_code, raw_exchange, xml_values
from vaultaire import sigv4

READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Read", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"},
    ],
}


def one_bucket(bucket: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }


# AWS's documented example: each user its own home prefix, listing only there.
HOME = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ListHome",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::bucket",
            "Condition": {"StringLike": {"s3:prefix": ["${aws:username}/*", "${aws:username}/"]}},
        },
        {
            "Sid": "OwnObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": "arn:aws:s3:::bucket/${aws:username}/*",
        },
    ],
}


async def add_user(server: Server, name: str, policy: dict[str, Any] | None, tenant: str = "default") -> str:
    """A user of ``tenant`` with its key (access key = secret = ``AK<NAME>``)."""
    t = await server.catalog.ensure_tenant(tenant)
    await server.catalog.create_user(t.id, name, json.dumps(policy) if policy is not None else None)
    key = "AK" + name.upper()
    await server.catalog.add_credential(t.id, key, key, name)
    return key


async def add_tenant(server: Server, name: str) -> tuple[str, str]:
    """Another tenant with a root key (access key = secret = ``AKROOT<NAME>``); returns (tenant id, key)."""
    t = await server.catalog.ensure_tenant(name)
    key = "AKROOT" + name.upper()
    await server.catalog.add_credential(t.id, key, key)
    return t.id, key


def as_(key: str) -> dict[str, str]:
    return {"access": key, "secret": key}


async def set_bucket_policy(server: Server, bucket: str, policy: dict[str, Any] | None) -> None:
    """Stored as PutBucketPolicy stores it: the container setting "policy"."""
    [found] = await server.catalog.containers_named(bucket)
    if policy is None:
        await server.catalog.delete_setting(found.container, "policy")
    else:
        await server.catalog.put_setting(found.container, "policy", json.dumps(policy))


def events(server: Server) -> list[dict[str, Any]]:
    assert server.events.flush()
    with open(server.events.path) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest_twisted.ensureDeferred
async def test_read_only_user_reads_and_lists_but_writes_nothing(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/k", b"data")).code == 200
    key = await add_user(server, "reader", READ_ONLY)
    r = await server.request("GET", "/bucket/k", **as_(key))
    assert (r.code, r.body) == (200, b"data")
    assert (await server.request("HEAD", "/bucket/k", **as_(key))).code == 200
    r = await server.request("GET", "/bucket", query="list-type=2", **as_(key))
    assert r.code == 200 and xml_values(r.body, "Key") == ["k"]
    for method, path, body in (("PUT", "/bucket/k", b"x"), ("DELETE", "/bucket/k", b""), ("GET", "/", b"")):
        r = await server.request(method, path, body, **as_(key))
        assert (r.code, error_code(r)) == (403, "AccessDenied"), (method, path, r.body)
        assert b"statement" not in r.body and b"no allow" not in r.body  # the reason stays in the event log
    r = await server.request("PUT", "/newbucket", **as_(key))
    assert (r.code, error_code(r)) == (403, "AccessDenied")
    assert (await server.request("GET", "/bucket/k")).body == b"data"  # nothing was overwritten


@pytest_twisted.ensureDeferred
async def test_user_without_policy_may_do_nothing(server: Server) -> None:
    key = await add_user(server, "nobody", None)
    r = await server.request("GET", "/bucket", **as_(key))
    assert (r.code, error_code(r)) == (403, "AccessDenied")


@pytest_twisted.ensureDeferred
async def test_user_limited_to_one_bucket(server: Server) -> None:
    assert (await server.request("PUT", "/other")).code == 200
    key = await add_user(server, "app", one_bucket("bucket"))
    assert (await server.request("PUT", "/bucket/a", b"1", **as_(key))).code == 200
    assert (await server.request("GET", "/bucket/a", **as_(key))).body == b"1"
    assert (await server.request("DELETE", "/bucket/a", **as_(key))).code == 204
    for method, path in (("PUT", "/other/a"), ("GET", "/other"), ("DELETE", "/other")):
        r = await server.request(method, path, b"1" if method == "PUT" else b"", **as_(key))
        assert (r.code, error_code(r)) == (403, "AccessDenied"), (method, path)
    # A copy out of the other bucket needs s3:GetObject there.
    assert (await server.request("PUT", "/other/secret", b"s")).code == 200
    r = await server.request("PUT", "/bucket/copy", headers={"x-amz-copy-source": "/other/secret"}, **as_(key))
    assert (r.code, error_code(r)) == (403, "AccessDenied")
    assert (await server.request("HEAD", "/bucket/copy")).code == 404


@pytest_twisted.ensureDeferred
async def test_per_user_home_prefix(server: Server) -> None:
    for path in ("/bucket/alice/a", "/bucket/bob/b"):
        assert (await server.request("PUT", path, b"x")).code == 200
    key = await add_user(server, "alice", HOME)
    r = await server.request("GET", "/bucket", query="list-type=2&prefix=alice%2F", **as_(key))
    assert r.code == 200 and xml_values(r.body, "Key") == ["alice/a"]
    for query in ("list-type=2&prefix=bob%2F", "list-type=2", "list-type=2&prefix="):
        r = await server.request("GET", "/bucket", query=query, **as_(key))
        assert (r.code, error_code(r)) == (403, "AccessDenied"), query
    assert (await server.request("GET", "/bucket/alice/a", **as_(key))).code == 200
    assert (await server.request("PUT", "/bucket/alice/new", b"n", **as_(key))).code == 200
    assert (await server.request("GET", "/bucket/bob/b", **as_(key))).code == 403
    assert (await server.request("PUT", "/bucket/bob/new", b"n", **as_(key))).code == 403


@pytest_twisted.ensureDeferred
async def test_policy_change_counts_on_the_next_request(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/k", b"v")).code == 200
    key = await add_user(server, "u", None)
    tenant = await server.catalog.tenant("default")
    assert (await server.request("GET", "/bucket/k", **as_(key))).code == 403
    await server.catalog.set_user_policy(tenant.id, "u", json.dumps(READ_ONLY))
    assert (await server.request("GET", "/bucket/k", **as_(key))).code == 200
    await server.catalog.set_user_policy(tenant.id, "u", None)
    assert (await server.request("GET", "/bucket/k", **as_(key))).code == 403
    await server.catalog.delete_user(tenant.id, "u")
    assert error_code(await server.request("GET", "/bucket/k", **as_(key))) == "InvalidAccessKeyId"


@pytest_twisted.ensureDeferred
async def test_bucket_policy_grants_a_user_and_denies_even_the_root(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/k", b"v")).code == 200
    key = await add_user(server, "guest", None)
    tenant = await server.catalog.tenant("default")
    grant = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "GuestReads",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{tenant.id}:user/guest"},
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::bucket/*",
            },
            {
                "Sid": "NoDeletes",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:DeleteObject",
                "Resource": "arn:aws:s3:::bucket/*",
            },
        ],
    }
    await set_bucket_policy(server, "bucket", grant)
    assert (await server.request("GET", "/bucket/k", **as_(key))).code == 200
    assert (await server.request("PUT", "/bucket/k", b"x", **as_(key))).code == 403
    r = await server.request("DELETE", "/bucket/k")  # the tenant's root: denied explicitly
    assert (r.code, error_code(r)) == (403, "AccessDenied")
    assert (await server.request("PUT", "/bucket/k2", b"x")).code == 200  # the root otherwise may all
    await set_bucket_policy(server, "bucket", None)
    assert (await server.request("DELETE", "/bucket/k")).code == 204


@pytest_twisted.ensureDeferred
async def test_denied_put_is_refused_before_100_continue(server: Server) -> None:
    key = await add_user(server, "reader", READ_ONLY)
    url = server.url + "/bucket/k"
    headers = {"content-length": "10", "expect": "100-continue"}
    headers.update(
        sigv4.sign_headers("PUT", url, headers, sigv4.UNSIGNED_PAYLOAD, key, key, "us-east-1", now=datetime.now(UTC))
    )
    head = ("\r\n".join(["PUT /bucket/k HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]) + "\r\n\r\n").encode()
    got = await threads.deferToThread(raw_exchange, server.port.getHost().port, head, [], True)
    assert got.startswith(b"HTTP/1.1 403"), got
    assert b"100 Continue" not in got and b"AccessDenied" in got
    assert (await server.request("HEAD", "/bucket/k")).code == 404


@pytest_twisted.ensureDeferred
async def test_other_tenants_bucket_is_403_until_granted(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/k", b"mine")).code == 200
    owner = await server.catalog.tenant("default")
    other_id, other = await add_tenant(server, "other")
    for method, path, query in (
        ("GET", "/bucket/k", ""),
        ("HEAD", "/bucket/k", ""),
        ("GET", "/bucket", "list-type=2"),
        ("HEAD", "/bucket", ""),
        ("PUT", "/bucket/k", ""),
        ("DELETE", "/bucket/k", ""),
        ("GET", "/bucket", "location="),
    ):
        r = await server.request(method, path, b"x" if method == "PUT" else b"", query=query, **as_(other))
        assert r.code == 403, (method, path, query, r.body)
    # A missing bucket is missing for everyone.
    r = await server.request("GET", "/nosuchbucket/k", **as_(other))
    assert (r.code, error_code(r)) == (404, "NoSuchBucket")
    await set_bucket_policy(
        server,
        "bucket",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{other_id}:root"},
                    "Action": ["s3:GetObject", "s3:ListBucket"],
                    "Resource": ["arn:aws:s3:::bucket", "arn:aws:s3:::bucket/*"],
                }
            ],
        },
    )
    r = await server.request("GET", "/bucket/k", **as_(other))
    assert (r.code, r.body) == (200, b"mine")
    r = await server.request("GET", "/bucket", query="list-type=2", **as_(other))
    assert r.code == 200 and xml_values(r.body, "Key") == ["k"]
    r = await server.request("PUT", "/bucket/k", b"theirs", **as_(other))
    assert r.code == 403
    # x-amz-expected-bucket-owner is checked against the bucket's real owner.
    r = await server.request("GET", "/bucket/k", headers={"x-amz-expected-bucket-owner": other_id}, **as_(other))
    assert (r.code, error_code(r)) == (403, "AccessDenied")
    r = await server.request("GET", "/bucket/k", headers={"x-amz-expected-bucket-owner": owner.id}, **as_(other))
    assert r.code == 200
    # The other tenant's users need their own tenant's allow too.
    other_user = await add_user(server, "worker", None, tenant="other")
    assert (await server.request("GET", "/bucket/k", **as_(other_user))).code == 403
    other_tenant = await server.catalog.tenant("other")
    await server.catalog.set_user_policy(other_tenant.id, "worker", json.dumps(READ_ONLY))
    assert (await server.request("GET", "/bucket/k", **as_(other_user))).code == 200
    # Its own ListBuckets does not show the bucket it was granted.
    r = await server.request("GET", "/", **as_(other))
    assert xml_values(r.body, "Name") == []


@pytest_twisted.ensureDeferred
async def test_anonymous_reads_a_public_bucket_only(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/pic.png", b"png")).code == 200
    r = await server.request("GET", "/bucket/pic.png", sign=False)
    assert (r.code, error_code(r)) == (403, "AccessDenied")
    r = await server.request("GET", "/nosuchbucket/pic.png", sign=False)
    assert (r.code, error_code(r)) == (404, "NoSuchBucket")
    public = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject"],
                "Resource": "arn:aws:s3:::bucket/*",
            }
        ],
    }
    [found] = await server.catalog.containers_named("bucket")
    await server.catalog.put_setting(found.container, "public-access-block", "")  # none configured
    await set_bucket_policy(server, "bucket", public)
    r = await server.request("GET", "/bucket/pic.png", sign=False)
    assert (r.code, r.body) == (200, b"png")
    assert (await server.request("HEAD", "/bucket/pic.png", sign=False)).code == 200
    for method, path in (("PUT", "/bucket/x"), ("GET", "/bucket"), ("DELETE", "/bucket/pic.png"), ("GET", "/")):
        r = await server.request(method, path, b"x" if method == "PUT" else b"", sign=False)
        assert (r.code, error_code(r)) == (403, "AccessDenied"), (method, path)
    # RestrictPublicBuckets: the public policy then grants only the owner's tenant.
    await server.catalog.put_setting(found.container, "public-access-block", "[false, false, false, true]")
    assert (await server.request("GET", "/bucket/pic.png", sign=False)).code == 403


@pytest_twisted.ensureDeferred
async def test_every_denial_is_an_event_with_its_reason(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/k", b"v")).code == 200
    tenant = await server.catalog.tenant("default")
    key = await add_user(server, "reader", READ_ONLY)
    await set_bucket_policy(
        server,
        "bucket",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "KeepIt",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:DeleteObject",
                    "Resource": "arn:aws:s3:::bucket/*",
                }
            ],
        },
    )
    assert (await server.request("PUT", "/bucket/k", b"x", **as_(key))).code == 403
    assert (await server.request("DELETE", "/bucket/k")).code == 403
    assert (await server.request("GET", "/bucket/k", **as_(key))).code == 200
    assert (await server.request("GET", "/bucket/k", sign=False)).code == 403
    found = [(e["operation"], e["denied"], e.get("principal")) for e in events(server) if "denied" in e]
    assert found == [
        ("PutObject", "no allow", f"arn:aws:iam::{tenant.id}:user/reader"),
        ("DeleteObject", "explicit deny: bucket policy statement KeepIt", None),
        ("GetObject", "no allow from the resource's owner", "anonymous"),
    ]


@pytest_twisted.ensureDeferred
async def test_a_suspended_tenants_public_and_shared_buckets_serve_no_one(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/pic.png", b"png")).code == 200
    other_id, other = await add_tenant(server, "other")
    [found] = await server.catalog.containers_named("bucket")
    await server.catalog.put_setting(found.container, "public-access-block", "")
    await set_bucket_policy(
        server,
        "bucket",
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*"}
            ],
        },
    )
    assert (await server.request("GET", "/bucket/pic.png", sign=False)).code == 200
    assert (await server.request("GET", "/bucket/pic.png", **as_(other))).code == 200
    await server.catalog.set_tenant_status("default", "suspended")
    assert (await server.request("GET", "/bucket/pic.png", sign=False)).code == 403
    assert (await server.request("GET", "/bucket/pic.png", **as_(other))).code == 403
    await server.catalog.set_tenant_status("default", "active")
    assert (await server.request("GET", "/bucket/pic.png", sign=False)).code == 200


@pytest_twisted.ensureDeferred
async def test_anonymous_virtual_hosted_read_of_a_public_bucket(tmp_path: Any) -> None:
    server = Server(str(tmp_path), domains=("s3.example.test",))
    await server.start("site")
    try:
        assert (await server.request("PUT", "/site/index.html", b"<html>")).code == 200
        [found] = await server.catalog.containers_named("site")
        await server.catalog.put_setting(found.container, "public-access-block", "")
        host = {"Host": "site.s3.example.test"}
        r = await server.request("GET", "/index.html", headers=host, sign=False)
        assert (r.code, error_code(r)) == (403, "AccessDenied")
        await set_bucket_policy(
            server,
            "site",
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": ["s3:GetObject", "s3:ListBucket"],
                        "Resource": ["arn:aws:s3:::site", "arn:aws:s3:::site/*"],
                    }
                ],
            },
        )
        r = await server.request("GET", "/index.html", headers=host, sign=False)
        assert (r.code, r.body) == (200, b"<html>")
        r = await server.request("GET", "/", headers=host, sign=False)
        assert r.code == 200 and xml_values(r.body, "Key") == ["index.html"]
        r = await server.request("GET", "/index.html", headers={"Host": "nosuch.s3.example.test"}, sign=False)
        assert (r.code, error_code(r)) == (404, "NoSuchBucket")
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_object_tags_in_conditions(server: Server) -> None:
    """s3:ExistingObjectTag/<key> (the object is read for it) and s3:RequestObjectTag/<key>."""
    tagged: dict[str, Any] = {"Version": "2012-10-17"}
    tagged["Statement"] = [
        {
            "Sid": "ReadPublished",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::bucket/*",
            "Condition": {"StringEquals": {"s3:ExistingObjectTag/state": "published"}},
        },
        {
            "Sid": "WriteDrafts",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::bucket/*",
            "Condition": {"StringEquals": {"s3:RequestObjectTag/state": "draft"}},
        },
    ]
    key = await add_user(server, "editor", tagged)
    assert (await server.request("PUT", "/bucket/out", b"o", headers={"x-amz-tagging": "state=published"})).code == 200
    assert (await server.request("PUT", "/bucket/wip", b"w", headers={"x-amz-tagging": "state=draft"})).code == 200
    assert (await server.request("GET", "/bucket/out", **as_(key))).code == 200
    assert (await server.request("GET", "/bucket/wip", **as_(key))).code == 403
    assert (await server.request("GET", "/bucket/missing", **as_(key))).code == 403  # no object, no tag
    r = await server.request("PUT", "/bucket/new", b"n", headers={"x-amz-tagging": "state=draft"}, **as_(key))
    assert r.code == 200
    r = await server.request("PUT", "/bucket/new", b"n", headers={"x-amz-tagging": "state=published"}, **as_(key))
    assert r.code == 403
    assert (await server.request("PUT", "/bucket/new", b"n", **as_(key))).code == 403
