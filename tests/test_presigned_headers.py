"""x-amz-* headers a presigner moved into the query string count as headers.

The AWS JS SDK v3 presigner (and any SigV4 presigner asked to) hoists the
request's ``x-amz-*`` headers into the URL, where SigV4 signs them as part of
the query; botocore's SigV2 presigner does the same (and signs them as the
headers of its string to sign). S3 treats them as the headers of the same
name, so here they are applied where honoured and refused (501) where not,
never ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import boto3
import pytest_twisted
import treq
from botocore.config import Config

from tests.s3helpers import ACCESS, REGION, SECRET, error_code, xml_values
from vaultaire import sigv4


def hoisted(server, method: str, path: str, params: dict[str, str]) -> str:
    """A SigV4 presigned URL carrying ``params`` in its (signed) query, as the JS SDK v3 makes it."""
    url = server.url + quote(path, safe="/~") + "?" + urlencode(params, quote_via=quote)
    return sigv4.presign_url(method, url, ACCESS, SECRET, REGION, now=datetime.now(UTC))


async def put(url: str, body: bytes, headers: dict[str, str] | None = None):
    r = await treq.put(url, data=body, headers={k: [v] for k, v in (headers or {}).items()}, persistent=False)
    r.body = await r.content()
    return r


@pytest_twisted.ensureDeferred
async def test_hoisted_tagging_and_metadata_are_stored(server):
    url = hoisted(server, "PUT", "/bucket/k", {"x-amz-tagging": "team=blue&tier=cold", "x-amz-meta-colour": "red"})
    r = await put(url, b"data")
    assert r.code == 200, r.body
    tags = await server.request("GET", "/bucket/k", query="tagging=")
    assert xml_values(tags.body, "Key") == ["team", "tier"]
    assert xml_values(tags.body, "Value") == ["blue", "cold"]
    head = await server.request("HEAD", "/bucket/k")
    assert head.headers.getRawHeaders("x-amz-meta-colour") == ["red"]


@pytest_twisted.ensureDeferred
async def test_hoisted_names_are_case_insensitive(server):
    url = hoisted(server, "PUT", "/bucket/k", {"X-Amz-Meta-Colour": "green"})
    assert (await put(url, b"data")).code == 200
    head = await server.request("HEAD", "/bucket/k")
    assert head.headers.getRawHeaders("x-amz-meta-colour") == ["green"]


@pytest_twisted.ensureDeferred
async def test_hoisted_dsse_kms_is_refused_and_nothing_stored(server):
    url = hoisted(server, "PUT", "/bucket/k", {"x-amz-server-side-encryption": "aws:kms:dsse"})
    r = await put(url, b"secret")
    assert (r.code, error_code(r)) == (501, "NotImplemented"), r.body
    assert xml_values(r.body, "Header") == ["x-amz-server-side-encryption"]
    assert (await server.request("HEAD", "/bucket/k")).code == 404
    assert server.blob_files() == []


@pytest_twisted.ensureDeferred
async def test_hoisted_sse_s3_is_applied(server):
    url = hoisted(server, "PUT", "/bucket/k", {"x-amz-server-side-encryption": "AES256"})
    r = await put(url, b"secret")
    assert r.code == 200, r.body
    assert r.headers.getRawHeaders("x-amz-server-side-encryption") == ["AES256"]
    head = await server.request("HEAD", "/bucket/k")
    assert head.headers.getRawHeaders("x-amz-server-side-encryption") == ["AES256"]


@pytest_twisted.ensureDeferred
async def test_hoisted_copy_source_makes_a_copy(server):
    assert (await server.request("PUT", "/bucket/src", b"original")).code == 200
    url = hoisted(server, "PUT", "/bucket/dst", {"x-amz-copy-source": "/bucket/src"})
    r = await put(url, b"")
    assert r.code == 200, r.body
    assert xml_values(r.body, "ETag"), r.body  # a CopyObjectResult, not an empty object
    assert (await server.request("GET", "/bucket/dst")).body == b"original"


@pytest_twisted.ensureDeferred
async def test_a_header_and_a_query_parameter_that_disagree_are_refused(server):
    url = hoisted(server, "PUT", "/bucket/k", {"x-amz-meta-colour": "red"})
    r = await put(url, b"data", {"x-amz-meta-colour": "blue"})
    assert (r.code, error_code(r)) == (400, "InvalidArgument"), r.body
    assert (await server.request("HEAD", "/bucket/k")).code == 404
    # The same value twice is one header.
    assert (await put(url, b"data", {"x-amz-meta-colour": "red"})).code == 200


@pytest_twisted.ensureDeferred
async def test_x_amz_parameters_of_a_header_signed_request_are_not_headers(server):
    # Only a presigned request's query stands for its headers; elsewhere it is a query as S3 reads it.
    r = await server.request("PUT", "/bucket/k", b"data", query="x-amz-meta-colour=red")
    assert r.code == 200, r.body
    head = await server.request("HEAD", "/bucket/k")
    assert head.headers.getRawHeaders("x-amz-meta-colour") is None


def sigv2_client(server):
    return boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
        region_name=REGION,
        config=Config(signature_version="s3", s3={"addressing_style": "path"}),
    )


@pytest_twisted.ensureDeferred
async def test_botocore_sigv2_presigned_put_with_tagging_and_metadata(server):
    # botocore's SigV2 presigner signs x-amz-* headers and then moves them into the URL.
    url = sigv2_client(server).generate_presigned_url(
        "put_object", Params={"Bucket": "bucket", "Key": "k", "Tagging": "a=b", "Metadata": {"m": "v"}}
    )
    assert "x-amz-tagging=" in url and "x-amz-meta-m=" in url
    r = await put(url, b"data")
    assert r.code == 200, r.body
    tags = await server.request("GET", "/bucket/k", query="tagging=")
    assert (xml_values(tags.body, "Key"), xml_values(tags.body, "Value")) == (["a"], ["b"])
    head = await server.request("HEAD", "/bucket/k")
    assert head.headers.getRawHeaders("x-amz-meta-m") == ["v"]
    # Added after signing, a parameter is not the signer's: the signature no longer matches.
    r = await put(url + "&x-amz-acl=public-read", b"data")
    assert (r.code, error_code(r)) == (403, "SignatureDoesNotMatch"), r.body


@pytest_twisted.ensureDeferred
async def test_botocore_sigv2_presigned_put_asking_for_dsse_is_refused(server):
    url = sigv2_client(server).generate_presigned_url(
        "put_object", Params={"Bucket": "bucket", "Key": "k", "ServerSideEncryption": "aws:kms:dsse"}
    )
    r = await put(url, b"data")
    assert (r.code, error_code(r)) == (501, "NotImplemented"), r.body
    assert (await server.request("HEAD", "/bucket/k")).code == 404


# -- headers the presigner did not sign


@pytest_twisted.ensureDeferred
async def test_unsigned_x_amz_headers_on_a_presigned_request_are_refused(server):
    # The holder of a URL signed for host only must not add what its signer never allowed.
    assert (await server.request("PUT", "/bucket/src", b"source")).code == 200
    url = server.presign("PUT", "/bucket/k")
    for name, value in (
        ("x-amz-tagging", "a=b"),
        ("x-amz-acl", "public-read"),
        ("x-amz-meta-colour", "red"),
        ("x-amz-copy-source", "/bucket/src"),
        ("x-amz-object-lock-legal-hold", "ON"),
    ):
        r = await put(url, b"data", {name: value})
        assert (r.code, error_code(r)) == (403, "AccessDenied"), (name, r.body)
        assert xml_values(r.body, "HeadersNotSigned") == [name], r.body
        assert (await server.request("HEAD", "/bucket/k")).code == 404, name
    # x-amz-content-sha256 may go unsigned, as on S3; a plain header too.
    r = await put(url, b"data", {"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Type": "text/plain"})
    assert r.code == 200, r.body


@pytest_twisted.ensureDeferred
async def test_x_amz_headers_the_presigner_signed_are_taken(server):
    url = sigv4.presign_url(
        "PUT",
        server.url + "/bucket/k",
        ACCESS,
        SECRET,
        REGION,
        now=datetime.now(UTC),
        extra_signed_headers={"x-amz-meta-colour": "red"},
    )
    assert (await put(url, b"data", {"x-amz-meta-colour": "red"})).code == 200
    head = await server.request("HEAD", "/bucket/k")
    assert head.headers.getRawHeaders("x-amz-meta-colour") == ["red"]


@pytest_twisted.ensureDeferred
async def test_checksums_in_the_query_are_ignored_as_s3_ignores_them(server):
    # The AWS JS SDK v3 (default settings) presigns PutObject with the empty body's CRC32 in the
    # query; S3 takes no checksum from a presigned URL, so the upload of any body succeeds.
    url = hoisted(
        server, "PUT", "/bucket/k", {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "CRC32"}
    )
    r = await put(url, b"not empty")
    assert r.code == 200, r.body
    assert (await server.request("GET", "/bucket/k")).body == b"not empty"
