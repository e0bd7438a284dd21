"""A real browser: a page on one origin uploads to Vaultaire on another, as web apps do.

Headless Chromium (Debian's ``chromium``, installed here with apt-get when missing and running
as root) is driven by playwright-core (npm, installed into a cache directory). A page served from
a small static server on 127.0.0.1 uploads with a presigned PUT and with POST Object (FormData,
then a plain HTML form), downloads both and compares them byte for byte, reads an S3 error, and
is refused where a container's CORS rules (or the server default) do not allow it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from daemon import Daemon
from npm import npm_modules

from tests.commands import apt_program

pytestmark = pytest.mark.timeout(900)  # a first run may apt-get install Chromium

JS_DIR = Path(__file__).parent / "browser_js"

# The server-wide default: GET from any loopback page, for containers without rules of their own.
DEFAULT_CORS = """
[[cors.rules]]
allowed_origins = ["http://127.0.0.1:*"]
allowed_methods = ["GET"]
expose_headers = ["ETag"]
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium; installed with apt-get when missing (the test fails if it cannot be)."""
    return apt_program("chromium", "chromium")


@pytest.fixture(scope="module")
def playwright() -> Path:
    return npm_modules(JS_DIR, "playwright-core", "browser")


class Pages:
    """A static server on 127.0.0.1: the test page at /index.html, a landing page anywhere else."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = files.get(self.path.split("?", 1)[0], b"<!doctype html><title>landed</title>landed")
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Pages:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def pages() -> Iterator[Pages]:
    with Pages() as p:
        yield p


def run_page(playwright: Path, chromium: str, url: str, profile: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update({"NODE_PATH": str(playwright), "HOME": str(profile.parent)})
    result = subprocess.run(
        ["node", str(JS_DIR / "run.js"), url, str(profile), chromium],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"the browser run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    out: dict[str, Any] = json.loads(result.stdout)
    assert "error" not in out, out["error"]
    return out


def etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def test_page_uploads_downloads_and_is_refused_across_origins(
    tmp_path: Path, chromium: str, playwright: Path, pages: Pages
) -> None:
    config = tmp_path / "vaultaire.toml"
    config.write_text(DEFAULT_CORS)
    with Daemon(tmp_path / "vaultaire", extra_args=["--config", str(config)]) as d:
        assert str(d.port) != pages.origin.rsplit(":", 1)[1]  # two origins: same host, other port
        s3 = d.boto3_client(signature_version="s3v4")
        for bucket in ("web", "closed", "inherits"):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_cors(
            Bucket="web",
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedOrigins": [pages.origin],
                        "AllowedMethods": ["GET", "PUT", "POST", "HEAD"],
                        "AllowedHeaders": ["*"],
                        "ExposeHeaders": ["ETag"],
                        "MaxAgeSeconds": 5,
                    }
                ]
            },
        )
        # Rules of its own, for another origin: they win over the default that would allow GET.
        s3.put_bucket_cors(
            Bucket="closed",
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedOrigins": ["http://elsewhere.example"],
                        "AllowedMethods": ["GET", "PUT"],
                        "AllowedHeaders": ["*"],
                    }
                ]
            },
        )
        a, b, c = os.urandom(300_001), os.urandom(200_003), os.urandom(50_021)
        s3.put_object(Bucket="closed", Key="a.bin", Body=a)
        s3.put_object(Bucket="inherits", Key="a.bin", Body=a)

        def presign(method: str, bucket: str, key: str) -> str:
            return str(s3.generate_presigned_url(method, Params={"Bucket": bucket, "Key": key}, ExpiresIn=600))

        landing = pages.origin + "/done"
        params = {
            "a": base64.b64encode(a).decode(),
            "b": base64.b64encode(b).decode(),
            "c": base64.b64encode(c).decode(),
            "putUrl": presign("put_object", "web", "a.bin"),
            "post": s3.generate_presigned_post("web", "b.bin", ExpiresIn=600),
            "form": s3.generate_presigned_post(
                "web",
                "c.bin",
                Fields={"success_action_redirect": landing},
                Conditions=[{"success_action_redirect": landing}],
                ExpiresIn=600,
            ),
            "getA": presign("get_object", "web", "a.bin"),
            "getB": presign("get_object", "web", "b.bin"),
            "getMissing": presign("get_object", "web", "missing.bin"),
            "closedPut": presign("put_object", "closed", "new.bin"),
            "closedGet": presign("get_object", "closed", "a.bin"),
            "inheritedGet": presign("get_object", "inherits", "a.bin"),
            "inheritedPut": presign("put_object", "inherits", "new.bin"),
        }
        html = (JS_DIR / "page.html").read_text().replace("__PARAMS__", json.dumps(params).replace("</", "<\\/"))
        pages.files["/index.html"] = html.encode()

        out = run_page(playwright, chromium, pages.origin + "/index.html", tmp_path / "profile")

        # (a) presigned PUT and (b) POST Object, their ETags readable through ExposeHeaders
        assert out["put"] == {"status": 200, "etag": etag(a)}, out
        assert out["post"] == {"status": 204, "etag": etag(b)}, out
        # (c) both downloaded and identical, and an S3 error readable by the page
        assert out["getA"] == {"status": 200, "same": True, "size": len(a)}
        assert out["getB"] == {"status": 200, "same": True, "size": len(b)}
        assert out["missing"]["status"] == 404 and "<Code>NoSuchKey</Code>" in out["missing"]["text"]
        # (d) refused where the rules do not allow this origin: fetch rejects with a TypeError
        assert out["closedPut"] == {"refused": "TypeError"}
        assert out["closedGet"] == {"refused": "TypeError"}
        # the server default: GET allowed, PUT not
        assert out["inheritedGet"] == {"status": 200, "same": True, "size": len(a)}
        assert out["inheritedPut"] == {"refused": "TypeError"}
        assert any("blocked by CORS policy" in line for line in out["console"]), out["console"]
        # the plain HTML form: uploaded, then redirected back to the page's origin
        assert out["formRedirect"].startswith(f"{landing}?bucket=web&key=c.bin&etag="), out["formRedirect"]

        # What the server holds agrees, and refused preflights sent nothing.
        for key, data in (("a.bin", a), ("b.bin", b), ("c.bin", c)):
            assert s3.get_object(Bucket="web", Key=key)["Body"].read() == data, key
        for bucket in ("closed", "inherits"):
            assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a.bin"]
        events = d.events()
        preflights = {(e["container"], e["status"]) for e in events if e["operation"] == "CorsPreflight"}
        assert {("web", 200), ("closed", 403), ("inherits", 403)} <= preflights, preflights
        writes = [(e["container"], e["key"]) for e in events if e["operation"] in ("PutObject", "PostObject")]
        assert ("closed", "new.bin") not in writes and ("inherits", "new.bin") not in writes
