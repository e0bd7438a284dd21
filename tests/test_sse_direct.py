"""Encrypted GETs over plain TCP open packages straight from the blob file into buffers the
response writes to its socket (encryption/direct.py, api/sendfile.py's BufferSender), and lose
nothing for it: ranges at any offset, byte metering, pipelining, tampering, vanished and stalled
clients, a blob cut short on disk.

In process, over real TCP (the direct path needs a socket).
"""

from __future__ import annotations

import gc
import os
import socket
import time
from collections.abc import Iterator

import pytest
import pytest_twisted
from twisted.internet import reactor, threads

import vaultaire.api.sendfile as sendfile_module
import vaultaire.encryption.direct as direct_module
from tests.logwatch import LogWatch, watching
from tests.s3helpers import Server
from tests.test_connections import FAST, blob_descriptors, port_of, stall_reading
from tests.test_sendfile import bytes_sent, pipelined_gets, read_head, vanish_mid_body
from tests.test_sse import KEY_A, SSE_S3, customer
from vaultaire.encryption.packages import PACKAGE, SEALED_PACKAGE

pytestmark = pytest.mark.timeout(120)

BATCH = direct_module.BATCH_PACKAGES * PACKAGE
SIZE = 2 * BATCH + 3 * PACKAGE + 12345  # three batches, the last one ending inside a package


@pytest_twisted.async_yield_fixture
async def server(tmp_path):
    s = Server(str(tmp_path), limits=FAST)
    await s.start("bucket")
    yield s
    await s.stop()


async def encrypted(server: Server, key: str, body: bytes) -> tuple[int, str]:
    """PUT ``body`` under ``key`` with SSE-S3: the server's port and a presigned GET's path."""
    assert (await server.request("PUT", f"/bucket/{key}", body, headers=SSE_S3)).code == 200
    port = port_of(server)
    return port, server.presign("GET", f"/bucket/{key}").split(str(port), 1)[1]


@pytest.fixture
def openings(monkeypatch: pytest.MonkeyPatch) -> list[direct_module.DirectOpening]:
    """Every DirectOpening started."""
    started: list[direct_module.DirectOpening] = []
    real = direct_module.DirectOpening.start

    def spy(self: direct_module.DirectOpening) -> object:
        started.append(self)
        return real(self)

    monkeypatch.setattr(direct_module.DirectOpening, "start", spy)
    return started


def senders_registered() -> int:
    return sum(isinstance(w, sendfile_module.SocketSender) for w in reactor.getWriters())


async def settled(server: Server) -> None:
    """Wait until no blob descriptor is open and no sender is registered any more."""
    deadline = time.monotonic() + 30
    while (blob_descriptors(server.data) or senders_registered()) and time.monotonic() < deadline:
        await threads.deferToThread(time.sleep, 0.05)
    assert blob_descriptors(server.data) == 0
    assert senders_registered() == 0


@pytest.fixture(autouse=True)
def log() -> Iterator[LogWatch]:
    """Nothing may log a traceback, an unhandled failure or a warning: a client's doing is none."""
    with watching() as watch:
        yield watch
        gc.collect()  # a Deferred failed and forgotten logs when it is collected
    # The one line allowed: a tampered blob is the operator's business.
    assert [line for line in watch.bad() if "failed its integrity check" not in line] == []


@pytest.mark.parametrize("mode", ["sse-s3", "sse-c"])
@pytest_twisted.ensureDeferred
async def test_a_large_encrypted_get_is_opened_from_the_file_whole_and_metered(
    server: Server, openings: list, mode: str
) -> None:
    headers = SSE_S3 if mode == "sse-s3" else customer(KEY_A)
    read = {} if mode == "sse-s3" else customer(KEY_A)
    body = os.urandom(SIZE)
    assert (await server.request("PUT", "/bucket/big", body, headers=headers)).code == 200
    response = await server.request("GET", "/bucket/big", headers=read)
    assert response.code == 200
    assert response.body == body
    assert len(openings) == 1 and openings[0].opened == SIZE and openings[0].written == SIZE
    assert bytes_sent(server) == SIZE
    await settled(server)


@pytest_twisted.ensureDeferred
async def test_ranges_at_any_offset_are_the_plaintext_slice(server: Server, openings: list) -> None:
    body = os.urandom(SIZE)
    assert (await server.request("PUT", "/bucket/big", body, headers=SSE_S3)).code == 200
    ranges = [
        (PACKAGE - 1, BATCH + PACKAGE),  # from a package's last byte across a batch
        (BATCH - 10, 2 * BATCH + 10),  # both ends near batch boundaries
        (100_001, SIZE - 1),  # to the end
        (2 * BATCH + 70_000, 2 * BATCH + 70_000 + PACKAGE * 2),  # inside the last batch
    ]
    for start, end in ranges:
        response = await server.request("GET", "/bucket/big", headers={"Range": f"bytes={start}-{end}"})
        assert response.code == 206
        assert response.body == body[start : end + 1], (start, end)
    # Only the packages a range touches are opened.
    first, last = ranges[0]
    assert openings[0].opened == (last // PACKAGE - first // PACKAGE + 1) * PACKAGE
    await settled(server)


@pytest_twisted.ensureDeferred
async def test_pipelined_encrypted_gets_arrive_whole_and_in_order(server: Server, openings: list) -> None:
    bodies = {key: os.urandom(SIZE - i * 100_000) for i, key in enumerate(("a", "b", "c"))}
    stored = [await encrypted(server, key, body) for key, body in bodies.items()]
    port, paths = stored[0][0], [path for _, path in stored]
    answers = await threads.deferToThread(pipelined_gets, port, paths)
    for (head, body), want in zip(answers, bodies.values(), strict=True):
        assert head.startswith(b"HTTP/1.1 200"), head
        assert body == want
    assert len(openings) == 3


@pytest_twisted.ensureDeferred
async def test_a_flipped_byte_past_the_first_batch_cuts_the_connection_after_the_good_bytes(
    server: Server, openings: list
) -> None:
    body = os.urandom(SIZE)
    assert (await server.request("PUT", "/bucket/big", body, headers=SSE_S3)).code == 200
    (path,) = server.blob_files()
    where = (BATCH // PACKAGE + 1) * SEALED_PACKAGE + 500  # inside the second batch's second package
    with open(path, "r+b") as f:
        f.seek(where)
        byte = f.read(1)
        f.seek(where)
        f.write(bytes([byte[0] ^ 1]))
    port = port_of(server)
    url = server.presign("GET", "/bucket/big").split(str(port), 1)[1]

    def fetch() -> tuple[bytes, bytes]:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            head, rest = read_head(s)
            s.settimeout(30)
            while chunk := s.recv(2**20):
                rest += chunk
            return head, rest

    head, got = await threads.deferToThread(fetch)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert len(got) < len(body) and body.startswith(got)  # cut short, never a wrong byte
    assert len(got) >= BATCH  # the first batch opened and went out
    assert openings[0].failure is not None
    await settled(server)


@pytest_twisted.ensureDeferred
async def test_a_blob_cut_short_on_disk_fails_the_read(server: Server, openings: list) -> None:
    body = os.urandom(SIZE)
    assert (await server.request("PUT", "/bucket/big", body, headers=SSE_S3)).code == 200
    (path,) = server.blob_files()
    os.truncate(path, BATCH + 1000)  # mid-way through the second batch
    try:
        response = await server.request("GET", "/bucket/big")
    except Exception:
        pass  # the connection was cut after the first batch
    else:
        assert response.code != 200 or (len(response.body) < len(body) and body.startswith(response.body))
    assert openings and openings[0].failure is not None
    await settled(server)
    again = await server.request("GET", "/bucket/big", headers={"Range": "bytes=0-9"})
    assert again.code == 206 and again.body == body[:10]


@pytest_twisted.ensureDeferred
async def test_a_client_that_vanishes_mid_body_leaves_nothing_open(server: Server, openings: list) -> None:
    body = os.urandom(16 * BATCH)  # far more than the socket buffers and the sender's queue hold
    port, path = await encrypted(server, "big", body)

    got = await threads.deferToThread(vanish_mid_body, port, path)
    assert got < len(body)
    await settled(server)
    assert openings[0].written < len(body)
    again = await server.request("GET", "/bucket/big", headers={"Range": "bytes=0-9"})
    assert again.code == 206 and again.body == body[:10]


@pytest_twisted.ensureDeferred
async def test_a_reader_that_stops_reading_is_dropped(server: Server, openings: list) -> None:
    body = os.urandom(8 * BATCH)
    port, path = await encrypted(server, "big", body)

    received = await threads.deferToThread(stall_reading, port, path)
    assert received < len(body)  # cut short, not waited for
    assert server.site.dropped["send"] == 1
    await settled(server)


@pytest_twisted.ensureDeferred
async def test_small_encrypted_bodies_and_heads_keep_the_ordinary_path(server: Server, openings: list) -> None:
    assert (await server.request("PUT", "/bucket/small", b"x" * 1000, headers=SSE_S3)).code == 200
    assert (await server.request("GET", "/bucket/small")).body == b"x" * 1000
    assert (await server.request("PUT", "/bucket/big", os.urandom(SIZE), headers=SSE_S3)).code == 200
    head = await server.request("HEAD", "/bucket/big")
    assert head.code == 200 and head.body == b""
    assert openings == []


def test_the_next_batch_is_opened_while_one_is_written(tmp_path) -> None:
    # The sender's first write of a buffer runs at once, in the reactor: a fill started only
    # after it waited for it, and reading, opening and sending took turns (a 1 GiB GET at 0.66
    # of a plain one). So each fill starts before the buffer filled before it is handed over.
    from twisted.internet.defer import Deferred, succeed

    from vaultaire.encryption.packages import Opener, Sealer

    key, prefix = os.urandom(32), os.urandom(4)
    body = os.urandom(SIZE)
    sealer = Sealer(key, prefix)
    stored = sealer.update(body) + sealer.finish()
    path = tmp_path / "blob"
    path.write_bytes(stored)
    events: list[str] = []

    def run(fill, offset, *args):  # the thread, here at once: only the order is watched
        events.append(f"fill {offset // (direct_module.BATCH_PACKAGES * SEALED_PACKAGE)}")
        return succeed(fill(offset, *args))

    class Sender:
        def __init__(self) -> None:
            self.done: Deferred[int] = Deferred()
            self.got = bytearray()

        def send(self, data) -> Deferred[int]:
            events.append(f"send {len(self.got) // BATCH}")
            self.got += data
            return succeed(len(data))

        def close(self) -> None:
            self.done.callback(len(self.got))

        def stop(self) -> None:
            pass

    sender = Sender()
    fd = os.open(path, os.O_RDONLY)
    try:
        opening = direct_module.DirectOpening(
            fd, 0, len(stored), Opener(key, prefix, SIZE), 0, SIZE, run, lambda: sender
        )
        finished: list[object] = []
        opening.start().addBoth(finished.append)
    finally:
        os.close(fd)
    assert finished == [len(stored)]
    assert bytes(sender.got) == body
    assert events == ["fill 0", "fill 1", "send 0", "fill 2", "send 1", "send 2"]
