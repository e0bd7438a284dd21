"""Never pretend (issue 21, items 17 and 18).

A header asking for a protection Vaultaire does not give (SSE-KMS, SSE-S3 or SSE-C
where an operation does not honour them yet (POST Object),
ACLs and tags where no operation takes them) is refused with 501
NotImplemented on every path S3 takes it, and nothing is stored; an
expected bucket owner that is not the owner is 403. Detection of an
operation Vaultaire lacks answers only after authentication.
"""

from __future__ import annotations

import pytest
import pytest_twisted
import treq

from tests.postform import BOUNDARY, form, v4_fields
from tests.s3helpers import Server, error_code, xml_values
from vaultaire.api import unsupported
from vaultaire.api.errors import S3Error

# (header, value) -> what a PUT asking for it must get
REFUSED = [
    ("x-amz-server-side-encryption", "aws:kms:dsse"),
]


def assert_not_implemented(r, header: str) -> None:
    assert (r.code, error_code(r)) == (501, "NotImplemented"), r.body
    assert xml_values(r.body, "Header") == [header], r.body


@pytest.mark.parametrize(("header", "value"), REFUSED)
@pytest_twisted.ensureDeferred
async def test_put_asking_for_an_unsupported_protection_is_501_and_stores_nothing(server, header, value):
    r = await server.request("PUT", "/bucket/k", b"secret", headers={header: value})
    assert_not_implemented(r, header)
    assert (await server.request("HEAD", "/bucket/k")).code == 404
    assert server.blob_files() == []


@pytest.mark.parametrize("acl", ["private", "bucket-owner-full-control"])
@pytest_twisted.ensureDeferred
async def test_acls_that_ask_for_nothing_more_are_accepted(server, acl):
    assert (await server.request("PUT", "/bucket/k", b"x", headers={"x-amz-acl": acl})).code == 200
    r = await server.request(
        "PUT", "/other", headers={"x-amz-acl": acl, "x-amz-object-ownership": "BucketOwnerEnforced"}
    )
    assert r.code == 200, r.body


@pytest.mark.parametrize(
    ("header", "value"),
    [("x-amz-server-side-encryption", "aws:kms:dsse")],
)
@pytest_twisted.ensureDeferred
async def test_copy_and_multipart_create_refuse_too(server, header, value):
    assert (await server.request("PUT", "/bucket/plain", b"clear")).code == 200
    r = await server.request("PUT", "/bucket/copy", headers={"x-amz-copy-source": "/bucket/plain", header: value})
    assert_not_implemented(r, header)
    r = await server.request("POST", "/bucket/mp", query="uploads=", headers={header: value})
    assert_not_implemented(r, header)
    listing = await server.request("GET", "/bucket", query="uploads=")
    assert xml_values(listing.body, "UploadId") == []


@pytest.mark.parametrize(
    ("header", "value"),
    [("x-amz-acl", "public-read"), ("x-amz-grant-read", 'uri="http://acs.amazonaws.com/groups/global/AllUsers"')],
)
@pytest_twisted.ensureDeferred
async def test_acl_headers_are_501_where_no_acl_is_set(server, header, value):
    # UploadPart makes no object of its own: S3 sets ACLs at CreateMultipartUpload.
    r = await server.request("POST", "/bucket/mp", query="uploads=")
    upload = xml_values(r.body, "UploadId")[0]
    r = await server.request(
        "PUT", "/bucket/mp", b"x", query=f"partNumber=1&uploadId={upload}", headers={header: value}
    )
    assert_not_implemented(r, header)


@pytest_twisted.ensureDeferred
async def test_create_bucket_asking_for_public_acls_or_object_writer_is_501(server):
    # Object Lock at creation is honoured now (tests/test_object_lock_api.py).
    r = await server.request("PUT", "/unlocked", headers={"x-amz-bucket-object-lock-enabled": "false"})
    assert r.code == 200, r.body


@pytest.mark.parametrize(
    ("field", "value", "header"),
    [
        # The form's tags are a "tagging" field (a Tagging document): the header's name is not S3's field.
        ("x-amz-tagging", "a=b", "x-amz-tagging"),
        ("x-amz-server-side-encryption", "aws:kms:dsse", "x-amz-server-side-encryption"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_post_form_fields_asking_for_more_are_501(server, field, value, header):
    fields = v4_fields([{"bucket": "bucket"}, ["starts-with", "$key", ""], ["starts-with", f"${field}", ""]])
    fields.update({"key": "posted", field: value})
    r = await treq.post(
        server.url + "/bucket",
        data=form(fields, b"content"),
        headers={"Content-Type": [f"multipart/form-data; boundary={BOUNDARY}"]},
        persistent=False,
    )
    r.body = await r.content()
    assert_not_implemented(r, header)
    assert (await server.request("HEAD", "/bucket/posted")).code == 404


async def owner_id(server: Server) -> str:
    r = await server.request("GET", "/")
    return xml_values(r.body, "ID")[0]


@pytest_twisted.ensureDeferred
async def test_expected_bucket_owner_must_be_the_owner(server):
    owner = await owner_id(server)
    assert (await server.request("PUT", "/bucket/k", b"x")).code == 200
    wrong = {"x-amz-expected-bucket-owner": "111122223333"}
    right = {"x-amz-expected-bucket-owner": owner}
    for method, path, query in [
        ("GET", "/bucket/k", ""),
        ("HEAD", "/bucket/k", ""),
        ("GET", "/bucket", "list-type=2"),
        ("HEAD", "/bucket", ""),
        ("PUT", "/bucket/k2", ""),
        ("DELETE", "/bucket/k", ""),
    ]:
        r = await server.request(method, path, query=query, headers=wrong)
        assert r.code == 403, (method, path, r.body)
        if method != "HEAD":
            assert error_code(r) == "AccessDenied"
    assert (await server.request("HEAD", "/bucket/k")).code == 200  # the DELETE did not happen
    assert (await server.request("GET", "/bucket/k", headers=right)).code == 200
    copy = {"x-amz-copy-source": "/bucket/k"}
    r = await server.request("PUT", "/bucket/c", headers={**copy, "x-amz-source-expected-bucket-owner": "1"})
    assert (r.code, error_code(r)) == (403, "AccessDenied")
    r = await server.request("PUT", "/bucket/c", headers={**copy, "x-amz-source-expected-bucket-owner": owner})
    assert r.code == 200, r.body


# -- item 18: authenticate first, then 501


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/bucket", "website="),
        ("PUT", "/bucket", "logging="),
        ("GET", "/bucket/k", "torrent="),
        ("PATCH", "/bucket/k", ""),
    ],
)
@pytest_twisted.ensureDeferred
async def test_unsupported_operations_authenticate_first(server, method, path, query):
    r = await server.request(method, path, query=query, sign=False)
    assert (r.code, error_code(r)) == (403, "AccessDenied"), r.body
    r = await server.request(method, path, query=query, secret="wrong-secret")
    assert (r.code, error_code(r)) == (403, "SignatureDoesNotMatch"), r.body
    r = await server.request(method, path, query=query)
    assert r.code in (405, 501), r.body


def test_the_rows_of_each_header_name_are_found_once_and_the_names_kept_are_bounded(monkeypatch):
    unsupported._rows_for.cache_clear()
    found = []
    matching = unsupported._matching
    monkeypatch.setattr(unsupported, "_matching", lambda name: found.append(name) or matching(name))
    for _ in range(3):
        unsupported.refuse("PutObject", {"x-amz-tagging": "a=b", "x-amz-date": "x", "host": "h"})
    assert found == ["x-amz-date", "x-amz-tagging"]  # once each; not "host", which is in no row's family
    with pytest.raises(S3Error) as refused:
        unsupported.refuse("GetObject", {"x-amz-website-redirect-location": "/y", "x-amz-grant-read": "id=x"})
    assert refused.value.code == "NotImplemented"
    assert refused.value.extra["Header"] == "x-amz-grant-read"  # the first name, in order
    bound = unsupported._rows_for.cache_info().maxsize
    assert bound == 4096
    for i in range(bound + 50):
        unsupported.refuse("GetObject", {f"x-amz-meta-{i}": "v"})
    assert unsupported._rows_for.cache_info().currsize == bound
    unsupported._rows_for.cache_clear()  # nothing found through the counting stand-in stays cached
