"""GetObjectAttributes (issue 13, "Also"): ETag, Checksum, ObjectParts with pagination, StorageClass, ObjectSize."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.s3helpers import (
    Server,
    complete_upload,
    create_upload,
    error_code,
    multipart_etag,
    upload_part,
    xml_values,
)
from tests.test_tagging import boto3_client

pytestmark = pytest.mark.timeout(120)

ALL = "ETag,Checksum,ObjectParts,StorageClass,ObjectSize"


async def attributes(
    server: Server, path: str, wanted: str | None = ALL, query: str = "attributes=", **extra: str
) -> Any:
    headers = dict(extra)
    if wanted is not None:
        headers["x-amz-object-attributes"] = wanted
    return await server.request("GET", path, query=query, headers=headers)


def values(response: Any, tag: str) -> list[str]:
    return xml_values(response.body, tag)


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest_twisted.ensureDeferred
async def test_attributes_of_an_object_uploaded_whole(server: Server) -> None:
    data = b"attributes of a plain object"
    r = await server.request("PUT", "/bucket/plain", data, headers={"x-amz-checksum-crc32": crc32_b64(data)})
    assert r.code == 200, r.body
    r = await attributes(server, "/bucket/plain")
    assert r.code == 200, r.body
    assert r.body.count(b"<GetObjectAttributesResponse") == 1
    assert values(r, "ETag") == [hashlib.md5(data).hexdigest()]  # no quotes, as S3 answers
    assert values(r, "ChecksumCRC32") == [crc32_b64(data)]
    assert values(r, "ChecksumType") == ["FULL_OBJECT"]
    assert values(r, "ObjectParts") == []  # only a multipart object has parts
    assert values(r, "StorageClass") == ["STANDARD"]
    assert values(r, "ObjectSize") == [str(len(data))]
    assert r.headers.getRawHeaders("last-modified")
    assert not r.headers.getRawHeaders("x-amz-version-id")  # the null version is not named

    # Only what is asked for comes back.
    r = await attributes(server, "/bucket/plain", "ObjectSize")
    assert values(r, "ObjectSize") == [str(len(data))] and values(r, "ETag") == [] and values(r, "StorageClass") == []
    # No checksum stored: no Checksum element.
    assert (
        await server.request("PUT", "/bucket/bare", b"x", headers={"x-amz-storage-class": "STANDARD_IA"})
    ).code == 200
    r = await attributes(server, "/bucket/bare", "Checksum,StorageClass")
    assert values(r, "Checksum") == [] and values(r, "StorageClass") == ["STANDARD_IA"]
    r = await attributes(server, "/bucket/bare", "ETag", query="attributes=&versionId=null")
    assert r.code == 200 and values(r, "ETag") == [hashlib.md5(b"x").hexdigest()]


@pytest_twisted.ensureDeferred
async def test_object_parts_are_listed_and_paginated(server: Server) -> None:
    server.engine.min_part_size = 1
    parts = [b"first part", b"second, longer part", b"3rd"]
    upload = await create_upload(server, "/bucket/mp", headers={"x-amz-checksum-algorithm": "SHA256"})
    etags = [await upload_part(server, "/bucket/mp", upload, n, data) for n, data in enumerate(parts, 1)]
    r = await complete_upload(server, "/bucket/mp", upload, enumerate(etags, 1))
    assert r.code == 200, r.body

    r = await attributes(server, "/bucket/mp")
    assert r.code == 200, r.body
    assert values(r, "ETag") == [multipart_etag(parts)]
    assert values(r, "ChecksumType") == ["COMPOSITE"] and len(values(r, "ChecksumSHA256")) == 1
    assert values(r, "PartsCount") == ["3"]
    assert values(r, "PartNumber") == ["1", "2", "3"]
    assert values(r, "Size") == [str(len(p)) for p in parts]
    assert values(r, "IsTruncated") == ["false"] and values(r, "MaxParts") == ["1000"]
    assert values(r, "ObjectSize") == [str(sum(map(len, parts)))]

    r = await attributes(server, "/bucket/mp", "ObjectParts", **{"x-amz-max-parts": "2"})
    assert values(r, "PartNumber") == ["1", "2"] and values(r, "IsTruncated") == ["true"]
    assert values(r, "NextPartNumberMarker") == ["2"] and values(r, "MaxParts") == ["2"]
    r = await attributes(
        server, "/bucket/mp", "ObjectParts", **{"x-amz-max-parts": "2", "x-amz-part-number-marker": "2"}
    )
    assert values(r, "PartNumber") == ["3"] and values(r, "IsTruncated") == ["false"]
    assert values(r, "PartNumberMarker") == ["2"] and values(r, "NextPartNumberMarker") == ["3"]
    assert values(r, "Size") == [str(len(parts[2]))]
    # S3 reads an x-amz-max-parts it cannot parse as its default.
    r = await attributes(server, "/bucket/mp", "ObjectParts", **{"x-amz-max-parts": "many"})
    assert r.code == 200 and values(r, "PartNumber") == ["1", "2", "3"]


@pytest_twisted.ensureDeferred
async def test_object_attributes_errors(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/k", b"x")).code == 200
    for wanted in (None, "", " , "):
        r = await attributes(server, "/bucket/k", wanted)
        assert (r.code, error_code(r)) == (400, "InvalidRequest"), r.body
    for wanted in ("Size", "ETag,Owner", "etag"):
        r = await attributes(server, "/bucket/k", wanted)
        assert (r.code, error_code(r)) == (400, "InvalidArgument"), r.body
        assert values(r, "Message") == ["Invalid attribute name specified."]
    for marker in ("-1", "x", "2147483648"):
        r = await attributes(server, "/bucket/k", **{"x-amz-part-number-marker": marker})
        assert (r.code, error_code(r)) == (400, "InvalidArgument"), r.body
    r = await attributes(server, "/bucket/missing")
    assert (r.code, error_code(r)) == (404, "NoSuchKey")
    r = await attributes(server, "/nobucket/k")
    assert (r.code, error_code(r)) == (404, "NoSuchBucket")
    r = await attributes(server, "/bucket/k", query="attributes=&versionId=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrH")
    assert (r.code, error_code(r)) == (400, "InvalidArgument")


@pytest_twisted.ensureDeferred
async def test_an_sse_c_object_needs_its_key(server: Server) -> None:
    key = os.urandom(32)
    sse_c = {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": base64.b64encode(key).decode(),
        "x-amz-server-side-encryption-customer-key-md5": base64.b64encode(hashlib.md5(key).digest()).decode(),
    }
    assert (await server.request("PUT", "/bucket/secret", b"sealed", headers=sse_c)).code == 200
    r = await attributes(server, "/bucket/secret", "ObjectSize")
    assert (r.code, error_code(r)) == (400, "InvalidRequest"), r.body
    r = await attributes(server, "/bucket/secret", "ObjectSize", **sse_c)
    assert r.code == 200, r.body
    assert values(r, "ObjectSize") == ["6"]


def boto3_attributes(s3: Any) -> None:
    s3.put_object(Bucket="bucket", Key="b3", Body=b"hello", ChecksumAlgorithm="SHA256")
    got = s3.get_object_attributes(
        Bucket="bucket", Key="b3", ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
    )
    assert got["ETag"] == hashlib.md5(b"hello").hexdigest()
    assert got["Checksum"]["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(b"hello").digest()).decode()
    assert got["ObjectSize"] == 5 and got["StorageClass"] == "STANDARD"
    assert "ObjectParts" not in got

    upload = s3.create_multipart_upload(Bucket="bucket", Key="b3-mp")
    done = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(
                Bucket="bucket", Key="b3-mp", UploadId=upload["UploadId"], PartNumber=n, Body=b"p" * n
            )["ETag"],
        }
        for n in (1, 2, 3)
    ]
    s3.complete_multipart_upload(
        Bucket="bucket", Key="b3-mp", UploadId=upload["UploadId"], MultipartUpload={"Parts": done}
    )
    got = s3.get_object_attributes(Bucket="bucket", Key="b3-mp", ObjectAttributes=["ObjectParts"], MaxParts=2)
    parts = got["ObjectParts"]
    assert parts["TotalPartsCount"] == 3 and parts["IsTruncated"] and parts["NextPartNumberMarker"] == 2
    assert [(p["PartNumber"], p["Size"]) for p in parts["Parts"]] == [(1, 1), (2, 2)]
    got = s3.get_object_attributes(
        Bucket="bucket", Key="b3-mp", ObjectAttributes=["ObjectParts"], MaxParts=2, PartNumberMarker=2
    )
    assert [(p["PartNumber"], p["Size"]) for p in got["ObjectParts"]["Parts"]] == [(3, 3)]


@pytest_twisted.ensureDeferred
async def test_boto3_get_object_attributes(server: Server) -> None:
    server.engine.min_part_size = 1
    await threads.deferToThread(boto3_attributes, boto3_client(server))


@pytest_twisted.ensureDeferred
async def test_attributes_of_a_version(server: Server) -> None:
    body = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
    assert (await server.request("PUT", "/bucket", body, query="versioning=")).code == 200
    old = (await server.request("PUT", "/bucket/v", b"first")).headers.getRawHeaders("x-amz-version-id")[0]
    await server.request("PUT", "/bucket/v", b"second, longer")
    r = await attributes(server, "/bucket/v", "ObjectSize")
    assert values(r, "ObjectSize") == ["14"]
    r = await attributes(server, "/bucket/v", "ObjectSize,ETag", query=f"attributes=&versionId={old}")
    assert values(r, "ObjectSize") == ["5"] and values(r, "ETag") == [hashlib.md5(b"first").hexdigest()]
    assert r.headers.getRawHeaders("x-amz-version-id") == [old]
    marker = (await server.request("DELETE", "/bucket/v")).headers.getRawHeaders("x-amz-version-id")[0]
    r = await attributes(server, "/bucket/v", "ObjectSize")
    assert (r.code, error_code(r)) == (404, "NoSuchKey")
    assert r.headers.getRawHeaders("x-amz-delete-marker") == ["true"]
    r = await attributes(server, "/bucket/v", "ObjectSize", query=f"attributes=&versionId={marker}")
    assert (r.code, error_code(r)) == (405, "MethodNotAllowed")
