"""The AWS JS SDK v3 presigner, as browsers' upload pages use it: the x-amz-* headers it hoists
into the URL (tags, metadata, an ACL) count as headers, the empty body's CRC32 it adds by default
is ignored as S3 ignores it, and an SSE header it keeps signed is refused when it asks for what is
not given. The URLs are made by the real presigner (npm), then used as a browser would."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq

from tests.npm import npm_modules
from tests.s3helpers import ACCESS, SECRET, Server, error_code, xml_values

JS_DIR = Path(__file__).parent / "presign_js"


@pytest.fixture(scope="module")
def js_modules() -> Path:
    """``@aws-sdk/s3-request-presigner`` installed (once, then reused) into a cache directory."""
    return npm_modules(JS_DIR, "@aws-sdk/s3-request-presigner", "aws-sdk-presigner")


def presigned(server: Server, js_modules: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"NODE_PATH": str(js_modules), "AWS_EC2_METADATA_DISABLED": "true"})
    # Signing is offline: the server is not asked while node runs.
    result = subprocess.run(
        ["node", str(JS_DIR / "presign.js"), server.url, ACCESS, SECRET, "bucket"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


async def put(url: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    r = await treq.put(url, data=body, headers={k: [v] for k, v in (headers or {}).items()}, persistent=False)
    r.body = await r.content()
    return r


@pytest_twisted.ensureDeferred
async def test_js_sdk_v3_presigned_puts(server: Server, js_modules: Path) -> None:
    urls = presigned(server, js_modules)
    assert "x-amz-tagging=" in urls["tagged"] and "x-amz-checksum-crc32=" in urls["tagged"]

    r = await put(urls["tagged"], b"a body whose CRC32 is not the empty body's")
    assert r.code == 200, r.body
    tags = await server.request("GET", "/bucket/tagged", query="tagging=")
    assert (xml_values(tags.body, "Key"), xml_values(tags.body, "Value")) == (["team"], ["blue"])
    head = await server.request("HEAD", "/bucket/tagged")
    assert head.headers.getRawHeaders("x-amz-meta-colour") == ["red"]

    # The bucket takes no ACLs (BucketOwnerEnforced, the default): refused, nothing stored.
    r = await put(urls["acl"], b"data")
    assert (r.code, error_code(r)) == (400, "AccessControlListNotSupported"), r.body
    assert (await server.request("HEAD", "/bucket/acl")).code == 404

    r = await put(urls["dsse"], b"data", {"x-amz-server-side-encryption": "aws:kms:dsse"})
    assert (r.code, error_code(r)) == (501, "NotImplemented"), r.body
    assert (await server.request("HEAD", "/bucket/dsse")).code == 404
