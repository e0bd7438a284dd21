"""Operations S3 checks as more than one action (issue 14's one table, vaultaire/access/actions.py).

As AWS documents them: GetObjectAttributes needs s3:GetObject and s3:GetObjectAttributes
(s3:GetObjectVersion and s3:GetObjectVersionAttributes for a version); a write that stores
tags (PutObject, CreateMultipartUpload, CopyObject with x-amz-tagging-directive REPLACE)
also needs s3:PutObjectTagging.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted

from tests.postform import form, post, v4_fields
from tests.s3helpers import Server, error_code, xml_values
from tests.test_access_api import add_user, as_


def allow(*actions: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
    }


def denied(r: Any) -> bool:
    return (r.code, error_code(r)) == (403, "AccessDenied")


async def get_attributes(server: Server, key: str, query: str = "attributes=") -> Any:
    return await server.request(
        "GET", "/bucket/k", query=query, headers={"x-amz-object-attributes": "ETag,ObjectSize"}, **as_(key)
    )


@pytest_twisted.ensureDeferred
async def test_get_object_attributes_needs_get_object_too(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/k", b"data")).code == 200
    only = await add_user(server, "only", allow("s3:GetObjectAttributes"))
    assert denied(await get_attributes(server, only))
    both = await add_user(server, "both", allow("s3:GetObjectAttributes", "s3:GetObject"))
    r = await get_attributes(server, both)
    assert r.code == 200 and xml_values(r.body, "ObjectSize") == ["4"], r.body
    get_only = await add_user(server, "getonly", allow("s3:GetObject"))
    assert denied(await get_attributes(server, get_only))


@pytest_twisted.ensureDeferred
async def test_get_object_version_attributes_needs_get_object_version_too(server: Server) -> None:
    r = await server.request(
        "PUT",
        "/bucket",
        query="versioning=",
        body=b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
    )
    assert r.code == 200, r.body
    r = await server.request("PUT", "/bucket/k", b"data")
    version = r.headers.getRawHeaders("x-amz-version-id")[0]
    query = f"attributes=&versionId={version}"
    only = await add_user(server, "only", allow("s3:GetObjectVersionAttributes", "s3:GetObject"))
    assert denied(await get_attributes(server, only, query))
    both = await add_user(server, "both", allow("s3:GetObjectVersionAttributes", "s3:GetObjectVersion"))
    assert (await get_attributes(server, both, query)).code == 200


@pytest_twisted.ensureDeferred
async def test_put_object_with_tags_needs_put_object_tagging(server: Server) -> None:
    writer = await add_user(server, "writer", allow("s3:PutObject"))
    assert (await server.request("PUT", "/bucket/plain", b"1", **as_(writer))).code == 200
    r = await server.request("PUT", "/bucket/tagged", b"1", headers={"x-amz-tagging": "a=b"}, **as_(writer))
    assert denied(r), r.body
    assert (await server.request("HEAD", "/bucket/tagged")).code == 404
    tagger = await add_user(server, "tagger", allow("s3:PutObject", "s3:PutObjectTagging"))
    r = await server.request("PUT", "/bucket/tagged", b"1", headers={"x-amz-tagging": "a=b"}, **as_(tagger))
    assert r.code == 200, r.body


@pytest_twisted.ensureDeferred
async def test_multipart_create_with_tags_needs_put_object_tagging(server: Server) -> None:
    writer = await add_user(server, "writer", allow("s3:PutObject"))
    r = await server.request("POST", "/bucket/k", query="uploads=", headers={"x-amz-tagging": "a=b"}, **as_(writer))
    assert denied(r), r.body
    assert (await server.request("POST", "/bucket/k", query="uploads=", **as_(writer))).code == 200
    tagger = await add_user(server, "tagger", allow("s3:PutObject", "s3:PutObjectTagging"))
    r = await server.request("POST", "/bucket/k", query="uploads=", headers={"x-amz-tagging": "a=b"}, **as_(tagger))
    assert r.code == 200, r.body


@pytest_twisted.ensureDeferred
async def test_copy_replacing_tags_needs_put_object_tagging(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/src", b"1")).code == 200
    copier = await add_user(server, "copier", allow("s3:PutObject", "s3:GetObject"))
    replace = {"x-amz-copy-source": "/bucket/src", "x-amz-tagging-directive": "REPLACE", "x-amz-tagging": "a=b"}
    assert denied(await server.request("PUT", "/bucket/dst", headers=replace, **as_(copier)))
    assert (await server.request("HEAD", "/bucket/dst")).code == 404
    plain = {"x-amz-copy-source": "/bucket/src"}
    assert (await server.request("PUT", "/bucket/dst", headers=plain, **as_(copier))).code == 200
    tagger = await add_user(server, "tagger", allow("s3:PutObject", "s3:GetObject", "s3:PutObjectTagging"))
    r = await server.request("PUT", "/bucket/dst2", headers=replace, **as_(tagger))
    assert r.code == 200, r.body


@pytest_twisted.ensureDeferred
async def test_post_object_with_tags_needs_put_object_tagging(server: Server) -> None:
    tagging = "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>"

    def signed(key: str, name: str, tags: bool) -> bytes:
        conditions: list[Any] = [{"bucket": "bucket"}, {"key": name}]
        fields = {"key": name}
        if tags:
            conditions.append({"tagging": tagging})
            fields["tagging"] = tagging
        return form({**fields, **v4_fields(conditions, access=key, secret=key)}, b"1")

    writer = await add_user(server, "writer", allow("s3:PutObject"))
    assert (await post(server, signed(writer, "plain", False), bucket="bucket")).code == 204
    r = await post(server, signed(writer, "tagged", True), bucket="bucket")
    assert denied(r), r.body
    assert (await server.request("HEAD", "/bucket/tagged")).code == 404
    tagger = await add_user(server, "tagger", allow("s3:PutObject", "s3:PutObjectTagging"))
    r = await post(server, signed(tagger, "tagged", True), bucket="bucket")
    assert r.code == 204, r.body
    r = await server.request("GET", "/bucket/tagged", query="tagging=")
    assert xml_values(r.body, "Key") == ["a"], r.body
