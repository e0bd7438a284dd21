"""Acceptance: real boto3 and aws cli against a real `twistd vaultaire` process."""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from daemon import Daemon

from tests.commands import curl, run

pytestmark = pytest.mark.timeout(120)

_names = itertools.count()


def new_bucket(client: Any) -> str:
    name = f"bkt-{os.getpid()}-{next(_names)}"
    client.create_bucket(Bucket=name)
    return name


def error_code(call: Callable[[], Any]) -> tuple[str, int, dict[str, str]]:
    with pytest.raises(ClientError) as info:
        call()
    response = info.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["ResponseMetadata"]["HTTPHeaders"],
    )


def wait_for_events(
    daemon: Daemon, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 5.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    events = daemon.events()
    while not predicate(events) and time.monotonic() < deadline:
        time.sleep(0.05)
        events = daemon.events()
    return events


@pytest.fixture
def s3(module_daemon: Daemon) -> Any:
    return module_daemon.boto3_client()


# -- boto3


def test_bucket_lifecycle(module_daemon: Daemon, s3: Any) -> None:
    name = f"life-{os.getpid()}"
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    assert s3.get_bucket_location(Bucket=name).get("LocationConstraint") in (None, "", "us-east-1")
    s3.create_bucket(Bucket=name)  # again: S3's legacy 200 in us-east-1, which create-if-missing scripts rely on
    s3.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    code, status, _ = error_code(lambda: s3.head_bucket(Bucket=name))
    assert status == 404


AWKWARD_KEYS = [
    "a//b",
    "dir/",
    "ünïcødé/日本語/файл.txt",
    "100%",
    "a+b+c",
    "with spaces  here",
    "what?is=this&x",
    "hash#tag",
    "~tilde!*'()$,;:@[]",
    "/leading-slash",
    "trailing.",
]


def test_awkward_keys_round_trip(s3: Any) -> None:
    bucket = new_bucket(s3)
    bodies = {key: f"body of {key!r}".encode() for key in AWKWARD_KEYS}
    for key, body in bodies.items():
        put = s3.put_object(Bucket=bucket, Key=key, Body=body)
        assert put["ETag"].strip('"') == hashlib.md5(body).hexdigest(), key
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed) == sorted(AWKWARD_KEYS)
    listed_v1 = [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]]
    assert sorted(listed_v1) == sorted(AWKWARD_KEYS)
    for key, body in bodies.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body), key
    for key in AWKWARD_KEYS:
        s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    s3.delete_bucket(Bucket=bucket)


def test_metadata_and_content_type(s3: Any) -> None:
    bucket = new_bucket(s3)
    s3.put_object(
        Bucket=bucket,
        Key="doc.json",
        Body=b'{"a": 1}',
        ContentType="application/json; charset=utf-8",
        Metadata={"Owner": "Alice", "x-Trace": "abc-123", "lower": "v a l"},
    )
    head = s3.head_object(Bucket=bucket, Key="doc.json")
    assert head["ContentType"] == "application/json; charset=utf-8"
    assert head["Metadata"] == {"owner": "Alice", "x-trace": "abc-123", "lower": "v a l"}
    assert head["ETag"] == '"{}"'.format(hashlib.md5(b'{"a": 1}').hexdigest())
    got = s3.get_object(Bucket=bucket, Key="doc.json")
    assert got["Metadata"] == head["Metadata"]
    assert got["ContentType"] == head["ContentType"]
    assert got["Body"].read() == b'{"a": 1}'
    # Overwrite replaces metadata and content type entirely.
    s3.put_object(Bucket=bucket, Key="doc.json", Body=b"x")
    head = s3.head_object(Bucket=bucket, Key="doc.json")
    assert head["Metadata"] == {}
    assert head["ContentLength"] == 1


def test_range_get(s3: Any) -> None:
    bucket = new_bucket(s3)
    body = os.urandom(100_000)
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    for spec, want, content_range in [
        ("bytes=0-0", body[:1], "bytes 0-0/100000"),
        ("bytes=10-19", body[10:20], "bytes 10-19/100000"),
        ("bytes=99990-", body[99990:], "bytes 99990-99999/100000"),
        ("bytes=-5", body[-5:], "bytes 99995-99999/100000"),
        ("bytes=50000-999999", body[50000:], "bytes 50000-99999/100000"),
    ]:
        got = s3.get_object(Bucket=bucket, Key="r", Range=spec)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, spec
        assert got["ContentRange"] == content_range, spec
        assert got["ContentLength"] == len(want), spec
        assert got["Body"].read() == want, spec
    code, status, _ = error_code(lambda: s3.get_object(Bucket=bucket, Key="r", Range="bytes=100000-"))
    assert (code, status) == ("InvalidRange", 416)


def test_list_v2_prefix_delimiter_pagination(s3: Any) -> None:
    bucket = new_bucket(s3)
    keys = [f"logs/2024/{i:02d}.log" for i in range(5)] + [f"logs/2025/{i:02d}.log" for i in range(3)]
    keys += ["logs/top.txt", "other/x", "root1", "root2", "logs/2024/sub/deep"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())

    # Pagination, MaxKeys=2: every key exactly once, in order.
    seen: list[str] = []
    pages = 0
    kwargs: dict[str, Any] = {"Bucket": bucket, "MaxKeys": 2}
    while True:
        page = s3.list_objects_v2(**kwargs)
        pages += 1
        assert page["KeyCount"] <= 2
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
        assert pages < 50
    assert seen == sorted(keys)
    assert pages >= len(keys) // 2

    # The paginator agrees (StartAfter too).
    paginator = s3.get_paginator("list_objects_v2")
    via = [
        o["Key"]
        for p in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 3})
        for o in p.get("Contents", [])
    ]
    assert via == sorted(keys)
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="logs/top.txt")
    assert [o["Key"] for o in after["Contents"]] == ["other/x", "root1", "root2"]

    # Prefix.
    page = s3.list_objects_v2(Bucket=bucket, Prefix="logs/2025/")
    assert [o["Key"] for o in page["Contents"]] == [f"logs/2025/{i:02d}.log" for i in range(3)]

    # Delimiter at the root and below a prefix.
    page = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["logs/", "other/"]
    assert [o["Key"] for o in page["Contents"]] == ["root1", "root2"]
    page = s3.list_objects_v2(Bucket=bucket, Prefix="logs/", Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["logs/2024/", "logs/2025/"]
    assert [o["Key"] for o in page["Contents"]] == ["logs/top.txt"]

    # Delimiter with pagination: each key or prefix exactly once across pages.
    entries: list[str] = []
    kwargs = {"Bucket": bucket, "MaxKeys": 2, "Delimiter": "/", "Prefix": "logs/2024/"}
    while True:
        page = s3.list_objects_v2(**kwargs)
        entries += [o["Key"] for o in page.get("Contents", [])]
        entries += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    assert sorted(entries) == sorted([f"logs/2024/{i:02d}.log" for i in range(5)] + ["logs/2024/sub/"])
    assert len(entries) == len(set(entries))

    # v1 with Marker pagination.
    v1: list[str] = []
    marker = ""
    while True:
        page = s3.list_objects(Bucket=bucket, MaxKeys=2, Marker=marker)
        got = [o["Key"] for o in page.get("Contents", [])]
        v1 += got
        if not page["IsTruncated"]:
            break
        marker = page.get("NextMarker") or got[-1]
    assert v1 == sorted(keys)


def test_keys_with_percent_escapes_list_verbatim(s3: Any) -> None:
    bucket = new_bucket(s3)
    keys = ["%2F%41 literal", "50%25off"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"x"
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == sorted(keys)


def raw_request(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request with exactly these headers (urllib would add a form Content-Type)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        target = parts.path + ("?" + parts.query if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("signature_version", [None, "s3v4"], ids=["default-v2", "v4"])
def test_presigned_get_and_put(module_daemon: Daemon, signature_version: str | None) -> None:
    config = {"signature_version": signature_version} if signature_version else {}
    s3 = module_daemon.boto3_client(**config)
    bucket = new_bucket(s3)
    body = os.urandom(3000)
    key = "pre signed+€/x"
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    assert ("X-Amz-Signature=" in put_url) == (signature_version == "s3v4")
    status, headers, _ = raw_request("PUT", put_url, body)
    assert status == 200
    assert headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert headers["x-amz-request-id"]
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    with urllib.request.urlopen(get_url, timeout=10) as r:
        assert r.read() == body
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    # A tampered signature is refused.
    name = "X-Amz-Signature=" if signature_version else "Signature="
    bad = get_url.replace(name, name + "0")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(bad, timeout=10)
    assert info.value.code == 403
    assert b"SignatureDoesNotMatch" in info.value.read()
    # An expired URL is refused.
    expired = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=1)
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(expired, timeout=10)
    assert info.value.code == 403


def test_presigned_listing_v4(module_daemon: Daemon) -> None:
    s3 = module_daemon.boto3_client(signature_version="s3v4")
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    url = s3.generate_presigned_url("list_objects_v2", Params={"Bucket": bucket}, ExpiresIn=300)
    with urllib.request.urlopen(url, timeout=10) as r:
        assert b"<Key>k</Key>" in r.read()


def test_presigned_listing_v2(module_daemon: Daemon) -> None:
    s3 = module_daemon.boto3_client()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    url = s3.generate_presigned_url("list_objects_v2", Params={"Bucket": bucket}, ExpiresIn=300)
    assert "Signature=" in url and "X-Amz-Signature" not in url
    status, _, body = raw_request("GET", url)
    assert status == 200, body
    assert b"<Key>k</Key>" in body


def test_error_codes(module_daemon: Daemon, s3: Any) -> None:
    missing = f"missing-{os.getpid()}"
    code, status, headers = error_code(lambda: s3.list_objects_v2(Bucket=missing))
    assert (code, status) == ("NoSuchBucket", 404)
    assert headers.get("x-amz-request-id")
    code, status, _ = error_code(lambda: s3.put_object(Bucket=missing, Key="k", Body=b"x"))
    assert (code, status) == ("NoSuchBucket", 404)

    bucket = new_bucket(s3)
    code, status, _ = error_code(lambda: s3.get_object(Bucket=bucket, Key="nope"))
    assert (code, status) == ("NoSuchKey", 404)
    code, status, _ = error_code(lambda: s3.head_object(Bucket=bucket, Key="nope"))
    assert (code, status) == ("404", 404)  # HEAD has no body: botocore names the error by its status

    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    code, status, _ = error_code(lambda: s3.delete_bucket(Bucket=bucket))
    assert (code, status) == ("BucketNotEmpty", 409)
    # Deleting a missing key is a success in S3.
    assert s3.delete_object(Bucket=bucket, Key="nope")["ResponseMetadata"]["HTTPStatusCode"] == 204

    stranger = module_daemon.boto3_client(access_key="VTNOSUCHKEY000000000")
    code, status, _ = error_code(lambda: stranger.list_buckets())
    assert (code, status) == ("InvalidAccessKeyId", 403)
    wrong = module_daemon.boto3_client(secret_key="not-the-right-secret-at-all")
    code, status, _ = error_code(lambda: wrong.get_object(Bucket=bucket, Key="keep"))
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    code, status, _ = error_code(lambda: wrong.put_object(Bucket=bucket, Key="keep", Body=b"overwrite"))
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"x"


def test_every_response_has_request_id(module_daemon: Daemon, s3: Any) -> None:
    ids: list[str] = []

    def grab(http_response: Any, **_: Any) -> None:
        ids.append(http_response.headers.get("x-amz-request-id", ""))

    s3.meta.events.register("after-call.s3", lambda http_response, **kw: grab(http_response))
    s3.meta.events.register("after-call-error.s3", lambda **kw: None)
    calls: list[Callable[[], Any]] = []
    bucket = f"ids-{os.getpid()}"
    calls += [
        lambda: s3.create_bucket(Bucket=bucket),
        lambda: s3.list_buckets(),
        lambda: s3.head_bucket(Bucket=bucket),
        lambda: s3.get_bucket_location(Bucket=bucket),
        lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"v"),
        lambda: s3.head_object(Bucket=bucket, Key="k"),
        lambda: s3.get_object(Bucket=bucket, Key="k")["Body"].read(),
        lambda: s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-0")["Body"].read(),
        lambda: s3.list_objects(Bucket=bucket),
        lambda: s3.list_objects_v2(Bucket=bucket),
        lambda: s3.delete_object(Bucket=bucket, Key="k"),
        lambda: s3.delete_bucket(Bucket=bucket),
    ]
    for call in calls:
        call()
    assert len(ids) == len(calls)
    assert all(ids), ids
    assert len(set(ids)) == len(ids), "request ids must be unique"
    # Errors carry one too, in the header and the XML body.
    for call in (lambda: s3.head_bucket(Bucket=bucket), lambda: s3.list_objects_v2(Bucket=bucket)):
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-request-id")
    # Raw requests too: unsigned, the health path.
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(module_daemon.endpoint_url + "/", timeout=10)
    assert raw.value.code == 403 and raw.value.headers["x-amz-request-id"]
    with urllib.request.urlopen(module_daemon.endpoint_url + "/_vaultaire/health", timeout=10) as r:
        assert r.status == 200 and r.headers["x-amz-request-id"]


def test_events_recorded(module_daemon: Daemon, s3: Any) -> None:
    bucket = f"events-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="e/k", Body=b"12345")
    s3.get_object(Bucket=bucket, Key="e/k")["Body"].read()
    s3.list_objects_v2(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="absent")
    s3.delete_object(Bucket=bucket, Key="e/k")
    s3.delete_bucket(Bucket=bucket)
    wanted = [
        ("CreateBucket", None, 200),
        ("PutObject", "e/k", 200),
        ("GetObject", "e/k", 200),
        ("ListObjectsV2", None, 200),
        ("GetObject", "absent", 404),
        ("DeleteObject", "e/k", 204),
        ("DeleteBucket", None, 204),
    ]

    def mine(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in events if e.get("container") == bucket]

    events = mine(wait_for_events(module_daemon, lambda ev: len(mine(ev)) >= len(wanted)))
    assert [(e["operation"], e["key"], e["status"]) for e in events] == wanted
    for e in events:
        assert e["tenant"] == "default"
        assert e["request_id"]
        assert e["duration_ms"] >= 0
    assert events[1]["bytes_in"] == 5
    assert events[2]["bytes_out"] == 5
    assert events[4]["error"] == "NoSuchKey"
    assert all(e["error"] is None for i, e in enumerate(events) if i != 4)
    # A request with an unknown key is recorded without a tenant.
    stranger = module_daemon.boto3_client(access_key="VTNOSUCHKEY000000001")
    with pytest.raises(ClientError):
        stranger.list_buckets()
    events = wait_for_events(module_daemon, lambda ev: ev[-1].get("error") == "InvalidAccessKeyId")
    assert events[-1]["error"] == "InvalidAccessKeyId"
    assert events[-1]["tenant"] is None
    assert events[-1]["status"] == 403


def test_events_count_bytes_out_of_xml_responses(module_daemon: Daemon, s3: Any) -> None:
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    listing = s3.list_objects_v2(Bucket=bucket)
    length = int(listing["ResponseMetadata"]["HTTPHeaders"]["content-length"])
    events = wait_for_events(
        module_daemon, lambda ev: any(e["operation"] == "ListObjectsV2" and e["container"] == bucket for e in ev)
    )
    event = [e for e in events if e["operation"] == "ListObjectsV2" and e["container"] == bucket][-1]
    assert event["bytes_out"] == length


# -- aws cli


def test_aws_cli_round_trip(module_daemon: Daemon, aws_home: Path, tmp_path: Path) -> None:
    bucket = f"cli-{os.getpid()}"
    source = tmp_path / "upload.bin"
    source.write_bytes(os.urandom(5 * 2**20))
    aws = module_daemon.aws

    assert f"make_bucket: {bucket}" in aws(aws_home, "s3", "mb", f"s3://{bucket}").stdout
    assert bucket in aws(aws_home, "s3", "ls").stdout
    aws(aws_home, "s3", "cp", str(source), f"s3://{bucket}/dir/upload file.bin")
    listing = aws(aws_home, "s3", "ls", f"s3://{bucket}/", "--recursive").stdout
    assert "dir/upload file.bin" in listing and str(5 * 2**20) in listing
    assert "PRE dir/" in aws(aws_home, "s3", "ls", f"s3://{bucket}/").stdout

    head = aws(aws_home, "s3api", "head-object", "--bucket", bucket, "--key", "dir/upload file.bin").stdout
    doc = json.loads(head)
    assert doc["ContentLength"] == 5 * 2**20
    assert doc["ETag"] == f'"{hashlib.md5(source.read_bytes()).hexdigest()}"'

    target = tmp_path / "download.bin"
    aws(aws_home, "s3", "cp", f"s3://{bucket}/dir/upload file.bin", str(target))
    assert target.read_bytes() == source.read_bytes()

    url = aws(aws_home, "s3", "presign", f"s3://{bucket}/dir/upload file.bin", "--expires-in", "300").stdout.strip()
    fetched = tmp_path / "curl.bin"
    run([curl(), "-sS", "--fail", "--noproxy", "*", "-o", str(fetched), url], timeout=60)
    assert fetched.read_bytes() == source.read_bytes()

    assert "delete:" in aws(aws_home, "s3", "rm", f"s3://{bucket}/dir/upload file.bin").stdout
    assert "upload file.bin" not in aws(aws_home, "s3", "ls", f"s3://{bucket}/", "--recursive", check=False).stdout
    failed = aws(aws_home, "s3api", "head-object", "--bucket", bucket, "--key", "dir/upload file.bin", check=False)
    assert failed.returncode != 0 and "404" in failed.stderr
    aws(aws_home, "s3", "rb", f"s3://{bucket}")
    assert bucket not in aws(aws_home, "s3", "ls").stdout

    ops = [
        (e["operation"], e["status"])
        for e in wait_for_events(
            module_daemon, lambda ev: any(e["operation"] == "DeleteBucket" and e["container"] == bucket for e in ev)
        )
        if e.get("container") == bucket
    ]
    for op in [
        ("CreateBucket", 200),
        ("PutObject", 200),
        ("HeadObject", 200),
        ("GetObject", 200),
        ("DeleteObject", 204),
        ("HeadObject", 404),
        ("DeleteBucket", 204),
    ]:
        assert op in ops, (op, ops)
