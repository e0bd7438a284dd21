"""aws-chunked bodies: unsigned with a checksum trailer, signed chunks, signed trailers."""

from __future__ import annotations

import base64
import hashlib
import zlib
from datetime import UTC, datetime

import pytest
import pytest_twisted
import treq

from tests.s3helpers import ACCESS, REGION, SECRET, Server, error_code
from vaultaire import sigv4


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def unsigned_body(data: bytes, chunk: int, trailer: bytes) -> bytes:
    out = b""
    for i in range(0, len(data), chunk):
        piece = data[i : i + chunk]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n" + trailer + b"\r\n\r\n"


async def put_chunked(server: Server, key: str, body: bytes, headers: dict[str, str], mode: str):
    url = f"{server.url}/bucket/{key}"
    hdrs = {"content-encoding": "aws-chunked", **headers}
    hdrs.update(sigv4.sign_headers("PUT", url, hdrs, mode, ACCESS, SECRET, REGION, now=datetime.now(UTC)))
    r = await treq.put(url, data=body, headers={k: [v] for k, v in hdrs.items()}, persistent=False)
    r.body = await r.content()
    return r, hdrs


@pytest_twisted.ensureDeferred
async def test_unsigned_payload_with_crc32_trailer(server):
    data = bytes(range(256)) * 1000
    body = unsigned_body(data, 65536, b"x-amz-checksum-crc32:" + crc32_b64(data).encode())
    headers = {"x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": str(len(data))}
    r, _ = await put_chunked(server, "k", body, headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    assert r.code == 200, r.body
    r = await server.request("GET", "/bucket/k")
    assert r.body == data


@pytest_twisted.ensureDeferred
async def test_wrong_trailer_checksum_stores_nothing(server):
    data = b"a" * 100000
    body = unsigned_body(data, 8192, b"x-amz-checksum-crc32:" + crc32_b64(b"other").encode())
    headers = {"x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": str(len(data))}
    r, _ = await put_chunked(server, "k", body, headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    assert (r.code, error_code(r)) == (400, "BadDigest")
    assert b"CRC32" in r.body
    assert (await server.request("HEAD", "/bucket/k")).code == 404
    assert server.blob_files() == []


@pytest_twisted.ensureDeferred
async def test_decoded_length_must_match(server):
    data = b"b" * 5000
    body = unsigned_body(data, 1000, b"x-amz-checksum-crc32:" + crc32_b64(data).encode())
    headers = {"x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": "4000"}
    r, _ = await put_chunked(server, "k", body, headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    assert (r.code, error_code(r)) == (400, "IncompleteBody")
    r, _ = await put_chunked(
        server, "k", body, {"x-amz-trailer": "x-amz-checksum-crc32"}, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    )
    assert (r.code, error_code(r)) == (411, "MissingContentLength")


def signed_body(
    data: bytes, chunk: int, seed: str, amz_date: str, trailer: bytes | None, tamper: bool = False
) -> bytes:
    key = sigv4.signing_key(SECRET, amz_date[:8], REGION, "s3")
    scope = sigv4.credential_scope(amz_date[:8], REGION, "s3")
    previous = seed
    out = b""
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for piece in pieces:
        sig = sigv4.chunk_signature(key, amz_date, scope, previous, hashlib.sha256(piece).hexdigest())
        previous = sig
        sent = piece[:-1] + b"X" if tamper and piece else piece
        out += f"{len(piece):x};chunk-signature={sig}\r\n".encode() + sent + (b"\r\n" if piece else b"")
    if trailer is None:
        return out + b"\r\n"
    tsig = sigv4.trailer_signature(key, amz_date, scope, previous, trailer + b"\n")
    return out + trailer + b"\r\nx-amz-trailer-signature:" + tsig.encode() + b"\r\n\r\n"


async def signed_put(server: Server, data: bytes, *, trailer: bool, tamper: bool = False, bad_trailer: bool = False):
    url = f"{server.url}/bucket/signed"
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" if trailer else "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    hdrs = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data))}
    if trailer:
        hdrs["x-amz-trailer"] = "x-amz-checksum-crc32"
    hdrs.update(sigv4.sign_headers("PUT", url, hdrs, mode, ACCESS, SECRET, REGION, now=datetime.now(UTC)))
    seed = hdrs["authorization"].rsplit("Signature=", 1)[1]
    line = b"x-amz-checksum-crc32:" + crc32_b64(b"zz" if bad_trailer else data).encode()
    body = signed_body(data, 64 * 1024, seed, hdrs["x-amz-date"], line if trailer else None, tamper)
    r = await treq.put(url, data=body, headers={k: [v] for k, v in hdrs.items()}, persistent=False)
    r.body = await r.content()
    return r


@pytest_twisted.ensureDeferred
async def test_signed_chunks_are_verified(server):
    data = bytes(range(256)) * 700
    r = await signed_put(server, data, trailer=False)
    assert r.code == 200, r.body
    assert (await server.request("GET", "/bucket/signed")).body == data
    r = await signed_put(server, data + b"more", trailer=False, tamper=True)
    assert (r.code, error_code(r)) == (403, "SignatureDoesNotMatch")
    assert (await server.request("GET", "/bucket/signed")).body == data  # the old version survives


@pytest_twisted.ensureDeferred
async def test_signed_trailer_is_verified(server):
    data = b"trailer test " * 9000
    r = await signed_put(server, data, trailer=True)
    assert r.code == 200, r.body
    r = await signed_put(server, data, trailer=True, bad_trailer=True)
    assert (r.code, error_code(r)) == (400, "BadDigest")


@pytest_twisted.ensureDeferred
async def test_checksum_header_is_verified(server):
    r = await server.request("PUT", "/bucket/c", b"hello", headers={"x-amz-checksum-crc32": crc32_b64(b"hello")})
    assert r.code == 200
    r = await server.request("PUT", "/bucket/c", b"hello", headers={"x-amz-checksum-crc32": crc32_b64(b"jello")})
    assert (r.code, error_code(r)) == (400, "BadDigest")
    sha1 = base64.b64encode(hashlib.sha1(b"hello").digest()).decode()
    r = await server.request("PUT", "/bucket/c", b"hello", headers={"x-amz-checksum-sha1": sha1})
    assert r.code == 200
    r = await server.request("PUT", "/bucket/c", b"hello", headers={"x-amz-checksum-crc32": "!!"})
    assert (r.code, error_code(r)) == (400, "InvalidRequest")


# The CRC catalogue's check values: the CRC of b"123456789".
CHECK_VALUES = {
    "crc32": 0xCBF43926.to_bytes(4, "big"),
    "crc32c": 0xE3069283.to_bytes(4, "big"),
    "crc64nvme": 0xAE8B14860A799888.to_bytes(8, "big"),
    "sha1": hashlib.sha1(b"123456789").digest(),
    "sha256": hashlib.sha256(b"123456789").digest(),
}


@pytest.mark.parametrize("algorithm", sorted(CHECK_VALUES))
@pytest_twisted.ensureDeferred
async def test_every_checksum_algorithm_is_verified_stored_and_returned(server, algorithm):
    value = base64.b64encode(CHECK_VALUES[algorithm]).decode()
    name = f"x-amz-checksum-{algorithm}"
    r = await server.request("PUT", "/bucket/check", b"123456789", headers={name: value})
    assert r.code == 200, r.body
    assert r.headers.getRawHeaders(name) == [value]
    r = await server.request("HEAD", "/bucket/check", headers={"x-amz-checksum-mode": "ENABLED"})
    assert r.headers.getRawHeaders(name) == [value]
    r = await server.request("HEAD", "/bucket/check")
    assert r.headers.getRawHeaders(name) is None  # only when asked for
    wrong = base64.b64encode(bytes(len(CHECK_VALUES[algorithm]))).decode()
    r = await server.request("PUT", "/bucket/check", b"123456789", headers={name: wrong})
    assert (r.code, error_code(r)) == (400, "BadDigest")
