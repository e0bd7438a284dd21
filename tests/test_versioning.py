"""S3 versioning through boto3 against a real daemon: every behaviour S3 documents, and its errors."""

from __future__ import annotations

import hashlib
import itertools
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from botocore.exceptions import ClientError
from daemon import Daemon, assert_no_leak

pytestmark = pytest.mark.timeout(180)

_names = itertools.count()


@pytest.fixture
def s3(module_daemon: Daemon) -> Any:
    return module_daemon.boto3_client()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"versions-{next(_names)}"
    s3.create_bucket(Bucket=name)
    return name


def enable(s3: Any, bucket: str, status: str = "Enabled") -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def code_of(error: ClientError) -> tuple[int, str]:
    return error.response["ResponseMetadata"]["HTTPStatusCode"], error.response["Error"]["Code"]


def fails(call: Any, **kwargs: Any) -> ClientError:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value


def listed(s3: Any, bucket: str, **params: Any) -> tuple[list[tuple[str, str, bool, bool]], ET.Element]:
    """ListObjectVersions as sent (boto3 splits versions and markers, losing S3's order):
    [(key, version id, is latest, is a delete marker)] in document order, and the document."""
    url = s3.generate_presigned_url("list_object_versions", Params={"Bucket": bucket, **params})
    with urllib.request.urlopen(url, timeout=30) as response:
        root = ET.fromstring(response.read())
    entries = []
    for child in root:
        name = child.tag.rsplit("}", 1)[-1]
        if name in ("Version", "DeleteMarker"):
            fields = {c.tag.rsplit("}", 1)[-1]: c.text or "" for c in child}
            entries.append(
                (decode(root, fields["Key"]), fields["VersionId"], fields["IsLatest"] == "true", name == "DeleteMarker")
            )
    return entries, root


def decode(root: ET.Element, text: str) -> str:
    """botocore asks for encoding-type=url on its own: keys come back URL-encoded."""
    return urllib.parse.unquote_plus(text) if field(root, "EncodingType") == "url" else text


def versions_of(s3: Any, bucket: str, **params: Any) -> list[tuple[str, str, bool, bool]]:
    return listed(s3, bucket, **params)[0]


def field(root: ET.Element, name: str) -> str | None:
    for child in root:
        if child.tag.rsplit("}", 1)[-1] == name:
            return child.text or ""
    return None


def test_versioning_configuration_round_trips_and_mfa_delete_is_refused(s3: Any, bucket: str) -> None:
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    enable(s3, bucket, "Suspended")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    error = fails(
        s3.put_bucket_versioning,
        Bucket=bucket,
        VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
    )
    assert code_of(error) == (501, "NotImplemented")
    error = fails(
        s3.put_bucket_versioning, Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}, MFA="arn:mfa 123456"
    )
    assert code_of(error) == (501, "NotImplemented")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    error = fails(s3.delete_object, Bucket=bucket, Key="k", VersionId="null", MFA="arn:mfa 123456")
    assert code_of(error) == (501, "NotImplemented")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    error = fails(s3.put_bucket_versioning, Bucket=bucket, VersioningConfiguration={"Status": "Sometimes"})
    assert code_of(error) == (400, "MalformedXML")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    error = fails(s3.put_bucket_versioning, Bucket="no-such-bucket", VersioningConfiguration={"Status": "Enabled"})
    assert code_of(error) == (404, "NoSuchBucket")


def test_every_put_is_a_version_readable_by_its_id(s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    ids = [s3.put_object(Bucket=bucket, Key="k", Body=f"v{n}".encode())["VersionId"] for n in range(3)]
    assert len(set(ids)) == 3 and "null" not in ids
    for n, version in enumerate(ids):
        got = s3.get_object(Bucket=bucket, Key="k", VersionId=version)
        assert got["Body"].read() == f"v{n}".encode() and got["VersionId"] == version
        assert s3.head_object(Bucket=bucket, Key="k", VersionId=version)["ContentLength"] == 2
    current = s3.get_object(Bucket=bucket, Key="k")
    assert current["Body"].read() == b"v2" and current["VersionId"] == ids[2]
    # Only the current version is listed by ListObjects.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    assert versions_of(s3, bucket) == [
        ("k", ids[2], True, False),
        ("k", ids[1], False, False),
        ("k", ids[0], False, False),
    ]


def test_unknown_and_malformed_version_ids(s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    unknown = "0" * 32
    assert code_of(fails(s3.get_object, Bucket=bucket, Key="k", VersionId=unknown)) == (404, "NoSuchVersion")
    error = fails(s3.head_object, Bucket=bucket, Key="k", VersionId=unknown)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert code_of(fails(s3.get_object, Bucket=bucket, Key="k", VersionId="not-an-id")) == (400, "InvalidArgument")
    assert code_of(fails(s3.delete_object, Bucket=bucket, Key="k", VersionId="not-an-id")) == (400, "InvalidArgument")
    # Deleting a version that does not exist: done already, 204 as S3 answers.
    s3.delete_object(Bucket=bucket, Key="k", VersionId=unknown)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    error = fails(s3.list_object_versions, Bucket=bucket, KeyMarker="k", VersionIdMarker="bad")
    assert code_of(error) == (400, "InvalidArgument")
    error = fails(s3.list_object_versions, Bucket=bucket, VersionIdMarker=unknown)
    assert code_of(error) == (400, "InvalidArgument")


def test_delete_markers(s3: Any, bucket: str, module_daemon: Daemon) -> None:
    enable(s3, bucket)
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    marker = deleted["VersionId"]
    assert deleted["DeleteMarker"] is True and marker != first
    # The key reads as missing, and says why.
    error = fails(s3.get_object, Bucket=bucket, Key="k")
    assert code_of(error) == (404, "NoSuchKey")
    headers = error.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amz-delete-marker"] == "true" and headers["x-amz-version-id"] == marker
    error = fails(s3.head_object, Bucket=bucket, Key="k")
    assert error.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    # The marker by its id: 405, as S3 answers.
    error = fails(s3.get_object, Bucket=bucket, Key="k", VersionId=marker)
    assert code_of(error) == (405, "MethodNotAllowed")
    assert error.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    # The old version is still there, by id.
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=first)["Body"].read() == b"one"
    assert versions_of(s3, bucket) == [("k", marker, True, True), ("k", first, False, False)]
    # Deleting the marker by id restores the version below it.
    undone = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert undone["DeleteMarker"] is True and undone["VersionId"] == marker
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"
    # A bucket holding versions is not empty.
    s3.delete_object(Bucket=bucket, Key="k")
    assert code_of(fails(s3.delete_bucket, Bucket=bucket)) == (409, "BucketNotEmpty")
    for _key, version, _latest, _marker in versions_of(s3, bucket):
        s3.delete_object(Bucket=bucket, Key="k", VersionId=version)
    s3.delete_bucket(Bucket=bucket)
    assert_no_leak(module_daemon.data_dir)


def test_deleting_the_current_version_promotes_the_previous_one(s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    old = s3.put_object(Bucket=bucket, Key="k", Body=b"old")["VersionId"]
    new = s3.put_object(Bucket=bucket, Key="k", Body=b"new")["VersionId"]
    gone = s3.delete_object(Bucket=bucket, Key="k", VersionId=new)
    assert gone["VersionId"] == new and "DeleteMarker" not in gone
    current = s3.get_object(Bucket=bucket, Key="k")
    assert current["Body"].read() == b"old" and current["VersionId"] == old
    assert versions_of(s3, bucket) == [("k", old, True, False)]


def test_suspended_overwrites_the_null_version_and_keeps_the_others(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"before")  # the null version, from before versioning
    enable(s3, bucket)
    kept = s3.put_object(Bucket=bucket, Key="k", Body=b"kept")["VersionId"]
    assert versions_of(s3, bucket) == [("k", kept, True, False), ("k", "null", False, False)]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"before"
    enable(s3, bucket, "Suspended")
    s3.put_object(Bucket=bucket, Key="k", Body=b"null-2")
    assert versions_of(s3, bucket) == [("k", "null", True, False), ("k", kept, False, False)]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"null-2"
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True and deleted["VersionId"] == "null"
    assert versions_of(s3, bucket) == [("k", "null", True, True), ("k", kept, False, False)]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=kept)["Body"].read() == b"kept"


def test_list_object_versions_pages_exactly(s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    expected = []
    for key in ("a", "b/1", "b/2", "c d", "é"):
        ids = [s3.put_object(Bucket=bucket, Key=key, Body=b"x")["VersionId"] for _ in range(3)]
        expected += [(key, version) for version in reversed(ids)]
    marker = s3.delete_object(Bucket=bucket, Key="c d")["VersionId"]
    expected.insert(9, ("c d", marker))  # after a's, b/1's and b/2's three versions: c d's newest
    walked: list[tuple[str, str]] = []
    params: dict[str, Any] = {}
    pages = 0
    while True:
        entries, root = listed(s3, bucket, MaxKeys=4, **params)
        pages += 1
        walked += [(key, version) for key, version, _latest, _marker in entries]
        if field(root, "IsTruncated") != "true":
            break
        params = {
            "KeyMarker": decode(root, field(root, "NextKeyMarker") or ""),
            "VersionIdMarker": field(root, "NextVersionIdMarker"),
        }
    assert walked == expected and pages == 4  # 16 entries: 4 full pages, the last not truncated
    # boto3's own paginator walks the same.
    paginator = s3.get_paginator("list_object_versions")
    seen = sum(
        len(p.get("Versions", [])) + len(p.get("DeleteMarkers", []))
        for p in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 3})
    )
    assert seen == len(expected)
    r = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["b/"]
    assert {v["Key"] for v in r["Versions"]} == {"a", "c d", "é"}
    assert [(m["Key"], m["IsLatest"]) for m in r["DeleteMarkers"]] == [("c d", True)]
    r = s3.list_object_versions(Bucket=bucket, Prefix="b/", KeyMarker="b/1")
    assert [v["Key"] for v in r["Versions"]] == ["b/2"] * 3
    assert [v["IsLatest"] for v in r["Versions"]] == [True, False, False]
    r = s3.list_object_versions(Bucket=bucket, Prefix="é", EncodingType="url")
    # Asked for by the caller, boto3 leaves the keys encoded.
    assert r["EncodingType"] == "url" and {v["Key"] for v in r["Versions"]} == {"%C3%A9"}


def test_copy_from_a_version_and_multipart_completions_are_versions(s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    old = s3.put_object(Bucket=bucket, Key="src", Body=b"old")["VersionId"]
    s3.put_object(Bucket=bucket, Key="src", Body=b"new")
    copied = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": old})
    assert copied["CopySourceVersionId"] == old and copied["VersionId"] not in (None, "null", old)
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"old"
    # Copying an old version onto its own key restores it, as S3 documents; the current one is refused.
    restored = s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src", "VersionId": old})
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == b"old"
    assert restored["VersionId"] == s3.head_object(Bucket=bucket, Key="src")["VersionId"]
    error = fails(
        s3.copy_object,
        Bucket=bucket,
        Key="src",
        CopySource={"Bucket": bucket, "Key": "src", "VersionId": restored["VersionId"]},
    )
    assert code_of(error) == (400, "InvalidRequest")
    marker = s3.delete_object(Bucket=bucket, Key="src")["VersionId"]
    error = fails(s3.copy_object, Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert code_of(error) == (404, "NoSuchKey")
    error = fails(
        s3.copy_object, Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": marker}
    )
    assert code_of(error) == (400, "InvalidRequest")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"p" * 100)
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    )
    assert done["VersionId"] not in (None, "null")
    assert s3.head_object(Bucket=bucket, Key="mp", VersionId=done["VersionId"])["ContentLength"] == 100
    # UploadPartCopy from an old version.
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp2")["UploadId"]
    copied_part = s3.upload_part_copy(
        Bucket=bucket,
        Key="mp2",
        UploadId=upload,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src", "VersionId": old},
    )
    assert copied_part["CopySourceVersionId"] == old
    error = fails(
        s3.upload_part_copy,
        Bucket=bucket,
        Key="mp2",
        UploadId=upload,
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "src", "VersionId": marker},
    )
    assert code_of(error) == (400, "InvalidRequest")
    s3.abort_multipart_upload(Bucket=bucket, Key="mp2", UploadId=upload)


def test_delete_objects_with_version_ids(s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="a", Body=b"1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="b", Body=b"2")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a", "VersionId": v1}, {"Key": "b"}]})
    deleted = {d["Key"]: d for d in r["Deleted"]}
    assert deleted["a"]["VersionId"] == v1 and "DeleteMarker" not in deleted["a"]
    assert deleted["b"]["DeleteMarker"] is True
    marker = deleted["b"]["DeleteMarkerVersionId"]
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b", "VersionId": marker}]})
    assert r["Deleted"][0]["DeleteMarker"] is True and r["Deleted"][0]["DeleteMarkerVersionId"] == marker
    assert s3.get_object(Bucket=bucket, Key="b")["Body"].read() == b"2"
    assert code_of(fails(s3.get_object, Bucket=bucket, Key="a")) == (404, "NoSuchKey")


def test_noncurrent_versions_count_as_stored_bytes(module_daemon: Daemon, s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    body = b"z" * 1000
    for _ in range(3):
        s3.put_object(Bucket=bucket, Key="k", Body=body)
    s3.delete_object(Bucket=bucket, Key="k")
    rows = module_daemon_rows(module_daemon, bucket)
    assert rows == (3000, 3)


def module_daemon_rows(daemon: Daemon, bucket: str) -> tuple[int, int]:
    from daemon import catalog_rows

    (row,) = catalog_rows(daemon.data_dir, f"SELECT bytes, objects FROM stored WHERE container = '{bucket}'")
    return row[0], row[1]


def test_plain_http_headers_of_versioned_reads(module_daemon: Daemon, s3: Any, bucket: str) -> None:
    """What boto3 does not show: the raw headers of a versioned PUT, GET and DELETE."""
    enable(s3, bucket)
    put = s3.put_object(Bucket=bucket, Key="raw", Body=b"raw")
    version = put["ResponseMetadata"]["HTTPHeaders"]["x-amz-version-id"]
    assert len(version) == 32
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "raw", "VersionId": version})
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.read() == b"raw" and r.headers["x-amz-version-id"] == version
        assert hashlib.md5(b"raw").hexdigest() in r.headers["ETag"]
