"""Multipart uploads in process: manifests, errors, space accounting, expiry, isolation."""

from __future__ import annotations

import hashlib
import os

import pytest_twisted

from tests.s3helpers import (
    Server,
    complete_body,
    complete_upload,
    create_upload,
    error_code,
    upload_part,
    xml_values,
)

MIB = 2**20
BIG = "/bucket/big"


@pytest_twisted.async_yield_fixture
async def server(tmp_path, upstream):
    s = Server(str(tmp_path), upstream=upstream)
    await s.start("bucket")
    yield s
    await s.stop()


@pytest_twisted.ensureDeferred
async def test_upload_complete_and_read_across_parts(server):
    upload = await create_upload(server, BIG, {"Content-Type": "text/x", "x-amz-meta-a": "1"})
    bodies = [os.urandom(5 * MIB), os.urandom(5 * MIB + 1), os.urandom(123)]
    etags = [await upload_part(server, BIG, upload, i + 1, b) for i, b in enumerate(bodies)]
    r = await complete_upload(server, BIG, upload, list(zip([1, 2, 3], etags, strict=True)))
    assert r.code == 200, r.body
    whole = b"".join(bodies)
    expected = hashlib.md5(b"".join(hashlib.md5(b).digest() for b in bodies)).hexdigest() + "-3"
    assert xml_values(r.body, "ETag") == [f'"{expected}"']
    r = await server.request("GET", "/bucket/big")
    assert r.body == whole
    assert r.headers.getRawHeaders("x-amz-meta-a") == ["1"] and r.headers.getRawHeaders("content-type") == ["text/x"]
    # a range that straddles the first part boundary
    r = await server.request("GET", "/bucket/big", headers={"Range": f"bytes={5 * MIB - 10}-{5 * MIB + 9}"})
    assert r.code == 206 and r.body == whole[5 * MIB - 10 : 5 * MIB + 10]
    r = await server.request("GET", "/bucket/big", query="partNumber=2")
    assert r.code == 206 and r.body == bodies[1]
    assert r.headers.getRawHeaders("x-amz-mp-parts-count") == ["3"]
    r = await server.request("HEAD", "/bucket/big", query="partNumber=3")
    assert r.headers.getRawHeaders("content-length") == ["123"]
    r = await server.request("GET", "/bucket/big", query="partNumber=4")
    assert (r.code, error_code(r)) == (416, "InvalidPartNumber")
    assert len(server.blob_files()) == 3  # the parts are the artifact: nothing was copied


@pytest_twisted.ensureDeferred
async def test_completion_errors(server):
    upload = await create_upload(server, BIG)
    small = await upload_part(server, BIG, upload, 1, b"x" * 100)
    second = await upload_part(server, BIG, upload, 2, b"y" * 100)
    r = await complete_upload(server, BIG, upload, [(1, small), (2, second)])
    assert (r.code, error_code(r)) == (400, "EntityTooSmall")
    r = await complete_upload(server, BIG, upload, [(2, second), (1, small)])
    assert (r.code, error_code(r)) == (400, "InvalidPartOrder")
    r = await complete_upload(server, BIG, upload, [(1, '"00000000000000000000000000000000"')])
    assert (r.code, error_code(r)) == (400, "InvalidPart")
    r = await complete_upload(server, BIG, upload, [(7, small)])
    assert (r.code, error_code(r)) == (400, "InvalidPart")
    r = await server.request("POST", "/bucket/big", b"<nope", query=f"uploadId={upload}")
    assert (r.code, error_code(r)) == (400, "MalformedXML")
    r = await complete_upload(server, BIG, "no-such-upload", [(1, small)])
    assert (r.code, error_code(r)) == (404, "NoSuchUpload")
    r = await server.request("PUT", "/bucket/big", b"z", query="partNumber=1&uploadId=nope")
    assert (r.code, error_code(r)) == (404, "NoSuchUpload")
    r = await server.request("PUT", "/bucket/big", b"z", query=f"partNumber=10001&uploadId={upload}")
    assert (r.code, error_code(r)) == (400, "InvalidArgument")
    # a single small part is fine: the last part may be any size
    r = await complete_upload(server, BIG, upload, [(1, small)])
    assert r.code == 200
    assert len(server.blob_files()) == 1  # part 2 was uploaded but not chosen: freed


@pytest_twisted.ensureDeferred
async def test_resent_part_replaces_and_abort_frees(server):
    upload = await create_upload(server, BIG)
    await upload_part(server, BIG, upload, 1, b"first")
    etag = await upload_part(server, BIG, upload, 1, b"second")
    assert len(server.blob_files()) == 1
    r = await server.request("GET", "/bucket/big", query=f"uploadId={upload}")
    assert xml_values(r.body, "ETag") == [etag] and xml_values(r.body, "Size") == ["6"]
    r = await server.request("DELETE", "/bucket/big", query=f"uploadId={upload}")
    assert r.code == 204
    assert server.blob_files() == []
    r = await server.request("DELETE", "/bucket/big", query=f"uploadId={upload}")
    assert (r.code, error_code(r)) == (404, "NoSuchUpload")


@pytest_twisted.ensureDeferred
async def test_overwriting_and_deleting_a_multipart_artifact_frees_its_parts(server):
    upload = await create_upload(server, BIG)
    e1 = await upload_part(server, BIG, upload, 1, os.urandom(5 * MIB))
    e2 = await upload_part(server, BIG, upload, 2, b"tail")
    assert (await complete_upload(server, BIG, upload, [(1, e1), (2, e2)])).code == 200
    assert len(server.blob_files()) == 2
    await server.request("PUT", "/bucket/big", b"plain now")
    assert len(server.blob_files()) == 1
    await server.request("DELETE", "/bucket/big")
    assert server.blob_files() == []


@pytest_twisted.ensureDeferred
async def test_list_parts_pagination_and_list_uploads(server):
    upload = await create_upload(server, "/bucket/a/one")
    for n in range(1, 6):
        await upload_part(server, "/bucket/a/one", upload, n, bytes([n]) * 10)
    other = await create_upload(server, "/bucket/b")
    r = await server.request("GET", "/bucket/a/one", query=f"uploadId={upload}&max-parts=2")
    assert xml_values(r.body, "PartNumber") == ["1", "2"] and xml_values(r.body, "IsTruncated") == ["true"]
    r = await server.request("GET", "/bucket/a/one", query=f"uploadId={upload}&max-parts=2&part-number-marker=4")
    assert xml_values(r.body, "PartNumber") == ["5"] and xml_values(r.body, "IsTruncated") == ["false"]
    r = await server.request("GET", "/bucket", query="uploads=")
    assert xml_values(r.body, "UploadId") == [upload, other]
    r = await server.request("GET", "/bucket", query="uploads=&delimiter=%2F")
    assert xml_values(r.body, "UploadId") == [other] and "a/" in xml_values(r.body, "Prefix")
    r = await server.request("GET", "/bucket", query="uploads=&max-uploads=1")
    assert xml_values(r.body, "IsTruncated") == ["true"] and xml_values(r.body, "NextKeyMarker") == ["a/one"]
    r = await server.request("GET", "/bucket", query="uploads=&key-marker=a%2Fone")
    assert xml_values(r.body, "UploadId") == [other]


@pytest_twisted.ensureDeferred
async def test_upload_part_copy_with_range(server):
    source = os.urandom(6 * MIB)
    await server.request("PUT", "/bucket/source", source)
    upload = await create_upload(server, "/bucket/copied")
    r = await server.request(
        "PUT",
        "/bucket/copied",
        query=f"partNumber=1&uploadId={upload}",
        headers={"x-amz-copy-source": "/bucket/source", "x-amz-copy-source-range": f"bytes=0-{5 * MIB - 1}"},
    )
    assert r.code == 200, r.body
    e1 = xml_values(r.body, "ETag")[0]
    r = await server.request(
        "PUT",
        "/bucket/copied",
        query=f"partNumber=2&uploadId={upload}",
        headers={"x-amz-copy-source": "/bucket/source", "x-amz-copy-source-range": f"bytes={5 * MIB}-{6 * MIB - 1}"},
    )
    e2 = xml_values(r.body, "ETag")[0]
    assert (await complete_upload(server, "/bucket/copied", upload, [(1, e1), (2, e2)])).code == 200
    r = await server.request("GET", "/bucket/copied")
    assert r.body == source


@pytest_twisted.ensureDeferred
async def test_conditional_completion(server):
    await server.request("PUT", "/bucket/big", b"exists")
    upload = await create_upload(server, BIG)
    e1 = await upload_part(server, BIG, upload, 1, b"new")
    r = await complete_upload(server, BIG, upload, [(1, e1)], headers={"If-None-Match": "*"})
    assert (r.code, error_code(r)) == (412, "PreconditionFailed")
    etag = '"' + hashlib.md5(b"exists").hexdigest() + '"'
    r = await complete_upload(server, BIG, upload, [(1, e1)], headers={"If-Match": etag})
    assert r.code == 200
    assert (await server.request("GET", "/bucket/big")).body == b"new"


@pytest_twisted.ensureDeferred
async def test_expiry_aborts_old_uploads_and_frees_parts(server):
    upload = await create_upload(server, BIG)
    await upload_part(server, BIG, upload, 1, b"abandoned")
    assert len(server.blob_files()) == 1
    assert await server.engine.expire_uploads(max_age=3600) == 0
    assert await server.engine.expire_uploads(max_age=-1) == 1
    assert server.blob_files() == []
    r = await server.request("GET", "/bucket/big", query=f"uploadId={upload}")
    assert (r.code, error_code(r)) == (404, "NoSuchUpload")


@pytest_twisted.ensureDeferred
async def test_uploads_are_scoped_to_their_tenant(server):
    upload = await create_upload(server, BIG)
    await server.engine.ensure_credential("intruder", "INTRUDERKEY", "intruder-secret-0123")
    r = await server.request("PUT", "/bucket", access="INTRUDERKEY", secret="intruder-secret-0123")
    assert (r.code, error_code(r)) == (409, "BucketAlreadyExists")  # names are unique across tenants
    for method, query in (("GET", f"uploadId={upload}"), ("DELETE", f"uploadId={upload}")):
        r = await server.request(
            method, "/bucket/big", query=query, access="INTRUDERKEY", secret="intruder-secret-0123"
        )
        assert r.code in (403, 404) and upload.encode() not in r.body, r.body
    r = await server.request("GET", "/bucket", query="uploads=", access="INTRUDERKEY", secret="intruder-secret-0123")
    assert r.code in (403, 404) and upload.encode() not in r.body, r.body
    r = await server.request("GET", "/bucket", query="uploads=")
    assert xml_values(r.body, "UploadId") == [upload]  # the owner's upload is untouched


@pytest_twisted.ensureDeferred
async def test_composite_and_full_object_checksums(server):
    import base64
    import zlib

    from awscrt import checksums as crt

    first, second = os.urandom(5 * MIB), os.urandom(1000)
    # COMPOSITE CRC32: the CRC of the parts' raw CRCs, then -N; the client sends part checksums.
    r = await server.request("POST", "/bucket/comp", query="uploads=", headers={"x-amz-checksum-algorithm": "CRC32"})
    upload = xml_values(r.body, "UploadId")[0]
    assert r.headers.getRawHeaders("x-amz-checksum-type") == ["COMPOSITE"]
    crcs = [zlib.crc32(b).to_bytes(4, "big") for b in (first, second)]
    etags = []
    for n, (body, crc) in enumerate(zip((first, second), crcs, strict=True), start=1):
        r = await server.request(
            "PUT",
            "/bucket/comp",
            body,
            query=f"partNumber={n}&uploadId={upload}",
            headers={"x-amz-checksum-crc32": base64.b64encode(crc).decode()},
        )
        etags.append(r.headers.getRawHeaders("etag")[0])
    expected = base64.b64encode(zlib.crc32(b"".join(crcs)).to_bytes(4, "big")).decode() + "-2"
    wrong = complete_body(list(zip([1, 2], etags, strict=True))).replace(
        b"</ETag></Part>", b"</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>", 1
    )
    r = await server.request("POST", "/bucket/comp", wrong, query=f"uploadId={upload}")
    assert (r.code, error_code(r)) == (400, "InvalidPart")
    r = await complete_upload(server, "/bucket/comp", upload, list(zip([1, 2], etags, strict=True)))
    assert r.code == 200, r.body
    assert xml_values(r.body, "ChecksumCRC32") == [expected] and xml_values(r.body, "ChecksumType") == ["COMPOSITE"]
    r = await server.request("HEAD", "/bucket/comp", headers={"x-amz-checksum-mode": "ENABLED"})
    assert r.headers.getRawHeaders("x-amz-checksum-crc32") == [expected]
    assert r.headers.getRawHeaders("x-amz-checksum-type") == ["COMPOSITE"]

    # FULL_OBJECT CRC64NVME: the CRC of the whole content; here the server computes the parts' CRCs.
    r = await server.request(
        "POST", "/bucket/full", query="uploads=", headers={"x-amz-checksum-algorithm": "CRC64NVME"}
    )
    upload = xml_values(r.body, "UploadId")[0]
    assert r.headers.getRawHeaders("x-amz-checksum-type") == ["FULL_OBJECT"]
    etags = [await upload_part(server, "/bucket/full", upload, n, body) for n, body in ((1, first), (2, second))]
    r = await complete_upload(server, "/bucket/full", upload, list(zip([1, 2], etags, strict=True)))
    whole = base64.b64encode(crt.crc64nvme(first + second).to_bytes(8, "big")).decode()
    assert xml_values(r.body, "ChecksumCRC64NVME") == [whole] and xml_values(r.body, "ChecksumType") == ["FULL_OBJECT"]
    r = await server.request(
        "POST",
        "/bucket/bad",
        query="uploads=",
        headers={"x-amz-checksum-algorithm": "SHA256", "x-amz-checksum-type": "FULL_OBJECT"},
    )
    assert (r.code, error_code(r)) == (400, "InvalidRequest")
