"""POST Object policies read as S3 reads them (issue 12 item 9, issue 21 item 8), in process."""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import UTC, datetime

import pytest
import pytest_twisted

from tests.postform import form, post, v4_fields
from tests.s3helpers import ACCESS, REGION, SECRET, Server, error_code
from vaultaire import sigv4


@pytest_twisted.async_yield_fixture
async def server(tmp_path):
    s = Server(str(tmp_path))
    await s.start("forms")
    yield s
    await s.stop()


def signed(document: str) -> dict[str, str]:
    """V4 form fields for a policy document given as raw JSON text."""
    fields = v4_fields([])
    date = fields["x-amz-credential"].split("/")[1]
    fields["policy"] = base64.b64encode(document.encode()).decode()
    fields["x-amz-signature"] = sigv4.signature(sigv4.signing_key(SECRET, date, REGION, "s3"), fields["policy"])
    return fields


def expiration(seconds: float = 86400, fmt: str = "%Y-%m-%dT%H:%M:%S.000Z") -> str:
    # A day ahead: parametrized documents are built when the suite is collected, maybe many minutes
    # before their test runs, and must not expire meanwhile.
    return datetime.fromtimestamp(time.time() + seconds, UTC).strftime(fmt)


def auth_conditions(fields: dict[str, str]) -> str:
    return (
        f'{{"x-amz-algorithm": "AWS4-HMAC-SHA256"}}, {{"x-amz-credential": "{fields["x-amz-credential"]}"}}, '
        f'{{"x-amz-date": "{fields["x-amz-date"]}"}}'
    )


def document(conditions: str, expires: str | None = None) -> str:
    fields = v4_fields([])
    return f'{{"expiration": "{expires or expiration()}", "conditions": [{conditions}, {auth_conditions(fields)}]}}'


@pytest_twisted.ensureDeferred
async def test_filename_is_substituted_before_the_policy_is_checked(server):
    fields = {"key": "user/${filename}", **v4_fields([{"bucket": "forms"}, {"key": "user/photo.jpg"}])}
    r = await post(server, form(fields, b"hello", filename="photo.jpg"))
    assert r.code == 204, r.body
    assert (await server.request("GET", "/forms/user/photo.jpg")).body == b"hello"


@pytest_twisted.ensureDeferred
async def test_checksum_fields_need_no_condition_and_are_verified(server):
    right = base64.b64encode(hashlib.sha256(b"hello").digest()).decode()
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    base = [{"bucket": "forms"}, ["starts-with", "$key", ""]]
    r = await post(server, form({"key": "c1", "x-amz-checksum-sha256": wrong, **v4_fields(base)}, b"hello"))
    assert (r.code, error_code(r)) == (400, "BadDigest")
    r = await post(server, form({"key": "c1", "x-amz-checksum-sha256": right, **v4_fields(base)}, b"hello"))
    assert r.code == 204, r.body
    r = await server.request("HEAD", "/forms/c1", headers={"x-amz-checksum-mode": "ENABLED"})
    assert r.headers.getRawHeaders("x-amz-checksum-sha256") == [right]
    r = await post(server, form({"key": "c2", "x-amz-checksum-sha512": right, **v4_fields(base)}, b"hello"))
    assert (r.code, error_code(r)) == (501, "NotImplemented")
    assert server.blob_files() and len(server.blob_files()) == 1


@pytest_twisted.ensureDeferred
async def test_policy_operators_are_case_insensitive(server):
    fields = {
        "key": "ci/x",
        **v4_fields([{"Bucket": "forms"}, ["Starts-With", "$Key", "ci/"], ["EQ", "$bucket", "forms"]]),
    }
    r = await post(server, form(fields, b"hello"))
    assert r.code == 204, r.body


@pytest.mark.parametrize(
    "doc",
    [
        # no conditions list
        '{"expiration": "' + expiration() + '"}',
        '{"expiration": "' + expiration() + '", "conditions": {}}',
        # expiration not in S3's ISO 8601 form
        document('{"bucket": "forms"}, ["starts-with", "$key", ""]', expiration(fmt="%Y-%m-%d")),
        document('{"bucket": "forms"}, ["starts-with", "$key", ""]', expiration(fmt="%Y-%m-%dT%H:%M:%S+00:00")),
        document('{"bucket": "forms"}, ["starts-with", "$key", ""]', expiration(fmt="%d/%m/%YT%H:%M:%SZ")),
        # content-length-range bounds must be integers in range (1e999 was a 500)
        document('{"bucket": "forms"}, ["starts-with", "$key", ""], ["content-length-range", 0, 1e999]'),
        document('{"bucket": "forms"}, ["starts-with", "$key", ""], ["content-length-range", 0, Infinity]'),
        document('{"bucket": "forms"}, ["starts-with", "$key", ""], ["content-length-range", 0, NaN]'),
        document('{"bucket": "forms"}, ["starts-with", "$key", ""], ["content-length-range", 0, 10.5]'),
        document('{"bucket": "forms"}, ["starts-with", "$key", ""], ["content-length-range", -1, 10]'),
        document('{"bucket": "forms"}, ["starts-with", "$key", ""], ["content-length-range", 0, 1%s]' % ("0" * 30)),
        document('{"bucket": "forms"}, ["starts-with", "$key", ""], ["content-length-range", true, 10]'),
        "[" * 5000 + "]" * 5000,
    ],
    ids=[
        "no-conditions",
        "conditions-not-a-list",
        "date-only",
        "offset-not-Z",
        "not-iso",
        "1e999",
        "Infinity",
        "NaN",
        "fraction",
        "negative",
        "huge",
        "boolean",
        "deep-nesting",
    ],
)
@pytest_twisted.ensureDeferred
async def test_malformed_policies_are_invalid_policy_documents(server, doc):
    r = await post(server, form({"key": "k", **signed(doc)}, b"hello"))
    assert (r.code, error_code(r)) == (400, "InvalidPolicyDocument"), r.body
    assert server.blob_files() == []


@pytest_twisted.ensureDeferred
async def test_well_formed_policy_document_is_accepted(server):
    doc = document('{"bucket": "forms"}, ["starts-with", "$key", ""], ["content-length-range", 0, 10]')
    r = await post(server, form({"key": "k", **signed(doc)}, b"hello"))
    assert r.code == 204, r.body


@pytest.mark.parametrize(
    "fields",
    [
        {"AWSAccessKeyId": ACCESS, "policy": "e30="},
        {"signature": "c2ln", "policy": "e30="},
        {"x-amz-credential": f"{ACCESS}/20260101/{REGION}/s3/aws4_request", "policy": "e30="},
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_signed_form_without_its_signature_is_400(server, fields):
    r = await post(server, form({"key": "k", **fields}, b"hello"))
    assert (r.code, error_code(r)) == (400, "InvalidArgument"), r.body
