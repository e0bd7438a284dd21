"""Every foundation operation and error, against the real stack in process."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
from datetime import UTC, datetime, timedelta
from email.utils import formatdate

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor, threads

from tests.s3helpers import ACCESS, SECRET, Server, error_code, later, raw_exchange, signed_head, xml_values
from vaultaire import sigv4


@pytest_twisted.async_yield_fixture
async def server(tmp_path, upstream):
    s = Server(str(tmp_path), upstream=upstream)
    await s.start()
    yield s
    await s.stop()


async def make_bucket(server: Server, name: str = "bucket") -> None:
    r = await server.request("PUT", f"/{name}")
    assert r.code == 200, r.body


# -- containers


@pytest_twisted.ensureDeferred
async def test_bucket_lifecycle(server):
    r = await server.request("GET", "/")
    assert r.code == 200 and b"<Buckets></Buckets>" in r.body
    await make_bucket(server, "photos")
    r = await server.request("GET", "/")
    assert xml_values(r.body, "Name") == ["photos"]
    r = await server.request("PUT", "/photos")
    assert r.code == 200  # S3's legacy answer in us-east-1 (409 elsewhere: tests/test_compat.py)
    r = await server.request("HEAD", "/photos")
    assert r.code == 200 and r.headers.getRawHeaders("x-amz-bucket-region") == ["us-east-1"]
    r = await server.request("HEAD", "/nothere")
    assert r.code == 404 and r.body == b""
    r = await server.request("GET", "/photos", query="location")
    assert r.code == 200 and b"LocationConstraint" in r.body
    await server.request("PUT", "/photos/k", b"x")
    r = await server.request("DELETE", "/photos")
    assert (r.code, error_code(r)) == (409, "BucketNotEmpty")
    await server.request("DELETE", "/photos/k")
    r = await server.request("DELETE", "/photos")
    assert r.code == 204
    r = await server.request("DELETE", "/photos")
    assert (r.code, error_code(r)) == (404, "NoSuchBucket")


@pytest.mark.parametrize("name", ["ab", "Upper", "a_b", "-abc", "abc-", "a..b", "192.168.1.1", "x" * 64, "xn--abc"])
@pytest_twisted.ensureDeferred
async def test_invalid_bucket_names_are_refused(server, name):
    r = await server.request("PUT", f"/{name}")
    assert (r.code, error_code(r)) == (400, "InvalidBucketName")


@pytest_twisted.ensureDeferred
async def test_create_bucket_location_constraint(server):
    body = b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>mars-1</LocationConstraint></CreateBucketConfiguration>'
    r = await server.request("PUT", "/located", body)
    assert (r.code, error_code(r)) == (400, "InvalidLocationConstraint")
    r = await server.request("PUT", "/located", b"<not-xml")
    assert (r.code, error_code(r)) == (400, "MalformedXML")
    ok = body.replace(b"mars-1", b"us-east-1")
    r = await server.request("PUT", "/located", ok)
    assert r.code == 200


# -- artifacts


KEYS = ["a//b", "dir/", "ünïcödé/ключ/鍵", "100%", "a+b", "with space", "what?x=1", "hash#frag", "~tilde", "semi;colon"]


@pytest.mark.parametrize("key", KEYS)
@pytest_twisted.ensureDeferred
async def test_keys_round_trip_exactly(server, key):
    await make_bucket(server)
    body = os.urandom(1000)
    r = await server.request("PUT", f"/bucket/{key}", body)
    assert r.code == 200, r.body
    assert r.headers.getRawHeaders("etag") == [f'"{hashlib.md5(body).hexdigest()}"']
    r = await server.request("GET", f"/bucket/{key}")
    assert r.code == 200 and r.body == body
    r = await server.request("GET", "/bucket", query="list-type=2")
    assert xml_values(r.body, "Key") == [key.replace("&", "&amp;")]


@pytest_twisted.ensureDeferred
async def test_metadata_and_content_type_are_kept(server):
    await make_bucket(server)
    r = await server.request(
        "PUT",
        "/bucket/doc",
        b"hello",
        headers={"Content-Type": "text/x-test", "x-amz-meta-Colour": "blue", "x-amz-meta-size": "xl"},
    )
    assert r.code == 200
    for method in ("GET", "HEAD"):
        r = await server.request(method, "/bucket/doc")
        assert r.headers.getRawHeaders("content-type") == ["text/x-test"]
        assert r.headers.getRawHeaders("x-amz-meta-colour") == ["blue"]
        assert r.headers.getRawHeaders("x-amz-meta-size") == ["xl"]
        if method == "HEAD":
            assert r.headers.getRawHeaders("content-length") == ["5"]
        else:
            assert r.body == b"hello"
        assert r.headers.getRawHeaders("last-modified")
    r = await server.request("PUT", "/bucket/plain", b"x")
    r = await server.request("HEAD", "/bucket/plain")
    assert r.headers.getRawHeaders("content-type") == ["binary/octet-stream"]


@pytest_twisted.ensureDeferred
async def test_metadata_too_large(server):
    await make_bucket(server)
    r = await server.request("PUT", "/bucket/k", b"x", headers={"x-amz-meta-big": "v" * 2100})
    assert (r.code, error_code(r)) == (400, "MetadataTooLarge")


@pytest_twisted.ensureDeferred
async def test_key_too_long(server):
    await make_bucket(server)
    r = await server.request("PUT", "/bucket/" + "k" * 1025, b"x")
    assert (r.code, error_code(r)) == (400, "KeyTooLongError")
    r = await server.request("PUT", "/bucket/" + "k" * 1024, b"x")
    assert r.code == 200


@pytest_twisted.ensureDeferred
async def test_overwrite_replaces_and_frees_the_old_blob(server):
    await make_bucket(server)
    await server.request("PUT", "/bucket/k", b"first")
    assert len(server.blob_files()) == 1
    r = await server.request("PUT", "/bucket/k", b"second version")
    assert r.code == 200
    r = await server.request("GET", "/bucket/k")
    assert r.body == b"second version"
    await server.sweep()
    assert len(server.blob_files()) == 1
    r = await server.request("DELETE", "/bucket/k")
    assert r.code == 204
    await server.sweep()
    assert server.blob_files() == []
    r = await server.request("DELETE", "/bucket/k")
    assert r.code == 204  # S3 answers 204 for a key that is already gone


@pytest_twisted.ensureDeferred
async def test_missing_keys(server):
    await make_bucket(server)
    r = await server.request("GET", "/bucket/nope")
    assert (r.code, error_code(r)) == (404, "NoSuchKey")
    assert xml_values(r.body, "Key") == ["nope"]
    r = await server.request("HEAD", "/bucket/nope")
    assert r.code == 404 and r.body == b""
    r = await server.request("GET", "/nobucket/nope")
    assert (r.code, error_code(r)) == (404, "NoSuchBucket")


@pytest.mark.parametrize(
    "header,status,expected,content_range",
    [
        ("bytes=0-9", 206, slice(0, 10), "bytes 0-9/100"),
        ("bytes=90-", 206, slice(90, 100), "bytes 90-99/100"),
        ("bytes=-5", 206, slice(95, 100), "bytes 95-99/100"),
        ("bytes=50-1000", 206, slice(50, 100), "bytes 50-99/100"),
        ("bytes=-500", 206, slice(0, 100), "bytes 0-99/100"),
        ("bytes=5-2", 200, slice(0, 100), None),
        ("items=0-1", 200, slice(0, 100), None),
        ("bytes=0-1,5-6", 200, slice(0, 100), None),
    ],
)
@pytest_twisted.ensureDeferred
async def test_ranges(server, header, status, expected, content_range):
    await make_bucket(server)
    body = bytes(range(100))
    await server.request("PUT", "/bucket/r", body)
    r = await server.request("GET", "/bucket/r", headers={"Range": header})
    assert r.code == status
    assert r.body == body[expected]
    assert r.headers.getRawHeaders("content-range") == ([content_range] if content_range else None)


@pytest_twisted.ensureDeferred
async def test_unsatisfiable_ranges(server):
    await make_bucket(server)
    await server.request("PUT", "/bucket/r", b"0123456789")
    await server.request("PUT", "/bucket/empty", b"")
    for key, header in [
        ("r", "bytes=10-"),
        ("r", "bytes=100-200"),
        ("empty", "bytes=0-0"),
        ("empty", "bytes=-1"),
        ("r", "bytes=-0"),
    ]:
        r = await server.request("GET", f"/bucket/{key}", headers={"Range": header})
        assert (r.code, error_code(r)) == (416, "InvalidRange"), (key, header)
    r = await server.request("GET", "/bucket/empty")
    assert r.code == 200 and r.body == b""


# -- listing


@pytest_twisted.ensureDeferred
async def test_list_v2_prefix_delimiter_and_pages(server):
    await make_bucket(server)
    keys = ["a/1", "a/2", "a/b/3", "b", "c/4", "é", "z", "Z"]
    for k in keys:
        await server.request("PUT", f"/bucket/{k}", b"x")
    r = await server.request("GET", "/bucket", query="list-type=2")
    # UTF-8 binary order: upper case before lower case, 'é' (0xc3) last
    assert xml_values(r.body, "Key") == sorted(keys, key=lambda k: k.encode())
    r = await server.request("GET", "/bucket", query="list-type=2&delimiter=%2F")
    assert xml_values(r.body, "Key") == ["Z", "b", "z", "é"]
    assert xml_values(r.body, "Prefix")[1:] == ["a/", "c/"]
    r = await server.request("GET", "/bucket", query="list-type=2&prefix=a%2F&delimiter=%2F")
    assert xml_values(r.body, "Key") == ["a/1", "a/2"]
    assert xml_values(r.body, "Prefix") == ["a/", "a/b/"]
    # pagination by two: every entry exactly once
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        q = "list-type=2&max-keys=2&delimiter=%2F"
        if token:
            q += "&continuation-token=" + token
        r = await server.request("GET", "/bucket", query=q)
        pages += 1
        entries = xml_values(r.body, "Key") + [p for p in xml_values(r.body, "Prefix") if p]
        assert int(xml_values(r.body, "KeyCount")[0]) == len(entries) <= 2
        seen += entries
        if xml_values(r.body, "IsTruncated") == ["false"]:
            break
        token = xml_values(r.body, "NextContinuationToken")[0]
    assert sorted(seen) == sorted(["Z", "b", "z", "é", "a/", "c/"])
    assert pages == 3
    r = await server.request("GET", "/bucket", query="list-type=2&start-after=b")
    assert xml_values(r.body, "Key") == ["c/4", "z", "é"]


@pytest_twisted.ensureDeferred
async def test_list_v1_and_bad_arguments(server):
    await make_bucket(server)
    for k in ["a", "b", "c"]:
        await server.request("PUT", f"/bucket/{k}", b"x")
    r = await server.request("GET", "/bucket", query="marker=a&max-keys=1")
    assert xml_values(r.body, "Key") == ["b"] and xml_values(r.body, "IsTruncated") == ["true"]
    r = await server.request("GET", "/bucket", query="list-type=2&max-keys=abc")
    assert (r.code, error_code(r)) == (400, "InvalidArgument")
    r = await server.request("GET", "/bucket", query="list-type=2&continuation-token=%25%25")
    assert (r.code, error_code(r)) == (400, "InvalidArgument")
    r = await server.request("GET", "/bucket", query="list-type=2&max-keys=5000")
    assert xml_values(r.body, "MaxKeys") == ["1000"]


# -- authentication


@pytest_twisted.ensureDeferred
async def test_auth_errors(server):
    await make_bucket(server)
    r = await server.request("GET", "/bucket", sign=False)
    assert (r.code, error_code(r)) == (403, "AccessDenied")
    r = await server.request("GET", "/bucket", access="NOSUCHKEY")
    assert (r.code, error_code(r)) == (403, "InvalidAccessKeyId")
    r = await server.request("GET", "/bucket", secret="wrong-secret")
    assert (r.code, error_code(r)) == (403, "SignatureDoesNotMatch")
    r = await server.request("GET", "/bucket", sign=False, headers={"Authorization": "AWS4-HMAC-SHA256 garbage"})
    assert (r.code, error_code(r)) == (400, "AuthorizationHeaderMalformed")
    old = datetime.now(UTC) - timedelta(hours=1)
    url = server.url + "/bucket"
    hdrs = sigv4.sign_headers("GET", url, {}, sigv4.EMPTY_SHA256, ACCESS, SECRET, "us-east-1", now=old)
    r = await treq.get(url, headers={k: [v] for k, v in hdrs.items()}, persistent=False)
    assert r.code == 403 and b"RequestTimeTooSkewed" in await r.content()
    hdrs = sigv4.sign_headers("GET", url, {}, sigv4.EMPTY_SHA256, ACCESS, SECRET, "eu-west-1", now=datetime.now(UTC))
    r = await treq.get(url, headers={k: [v] for k, v in hdrs.items()}, persistent=False)
    assert r.code == 400 and b"AuthorizationHeaderMalformed" in await r.content()


@pytest_twisted.ensureDeferred
async def test_errors_are_s3_xml_with_request_id(server):
    r = await server.request("GET", "/nobucket/some/key")
    request_id = r.headers.getRawHeaders("x-amz-request-id")[0]
    assert r.headers.getRawHeaders("content-type") == ["application/xml"]
    assert xml_values(r.body, "Code") == ["NoSuchBucket"]
    assert xml_values(r.body, "Message")
    assert xml_values(r.body, "Resource") == ["/nobucket/some/key"]
    assert xml_values(r.body, "RequestId") == [request_id]


@pytest_twisted.ensureDeferred
async def test_presigned_urls(server):
    await make_bucket(server)
    put_url = server.presign("PUT", "/bucket/pre signed")
    r = await treq.put(put_url, data=b"via presigned put", persistent=False)
    assert r.code == 200, await r.content()
    r = await treq.get(server.presign("GET", "/bucket/pre signed"), persistent=False)
    assert r.code == 200 and await r.content() == b"via presigned put"
    expired = server.presign("GET", "/bucket/pre signed", expires=60, now=datetime.now(UTC) - timedelta(hours=1))
    r = await treq.get(expired, persistent=False)
    body = await r.content()
    assert r.code == 403 and b"AccessDenied" in body and b"expired" in body
    tampered = server.presign("GET", "/bucket/pre signed").replace("pre%20signed", "pre%20signee")
    r = await treq.get(tampered, persistent=False)
    assert r.code == 403 and b"SignatureDoesNotMatch" in await r.content()
    r = await treq.head(server.presign("HEAD", "/bucket/pre signed"), persistent=False)
    assert r.code == 200 and r.headers.getRawHeaders("content-length") == ["17"]
    r = await treq.delete(server.presign("DELETE", "/bucket/pre signed"), persistent=False)
    assert r.code == 204
    r = await treq.head(server.presign("HEAD", "/bucket/pre signed"), persistent=False)
    assert r.code == 404


@pytest_twisted.ensureDeferred
async def test_sigv2_header_auth(server):
    await make_bucket(server)
    date = formatdate(usegmt=True)
    to_sign = f"GET\n\n\n{date}\n/bucket"
    sig = base64.b64encode(__import__("hmac").new(SECRET.encode(), to_sign.encode(), "sha1").digest()).decode()
    r = await treq.get(
        server.url + "/bucket", headers={"Date": date, "Authorization": f"AWS {ACCESS}:{sig}"}, persistent=False
    )
    assert r.code == 200, await r.content()
    r = await treq.get(
        server.url + "/bucket", headers={"Date": date, "Authorization": f"AWS {ACCESS}:x{sig}"}, persistent=False
    )
    assert r.code == 403 and b"SignatureDoesNotMatch" in await r.content()


@pytest_twisted.ensureDeferred
async def test_health_path_is_anonymous(server):
    r = await treq.get(server.url + "/_vaultaire/health", persistent=False)
    assert r.code == 200
    assert json.loads(await r.content())["status"] == "ok"


# -- payload integrity


@pytest_twisted.ensureDeferred
async def test_payload_digests_are_verified_and_failures_store_nothing(server):
    await make_bucket(server)
    body = b"some content"
    r = await server.request("PUT", "/bucket/k", body, payload_hash=hashlib.sha256(b"other").hexdigest())
    assert (r.code, error_code(r)) == (400, "XAmzContentSHA256Mismatch")
    bad_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    r = await server.request("PUT", "/bucket/k", body, headers={"Content-MD5": bad_md5})
    assert (r.code, error_code(r)) == (400, "BadDigest")
    r = await server.request("PUT", "/bucket/k", body, headers={"Content-MD5": "not base64!"})
    assert (r.code, error_code(r)) == (400, "InvalidDigest")
    r = await server.request("HEAD", "/bucket/k")
    assert r.code == 404
    assert server.blob_files() == []
    good_md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    r = await server.request(
        "PUT", "/bucket/k", body, headers={"Content-MD5": good_md5}, payload_hash=sigv4.UNSIGNED_PAYLOAD
    )
    assert r.code == 200


@pytest_twisted.ensureDeferred
async def test_unimplemented_and_wrong_methods(server):
    await make_bucket(server)
    r = await server.request("PUT", "/bucket", query="logging=")
    assert (r.code, error_code(r)) == (501, "NotImplemented")
    r = await server.request("GET", "/bucket", query="website=")  # ?acl is implemented now (issue 14)
    assert (r.code, error_code(r)) == (501, "NotImplemented")
    r = await server.request("DELETE", "/")
    assert (r.code, error_code(r)) == (405, "MethodNotAllowed")


# -- streaming and 100-continue over a raw socket


@pytest_twisted.ensureDeferred
async def test_expect_continue_is_answered_only_after_checks(server):
    await make_bucket(server)
    port = server.port.getHost().port
    # A refused PUT is refused before its body is sent: no 100 Continue.
    head = signed_head(server, "PUT", "/missing-bucket/k", 10, {"expect": "100-continue"})
    got = await threads.deferToThread(raw_exchange, port, head, [], True)
    assert got.startswith(b"HTTP/1.1 404") and b"NoSuchBucket" in got
    head = signed_head(server, "PUT", "/bucket/k", 6 * 2**30, {"expect": "100-continue"})
    got = await threads.deferToThread(raw_exchange, port, head, [], True)
    assert got.startswith(b"HTTP/1.1 400") and b"EntityTooLarge" in got
    bad = signed_head(server, "PUT", "/bucket/k", 10, {"expect": "100-continue"}).replace(b"Signature=", b"Signature=0")
    got = await threads.deferToThread(raw_exchange, port, bad, [], True)
    assert got.startswith(b"HTTP/1.1 403")
    # An accepted one gets 100 Continue, then its 200.
    head = signed_head(server, "PUT", "/bucket/k", 10, {"expect": "100-continue"})
    got = await threads.deferToThread(raw_exchange, port, head, [b"0123456789"], True)
    assert got.startswith(b"HTTP/1.1 100 Continue") and b"HTTP/1.1 200" in got
    r = await server.request("GET", "/bucket/k")
    assert r.body == b"0123456789"


def half_upload_then_close(port: int, head: bytes, part: bytes) -> None:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(head + part)
    s.close()


@pytest_twisted.ensureDeferred
async def test_client_disconnect_mid_upload_leaves_nothing(server):
    await make_bucket(server)
    port = server.port.getHost().port
    head = signed_head(server, "PUT", "/bucket/partial", 8 * 2**20, {})
    await threads.deferToThread(half_upload_then_close, port, head, os.urandom(3 * 2**20))
    deadline = reactor.seconds() + 30  # the server notices the close when the reactor gets to it
    while server.blob_files() and reactor.seconds() < deadline:
        await later(0.05)
    assert server.blob_files() == []
    r = await server.request("HEAD", "/bucket/partial")
    assert r.code == 404


@pytest_twisted.ensureDeferred
async def test_large_upload_streams_and_reads_back(server):
    await make_bucket(server)
    body = os.urandom(9 * 2**20 + 7)
    r = await server.request("PUT", "/bucket/large", body)
    assert r.code == 200
    r = await server.request("GET", "/bucket/large")
    assert hashlib.md5(r.body).hexdigest() == hashlib.md5(body).hexdigest()
    r = await server.request("GET", "/bucket/large", headers={"Range": "bytes=4194000-5242999"})
    assert r.body == body[4194000:5243000]


# -- events and metrics


@pytest_twisted.ensureDeferred
async def test_every_operation_is_an_event_and_a_metric(server):
    await make_bucket(server)
    await server.request("PUT", "/bucket/k", b"12345")
    await server.request("GET", "/bucket/k")
    await server.request("GET", "/bucket/none")
    await threads.deferToThread(server.events.flush)
    with open(os.path.join(server.data, "events", "events.jsonl")) as f:
        events = [json.loads(line) for line in f]
    assert [(e["operation"], e["status"]) for e in events] == [
        ("CreateBucket", 200),
        ("PutObject", 200),
        ("GetObject", 200),
        ("GetObject", 404),
    ]
    put, get = events[1], events[2]
    assert put["bytes_in"] == 5 and put["tenant"] == "default" and put["key"] == "k" and put["container"] == "bucket"
    assert get["bytes_out"] == 5 and events[3]["error"] == "NoSuchKey"
    body, _ = server.metrics.render()
    assert b'vaultaire_requests_total{operation="GetObject",status="404"} 1.0' in body


@pytest_twisted.ensureDeferred
async def test_put_without_content_length_is_refused(server):
    await make_bucket(server)
    port = server.port.getHost().port
    head = signed_head(server, "PUT", "/bucket/k", None, {})
    got = await threads.deferToThread(raw_exchange, port, head, [b"hello"], False)
    assert got.startswith(b"HTTP/1.1 411") and b"MissingContentLength" in got
    assert (await server.request("HEAD", "/bucket/k")).code == 404
