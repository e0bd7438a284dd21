"""An anonymous POST Object form (no policy, no signature) is evaluated like any anonymous request:
the bucket's policy (or ACL) may let anyone write there, as on S3; otherwise 403."""

from __future__ import annotations

import json

import pytest_twisted

from tests.postform import form, post
from tests.s3helpers import Server, error_code


def anyone_may_put(bucket: str) -> bytes:
    statement = {
        "Sid": "Dropbox",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/inbox/*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}).encode()


@pytest_twisted.ensureDeferred
async def test_anonymous_form_is_refused_without_a_grant_and_stored_with_one(server: Server) -> None:
    r = await post(server, form({"key": "inbox/a.txt"}, b"anonymous"), bucket="bucket")
    assert (r.code, error_code(r)) == (403, "AccessDenied"), r.body
    assert (await server.request("GET", "/bucket/inbox/a.txt")).code == 404

    assert (await server.request("DELETE", "/bucket", query="publicAccessBlock=")).code == 204
    r = await server.request("PUT", "/bucket", anyone_may_put("bucket"), query="policy=")
    assert r.code == 204, r.body
    r = await post(server, form({"key": "inbox/${filename}"}, b"anonymous", filename="a.txt"), bucket="bucket")
    assert r.code == 204, r.body
    stored = await server.request("GET", "/bucket/inbox/a.txt")
    assert (stored.code, stored.body) == (200, b"anonymous")
    # The grant names inbox/ only: a key elsewhere is refused.
    r = await post(server, form({"key": "elsewhere.txt"}, b"x"), bucket="bucket")
    assert (r.code, error_code(r)) == (403, "AccessDenied")
    # A form with a policy but no signature is malformed, not anonymous.
    r = await post(server, form({"key": "inbox/b.txt", "policy": "e30="}, b"x"), bucket="bucket")
    assert (r.code, error_code(r)) == (400, "InvalidArgument")
