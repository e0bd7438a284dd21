"""Connections: request framing, slow and stuck clients, the connection cap (in process).

Each slow-client test runs a server with deadlines of about a second, and
checks both sides: the bad connection is dropped within its deadline (plus a
generous margin for a loaded machine), and not before it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.s3helpers import Server, raw_exchange, signed_head
from vaultaire.api.deadlines import ConnectionLimits
from vaultaire.api.errors import S3Error, from_domain
from vaultaire.config import ConfigError, build, load_file
from vaultaire.errors import DriverError
from vaultaire.reuseport import listen_backlog, parse_listen, with_backlog

pytestmark = pytest.mark.timeout(120)

# Short deadlines, so each test takes seconds; MARGIN absorbs a loaded machine.
FAST = ConnectionLimits(
    header_timeout=1.0, body_timeout=1.0, min_body_rate=1000, send_timeout=1.0, idle_timeout=30.0, max_connections=50
)
MARGIN = 10.0


@pytest_twisted.async_yield_fixture
async def server(tmp_path):
    s = Server(str(tmp_path), limits=FAST)
    s.engine.min_part_size = 0
    await s.start("bucket")
    yield s
    await s.stop()


def port_of(server: Server) -> int:
    return int(server.port.getHost().port)


def chunked(body: bytes, size: int) -> bytes:
    """``body`` in HTTP/1.1 chunked framing, ``size`` bytes a chunk."""
    out = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(out) + b"0\r\n\r\n"


def read_response(s: socket.socket, deadline: float = 20.0) -> bytes:
    """Everything the server sends until it closes (or the deadline)."""
    s.settimeout(deadline)
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return got


def wait_closed(s: socket.socket, deadline: float) -> float:
    """Seconds until the server closes ``s`` (EOF or reset); fails after ``deadline``."""
    started = time.monotonic()
    s.settimeout(0.2)
    while time.monotonic() - started < deadline:
        try:
            if not s.recv(65536):
                return time.monotonic() - started
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
    raise AssertionError(f"the server kept the connection open for {deadline}s")


# -- framing


@pytest.mark.parametrize("method", ["PUT", "POST"])
@pytest_twisted.ensureDeferred
async def test_a_body_without_length_is_411_and_never_read_as_the_next_request(server, method):
    smuggled = b"DELETE /bucket/kept HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    assert (await server.request("PUT", "/bucket/kept", b"keep me")).code == 200
    head = signed_head(server, method, "/bucket/k", None, {})

    def exchange() -> bytes:
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as s:
            s.sendall(head + smuggled)
            return read_response(s)

    got = await threads.deferToThread(exchange)
    assert got.startswith(b"HTTP/1.1 411"), got
    assert b"<Code>MissingContentLength</Code>" in got and b"Connection: close" in got
    assert got.count(b"HTTP/1.1 ") == 1  # the "body" was not served as a request
    assert (await server.request("HEAD", "/bucket/k")).code == 404
    assert (await server.request("GET", "/bucket/kept")).body == b"keep me"


@pytest_twisted.ensureDeferred
async def test_a_plain_chunked_put_is_streamed_and_stored(server):
    body = os.urandom(3 * 2**20 + 11)
    head = signed_head(server, "PUT", "/bucket/chunked", None, {"transfer-encoding": "chunked"})
    got = await threads.deferToThread(raw_exchange, port_of(server), head, [chunked(body, 65536)], False)
    assert got.startswith(b"HTTP/1.1 200"), got
    assert f'ETag: "{hashlib.md5(body).hexdigest()}"'.encode() in got
    r = await server.request("GET", "/bucket/chunked")
    assert r.body == body


@pytest_twisted.ensureDeferred
async def test_a_plain_chunked_upload_part_is_stored(server):
    r = await server.request("POST", "/bucket/mp", query="uploads")
    upload_id = r.body.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
    body = os.urandom(300_000)
    head = signed_head(
        server, "PUT", f"/bucket/mp?partNumber=1&uploadId={upload_id}", None, {"transfer-encoding": "chunked"}
    )
    got = await threads.deferToThread(raw_exchange, port_of(server), head, [chunked(body, 10_000)], False)
    assert got.startswith(b"HTTP/1.1 200"), got
    etag = hashlib.md5(body).hexdigest()
    part = f'<Part><PartNumber>1</PartNumber><ETag>"{etag}"</ETag></Part>'
    complete = f"<CompleteMultipartUpload>{part}</CompleteMultipartUpload>"
    r = await server.request("POST", "/bucket/mp", complete.encode(), query=f"uploadId={upload_id}")
    assert r.code == 200, r.body
    assert (await server.request("GET", "/bucket/mp")).body == body


@pytest_twisted.ensureDeferred
async def test_a_plain_chunked_put_is_held_to_the_quota_as_it_streams(server):
    await server.catalog.set_quota("default", 100_000, None)
    head = signed_head(server, "PUT", "/bucket/over", None, {"transfer-encoding": "chunked"})
    got = await threads.deferToThread(raw_exchange, port_of(server), head, [chunked(os.urandom(2**20), 65536)], False)
    assert got.startswith(b"HTTP/1.1 403") and b"<Code>QuotaExceeded</Code>" in got, got
    assert (await server.request("HEAD", "/bucket/over")).code == 404


# -- slow and stuck clients


@pytest_twisted.ensureDeferred
async def test_a_request_head_sent_one_byte_at_a_time_is_dropped_at_its_deadline(server):
    head = signed_head(server, "GET", "/bucket/none", None, {})

    def dribble() -> float:
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as s:
            started = time.monotonic()
            for byte in head[:-2]:  # never the final blank line
                try:
                    s.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - started
                s.settimeout(0.1)
                try:
                    if not s.recv(1):
                        return time.monotonic() - started
                except TimeoutError:
                    pass
                except ConnectionResetError:
                    return time.monotonic() - started
                if time.monotonic() - started > MARGIN:
                    break
            raise AssertionError("the dribbling client was never dropped")

    took = await threads.deferToThread(dribble)
    assert FAST.header_timeout * 0.9 <= took <= FAST.header_timeout + MARGIN
    assert server.site.dropped["head"] == 1


@pytest_twisted.ensureDeferred
async def test_a_connection_that_sends_nothing_is_dropped_at_the_head_deadline(server):
    def idle() -> float:
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as s:
            return wait_closed(s, FAST.header_timeout + MARGIN)

    took = await threads.deferToThread(idle)
    assert took >= FAST.header_timeout * 0.9


@pytest_twisted.ensureDeferred
async def test_a_crawling_upload_gets_request_timeout_and_is_not_stored(server):
    head = signed_head(server, "PUT", "/bucket/crawl", 100_000, {})

    def crawl() -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as s:
            s.sendall(head)
            started = time.monotonic()
            s.settimeout(0.2)
            got = b""
            while time.monotonic() - started < FAST.body_timeout * 3 + MARGIN:
                try:
                    s.sendall(b"x" * 10)  # 50 bytes a second, under the 1000 required
                except (BrokenPipeError, ConnectionResetError):
                    break
                try:
                    chunk = s.recv(65536)
                except TimeoutError:
                    continue
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                got += chunk
            return got, time.monotonic() - started

    got, took = await threads.deferToThread(crawl)
    assert got.startswith(b"HTTP/1.1 400") and b"<Code>RequestTimeout</Code>" in got, got
    assert b"Connection: close" in got
    assert took >= FAST.body_timeout * 0.9
    assert (await server.request("HEAD", "/bucket/crawl")).code == 404
    assert server.site.dropped["body"] == 1


@pytest_twisted.ensureDeferred
async def test_an_upload_at_a_fair_rate_is_not_dropped(server):
    body = os.urandom(40_000)
    head = signed_head(server, "PUT", "/bucket/steady", len(body), {})

    def steady() -> bytes:
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as s:
            s.sendall(head)
            for i in range(0, len(body), 4000):  # 4000 bytes every 0.25 s: 16 KB/s, over 2.5 s
                s.sendall(body[i : i + 4000])
                time.sleep(0.25)
            s.settimeout(10)
            return s.recv(65536)

    got = await threads.deferToThread(steady)
    assert got.startswith(b"HTTP/1.1 200"), got
    assert (await server.request("GET", "/bucket/steady")).body == body


def blob_descriptors(data: str) -> int:
    """How many of this process' descriptors are open on blob files."""
    blobs = os.path.join(data, "blobs")
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(blobs):
                count += 1
        except OSError:
            continue
    return count


def stall_reading(port: int, path: str) -> int:
    """GET ``path`` with a tiny receive buffer, read the first bytes, then nothing for longer than
    FAST's send deadline; then read what still comes: all the bytes received."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    with s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        first = s.recv(1024)
        assert first.startswith(b"HTTP/1.1 200"), first
        time.sleep(FAST.send_timeout + 2)  # read nothing more
        s.settimeout(20)
        received = len(first)
        try:
            while chunk := s.recv(2**20):
                received += len(chunk)
        except ConnectionResetError:
            pass
        return received


@pytest_twisted.ensureDeferred
async def test_a_reader_that_stops_reading_is_dropped_and_its_blob_closed(server):
    body = os.urandom(16 * 2**20)
    assert (await server.request("PUT", "/bucket/big", body)).code == 200
    url = server.presign("GET", "/bucket/big")
    path = url.split(str(port_of(server)), 1)[1]

    received = await threads.deferToThread(stall_reading, port_of(server), path)
    assert received < len(body)  # cut short, not waited for
    assert server.site.dropped["send"] == 1
    for _ in range(100):
        if blob_descriptors(server.data) == 0:
            break
        await threads.deferToThread(time.sleep, 0.1)
    assert blob_descriptors(server.data) == 0


@pytest_twisted.async_yield_fixture
async def capped(tmp_path):
    limits = ConnectionLimits(header_timeout=60.0, max_connections=3)
    s = Server(str(tmp_path), limits=limits)
    await s.start("bucket")
    yield s
    await s.stop()


def connections(port: int, n: int) -> Iterator[socket.socket]:
    for _ in range(n):
        yield socket.create_connection(("127.0.0.1", port), timeout=10)


@pytest_twisted.ensureDeferred
async def test_one_connection_too_many_is_answered_slow_down(capped):
    port = port_of(capped)

    def over() -> tuple[bytes, bytes]:
        held = list(connections(port, 3))
        try:
            time.sleep(0.3)  # let the server accept them
            with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
                extra.sendall(b"GET /_vaultaire/health HTTP/1.1\r\nHost: x\r\n\r\n")
                refused = read_response(extra)
        finally:
            held.pop().close()
        time.sleep(0.3)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as again:
                again.sendall(b"GET /_vaultaire/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                served = read_response(again)
        finally:
            for s in held:
                s.close()
        return refused, served

    refused, served = await threads.deferToThread(over)
    assert refused.startswith(b"HTTP/1.1 503") and b"<Code>SlowDown</Code>" in refused, refused
    assert served.startswith(b"HTTP/1.1 200"), served
    assert capped.site.dropped["refused"] == 1


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.EMFILE, "Too many open files"),
        OSError(errno.ENFILE, "Too many open files in system"),
        sqlite3.OperationalError("unable to open database file"),
        DriverError("local disk write failed: Too many open files"),
    ],
)
def test_running_out_of_descriptors_is_slow_down(error: BaseException) -> None:
    mapped = from_domain(error, "bucket", "key")
    assert mapped is not None and mapped.code == "SlowDown" and mapped.status == 503
    try:
        raise RuntimeError("wrapped") from error
    except RuntimeError as wrapped:
        assert (from_domain(wrapped, "bucket", "key") or S3Error("InternalError")).code == "SlowDown"


@pytest_twisted.async_yield_fixture
async def idle_server(tmp_path):
    s = Server(str(tmp_path), limits=ConnectionLimits(idle_timeout=1.0))
    await s.start("bucket")
    yield s
    await s.stop()


@pytest_twisted.ensureDeferred
async def test_a_kept_alive_connection_idle_past_idle_timeout_is_closed(idle_server):
    def keep_alive() -> float:
        with socket.create_connection(("127.0.0.1", port_of(idle_server)), timeout=10) as s:
            s.sendall(b"GET /_vaultaire/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            return wait_closed(s, 1.0 + MARGIN)

    took = await threads.deferToThread(keep_alive)
    assert took >= 0.9


# -- settings


def test_backlog_defaults_to_1024_capped_by_somaxconn(tmp_path):
    somaxconn = tmp_path / "somaxconn"
    somaxconn.write_text("4096\n")
    assert listen_backlog(0, str(somaxconn)) == 1024
    assert listen_backlog(2000, str(somaxconn)) == 2000
    somaxconn.write_text("128\n")
    assert listen_backlog(0, str(somaxconn)) == 128
    assert listen_backlog(0, str(tmp_path / "absent")) == 1024


def test_backlog_joins_the_endpoint_unless_it_names_its_own():
    assert with_backlog("tcp:8080:interface=127.0.0.1", 1024) == "tcp:8080:interface=127.0.0.1:backlog=1024"
    assert with_backlog("tcp:8080:backlog=10", 1024) == "tcp:8080:backlog=10"
    assert with_backlog("systemd:domain=INET:index=0", 1024) == "systemd:domain=INET:index=0"
    assert parse_listen("tcp:8080", 700) is not None and parse_listen("tcp:8080", 700).backlog == 700
    assert parse_listen("tcp:8080:backlog=10", 700).backlog == 10  # type: ignore[union-attr]


def test_connection_settings_from_the_file(tmp_path):
    path = tmp_path / "v.toml"
    path.write_text("[server]\nbacklog = 300\n[connections]\nheader_timeout = 5\nmax_connections = 10\n")
    settings = build(load_file(str(path)), {})
    assert settings.backlog == 300 and settings.header_timeout == 5.0 and settings.max_connections == 10
    assert settings.send_timeout == 60.0 and settings.body_timeout == 60.0
    for bad in ("header_timeout = 0", "send_timeout = -1", "max_connections = 0", "min_body_rate = -5"):
        path.write_text(f"[connections]\n{bad}\n")
        with pytest.raises(ConfigError):
            build(load_file(str(path)), {})


def test_a_low_open_files_limit_is_raised_to_fit_the_cap():
    # In a child process: the limit is process-wide.
    script = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (512, 4096))\n"
        "from twisted.web.resource import Resource\n"
        "from vaultaire.api.deadlines import ConnectionLimits\nfrom vaultaire.api.site import S3Site\n"
        "S3Site(Resource(), limits=ConnectionLimits(max_connections=1000)).startFactory()\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert int(out.stdout) == 1000 + 256


@pytest_twisted.ensureDeferred
async def test_responses_of_a_draining_process_close_their_connections(server):
    assert (await server.request("PUT", "/bucket/k", b"v")).code == 200
    server.site.draining = True

    def keep_alive() -> bytes:
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as s:
            s.sendall(b"GET /_vaultaire/health HTTP/1.1\r\nHost: x\r\n\r\n")
            return read_response(s, 10)  # the server closes after the answer

    got = await threads.deferToThread(keep_alive)
    assert got.startswith(b"HTTP/1.1 200") and b"Connection: close" in got, got
