"""``[security] encrypt_all_objects``: every new object is encrypted at rest, asked or not."""

from __future__ import annotations

import os

import pytest_twisted

from tests.s3helpers import Server, xml_values

MARKER = b"PLAINTEXT-MARKER-EVERYTHING"


def on_disk(server: Server) -> bytes:
    return b"".join(open(path, "rb").read() for path in server.blob_files())


@pytest_twisted.ensureDeferred
async def test_objects_that_ask_for_nothing_are_sse_s3_and_the_bucket_says_so(server: Server) -> None:
    server.api.encrypt_all_objects = True
    r = await server.request("PUT", "/bucket/plain", MARKER * 100)
    assert r.code == 200 and r.headers.getRawHeaders("x-amz-server-side-encryption") == ["AES256"]
    r = await server.request("POST", "/bucket/parts", query="uploads=")
    assert r.headers.getRawHeaders("x-amz-server-side-encryption") == ["AES256"]
    assert MARKER not in on_disk(server) and os.path.getsize(server.blob_files()[0]) > len(MARKER) * 100
    r = await server.request("GET", "/bucket/plain")
    assert r.body == MARKER * 100 and r.headers.getRawHeaders("x-amz-server-side-encryption") == ["AES256"]
    # GetBucketEncryption tells the truth: the deployment's default applies to this bucket.
    r = await server.request("GET", "/bucket", query="encryption=")
    assert r.code == 200 and xml_values(r.body, "SSEAlgorithm") == ["AES256"]

    # Off (the default): a request that asks for nothing stores plaintext and the bucket has no default.
    server.api.encrypt_all_objects = False
    r = await server.request("PUT", "/bucket/after", MARKER)
    assert r.code == 200 and r.headers.getRawHeaders("x-amz-server-side-encryption") is None
    r = await server.request("GET", "/bucket", query="encryption=")
    assert r.code == 404
