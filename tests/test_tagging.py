"""Object and bucket tags (issue 13, "Tagging"): every way in, every limit, every error S3 answers.

The in-process stack with raw signed requests for the exact errors, boto3 against
it in a thread, and the aws cli against a real daemon.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import threads

from tests.postform import BOUNDARY, form, v4_fields
from tests.s3helpers import (
    ACCESS,
    REGION,
    SECRET,
    Server,
    complete_upload,
    create_upload,
    error_code,
    md5_header,
    upload_part,
    xml_values,
)
from vaultaire import tags as tagrules

pytestmark = pytest.mark.timeout(120)


def tagging_xml(pairs: list[tuple[str, str]]) -> bytes:
    inner = "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in pairs)
    return f'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>{inner}</TagSet></Tagging>'.encode()


async def put_tagging(server: Server, path: str, body: bytes, query: str = "tagging=") -> Any:
    return await server.request("PUT", path, body, query=query, headers=md5_header(body))


async def tags_of(server: Server, path: str, query: str = "tagging=") -> list[tuple[str, str]]:
    r = await server.request("GET", path, query=query)
    assert r.code == 200, r.body
    return list(zip(xml_values(r.body, "Key"), xml_values(r.body, "Value"), strict=True))


def tag_count(response: Any) -> str | None:
    found = response.headers.getRawHeaders("x-amz-tagging-count")
    return found[0] if found else None


def refused(response: Any, status: int, code: str, message: str | None = None) -> None:
    assert (response.code, error_code(response)) == (status, code), response.body
    if message is not None:
        assert xml_values(response.body, "Message") == [message], response.body


# -- the rules, as pure functions


def test_header_form_is_read_as_s3_reads_it() -> None:
    assert tagrules.parse_header("a=1&b=two%20words&c=x+y") == (("a", "1"), ("b", "two words"), ("c", "x y"))
    assert tagrules.parse_header("foo=bar&bar") == (("foo", "bar"), ("bar", ""))  # ceph's test_put_obj_with_tags
    assert tagrules.parse_header("") == ()
    assert tagrules.parse_header("k%3D1=v%2B%40") == (("k=1", "v+@"),)
    assert tagrules.parse_header(tagrules.to_header((("ü ñ", "a/b@c"),))) == (("ü ñ", "a/b@c"),)
    for bad in ("a=1&a=2", "a=b=c", "TagSet=[{Key=string,Value=string}]", "a=%ff"):
        with pytest.raises(tagrules.InvalidTags) as e:
            tagrules.parse_header(bad)
        assert e.value.code == "InvalidArgument", bad


def test_limits_count_utf16_code_units_and_unicode_letters() -> None:
    emoji_free = "é" * 128  # one UTF-16 unit each
    assert tagrules.validate(((emoji_free, "ü" * 256),))
    # U+10400 (a letter outside the BMP) takes two UTF-16 units: 64 of them are 128.
    assert tagrules.validate((("\U00010400" * 64, "v"),))
    with pytest.raises(tagrules.InvalidTags, match="too long, max 128"):
        tagrules.validate((("\U00010400" * 65, "v"),))
    assert tagrules.validate((("日本語 キー", "値 +-=._:/@"),))
    for key in ("a[b", "tab\there", "a!", "", "comma,"):
        with pytest.raises(tagrules.InvalidTags, match="TagKey you have provided is invalid"):
            tagrules.validate(((key, "v"),))
    with pytest.raises(tagrules.InvalidTags, match="TagValue you have provided is invalid"):
        tagrules.validate((("k", "semi;colon"),))


# -- PutObjectTagging, GetObjectTagging, DeleteObjectTagging


@pytest_twisted.ensureDeferred
async def test_object_tags_round_trip_and_count_on_get_and_head(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/k", b"data")).code == 200
    assert await tags_of(server, "/bucket/k") == []  # S3: an empty TagSet, not an error
    head = await server.request("HEAD", "/bucket/k")
    assert tag_count(head) is None

    r = await put_tagging(server, "/bucket/k", tagging_xml([("zeta", "last"), ("alpha", ""), ("mid dle", "a b")]))
    assert r.code == 200, r.body
    assert await tags_of(server, "/bucket/k") == [("alpha", ""), ("mid dle", "a b"), ("zeta", "last")]
    assert tag_count(await server.request("HEAD", "/bucket/k")) == "3"
    got = await server.request("GET", "/bucket/k")
    assert got.body == b"data" and tag_count(got) == "3"

    # A new set replaces the old one whole; the bytes and ETag stay.
    r = await put_tagging(server, "/bucket/k", tagging_xml([("only", "one")]))
    assert r.code == 200
    assert await tags_of(server, "/bucket/k") == [("only", "one")]
    assert (await server.request("GET", "/bucket/k")).body == b"data"

    r = await server.request("DELETE", "/bucket/k", query="tagging=")
    assert r.code == 204, r.body
    assert await tags_of(server, "/bucket/k") == []
    assert tag_count(await server.request("HEAD", "/bucket/k")) is None

    # The null version is the only one of an unversioned bucket: it can be named.
    r = await put_tagging(server, "/bucket/k", tagging_xml([("v", "null")]), query="tagging=&versionId=null")
    assert r.code == 200, r.body
    assert await tags_of(server, "/bucket/k", "tagging=&versionId=null") == [("v", "null")]


@pytest_twisted.ensureDeferred
async def test_object_tagging_errors(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/k", b"data")).code == 200
    cases: list[tuple[list[tuple[str, str]], int, str, str]] = [
        ([(f"k{i}", "v") for i in range(11)], 400, "BadRequest", "Object tags cannot be greater than 10"),
        ([("k" * 129, "v")], 400, "InvalidTag", "The TagKey you have provided is too long, max 128"),
        ([("k", "v" * 257)], 400, "InvalidTag", "The TagValue you have provided is too long, max 256"),
        ([("a", "1"), ("a", "2")], 400, "InvalidTag", "Cannot provide multiple Tags with the same key"),
        ([("aws:owner", "me")], 400, "InvalidTag", "Your TagKey cannot be prefixed with aws:"),
        ([("bad*key", "v")], 400, "InvalidTag", "The TagKey you have provided is invalid"),
        ([("", "v")], 400, "InvalidTag", "The TagKey you have provided is invalid"),
        ([("k", "bad#value")], 400, "InvalidTag", "The TagValue you have provided is invalid"),
    ]
    for pairs, status, code, message in cases:
        r = await put_tagging(server, "/bucket/k", tagging_xml(pairs))
        refused(r, status, code, message)
    # Ten tags of the longest key and value are fine.
    r = await put_tagging(server, "/bucket/k", tagging_xml([(f"{i}" + "k" * 127, "v" * 256) for i in range(10)]))
    assert r.code == 200, r.body
    assert len(await tags_of(server, "/bucket/k")) == 10

    for body in (
        b"not xml",
        b"<Tags><TagSet/></Tags>",
        b"<Tagging/>",
        b"<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value><Other/></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Tag><Key>k</Key><Key>j</Key><Value>v</Value></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Other/></TagSet></Tagging>",
    ):
        refused(await put_tagging(server, "/bucket/k", body), 400, "MalformedXML")
    assert len(await tags_of(server, "/bucket/k")) == 10  # nothing refused changed anything

    body = tagging_xml([("a", "b")])
    r = await server.request("PUT", "/bucket/k", body, query="tagging=", headers=md5_header(b"other"))
    refused(r, 400, "BadDigest")
    r = await server.request("PUT", "/bucket/k", body, query="tagging=", headers={"x-amz-checksum-crc32": "AAAAAA=="})
    refused(r, 400, "BadDigest")

    refused(await put_tagging(server, "/bucket/missing", body), 404, "NoSuchKey")
    refused(await server.request("GET", "/bucket/missing", query="tagging="), 404, "NoSuchKey")
    refused(await server.request("DELETE", "/bucket/missing", query="tagging="), 404, "NoSuchKey")
    refused(await put_tagging(server, "/nobucket/k", body), 404, "NoSuchBucket")
    r = await server.request("GET", "/bucket/k", query="tagging=&versionId=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrH")
    refused(r, 400, "InvalidArgument")


@pytest_twisted.ensureDeferred
async def test_tags_belong_to_a_version(server: Server) -> None:
    body = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
    assert (await server.request("PUT", "/bucket", body, query="versioning=")).code == 200
    first = await server.request("PUT", "/bucket/v", b"one", headers={"x-amz-tagging": "gen=1"})
    second = await server.request("PUT", "/bucket/v", b"two", headers={"x-amz-tagging": "gen=2"})
    v1, v2 = (r.headers.getRawHeaders("x-amz-version-id")[0] for r in (first, second))
    assert await tags_of(server, "/bucket/v") == [("gen", "2")]
    assert await tags_of(server, "/bucket/v", f"tagging=&versionId={v1}") == [("gen", "1")]

    # Retagging the old version leaves the current one alone, and answers with its id.
    r = await put_tagging(server, "/bucket/v", tagging_xml([("gen", "old")]), query=f"tagging=&versionId={v1}")
    assert r.code == 200 and r.headers.getRawHeaders("x-amz-version-id") == [v1]
    assert await tags_of(server, "/bucket/v", f"tagging=&versionId={v1}") == [("gen", "old")]
    assert await tags_of(server, "/bucket/v") == [("gen", "2")]
    r = await server.request("DELETE", "/bucket/v", query=f"tagging=&versionId={v2}")
    assert r.code == 204 and r.headers.getRawHeaders("x-amz-version-id") == [v2]
    assert await tags_of(server, "/bucket/v") == []
    assert tag_count(await server.request("HEAD", "/bucket/v", query=f"versionId={v1}")) == "1"

    # A version that is not there; a delete marker, current or named by its id.
    unknown = v1[:-1] + ("0" if v1[-1] != "0" else "1")
    refused(await server.request("GET", "/bucket/v", query=f"tagging=&versionId={unknown}"), 404, "NoSuchVersion")
    marker = (await server.request("DELETE", "/bucket/v")).headers.getRawHeaders("x-amz-version-id")[0]
    r = await server.request("GET", "/bucket/v", query="tagging=")
    refused(r, 404, "NoSuchKey")
    assert r.headers.getRawHeaders("x-amz-delete-marker") == ["true"]
    refused(await put_tagging(server, "/bucket/v", tagging_xml([("a", "b")])), 404, "NoSuchKey")
    r = await put_tagging(server, "/bucket/v", tagging_xml([("a", "b")]), query=f"tagging=&versionId={marker}")
    refused(r, 405, "MethodNotAllowed")
    assert xml_values(r.body, "Method") == ["PUT"]
    refused(await server.request("GET", "/bucket/v", query=f"tagging=&versionId={marker}"), 405, "MethodNotAllowed")
    # The versions behind the marker keep their tags.
    assert await tags_of(server, "/bucket/v", f"tagging=&versionId={v1}") == [("gen", "old")]


# -- tags given when an object is written


@pytest_twisted.ensureDeferred
async def test_put_object_with_tagging_header(server: Server) -> None:
    r = await server.request("PUT", "/bucket/t", b"x", headers={"x-amz-tagging": "project=blue%20sky&empty="})
    assert r.code == 200, r.body
    assert await tags_of(server, "/bucket/t") == [("empty", ""), ("project", "blue sky")]
    assert tag_count(await server.request("HEAD", "/bucket/t")) == "2"
    # An overwrite is a new object: its tags are the ones it brings (here none).
    assert (await server.request("PUT", "/bucket/t", b"y")).code == 200
    assert await tags_of(server, "/bucket/t") == []

    cases = [
        ("a=1&a=2", 400, "InvalidArgument"),
        ("TagSet=[{Key=string,Value=string}]", 400, "InvalidArgument"),
        ("&".join(f"k{i}=v" for i in range(11)), 400, "BadRequest"),
        ("TagSet%3D%5B%7BKey%3Dstring%2CValue%3Dstring%7D%5D", 400, "InvalidTag"),
        ("aws%3Acreated=me", 400, "InvalidTag"),
    ]
    for header, status, code in cases:
        r = await server.request("PUT", "/bucket/refused", b"body", headers={"x-amz-tagging": header})
        refused(r, status, code)
    assert (await server.request("HEAD", "/bucket/refused")).code == 404
    assert len(server.blob_files()) == 1  # only t's bytes: a refused PUT never reached the driver


@pytest_twisted.ensureDeferred
async def test_tagging_header_is_still_refused_where_no_operation_takes_it(server: Server) -> None:
    upload = await create_upload(server, "/bucket/mp")
    r = await server.request(
        "PUT", "/bucket/mp", b"part", query=f"partNumber=1&uploadId={upload}", headers={"x-amz-tagging": "a=b"}
    )
    refused(r, 501, "NotImplemented")


@pytest_twisted.ensureDeferred
async def test_multipart_upload_carries_its_tags_to_the_object(server: Server) -> None:
    server.engine.min_part_size = 1
    upload = await create_upload(server, "/bucket/mp", headers={"x-amz-tagging": "stage=raw&team=data"})
    etags = [await upload_part(server, "/bucket/mp", upload, n, b"part%d" % n) for n in (1, 2)]
    r = await complete_upload(server, "/bucket/mp", upload, enumerate(etags, 1))
    assert r.code == 200, r.body
    assert await tags_of(server, "/bucket/mp") == [("stage", "raw"), ("team", "data")]
    r = await server.request("POST", "/bucket/bad", query="uploads=", headers={"x-amz-tagging": "a=1&a=1"})
    refused(r, 400, "InvalidArgument")
    listing = await server.request("GET", "/bucket", query="uploads=")
    assert xml_values(listing.body, "Key") == []


@pytest_twisted.ensureDeferred
async def test_copy_object_tagging_directive(server: Server) -> None:
    r = await server.request("PUT", "/bucket/src", b"source", headers={"x-amz-tagging": "from=source"})
    assert r.code == 200
    copy = {"x-amz-copy-source": "/bucket/src"}
    assert (await server.request("PUT", "/bucket/default", headers=copy)).code == 200
    assert await tags_of(server, "/bucket/default") == [("from", "source")]
    # With COPY, S3 reads no x-amz-tagging: the source's tags are the copy's.
    r = await server.request(
        "PUT", "/bucket/copied", headers={**copy, "x-amz-tagging-directive": "COPY", "x-amz-tagging": "x=y"}
    )
    assert r.code == 200, r.body
    assert await tags_of(server, "/bucket/copied") == [("from", "source")]
    r = await server.request(
        "PUT", "/bucket/replaced", headers={**copy, "x-amz-tagging-directive": "REPLACE", "x-amz-tagging": "new=1"}
    )
    assert r.code == 200, r.body
    assert await tags_of(server, "/bucket/replaced") == [("new", "1")]
    r = await server.request("PUT", "/bucket/bare", headers={**copy, "x-amz-tagging-directive": "REPLACE"})
    assert r.code == 200, r.body
    assert await tags_of(server, "/bucket/bare") == []

    r = await server.request("PUT", "/bucket/x", headers={**copy, "x-amz-tagging-directive": "MERGE"})
    refused(r, 400, "InvalidArgument", "Unknown tagging directive.")
    r = await server.request(
        "PUT", "/bucket/x", headers={**copy, "x-amz-tagging-directive": "REPLACE", "x-amz-tagging": "a=1&a=2"}
    )
    refused(r, 400, "InvalidArgument")
    assert (await server.request("HEAD", "/bucket/x")).code == 404


@pytest_twisted.ensureDeferred
async def test_post_object_tagging_field_is_a_tagging_document(server: Server) -> None:
    async def post(tagging: str, key: str) -> Any:
        fields = v4_fields([{"bucket": "bucket"}, ["starts-with", "$key", ""], ["starts-with", "$tagging", ""]])
        fields.update({"key": key, "tagging": tagging})
        r = await treq.post(
            server.url + "/bucket",
            data=form(fields, b"content"),
            headers={"Content-Type": [f"multipart/form-data; boundary={BOUNDARY}"]},
            persistent=False,
        )
        r.body = await r.content()
        return r

    r = await post(tagging_xml([("posted", "yes"), ("by", "form")]).decode(), "posted")
    assert r.code == 204, r.body
    assert await tags_of(server, "/bucket/posted") == [("by", "form"), ("posted", "yes")]
    refused(await post("a=b", "bad"), 400, "MalformedXML")
    refused(await post(tagging_xml([("aws:x", "y")]).decode(), "bad"), 400, "InvalidTag")
    assert (await server.request("HEAD", "/bucket/bad")).code == 404


@pytest_twisted.ensureDeferred
async def test_tags_are_in_the_event_of_the_write(server: Server) -> None:
    await server.request("PUT", "/bucket/e", b"x", headers={"x-amz-tagging": "cost-center=42"})
    await put_tagging(server, "/bucket/e", tagging_xml([("retagged", "yes")]))
    await server.request("PUT", "/bucket/plain", b"x")
    assert server.events.flush()
    with open(os.path.join(server.data, "events", "events.jsonl")) as f:
        events = [json.loads(line) for line in f]
    by_op = {(e["operation"], e["key"]): e for e in events}
    assert by_op[("PutObject", "e")]["tags"] == {"cost-center": "42"}
    assert by_op[("PutObjectTagging", "e")]["tags"] == {"retagged": "yes"}
    assert "tags" not in by_op[("PutObject", "plain")]


# -- PutBucketTagging, GetBucketTagging, DeleteBucketTagging


@pytest_twisted.ensureDeferred
async def test_bucket_tags(server: Server) -> None:
    r = await server.request("GET", "/bucket", query="tagging=")
    refused(r, 404, "NoSuchTagSet", "The TagSet does not exist")
    fifty = [(f"key{i:02}", f"value {i}") for i in range(50)]
    r = await put_tagging(server, "/bucket", tagging_xml(fifty))
    assert r.code == 200, r.body
    assert await tags_of(server, "/bucket") == fifty

    refused(
        await put_tagging(server, "/bucket", tagging_xml([*fifty, ("one", "more")])),
        400,
        "BadRequest",
        "Bucket tag count cannot be greater than 50",
    )
    refused(
        await put_tagging(server, "/bucket", tagging_xml([("aws:cloudformation:stack", "x")])),
        400,
        "InvalidTag",
        "System tags cannot be added/updated by requester",
    )
    refused(await put_tagging(server, "/bucket", tagging_xml([("k", "v" * 257)])), 400, "InvalidTag")
    refused(await put_tagging(server, "/bucket", b"<Tagging><Tag/></Tagging>"), 400, "MalformedXML")
    # As S3 documents for PutBucketTagging: Content-MD5 (or a checksum) is required.
    r = await server.request("PUT", "/bucket", tagging_xml([("a", "b")]), query="tagging=")
    refused(r, 400, "InvalidRequest")
    assert await tags_of(server, "/bucket") == fifty  # nothing refused changed anything

    r = await server.request("DELETE", "/bucket", query="tagging=")
    assert r.code == 204
    refused(await server.request("GET", "/bucket", query="tagging="), 404, "NoSuchTagSet")
    assert (await server.request("DELETE", "/bucket", query="tagging=")).code == 204
    refused(await put_tagging(server, "/nobucket", tagging_xml([("a", "b")])), 404, "NoSuchBucket")
    refused(await server.request("GET", "/nobucket", query="tagging="), 404, "NoSuchBucket")

    # The setting goes with its bucket: a bucket made again under that name starts untagged.
    await put_tagging(server, "/bucket", tagging_xml([("a", "b")]))
    assert (await server.request("DELETE", "/bucket")).code == 204
    assert (await server.request("PUT", "/bucket")).code == 200
    refused(await server.request("GET", "/bucket", query="tagging="), 404, "NoSuchTagSet")


@pytest_twisted.ensureDeferred
async def test_create_bucket_configuration_tags(server: Server) -> None:
    tags = "<Tags><Tag><Key>team</Key><Value>storage</Value></Tag><Tag><Key>tier</Key><Value></Value></Tag></Tags>"
    body = f"<CreateBucketConfiguration>{tags}</CreateBucketConfiguration>".encode()
    assert (await server.request("PUT", "/tagged", body)).code == 200
    assert await tags_of(server, "/tagged") == [("team", "storage"), ("tier", "")]
    for inner, code in (
        ("<Tag><Key>aws:x</Key><Value>y</Value></Tag>", "InvalidTag"),
        ("<Tag><Key>k</Key></Tag>", "MalformedXML"),
    ):
        bad = f"<CreateBucketConfiguration><Tags>{inner}</Tags></CreateBucketConfiguration>".encode()
        refused(await server.request("PUT", "/refused", bad), 400, code)
    assert (await server.request("HEAD", "/refused")).code == 404  # nothing was created


# -- boto3 against the in-process stack


def boto3_client(server: Server) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1, "mode": "standard"}),
    )


def boto3_tagging(s3: Any) -> None:
    from botocore.exceptions import ClientError

    s3.put_object(Bucket="bucket", Key="b3", Body=b"boto", Tagging="env=test&owner=ops team")
    assert s3.head_object(Bucket="bucket", Key="b3")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "2"
    assert s3.get_object(Bucket="bucket", Key="b3")["TagCount"] == 2
    assert s3.get_object_tagging(Bucket="bucket", Key="b3")["TagSet"] == [
        {"Key": "env", "Value": "test"},
        {"Key": "owner", "Value": "ops team"},
    ]
    s3.put_object_tagging(Bucket="bucket", Key="b3", Tagging={"TagSet": [{"Key": "ünï", "Value": "çödé"}]})
    assert s3.get_object_tagging(Bucket="bucket", Key="b3")["TagSet"] == [{"Key": "ünï", "Value": "çödé"}]
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(
            Bucket="bucket", Key="b3", Tagging={"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]}
        )
    assert e.value.response["Error"]["Code"] == "BadRequest"

    s3.copy_object(Bucket="bucket", Key="b3-copy", CopySource={"Bucket": "bucket", "Key": "b3"})
    assert s3.get_object_tagging(Bucket="bucket", Key="b3-copy")["TagSet"] == [{"Key": "ünï", "Value": "çödé"}]
    s3.copy_object(
        Bucket="bucket",
        Key="b3-replaced",
        CopySource={"Bucket": "bucket", "Key": "b3"},
        TaggingDirective="REPLACE",
        Tagging="fresh=yes",
    )
    assert s3.get_object_tagging(Bucket="bucket", Key="b3-replaced")["TagSet"] == [{"Key": "fresh", "Value": "yes"}]

    upload = s3.create_multipart_upload(Bucket="bucket", Key="b3-mp", Tagging="multi=part")
    part = s3.upload_part(Bucket="bucket", Key="b3-mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"p")
    s3.complete_multipart_upload(
        Bucket="bucket",
        Key="b3-mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.get_object_tagging(Bucket="bucket", Key="b3-mp")["TagSet"] == [{"Key": "multi", "Value": "part"}]

    s3.delete_object_tagging(Bucket="bucket", Key="b3")
    assert s3.get_object_tagging(Bucket="bucket", Key="b3")["TagSet"] == []
    assert "TagCount" not in s3.get_object(Bucket="bucket", Key="b3")

    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket="bucket")
    assert e.value.response["Error"]["Code"] == "NoSuchTagSet"
    s3.put_bucket_tagging(Bucket="bucket", Tagging={"TagSet": [{"Key": "billing", "Value": "team-7"}]})
    assert s3.get_bucket_tagging(Bucket="bucket")["TagSet"] == [{"Key": "billing", "Value": "team-7"}]
    s3.delete_bucket_tagging(Bucket="bucket")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket="bucket")
    assert e.value.response["Error"]["Code"] == "NoSuchTagSet"

    s3.create_bucket(Bucket="born-tagged", CreateBucketConfiguration={"Tags": [{"Key": "born", "Value": "tagged"}]})
    assert s3.get_bucket_tagging(Bucket="born-tagged")["TagSet"] == [{"Key": "born", "Value": "tagged"}]


@pytest_twisted.ensureDeferred
async def test_boto3_object_and_bucket_tagging(server: Server) -> None:
    await threads.deferToThread(boto3_tagging, boto3_client(server))


# -- the aws cli against a real daemon


def test_aws_cli_tags_and_metadata(module_daemon: Any, aws_home: Path, tmp_path: Path) -> None:
    d = module_daemon
    s3 = d.boto3_client()  # to look, quickly: each aws cli run costs seconds
    s3.create_bucket(Bucket="cli-tags")
    local = tmp_path / "report.csv"
    local.write_bytes(b"a,b\n1,2\n")
    d.aws(aws_home, "s3", "cp", str(local), "s3://cli-tags/report.csv", "--metadata", "origin=cli")
    assert s3.head_object(Bucket="cli-tags", Key="report.csv")["Metadata"] == {"origin": "cli"}
    tagging = {"TagSet": [{"Key": "class", "Value": "finance"}, {"Key": "keep", "Value": "7 years"}]}
    d.aws(
        aws_home,
        "s3api",
        "put-object-tagging",
        "--bucket",
        "cli-tags",
        "--key",
        "report.csv",
        "--tagging",
        json.dumps(tagging),
    )
    got = d.aws(aws_home, "s3api", "get-object-tagging", "--bucket", "cli-tags", "--key", "report.csv").stdout
    assert json.loads(got)["TagSet"] == tagging["TagSet"]
    # s3 cp between buckets is a CopyObject: the tags go with the copy.
    d.aws(aws_home, "s3", "cp", "s3://cli-tags/report.csv", "s3://cli-tags/copied.csv")
    assert s3.get_object_tagging(Bucket="cli-tags", Key="copied.csv")["TagSet"] == tagging["TagSet"]
    assert s3.head_object(Bucket="cli-tags", Key="copied.csv")["Metadata"] == {"origin": "cli"}
