"""S3 edge cases real clients and S3's own answers depend on (issue 12), in process, local driver."""

from __future__ import annotations

import base64
import hashlib
import zlib
from datetime import UTC, datetime

import pytest
import pytest_twisted
import treq
from twisted.internet import threads

from tests.s3helpers import (
    ACCESS,
    REGION,
    SECRET,
    Server,
    complete_upload,
    create_upload,
    error_code,
    raw_exchange,
    signed_head,
    upload_part,
    xml_values,
)
from vaultaire import sigv4

BIG = "/bucket/big"  # the multipart tests' key


async def create(server: Server, key: str = "big") -> str:
    return await create_upload(server, f"/bucket/{key}")


async def put_part(server: Server, upload: str, number: int, body: bytes, key: str = "big") -> str:
    return await upload_part(server, f"/bucket/{key}", upload, number, body)


async def complete(server: Server, upload: str, parts: list[tuple[int, str]], key: str = "big", headers=None):
    return await complete_upload(server, f"/bucket/{key}", upload, parts, headers)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


# -- multipart completion: retries and stated checksums


@pytest_twisted.ensureDeferred
async def test_retried_complete_answers_the_same_etag_and_checksum(server):
    r = await server.request("POST", BIG, query="uploads=", headers={"x-amz-checksum-algorithm": "CRC32"})
    upload = xml_values(r.body, "UploadId")[0]
    etag = await upload_part(server, BIG, upload, 1, b"hello")
    first = await complete_upload(server, BIG, upload, [(1, etag)])
    assert first.code == 200, first.body
    again = await complete_upload(server, BIG, upload, [(1, etag)])
    assert again.code == 200, again.body
    assert xml_values(again.body, "ETag") == xml_values(first.body, "ETag")
    assert xml_values(again.body, "ChecksumCRC32") == xml_values(first.body, "ChecksumCRC32") != []
    # Other parts than the ones completed are not the same completion.
    r = await complete_upload(server, BIG, upload, [(1, '"' + "0" * 32 + '"')])
    assert (r.code, error_code(r)) == (404, "NoSuchUpload")
    # Once the key holds something else, the upload is simply gone.
    await server.request("PUT", BIG, b"other")
    r = await complete_upload(server, BIG, upload, [(1, etag)])
    assert (r.code, error_code(r)) == (404, "NoSuchUpload")


@pytest_twisted.ensureDeferred
async def test_complete_of_an_unknown_upload_is_still_no_such_upload(server):
    await server.request("PUT", BIG, b"plain")
    r = await complete_upload(server, BIG, "nope", [(1, '"' + hashlib.md5(b"plain").hexdigest() + '"')])
    assert (r.code, error_code(r)) == (404, "NoSuchUpload")


@pytest.mark.parametrize("kind", ["COMPOSITE", "FULL_OBJECT"])
@pytest_twisted.ensureDeferred
async def test_complete_checks_the_whole_object_checksum(server, kind):
    r = await server.request(
        "POST",
        BIG,
        query="uploads=",
        headers={"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": kind},
    )
    upload = xml_values(r.body, "UploadId")[0]
    etag = await upload_part(server, BIG, upload, 1, b"hello")
    right = b64(crc32(crc32(b"hello"))) if kind == "COMPOSITE" else b64(crc32(b"hello"))
    wrong = b64(crc32(b"something else"))
    r = await complete_upload(server, BIG, upload, [(1, etag)], headers={"x-amz-checksum-crc32": wrong})
    assert (r.code, error_code(r)) == (400, "BadDigest")
    r = await complete_upload(server, BIG, upload, [(1, etag)], headers={"x-amz-checksum-sha256": b64(b"x" * 32)})
    assert (r.code, error_code(r)) == (400, "InvalidRequest")
    other = "FULL_OBJECT" if kind == "COMPOSITE" else "COMPOSITE"
    r = await complete_upload(server, BIG, upload, [(1, etag)], headers={"x-amz-checksum-type": other})
    assert (r.code, error_code(r)) == (400, "InvalidRequest")
    r = await complete_upload(server, BIG, upload, [(1, etag)], headers={"x-amz-mp-object-size": "6"})
    assert (r.code, error_code(r)) == (400, "InvalidRequest")
    r = await complete_upload(
        server, BIG, upload, [(1, etag)], headers={"x-amz-checksum-crc32": right, "x-amz-mp-object-size": "5"}
    )
    assert r.code == 200, r.body


@pytest_twisted.ensureDeferred
async def test_complete_refuses_a_checksum_it_cannot_check(server):
    upload = await create_upload(server, BIG)
    etag = await upload_part(server, BIG, upload, 1, b"hello")
    # The upload has no checksum algorithm: a stated CRC32 cannot be verified, so it is refused.
    r = await complete_upload(server, BIG, upload, [(1, etag)], headers={"x-amz-checksum-crc32": b64(crc32(b"hello"))})
    assert (r.code, error_code(r)) == (400, "InvalidRequest")
    r = await complete_upload(server, BIG, upload, [(1, etag)], headers={"x-amz-checksum-sha512": b64(b"x" * 64)})
    assert (r.code, error_code(r)) == (501, "NotImplemented")


# -- UploadPartCopy ranges


@pytest.mark.parametrize("wanted", ["bytes=0-21", "bytes=5-5", "bytes=3-1", "bytes=-2", "bytes=1-"])
@pytest_twisted.ensureDeferred
async def test_copy_range_outside_the_source_is_refused(server, wanted):
    await server.request("PUT", "/bucket/source", b"12345")
    upload = await create_upload(server, BIG)
    r = await server.request(
        "PUT",
        BIG,
        query=f"partNumber=1&uploadId={upload}",
        headers={"x-amz-copy-source": "/bucket/source", "x-amz-copy-source-range": wanted},
    )
    assert (r.code, error_code(r)) == (400, "InvalidArgument")


@pytest_twisted.ensureDeferred
async def test_copy_range_inside_the_source_is_copied(server):
    await server.request("PUT", "/bucket/source", b"12345")
    upload = await create_upload(server, BIG)
    r = await server.request(
        "PUT",
        BIG,
        query=f"partNumber=1&uploadId={upload}",
        headers={"x-amz-copy-source": "/bucket/source", "x-amz-copy-source-range": "bytes=1-4"},
    )
    assert r.code == 200, r.body
    assert xml_values(r.body, "ETag") == [f'"{hashlib.md5(b"2345").hexdigest()}"']


# -- ListBuckets pagination and filters


@pytest_twisted.ensureDeferred
async def test_list_buckets_pages_and_filters(server):
    for name in ("alpha-1", "alpha-2", "alpha-3", "beta-1"):
        assert (await server.request("PUT", f"/{name}")).code == 200
    r = await server.request("GET", "/", query="max-buckets=2")
    assert xml_values(r.body, "Name") == ["alpha-1", "alpha-2"]
    token = xml_values(r.body, "ContinuationToken")
    assert len(token) == 1
    r = await server.request("GET", "/", query=f"max-buckets=2&continuation-token={token[0]}")
    assert xml_values(r.body, "Name") == ["alpha-3", "beta-1"]
    token = xml_values(r.body, "ContinuationToken")
    r = await server.request("GET", "/", query=f"max-buckets=2&continuation-token={token[0]}")
    assert xml_values(r.body, "Name") == ["bucket"] and xml_values(r.body, "ContinuationToken") == []
    r = await server.request("GET", "/", query="prefix=alpha-")
    assert xml_values(r.body, "Name") == ["alpha-1", "alpha-2", "alpha-3"]
    assert xml_values(r.body, "Prefix") == ["alpha-"]
    r = await server.request("GET", "/", query="prefix=alpha-&max-buckets=2")
    token = xml_values(r.body, "ContinuationToken")[0]
    r = await server.request("GET", "/", query=f"prefix=alpha-&max-buckets=2&continuation-token={token}")
    assert xml_values(r.body, "Name") == ["alpha-3"]
    r = await server.request("GET", "/", query="bucket-region=us-east-1&prefix=beta")
    assert xml_values(r.body, "Name") == ["beta-1"] and xml_values(r.body, "BucketRegion") == ["us-east-1"]
    r = await server.request("GET", "/", query="bucket-region=eu-west-3")
    assert xml_values(r.body, "Name") == []
    r = await server.request("GET", "/")
    assert len(xml_values(r.body, "Name")) == 5 and xml_values(r.body, "ContinuationToken") == []


@pytest.mark.parametrize("query", ["max-buckets=0", "max-buckets=10001", "max-buckets=x", "continuation-token=%25%25"])
@pytest_twisted.ensureDeferred
async def test_list_buckets_refuses_bad_paging(server, query):
    r = await server.request("GET", "/", query=query)
    assert (r.code, error_code(r)) == (400, "InvalidArgument")


# -- listings


@pytest.mark.parametrize("query", ["max-keys=0", "list-type=2&max-keys=0"])
@pytest_twisted.ensureDeferred
async def test_max_keys_zero_is_not_truncated(server, query):
    await server.request("PUT", "/bucket/k", b"x")
    r = await server.request("GET", "/bucket", query=query)
    assert r.code == 200
    assert xml_values(r.body, "IsTruncated") == ["false"] and xml_values(r.body, "Key") == []


# -- stored headers


@pytest_twisted.ensureDeferred
async def test_content_encoding_comes_back_exactly_as_sent(server):
    async def stored_encoding() -> list[bytes]:
        # A raw socket: treq's client re-joins Content-Encoding tokens itself.
        head = signed_head(server, "HEAD", "/bucket/k", None, {"connection": "close"})
        got = await threads.deferToThread(raw_exchange, server.port.getHost().port, head, [], False)
        return [
            line.split(b":", 1)[1].strip()
            for line in got.split(b"\r\n")
            if line.lower().startswith(b"content-encoding:")
        ]

    await server.request("PUT", "/bucket/k", b"x", headers={"Content-Encoding": "deflate, gzip"})
    assert await stored_encoding() == [b"deflate, gzip"]
    await server.request("PUT", "/bucket/k", b"x", headers={"Content-Encoding": "aws-chunked, gzip"})
    assert await stored_encoding() == [b"gzip"]


# -- conditional writes


@pytest_twisted.ensureDeferred
async def test_if_match_on_a_missing_key_is_no_such_key(server):
    r = await server.request("PUT", "/bucket/missing", b"x", headers={"If-Match": '"abc"'})
    assert (r.code, error_code(r)) == (404, "NoSuchKey")
    r = await server.request("PUT", "/bucket/missing", b"x", headers={"If-Match": "*"})
    assert (r.code, error_code(r)) == (404, "NoSuchKey")
    upload = await create_upload(server, "/bucket/missing")
    etag = await upload_part(server, "/bucket/missing", upload, 1, b"x")
    r = await complete_upload(server, "/bucket/missing", upload, [(1, etag)], headers={"If-Match": "*"})
    assert (r.code, error_code(r)) == (404, "NoSuchKey")


@pytest_twisted.ensureDeferred
async def test_if_match_star_means_the_key_exists(server):
    await server.request("PUT", "/bucket/k", b"old")
    r = await server.request("PUT", "/bucket/k", b"new", headers={"If-Match": "*"})
    assert r.code == 200, r.body
    r = await server.request("PUT", "/bucket/k", b"newer", headers={"If-Match": '"' + "0" * 32 + '"'})
    assert (r.code, error_code(r)) == (412, "PreconditionFailed")
    assert (await server.request("GET", "/bucket/k")).body == b"new"


# -- CreateBucket of an owned bucket


@pytest_twisted.ensureDeferred
async def test_create_owned_bucket_again_is_200_in_us_east_1(server):
    await server.request("PUT", "/bucket/k", b"x")
    r = await server.request("PUT", "/bucket")
    assert r.code == 200, r.body
    assert (await server.request("GET", "/bucket/k")).body == b"x"  # and nothing was lost
    body = (
        b"<CreateBucketConfiguration><LocationConstraint>elsewhere-1</LocationConstraint></CreateBucketConfiguration>"
    )
    r = await server.request("PUT", "/bucket", body)
    assert r.code in (400, 409), r.body  # not the same bucket: never a silent 200


@pytest_twisted.ensureDeferred
async def test_create_owned_bucket_again_is_409_in_other_regions(tmp_path):
    s = Server(str(tmp_path))
    s.api.region = "eu-west-3"  # the S3 layer's region; requests are still signed for us-east-1
    await s.start("bucket")
    try:
        r = await s.request("PUT", "/bucket")
        assert (r.code, error_code(r)) == (409, "BucketAlreadyOwnedByYou")
    finally:
        await s.stop()


# -- keys that are not UTF-8


@pytest.mark.parametrize("path", ["/bucket/%FF", "/bucket/a%C3", "/bucket/%ED%A0%80"])
@pytest_twisted.ensureDeferred
async def test_key_not_utf8_is_invalid_uri(server, path):
    url = server.url + path
    hdrs = sigv4.sign_headers("GET", url, {}, sigv4.EMPTY_SHA256, ACCESS, SECRET, REGION, now=datetime.now(UTC))
    r = await treq.request("GET", url.encode(), headers={k: [v] for k, v in hdrs.items()}, persistent=False)
    r.body = await r.content()
    assert (r.code, error_code(r)) == (400, "InvalidURI")
    assert b"parse the specified URI." in r.body


# -- regions: s3cmd signs for "US" at its defaults and retries where <Region> says


async def signed_for(server: Server, region: str, path: str) -> treq.response._Response:
    url = server.url + path
    hdrs = sigv4.sign_headers("GET", url, {}, sigv4.EMPTY_SHA256, ACCESS, SECRET, region, now=datetime.now(UTC))
    r = await treq.request("GET", url.encode(), headers={k: [v] for k, v in hdrs.items()}, persistent=False)
    r.body = await r.content()
    return r


@pytest_twisted.ensureDeferred
async def test_us_is_a_name_of_us_east_1(server):
    r = await signed_for(server, "US", "/bucket")
    assert r.code == 200, r.body


@pytest_twisted.ensureDeferred
async def test_wrong_region_error_names_the_right_one(server):
    r = await signed_for(server, "eu-west-1", "/bucket")
    assert (r.code, error_code(r)) == (400, "AuthorizationHeaderMalformed")
    assert xml_values(r.body, "Region") == ["us-east-1"]


# -- header values outside US-ASCII


@pytest_twisted.ensureDeferred
async def test_header_bytes_outside_utf8_are_signed_as_sent_and_read_as_latin1(server):
    """A value that is not UTF-8: the signature covers its bytes as sent; the value is read as
    ISO-8859-1, stored and returned as S3 does (RFC 2047); never a 500."""
    url = server.url + "/bucket/k"

    async def put(signed_value: str) -> bytes:
        # The wire carries "caf" and the byte 0xE9 (a surrogate stands for it in str);
        # the signature covers what ``signed_value`` encodes to.
        signed = {"x-amz-meta-x": signed_value, "content-disposition": "attachment; filename=" + signed_value}
        now = datetime.now(UTC)
        auth = sigv4.sign_headers("PUT", url, signed, sigv4.EMPTY_SHA256, ACCESS, SECRET, REGION, now=now)
        sent = {"x-amz-meta-x": "caf\udce9", "content-disposition": "attachment; filename=caf\udce9", **auth}
        head = "PUT /bucket/k HTTP/1.1\r\ncontent-length: 0\r\nconnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in sent.items()) + "\r\n"
        raw = head.encode("utf-8", "surrogateescape")
        assert b"x-amz-meta-x: caf\xe9\r\n" in raw
        return await threads.deferToThread(raw_exchange, server.port.getHost().port, raw, [], False)

    # Signed over the UTF-8 of "café" while sending ISO-8859-1 bytes: not the bytes sent.
    got = await put("caf\xe9")
    assert got.startswith(b"HTTP/1.1 403") and b"SignatureDoesNotMatch" in got, got
    # Signed over the bytes sent (a surrogate stands for the byte 0xE9).
    got = await put("caf\udce9")
    assert got.startswith(b"HTTP/1.1 200"), got
    r = await server.request("HEAD", "/bucket/k")
    assert r.headers.getRawHeaders("x-amz-meta-x") == [
        "=?UTF-8?B?" + base64.b64encode("caf\xe9".encode()).decode() + "?="
    ]


# -- digests of small XML bodies


@pytest_twisted.ensureDeferred
async def test_stated_body_digests_are_checked_on_create_bucket_and_complete(server):
    body = b"<CreateBucketConfiguration><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>"
    wrong_md5 = b64(hashlib.md5(b"other").digest())
    r = await server.request("PUT", "/fresh-1", body, headers={"Content-MD5": wrong_md5})
    assert (r.code, error_code(r)) == (400, "BadDigest")
    r = await server.request("PUT", "/fresh-1", body, headers={"x-amz-checksum-crc32": b64(crc32(b"other"))})
    assert (r.code, error_code(r)) == (400, "BadDigest")
    r = await server.request("PUT", "/fresh-1", body, headers={"x-amz-checksum-crc32": b64(crc32(body))})
    assert r.code == 200, r.body
    upload = await create_upload(server, BIG)
    etag = await upload_part(server, BIG, upload, 1, b"hello")
    r = await complete_upload(server, BIG, upload, [(1, etag)], headers={"Content-MD5": wrong_md5})
    assert (r.code, error_code(r)) == (400, "BadDigest")
    assert (await complete_upload(server, BIG, upload, [(1, etag)])).code == 200
