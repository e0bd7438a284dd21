"""GET bodies of plain local blobs are sent by the kernel (os.sendfile), and lose nothing for it:
ranges, byte metering, keep-alive and pipelined requests, clients that vanish mid-body.

In process, over real TCP (the sendfile path needs a socket; api/sendfile.py). The slow-reader
deadline over this path is tests/test_connections.py's reader-that-stops-reading test.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, threads
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure

import vaultaire.api.sendfile as sendfile_module
from tests.s3helpers import Server
from tests.test_connections import blob_descriptors, port_of

pytestmark = pytest.mark.timeout(120)

SIZE = 3 * 2**20 + 12345  # past the local driver's inline-read size, not a whole number of MiB


@pytest_twisted.async_yield_fixture
async def server(tmp_path):
    s = Server(str(tmp_path))
    await s.start("bucket")
    yield s
    await s.stop()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The byte counts os.sendfile moved, call by call."""
    calls: list[int] = []
    real = os.sendfile

    def spy(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        n = real(out_fd, in_fd, offset, count)
        calls.append(n)
        return n

    monkeypatch.setattr(sendfile_module.os, "sendfile", spy)
    return calls


def bytes_sent(server: Server, operation: str = "GetObject") -> float:
    return server.metrics.registry.get_sample_value("vaultaire_bytes_sent_total", {"operation": operation}) or 0.0


def senders_registered() -> int:
    return sum(isinstance(w, sendfile_module.FileSender) for w in reactor.getWriters())


@pytest_twisted.ensureDeferred
async def test_a_large_get_is_sent_by_the_kernel_whole_and_metered(server: Server, sent: list[int]) -> None:
    body = os.urandom(SIZE)
    assert (await server.request("PUT", "/bucket/big", body)).code == 200
    response = await server.request("GET", "/bucket/big")
    assert response.code == 200
    assert response.body == body
    assert sum(sent) == SIZE  # every byte by the kernel, none through Python
    assert bytes_sent(server) == SIZE
    assert senders_registered() == 0
    assert blob_descriptors(server.data) == 0


@pytest_twisted.ensureDeferred
async def test_a_range_is_sent_by_the_kernel_from_its_offset(server: Server, sent: list[int]) -> None:
    body = os.urandom(SIZE)
    assert (await server.request("PUT", "/bucket/big", body)).code == 200
    start, end = 1_000_001, 3_000_000
    response = await server.request("GET", "/bucket/big", headers={"Range": f"bytes={start}-{end}"})
    assert response.code == 206
    assert response.body == body[start : end + 1]
    assert sum(sent) == end - start + 1
    assert bytes_sent(server) == end - start + 1


@pytest_twisted.ensureDeferred
async def test_a_multipart_object_is_sent_part_by_part(server: Server, sent: list[int]) -> None:
    server.engine.min_part_size = 0
    created = await server.request("POST", "/bucket/mp", query="uploads=")
    upload = created.body.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
    parts = [os.urandom(2**20 + 7), os.urandom(2**20 + 9)]
    etags = []
    for number, part in enumerate(parts, 1):
        r = await server.request("PUT", "/bucket/mp", part, query=f"partNumber={number}&uploadId={upload}")
        assert r.code == 200
        etags.append(r.headers.getRawHeaders("etag")[0])
    manifest = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in enumerate(etags, 1))
    done = await server.request(
        "POST",
        "/bucket/mp",
        f"<CompleteMultipartUpload>{manifest}</CompleteMultipartUpload>".encode(),
        query=f"uploadId={upload}",
    )
    assert done.code == 200, done.body
    response = await server.request("GET", "/bucket/mp")
    assert response.body == b"".join(parts)
    assert sum(sent) == sum(len(p) for p in parts)


def read_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(min(n - len(out), 2**20))
        assert chunk, f"closed after {len(out)} of {n} bytes"
        out += chunk
    return out


def read_head(s: socket.socket, pending: bytes = b"") -> tuple[bytes, bytes]:
    """(the response head, what followed it)."""
    data = pending
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise AssertionError(head)


def pipelined_gets(port: int, paths: list[str]) -> list[tuple[bytes, bytes]]:
    """GETs of ``paths`` sent at once on one connection: (head, body) of each answer, in order."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(30)
        # all at once: each response must wait for the one before it
        s.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode() for p in paths))
        out, pending = [], b""
        for _ in paths:
            head, pending = read_head(s, pending)
            length = content_length(head)
            body = pending[:length] + read_exactly(s, max(0, length - len(pending)))
            pending = pending[length:]
            out.append((head, body))
        return out


def vanish_mid_body(port: int, path: str) -> int:
    """GET ``path``, read 100 kB of the body, then reset the connection: the bytes read."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    s.connect(("127.0.0.1", port))
    s.settimeout(30)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    head, rest = read_head(s)
    assert head.startswith(b"HTTP/1.1 200"), head
    got = len(rest) + len(read_exactly(s, 100_000))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset, not a FIN
    s.close()
    return got


@pytest_twisted.ensureDeferred
async def test_pipelined_gets_on_one_connection_arrive_whole_and_in_order(server: Server, sent: list[int]) -> None:
    bodies = {key: os.urandom(SIZE - i * 100_000) for i, key in enumerate(("a", "b", "c"))}
    for key, body in bodies.items():
        assert (await server.request("PUT", f"/bucket/{key}", body)).code == 200
    port = port_of(server)
    paths = [server.presign("GET", f"/bucket/{key}").split(str(port), 1)[1] for key in bodies]

    answers = await threads.deferToThread(pipelined_gets, port, paths)
    for (head, body), want in zip(answers, bodies.values(), strict=True):
        assert head.startswith(b"HTTP/1.1 200"), head
        assert body == want
    assert sum(sent) == sum(len(b) for b in bodies.values())


@pytest_twisted.ensureDeferred
async def test_a_client_that_vanishes_mid_body_leaves_nothing_open(server: Server, sent: list[int]) -> None:
    body = os.urandom(16 * 2**20)
    assert (await server.request("PUT", "/bucket/big", body)).code == 200
    port = port_of(server)
    path = server.presign("GET", "/bucket/big").split(str(port), 1)[1]

    got = await threads.deferToThread(vanish_mid_body, port, path)
    assert got < len(body)
    deadline = time.monotonic() + 30
    while (blob_descriptors(server.data) or senders_registered()) and time.monotonic() < deadline:
        await threads.deferToThread(time.sleep, 0.05)
    assert blob_descriptors(server.data) == 0
    assert senders_registered() == 0
    # the server goes on serving
    again = await server.request("GET", "/bucket/big", headers={"Range": "bytes=0-9"})
    assert again.code == 206 and again.body == body[:10]
    assert sum(sent) < len(body) + 10


@pytest_twisted.ensureDeferred
async def test_small_bodies_and_head_requests_keep_the_ordinary_path(server: Server, sent: list[int]) -> None:
    assert (await server.request("PUT", "/bucket/small", b"x" * 1000)).code == 200
    assert (await server.request("GET", "/bucket/small")).body == b"x" * 1000
    assert (await server.request("PUT", "/bucket/big", os.urandom(SIZE))).code == 200
    head: Any = await server.request("HEAD", "/bucket/big")
    assert head.code == 200 and head.body == b""
    assert head.headers.getRawHeaders("content-length") == [str(SIZE)]
    assert sent == []


class FakeTransport:
    """What a sender needs of a TCP transport: a socket, an empty buffer, and an abort."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.connected = True
        self.disconnected = False
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0
        self.aborted = 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def abortConnection(self) -> None:
        self.aborted += 1


def test_a_sender_dropped_by_the_reactor_tears_the_connection_down_and_waits_for_the_request() -> None:
    # The sender's own descriptor may see the client's reset before the transport does. Ending
    # ``done`` then would fail the request before it knows its client is gone (logged as an
    # internal error); the connection is torn down instead, and the request's loss stops the sender.
    ours, theirs = socket.socketpair()
    with ours, theirs:
        transport = FakeTransport(ours)
        sender = sendfile_module.BufferSender(reactor, transport, on_sent=lambda n: None)
        sender.start()
        sender.connectionLost(Failure(ConnectionLost("reset by peer")))
        assert transport.aborted == 1
        assert not sender.done.called
        sender.stop()  # what the request's loss does
        failures: list[Failure] = []
        sender.done.addErrback(failures.append)
        assert failures and failures[0].check(sendfile_module.ClientGone)


def keep_alive_gets(port: int, path: str, times: int) -> list[bytes]:
    """GETs of ``path`` one after another on one connection, each sent once the last answer is whole."""
    bodies = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(30)
        pending = b""
        for _ in range(times):
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            head, pending = read_head(s, pending)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = content_length(head)
            bodies.append(pending[:length] + read_exactly(s, max(0, length - len(pending))))
            pending = pending[length:]
    return bodies


@pytest_twisted.ensureDeferred
async def test_a_body_leaves_corked_and_its_last_bytes_at_once(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # Corked (nginx's tcp_nopush), only full segments leave: a 1 GiB GET went from 2.0 to
    # 2.8 GB/s. Uncorked at the end, or the last partial segment of every answer would wait
    # the kernel's 200 ms, and a client waiting for it with it.
    corked: list[int] = []
    real = os.sendfile

    def spy(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        s = socket.socket(fileno=out_fd)
        try:
            corked.append(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK))
        finally:
            s.detach()
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(sendfile_module.os, "sendfile", spy)
    body = os.urandom(SIZE)
    assert (await server.request("PUT", "/bucket/big", body)).code == 200
    port = port_of(server)
    path = server.presign("GET", "/bucket/big").split(str(port), 1)[1]
    started = time.monotonic()
    bodies = await threads.deferToThread(keep_alive_gets, port, path, 5)
    elapsed = time.monotonic() - started
    assert bodies == [body] * 5
    assert corked and all(corked)
    assert elapsed < 0.8, f"5 GETs took {elapsed:.2f} s: a tail waited for the kernel's cork timer"
