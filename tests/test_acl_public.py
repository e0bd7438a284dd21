"""Acceptance: a public-read object of a real `twistd vaultaire`, fetched by anonymous curl and shown
by a browser page as an image, while a private one beside it is refused to both."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from daemon import Daemon
from test_browser import JS_DIR, Pages, chromium, pages, playwright  # noqa: F401 (fixtures)

from tests.commands import curl, run

pytestmark = pytest.mark.timeout(900)  # a first run may apt-get install Chromium and curl


def png(width: int, height: int) -> bytes:
    """A real PNG of one colour, so the browser decodes it and reports its size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x20\x80\xc0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def public_site(d: Daemon) -> tuple[bytes, str]:
    """Bucket "site" as a web site's assets are kept: ACLs enabled, public ACLs allowed."""
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="site", ObjectOwnership="ObjectWriter")
    s3.delete_public_access_block(Bucket="site")
    image = png(7, 5)
    s3.put_object(Bucket="site", Key="img/logo.png", Body=image, ContentType="image/png", ACL="public-read")
    s3.put_object(Bucket="site", Key="img/private.png", Body=image, ContentType="image/png")
    return image, d.endpoint_url + "/site/img/"


def test_anonymous_curl_of_a_public_object(tmp_path: Path) -> None:
    with Daemon(tmp_path / "vaultaire") as d:
        image, base = public_site(d)
        out = tmp_path / "logo.png"
        got = run([curl(), "-sS", "-o", str(out), "-w", "%{http_code} %{content_type}", base + "logo.png"])
        assert got.stdout == "200 image/png"
        assert out.read_bytes() == image
        got = run([curl(), "-sS", "-I", "-o", "/dev/null", "-w", "%{http_code}", base + "logo.png"])
        assert got.stdout == "200"
        got = run([curl(), "-sS", "-w", "\n%{http_code}", base + "private.png"])
        body, _, status = got.stdout.rpartition("\n")
        assert status == "403" and "<Code>AccessDenied</Code>" in body
        got = run(
            [curl(), "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data", "x", base + "logo.png"]
        )
        assert got.stdout == "403"
        # The denial is an event with its reason; the client saw only AccessDenied. The event log
        # is written behind the requests: polled, with a deadline a loaded machine meets.
        deadline = time.monotonic() + 60
        while True:
            denied = [e for e in d.events() if e.get("key") == "img/private.png" and e.get("status") == 403]
            if denied or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert denied and denied[0].get("denied"), denied


def test_browser_page_shows_a_public_image(
    tmp_path: Path,
    chromium: str,  # noqa: F811
    playwright: Path,  # noqa: F811
    pages: Pages,  # noqa: F811
) -> None:
    with Daemon(tmp_path / "vaultaire") as d:
        _image, base = public_site(d)
        page = f"""<!doctype html><meta charset="utf-8"><title>public image</title>
<script>
function load(src) {{
  return new Promise((done) => {{
    const img = new Image();
    img.onload = () => done({{loaded: true, width: img.naturalWidth, height: img.naturalHeight}});
    img.onerror = () => done({{loaded: false}});
    img.src = src;
    document.body.appendChild(img);
  }});
}}
window.onload = async () => {{
  window.__result = {{public: await load({json.dumps(base + "logo.png")}),
                      private: await load({json.dumps(base + "private.png")})}};
}};
</script><body></body>"""
        pages.files["/index.html"] = page.encode()
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env.update({"NODE_PATH": str(playwright), "HOME": str(tmp_path)})
        result = subprocess.run(
            ["node", str(JS_DIR / "result.js"), pages.origin + "/index.html", str(tmp_path / "profile"), chromium],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert result.returncode == 0, f"the browser run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        out: dict[str, Any] = json.loads(result.stdout)
        assert out["public"] == {"loaded": True, "width": 7, "height": 5}, out
        assert out["private"] == {"loaded": False}, out
