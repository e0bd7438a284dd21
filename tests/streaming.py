"""A gibibyte through a real daemon: a cheap source file, streamed PUT and GET, and an RSS sampler."""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import urllib.parse
from pathlib import Path

from daemon import read_status

SIZE = 2**30
BLOCK = 2**20


def write_source(path: Path) -> str:
    """1 GiB of incompressible-looking bytes, cheaply: one random MiB with a counter stamped in."""
    block = bytearray(os.urandom(BLOCK))
    md5 = hashlib.md5()
    with open(path, "wb") as f:
        for i in range(SIZE // BLOCK):
            block[:8] = i.to_bytes(8, "big")
            block[BLOCK // 2 : BLOCK // 2 + 8] = (i * 2654435761).to_bytes(8, "big")
            md5.update(block)
            f.write(block)
    return md5.hexdigest()


class RssSampler(threading.Thread):
    """Samples a process' VmRSS every ``interval`` seconds and keeps the peak (KiB)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                rss = read_status(self.pid)["VmRSS"]
            except (OSError, KeyError):
                return
            self.peak_kib = max(self.peak_kib, rss)
            self.samples += 1
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=120), f"{parts.path}?{parts.query}"


def streamed_put(url: str, path: Path) -> tuple[int, dict[str, str], bytes]:
    conn, target = connection(url)
    try:
        conn.putrequest("PUT", target)
        conn.putheader("Content-Length", str(path.stat().st_size))
        conn.putheader("Content-Type", "application/octet-stream")
        conn.endheaders()
        with open(path, "rb") as f:
            try:
                while chunk := f.read(BLOCK):
                    conn.send(chunk)
            except (BrokenPipeError, ConnectionResetError) as e:
                # The server answered before the body ended and closed: say what it answered.
                raise AssertionError(f"the server cut the upload: {early_answer(conn)}") from e
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def early_answer(conn: http.client.HTTPConnection) -> str:
    """The status and body a server sent before closing an upload, or why none can be read."""
    try:
        response = conn.getresponse()
        return f"{response.status} {response.read(4096)!r}"
    except (OSError, http.client.HTTPException) as e:
        return f"no answer readable ({type(e).__name__}: {e})"


def streamed_get(url: str) -> tuple[int, int, str]:
    conn, target = connection(url)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        md5 = hashlib.md5()
        total = 0
        while chunk := response.read(BLOCK):
            md5.update(chunk)
            total += len(chunk)
        return response.status, total, md5.hexdigest()
    finally:
        conn.close()
