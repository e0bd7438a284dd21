"""Connections on a real `twistd vaultaire`: backlog, early answers over TCP and TLS, SIGTERM drain."""

from __future__ import annotations

import http.client
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon import Daemon, https_daemon

from tests.commands import apt_program

pytestmark = pytest.mark.timeout(180)


def ss_command() -> str:
    """`ss` (iproute2), installed if missing: the only way to see a listening socket's backlog."""
    return apt_program("ss", "iproute2")


def listen_backlogs(port: int) -> list[int]:
    """The backlog of every socket listening on ``port`` (ss shows it as Send-Q)."""
    out = subprocess.run(
        [ss_command(), "-Hltn", f"sport = :{port}"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    return [int(line.split()[2]) for line in out.splitlines() if line.strip()]


def somaxconn() -> int:
    with open("/proc/sys/net/core/somaxconn") as f:
        return int(f.read())


@pytest.mark.parametrize("workers", [1, 2])
def test_the_listen_backlog_is_a_production_one(tmp_path: Path, workers: int) -> None:
    d = Daemon(tmp_path / "d", workers=workers).start()
    try:
        assert d.port is not None
        assert listen_backlogs(d.port) == [min(1024, somaxconn())] * workers
    finally:
        d.stop()


def test_the_listen_backlog_is_configurable(tmp_path: Path) -> None:
    config = tmp_path / "v.toml"
    config.write_text("[server]\nbacklog = 200\n")
    d = Daemon(tmp_path / "d", workers=1, extra_args=["--config", str(config)]).start()
    try:
        assert d.port is not None
        assert listen_backlogs(d.port) == [200]
    finally:
        d.stop()


# -- an early answer to a request whose body is still coming


def unsigned_put(host: str, port: int, size: int) -> bytes:
    return (
        f"PUT /bucket/key HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {size}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def early_answer(port: int, context: ssl.SSLContext | None, size: int) -> bytes:
    """Send an unsigned PUT and its whole body without waiting; return what came back.

    One thread, a non-blocking socket: an SSL socket must not be read and
    written from two threads at once.
    """
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    s = context.wrap_socket(raw, server_hostname="127.0.0.1") if context else raw
    with s:
        s.setblocking(False)
        outgoing = unsigned_put("127.0.0.1", port, size) + b"x" * size
        got = b""
        deadline = time.monotonic() + 30
        while b"</Error>" not in got and time.monotonic() < deadline:
            readable, writable, _ = select.select([s], [s] if outgoing else [], [], 1.0)
            try:
                if readable or (context and s.pending()):  # type: ignore[union-attr]
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                if writable and outgoing:
                    sent = s.send(outgoing[:65536])
                    outgoing = outgoing[sent:]
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                continue
            except OSError:
                outgoing = b""  # the server closed its side after the answer: read what is left
                if not readable:
                    break
        if context is not None and got:
            # A TLS client ends with close_notify, while the server may still be dropping
            # the body: the server's TLS layer must not be torn down under it.
            s.setblocking(True)
            s.settimeout(5)
            try:
                s.unwrap()  # type: ignore[union-attr]
            except (OSError, ValueError):
                pass
        return got


@pytest.fixture(params=["tcp", "tls"])
def early(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Daemon, ssl.SSLContext | None]]:
    if request.param == "tcp":
        d = Daemon(tmp_path / "d", workers=1).start()
        context = None
    else:
        d, cert = https_daemon(tmp_path / "d", workers=1)
        d.start()
        context = ssl.create_default_context(cafile=str(cert))
    try:
        yield d, context
    finally:
        d.stop()


def test_an_early_refusal_always_reaches_the_client(early: tuple[Daemon, ssl.SSLContext | None]) -> None:
    d, context = early
    assert d.port is not None
    answers = [early_answer(d.port, context, 2 * 2**20) for _ in range(40)]
    # An unsigned PUT is evaluated against the bucket's policies and ACLs (issue 14); this bucket
    # does not exist, so the refusal is NoSuchBucket, sent before the body is read.
    missing = [i for i, got in enumerate(answers) if b"<Code>NoSuchBucket</Code>" not in got]
    assert not missing, f"{len(missing)} of 40 tries got no answer, e.g. {answers[missing[0]][:200]!r}"
    assert all(b"Connection: close" in got for got in answers)
    log = d.log_text()
    assert "Unhandled Error" not in log and "Traceback" not in log, log[-3000:]


# -- SIGTERM lets an upload in flight finish


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_an_upload_in_flight_finish(tmp_path: Path, workers: int) -> None:
    d = Daemon(tmp_path / "d", workers=workers).start()
    try:
        s3 = d.boto3_client()
        s3.create_bucket(Bucket="drain")
        body = os.urandom(4 * 2**20)
        url = s3.generate_presigned_url("put_object", Params={"Bucket": "drain", "Key": "k"}, ExpiresIn=300)
        assert d.port is not None
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        conn.putrequest("PUT", url.split(str(d.port), 1)[1], skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        piece = len(body) // 16
        conn.send(body[:piece])
        time.sleep(0.3)  # the request is in flight
        assert d.proc is not None
        os.kill(d.pid, signal.SIGTERM)
        for i in range(piece, len(body), piece):
            conn.send(body[i : i + piece])
            time.sleep(0.1)  # the upload outlasts the signal by about 1.5 s
        response = conn.getresponse()
        assert response.status == 200, response.read()
        conn.close()
        assert d.proc.wait(30) in (0, -signal.SIGTERM)  # twistd ends with the signal that stopped it
        d.restart()
        s3 = d.boto3_client()
        assert s3.get_object(Bucket="drain", Key="k")["Body"].read() == body
    finally:
        d.stop()


# -- out of file descriptors

_WITH_NOFILE = (
    "import os, resource, sys\n"
    "n = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class LimitedDaemon(Daemon):
    """A daemon started under a low RLIMIT_NOFILE."""

    nofile = 160

    def command(self) -> list[str]:
        return [sys.executable, "-c", _WITH_NOFILE, str(self.nofile), *super().command()]


def test_running_out_of_descriptors_is_slow_down_never_500(tmp_path: Path) -> None:
    config = tmp_path / "v.toml"
    config.write_text("[connections]\nmax_connections = 100000\n")  # no cap: exhaust the descriptors
    d = LimitedDaemon(tmp_path / "d", workers=1, extra_args=["--config", str(config)]).start()
    held: list[socket.socket] = []
    try:
        s3 = d.boto3_client()
        s3.create_bucket(Bucket="fds")
        s3.put_object(Bucket="fds", Key="before", Body=b"x")
        url = s3.generate_presigned_url("put_object", Params={"Bucket": "fds", "Key": "k"}, ExpiresIn=300)
        assert d.port is not None
        victim = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        victim.connect()  # accepted while descriptors are left
        time.sleep(0.5)
        for _ in range(LimitedDaemon.nofile + 40):  # more than the daemon can accept
            held.append(socket.create_connection(("127.0.0.1", d.port), timeout=10))
        time.sleep(2)  # the daemon accepts until it has no descriptor left
        statuses = []
        list_url = s3.generate_presigned_url("list_objects_v2", Params={"Bucket": "fds"}, ExpiresIn=300)
        for target in [url, list_url, url, list_url]:
            # Larger than [storage] inline_max_bytes: the PUT needs a blob file, hence a descriptor.
            method, body = ("PUT", b"y" * 100_000) if target == url else ("GET", None)
            victim.request(method, target.split(str(d.port), 1)[1], body=body)
            response = victim.getresponse()
            answer = response.read()
            statuses.append(response.status)
            assert response.status != 500, answer
            if response.status == 503:
                assert b"<Code>SlowDown</Code>" in answer, answer
            if response.getheader("Connection") == "close":
                break
        victim.close()
        print("statuses under fd exhaustion (PUT, LIST, PUT, LIST):", statuses)
        assert 503 in statuses, statuses
        for s in held:
            s.close()
        held.clear()
        time.sleep(1)
        s3.put_object(Bucket="fds", Key="after", Body=b"z")  # descriptors back: service back
        assert s3.get_object(Bucket="fds", Key="after")["Body"].read() == b"z"
        log = d.log_text()
        assert "Unhandled Error" not in log
        assert "max_connections 100000 leaves no room under the open-files limit 160" in log
    finally:
        for s in held:
            s.close()
        d.stop()
