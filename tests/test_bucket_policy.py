"""Bucket policies through the whole stack: Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus, their
errors, BlockPublicPolicy, and the policy enforced on the next request (anonymous, other tenants,
users); then boto3 and the aws cli against a real daemon.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from tests.s3helpers import Server, error_code, md5_header, xml_values

OTHER_ACCESS = "OTHERTENANTKEY"
OTHER_SECRET = "other-tenant-secret-0123456789"
ALICE_ACCESS = "ALICEUSERKEY"
ALICE_SECRET = "alice-user-secret-0123456789"


def assert_error(r: Any, status: int, code: str) -> None:
    assert (r.code, error_code(r)) == (status, code), r.body


def document(*statements: dict[str, Any]) -> bytes:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}).encode()


def public_read(bucket: str) -> bytes:
    return document(
        {
            "Sid": "PublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
        }
    )


async def owner_id(server: Server) -> str:
    return xml_values((await server.request("GET", "/")).body, "ID")[0]


async def allow_public(server: Server, bucket: str) -> None:
    """New buckets block public policies (as S3 since 2023): lift the block."""
    r = await server.request("DELETE", f"/{bucket}", query="publicAccessBlock=")
    assert r.code == 204, r.body


async def put_policy(server: Server, bucket: str, body: bytes, **kw: Any) -> Any:
    return await server.request("PUT", f"/{bucket}", body, query="policy=", **kw)


# -- the operations


@pytest_twisted.ensureDeferred
async def test_put_get_delete_and_status(server: Server) -> None:
    assert_error(await server.request("GET", "/bucket", query="policy="), 404, "NoSuchBucketPolicy")
    assert_error(await server.request("GET", "/bucket", query="policyStatus="), 404, "NoSuchBucketPolicy")
    me = await owner_id(server)
    text = document(
        {
            "Sid": "Mine",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{me}:root"},
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": "arn:aws:s3:::bucket/*",
        }
    )
    r = await put_policy(server, "bucket", text)
    assert r.code == 204, r.body
    r = await server.request("GET", "/bucket", query="policy=")
    assert r.code == 200 and r.body == text
    assert r.headers.getRawHeaders("content-type") == ["application/json"]
    r = await server.request("GET", "/bucket", query="policyStatus=")
    assert r.code == 200 and xml_values(r.body, "IsPublic") == ["false"], r.body
    r = await server.request("DELETE", "/bucket", query="policy=")
    assert r.code == 204
    assert_error(await server.request("GET", "/bucket", query="policy="), 404, "NoSuchBucketPolicy")
    assert (await server.request("DELETE", "/bucket", query="policy=")).code == 204  # none: still 204, as S3


@pytest_twisted.ensureDeferred
async def test_policy_of_a_missing_bucket(server: Server) -> None:
    assert_error(await put_policy(server, "nope", public_read("nope")), 404, "NoSuchBucket")
    assert_error(await server.request("GET", "/nope", query="policy="), 404, "NoSuchBucket")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "first byte must be '{'"),
        (b"not json", "first byte must be '{'"),
        (b"{\xff}", "invalid Json"),
        (b'{"Statement": []}', "Statement is empty"),
        (document({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*"}), "Principal"),
        (
            document({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::x/*"}),
            "Policy has invalid resource",
        ),
        (
            document({"Effect": "Allow", "Principal": "*", "Action": "s3:Get", "Resource": "arn:aws:s3:::bucket/*"}),
            "Policy has invalid action",
        ),
    ],
)
@pytest_twisted.ensureDeferred
async def test_malformed_policies(server: Server, body: bytes, message: str) -> None:
    r = await put_policy(server, "bucket", body)
    assert_error(r, 400, "MalformedPolicy")
    assert message in r.body.decode()
    assert_error(await server.request("GET", "/bucket", query="policy="), 404, "NoSuchBucketPolicy")


@pytest_twisted.ensureDeferred
async def test_principals_must_exist(server: Server) -> None:
    me = await owner_id(server)
    for principal, missing in (
        ({"AWS": "0" * 32}, "no account"),
        ({"CanonicalUser": "f" * 32}, "no account"),
        ({"AWS": f"arn:aws:iam::{me}:user/nobody"}, "no user nobody"),
        ({"AWS": f"arn:aws:iam::{'1' * 32}:user/alice"}, "no account"),
    ):
        body = document(
            {"Effect": "Deny", "Principal": principal, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*"}
        )
        r = await put_policy(server, "bucket", body)
        assert_error(r, 400, "MalformedPolicy")
        assert b"Invalid principal in policy" in r.body and missing.encode() in r.body, r.body


@pytest_twisted.ensureDeferred
async def test_what_we_cannot_evaluate_is_501_not_stored(server: Server) -> None:
    body = document(
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": "arn:aws:s3:::bucket/*",
            "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}},
        }
    )
    r = await put_policy(server, "bucket", body)
    assert_error(r, 501, "NotImplemented")
    assert b"aws:SourceVpce" in r.body
    assert_error(await server.request("GET", "/bucket", query="policy="), 404, "NoSuchBucketPolicy")


@pytest_twisted.ensureDeferred
async def test_size_limit_counts_the_document_not_its_whitespace(server: Server) -> None:
    me = await owner_id(server)
    statements = [
        {
            "Sid": f"S{i}",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{me}:root"},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::bucket/prefix-{i:04d}/*",
        }
        for i in range(200)
    ]
    compact = json.dumps({"Version": "2012-10-17", "Statement": statements[:100]}, separators=(",", ":"))
    assert len(compact) < 20 * 1024
    padded = json.dumps({"Version": "2012-10-17", "Statement": statements[:100]}, indent=12).encode()
    assert len(padded) > 20 * 1024
    assert (await put_policy(server, "bucket", padded)).code == 204
    too_big = json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":")).encode()
    assert len(too_big) > 20 * 1024
    r = await put_policy(server, "bucket", too_big)
    assert_error(r, 400, "MalformedPolicy")
    assert b"maximum allowed document size" in r.body
    r = await put_policy(server, "bucket", b"{" + b" " * 200_000 + b"}")
    assert_error(r, 400, "MalformedPolicy")


@pytest_twisted.ensureDeferred
async def test_content_md5_is_checked(server: Server) -> None:
    body = public_read("bucket")
    r = await put_policy(server, "bucket", body, headers=md5_header(b"something else"))
    assert_error(r, 400, "BadDigest")


@pytest_twisted.ensureDeferred
async def test_block_public_policy(server: Server) -> None:
    # A new bucket blocks public policies: a public one is refused, a private one is not.
    r = await put_policy(server, "bucket", public_read("bucket"))
    assert_error(r, 403, "AccessDenied")
    assert b"BlockPublicPolicy" in r.body
    assert_error(await server.request("GET", "/bucket", query="policy="), 404, "NoSuchBucketPolicy")
    me = await owner_id(server)
    private = document(
        {"Effect": "Allow", "Principal": {"AWS": me}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*"}
    )
    assert (await put_policy(server, "bucket", private)).code == 204
    await allow_public(server, "bucket")
    assert (await put_policy(server, "bucket", public_read("bucket"))).code == 204
    r = await server.request("GET", "/bucket", query="policyStatus=")
    assert xml_values(r.body, "IsPublic") == ["true"]


# -- enforced on the next request


@pytest_twisted.ensureDeferred
async def test_public_read_policy_lets_anonymous_callers_read_only(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/photo.jpg", b"jpeg bytes")).code == 200
    assert_error(await server.request("GET", "/bucket/photo.jpg", sign=False), 403, "AccessDenied")
    await allow_public(server, "bucket")
    assert (await put_policy(server, "bucket", public_read("bucket"))).code == 204
    r = await server.request("GET", "/bucket/photo.jpg", sign=False)
    assert (r.code, r.body) == (200, b"jpeg bytes")
    assert_error(await server.request("PUT", "/bucket/other.jpg", b"x", sign=False), 403, "AccessDenied")
    assert_error(await server.request("GET", "/bucket", sign=False), 403, "AccessDenied")  # no ListBucket
    assert (await server.request("DELETE", "/bucket", query="policy=")).code == 204
    assert_error(await server.request("GET", "/bucket/photo.jpg", sign=False), 403, "AccessDenied")


@pytest_twisted.ensureDeferred
async def test_referer_restricted_public_read(server: Server) -> None:
    # The S3 guide's "Restricting access to a specific HTTP referer".
    assert (await server.request("PUT", "/bucket/img.png", b"png")).code == 200
    await allow_public(server, "bucket")
    body = document(
        {
            "Sid": "AllowGetRequestsReferredByWwwExampleCom",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::bucket/*",
            "Condition": {"StringLike": {"aws:Referer": ["https://www.example.com/*", "https://example.com/*"]}},
        }
    )
    assert (await put_policy(server, "bucket", body)).code == 204
    referred = {"Referer": "https://www.example.com/gallery.html"}
    assert (await server.request("GET", "/bucket/img.png", headers=referred, sign=False)).code == 200
    assert_error(await server.request("GET", "/bucket/img.png", sign=False), 403, "AccessDenied")
    elsewhere = {"Referer": "https://evil.example.net/"}
    assert_error(await server.request("GET", "/bucket/img.png", headers=elsewhere, sign=False), 403, "AccessDenied")


@pytest_twisted.ensureDeferred
async def test_explicit_deny_binds_the_owner_but_never_locks_it_out(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/secret", b"s")).code == 200
    deny_all = document(
        {
            "Sid": "NoOne",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::bucket", "arn:aws:s3:::bucket/*"],
        }
    )
    assert (await put_policy(server, "bucket", deny_all)).code == 204
    assert_error(await server.request("GET", "/bucket/secret"), 403, "AccessDenied")
    assert_error(await server.request("GET", "/bucket"), 403, "AccessDenied")
    # The owner's root user can still read and remove the policy that denies it everything.
    assert (await server.request("GET", "/bucket", query="policy=")).code == 200
    assert (await server.request("DELETE", "/bucket", query="policy=")).code == 204
    assert (await server.request("GET", "/bucket/secret")).code == 200


@pytest_twisted.ensureDeferred
async def test_deny_plain_http_and_outside_addresses(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/k", b"v")).code == 200

    def deny(condition: dict[str, Any]) -> bytes:
        return document(
            {
                "Sid": "Guard",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": ["arn:aws:s3:::bucket", "arn:aws:s3:::bucket/*"],
                "Condition": condition,
            }
        )

    # The in-process server speaks plain HTTP on 127.0.0.1.
    assert (await put_policy(server, "bucket", deny({"Bool": {"aws:SecureTransport": "false"}}))).code == 204
    assert_error(await server.request("GET", "/bucket/k"), 403, "AccessDenied")
    assert (await put_policy(server, "bucket", deny({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))).code == 204
    assert_error(await server.request("GET", "/bucket/k"), 403, "AccessDenied")
    assert (await put_policy(server, "bucket", deny({"NotIpAddress": {"aws:SourceIp": "127.0.0.0/8"}}))).code == 204
    assert (await server.request("GET", "/bucket/k")).code == 200


@pytest_twisted.ensureDeferred
async def test_another_tenant_reads_only_what_the_policy_grants(server: Server) -> None:
    other = await server.engine.ensure_credential("other", OTHER_ACCESS, OTHER_SECRET)
    assert (await server.request("PUT", "/bucket/shared/a.txt", b"for you")).code == 200
    assert (await server.request("PUT", "/bucket/private/b.txt", b"not for you")).code == 200
    as_other = {"access": OTHER_ACCESS, "secret": OTHER_SECRET}
    assert_error(await server.request("GET", "/bucket/shared/a.txt", **as_other), 403, "AccessDenied")
    grant = document(
        {
            "Sid": "ShareWithOther",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{other.id}:root"},
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::bucket/shared/*",
        }
    )
    assert (await put_policy(server, "bucket", grant)).code == 204
    r = await server.request("GET", "/bucket/shared/a.txt", **as_other)
    assert (r.code, r.body) == (200, b"for you")
    assert_error(await server.request("GET", "/bucket/private/b.txt", **as_other), 403, "AccessDenied")
    assert_error(await server.request("PUT", "/bucket/shared/c.txt", b"x", **as_other), 403, "AccessDenied")
    assert_error(await server.request("GET", "/bucket", query="policy=", **as_other), 403, "AccessDenied")
    assert_error(await put_policy(server, "bucket", grant, **as_other), 403, "AccessDenied")


@pytest_twisted.ensureDeferred
async def test_a_policy_granting_everything_to_another_tenant_does_not_hand_over_the_policy(server: Server) -> None:
    other = await server.engine.ensure_credential("other", OTHER_ACCESS, OTHER_SECRET)
    as_other = {"access": OTHER_ACCESS, "secret": OTHER_SECRET}
    everything = document(
        {
            "Effect": "Allow",
            "Principal": {"AWS": other.id},
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::bucket", "arn:aws:s3:::bucket/*"],
        }
    )
    assert (await put_policy(server, "bucket", everything)).code == 204
    assert (await server.request("PUT", "/bucket/theirs", b"x", **as_other)).code == 200  # the grant works
    # As on S3: another account's identities get 405 from the bucket policy operations.
    assert_error(await server.request("GET", "/bucket", query="policy=", **as_other), 405, "MethodNotAllowed")
    assert_error(await put_policy(server, "bucket", everything, **as_other), 405, "MethodNotAllowed")
    assert_error(await server.request("DELETE", "/bucket", query="policy=", **as_other), 405, "MethodNotAllowed")
    assert (await server.request("GET", "/bucket", query="policy=")).body == everything


@pytest_twisted.ensureDeferred
async def test_home_prefix_for_a_user_by_bucket_policy(server: Server) -> None:
    tenant = await server.engine.ensure_credential("default", "TESTACCESSKEY", "test-secret-key-0123456789")
    await server.catalog.create_user(tenant.id, "alice", None)
    await server.catalog.add_credential(tenant.id, ALICE_ACCESS, ALICE_SECRET, user="alice")
    as_alice = {"access": ALICE_ACCESS, "secret": ALICE_SECRET}
    for key in ("home/alice/a.txt", "home/bob/b.txt"):
        assert (await server.request("PUT", f"/bucket/{key}", b"x")).code == 200
    home = document(
        {
            "Sid": "ListOwnHome",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{tenant.id}:user/alice"},
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::bucket",
            "Condition": {"StringLike": {"s3:prefix": ["home/${aws:username}/*"]}},
        },
        {
            "Sid": "UseOwnHome",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{tenant.id}:user/alice"},
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": "arn:aws:s3:::bucket/home/${aws:username}/*",
        },
    )
    assert (await put_policy(server, "bucket", home)).code == 204
    r = await server.request("GET", "/bucket", query="list-type=2&prefix=home%2Falice%2F", **as_alice)
    assert r.code == 200 and xml_values(r.body, "Key") == ["home/alice/a.txt"], r.body
    assert_error(
        await server.request("GET", "/bucket", query="list-type=2&prefix=home%2F", **as_alice), 403, "AccessDenied"
    )
    assert_error(await server.request("GET", "/bucket", query="list-type=2", **as_alice), 403, "AccessDenied")
    assert (await server.request("GET", "/bucket/home/alice/a.txt", **as_alice)).code == 200
    assert (await server.request("PUT", "/bucket/home/alice/new.txt", b"y", **as_alice)).code == 200
    assert_error(await server.request("GET", "/bucket/home/bob/b.txt", **as_alice), 403, "AccessDenied")
    assert_error(await server.request("DELETE", "/bucket/home/alice/a.txt", **as_alice), 403, "AccessDenied")


# -- real clients against a real daemon


def test_boto3_bucket_policy(module_daemon: Any) -> None:
    s3 = module_daemon.boto3_client()
    s3.create_bucket(Bucket="boto-policy")
    with pytest.raises(ClientError) as caught:
        s3.get_bucket_policy(Bucket="boto-policy")
    assert caught.value.response["Error"]["Code"] == "NoSuchBucketPolicy"
    with pytest.raises(ClientError) as caught:
        s3.put_bucket_policy(Bucket="boto-policy", Policy=public_read("boto-policy").decode())
    assert caught.value.response["Error"]["Code"] == "AccessDenied"  # BlockPublicPolicy of a new bucket
    s3.delete_public_access_block(Bucket="boto-policy")
    s3.put_bucket_policy(Bucket="boto-policy", Policy=public_read("boto-policy").decode())
    got = s3.get_bucket_policy(Bucket="boto-policy")["Policy"]
    assert json.loads(got)["Statement"][0]["Sid"] == "PublicRead"
    status = s3.get_bucket_policy_status(Bucket="boto-policy")["PolicyStatus"]
    assert status == {"IsPublic": True}
    with pytest.raises(ClientError) as caught:
        s3.put_bucket_policy(Bucket="boto-policy", Policy='{"Version": "2012-10-17", "Statement": []}')
    assert caught.value.response["Error"]["Code"] == "MalformedPolicy"
    assert "Statement is empty" in caught.value.response["Error"]["Message"]
    s3.put_object(Bucket="boto-policy", Key="pic.png", Body=b"png")
    anonymous = module_daemon.boto3_client(signature_version=UNSIGNED)
    assert anonymous.get_object(Bucket="boto-policy", Key="pic.png")["Body"].read() == b"png"
    s3.delete_bucket_policy(Bucket="boto-policy")
    with pytest.raises(ClientError) as caught:
        anonymous.get_object(Bucket="boto-policy", Key="pic.png")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"


def test_aws_cli_put_bucket_policy(module_daemon: Any, aws_home: Path, tmp_path: Path) -> None:
    s3 = module_daemon.boto3_client()  # setup and teardown by boto3: each aws cli call takes seconds
    s3.create_bucket(Bucket="cli-policy")
    s3.delete_public_access_block(Bucket="cli-policy")
    policy_file = tmp_path / "policy.json"
    policy_file.write_bytes(public_read("cli-policy"))
    module_daemon.aws(
        aws_home, "s3api", "put-bucket-policy", "--bucket", "cli-policy", "--policy", f"file://{policy_file}"
    )
    got = module_daemon.aws(aws_home, "s3api", "get-bucket-policy", "--bucket", "cli-policy")
    assert json.loads(json.loads(got.stdout)["Policy"]) == json.loads(public_read("cli-policy"))
    status = module_daemon.aws(aws_home, "s3api", "get-bucket-policy-status", "--bucket", "cli-policy")
    assert json.loads(status.stdout) == {"PolicyStatus": {"IsPublic": True}}
    policy_file.write_text('{"Version": "2012-10-17", "Statement": {"Effect": "Allow"}}')
    bad = module_daemon.aws(
        aws_home,
        "s3api",
        "put-bucket-policy",
        "--bucket",
        "cli-policy",
        "--policy",
        f"file://{policy_file}",
        check=False,
    )
    assert bad.returncode != 0 and "MalformedPolicy" in bad.stderr, bad.stderr
    assert json.loads(s3.get_bucket_policy(Bucket="cli-policy")["Policy"])["Statement"][0]["Sid"] == "PublicRead"
    s3.delete_bucket_policy(Bucket="cli-policy")
