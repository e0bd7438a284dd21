"""A GET that has started finishes with the bytes it began, whatever happens to the key.

A multipart object is read slowly (the client stops reading after its first
bytes) while it is overwritten or deleted, and the garbage sweep runs; then
the client reads on and must get every original byte. Its blobs are freed by
the sweep only once the grace period is over. On the local driver and on the
s3 driver (SeaweedFS upstream).
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import urllib.parse
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.threads import deferToThread

from tests.s3helpers import ACCESS, Chunks, Server, later
from vaultaire.model import RequestContext

MIB = 2**20
PART = 5 * MIB


@pytest_twisted.async_yield_fixture
async def server(tmp_path: Any, upstream: str | None) -> Any:
    s = Server(str(tmp_path), upstream=upstream, free_grace=3600)
    await s.start("bucket")
    yield s
    await s.stop()


async def multipart_object(server: Server, key: str, bodies: list[bytes]) -> None:
    found = await server.catalog.credential(ACCESS)
    assert found is not None
    ctx = RequestContext("setup", found[1])
    engine = server.engine
    container = await engine.container(ctx, "bucket")
    upload = await engine.create_upload(ctx, container, key, content_type="application/octet-stream")
    chosen = []
    for number, body in enumerate(bodies, 1):
        part = await engine.put_part(ctx, container, upload.id, number, Chunks(body), declared_size=len(body))
        chosen.append((number, part.md5))
    await engine.complete_upload(ctx, container, upload.id, chosen)


class SlowReader:
    """A GET in a thread: reads the head and a little body, waits for ``go``, reads the rest."""

    def __init__(self, url: str) -> None:
        self.url = urllib.parse.urlsplit(url)
        self.started = threading.Event()
        self.go = threading.Event()
        self.status = 0
        self.length = -1
        self.body = b""

    def run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # the server is held back early
        sock.settimeout(60)
        sock.connect((self.url.hostname, self.url.port))
        try:
            sock.sendall(f"GET {self.url.path}?{self.url.query} HTTP/1.1\r\nHost: {self.url.netloc}\r\n\r\n".encode())
            got = b""
            while b"\r\n\r\n" not in got or len(got) < 64 * 1024:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
            head, _, body = got.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            self.length = int(headers.get("content-length", "-1"))
            self.started.set()
            assert self.go.wait(60)
            while len(body) < self.length:
                chunk = sock.recv(1024 * 1024)
                if not chunk:
                    break  # the server closed: the body is short
                body += chunk
            self.body = body
        finally:
            self.started.set()
            sock.close()


@pytest.mark.parametrize("change", ["overwrite", "delete"])
@pytest_twisted.ensureDeferred
async def test_a_get_in_progress_gets_every_original_byte(server: Server, change: str) -> None:
    bodies = [os.urandom(PART), os.urandom(PART), os.urandom(PART), os.urandom(1000)]
    await multipart_object(server, "big", bodies)
    whole = b"".join(bodies)
    reader = SlowReader(server.presign("GET", "/bucket/big"))
    done = deferToThread(reader.run)
    while not reader.started.is_set():
        await later(0.02)
    assert (reader.status, reader.length) == (200, len(whole))

    if change == "overwrite":
        r = await server.request("PUT", "/bucket/big", b"something else")
        assert r.code == 200
    else:
        r = await server.request("DELETE", "/bucket/big")
        assert r.code == 204
    await server.engine.collect_garbage()  # the periodic sweep, within the grace period
    reactor.callFromThread(reader.go.set)
    await done
    assert len(reader.body) == len(whole)
    assert hashlib.md5(reader.body).hexdigest() == hashlib.md5(whole).hexdigest()

    # After the grace period the sweep frees the old parts.
    server.engine.free_grace = 0
    await server.engine.collect_garbage()
    assert await server.catalog.garbage(10) == []
    assert len(server.blob_files()) == (1 if change == "overwrite" else 0)
