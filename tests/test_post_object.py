"""POST Object: browser form uploads with signed policies, in process."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest_twisted
import treq

from tests.postform import form, policy, post, v4_fields
from tests.s3helpers import ACCESS, REGION, SECRET, Server, error_code, xml_values
from vaultaire import sigv4


@pytest_twisted.async_yield_fixture
async def server(tmp_path):
    s = Server(str(tmp_path))
    await s.start("forms")
    yield s
    await s.stop()


@pytest_twisted.ensureDeferred
async def test_form_upload_streams_the_file(server):
    content = os.urandom(6 * 2**20) + b"\r\n--almost-a-boundary\r\n"
    fields = {
        "key": "uploads/${filename}",
        "x-amz-meta-owner": "web",
        **v4_fields(
            [
                {"bucket": "forms"},
                ["starts-with", "$key", "uploads/"],
                {"x-amz-meta-owner": "web"},
                ["content-length-range", 1, 10 * 2**20],
            ]
        ),
    }
    r = await post(server, form(fields, content))
    assert r.code == 204, r.body
    assert r.headers.getRawHeaders("etag") == [f'"{hashlib.md5(content).hexdigest()}"']
    r = await server.request("GET", "/forms/uploads/photo.jpg")
    assert r.body == content
    assert r.headers.getRawHeaders("content-type") == ["image/jpeg"]
    assert r.headers.getRawHeaders("x-amz-meta-owner") == ["web"]


@pytest_twisted.ensureDeferred
async def test_success_status_201_and_redirect(server):
    fields = {
        "key": "a.txt",
        "success_action_status": "201",
        **v4_fields([{"bucket": "forms"}, {"key": "a.txt"}, {"success_action_status": "201"}]),
    }
    r = await post(server, form(fields, b"hello"))
    assert r.code == 201 and xml_values(r.body, "Key") == ["a.txt"] and xml_values(r.body, "Bucket") == ["forms"]
    fields = {
        "key": "b.txt",
        "success_action_redirect": "http://example.test/done",
        **v4_fields([{"bucket": "forms"}, {"key": "b.txt"}, {"success_action_redirect": "http://example.test/done"}]),
    }
    r = await post(server, form(fields, b"hello"))
    assert r.code == 303
    assert r.headers.getRawHeaders("location")[0].startswith("http://example.test/done?bucket=forms&key=b.txt")


@pytest_twisted.ensureDeferred
async def test_sigv2_policy(server):
    doc = policy([{"bucket": "forms"}, {"key": "v2.txt"}])
    signature = base64.b64encode(hmac.new(SECRET.encode(), doc.encode(), "sha1").digest()).decode()
    fields = {"key": "v2.txt", "AWSAccessKeyId": ACCESS, "policy": doc, "signature": signature}
    r = await post(server, form(fields, b"v2 content"))
    assert r.code == 204, r.body
    assert (await server.request("GET", "/forms/v2.txt")).body == b"v2 content"


def signed_garbage_policy() -> dict[str, str]:
    fields = v4_fields([])
    date = fields["x-amz-credential"].split("/")[1]
    fields["policy"] = "not-base64!"
    fields["x-amz-signature"] = sigv4.signature(sigv4.signing_key(SECRET, date, REGION, "s3"), "not-base64!")
    return fields


@pytest_twisted.ensureDeferred
async def test_policy_violations_store_nothing(server):
    base = [{"bucket": "forms"}, ["starts-with", "$key", "ok/"]]
    cases = [
        ({"key": "ok/x", **v4_fields(base, expires_in=-10)}, b"x", 403, "AccessDenied"),
        ({"key": "ok/x", **v4_fields(base, secret="wrong-secret-value")}, b"x", 403, "SignatureDoesNotMatch"),
        ({"key": "elsewhere/x", **v4_fields(base)}, b"x", 403, "AccessDenied"),
        ({"key": "ok/x", "x-amz-meta-sneaky": "1", **v4_fields(base)}, b"x", 403, "AccessDenied"),
        ({"key": "ok/x", **v4_fields(base + [["content-length-range", 1, 10]])}, b"x" * 11, 400, "EntityTooLarge"),
        ({"key": "ok/x", **v4_fields(base + [["content-length-range", 5, 10]])}, b"x", 400, "EntityTooSmall"),
        ({"key": "ok/x", **signed_garbage_policy()}, b"x", 400, "InvalidPolicyDocument"),
    ]
    for fields, content, status, code in cases:
        fields.setdefault("x-amz-algorithm", "AWS4-HMAC-SHA256")
        fields.setdefault("x-amz-credential", f"{ACCESS}/20260101/{REGION}/s3/aws4_request")
        r = await post(server, form(fields, content))
        assert (r.code, error_code(r)) == (status, code), fields
    assert server.blob_files() == []
    r = await treq.post(server.url + "/forms", data=b"x", headers={"Content-Type": ["text/plain"]}, persistent=False)
    assert r.code == 400 and b"InvalidRequest" in await r.content()
