"""Slowloris clients and a latency probe, shared by tests/test_slowloris.py and bench/slowloris.py.

``SlowClients`` holds N connections open from one thread: half send a request
head one byte at a time, half send a head then crawl through a large body a
few bytes at a time. A connection the server drops is counted and replaced,
as an attacker would, so N stay open for the whole run.
"""

from __future__ import annotations

import http.client
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Sequence

HEAD = b"GET /slow/loris HTTP/1.1\r\nHost: %s\r\nUser-Agent: slowloris\r\nX-Padding: %s\r\n\r\n"
BODY_HEAD = b"PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 100000000\r\n\r\n"


class _Slow:
    def __init__(self, sock: socket.socket, kind: str, host: bytes, body_path: bytes) -> None:
        self.sock = sock
        self.kind = kind
        # A body crawler sends its head at once; a head dribbler never finishes its head.
        self.pending = BODY_HEAD % (body_path, host) if kind == "body" else HEAD % (host, b"a" * 4000)
        self.next_send = 0.0


class SlowClients:
    """``count`` slow connections to ``port``: every ``interval`` seconds a head dribbler sends
    one byte, a body crawler ``body_step`` bytes of a PUT to ``body_path`` (a presigned URL's
    path and query, so the server accepts the body and reads it)."""

    def __init__(self, port: int, count: int, body_path: str, interval: float = 1.0, body_step: int = 10) -> None:
        self.port = port
        self.count = count
        self.body_path = body_path.encode()
        self.interval = interval
        self.body_step = body_step
        self.host = f"127.0.0.1:{port}".encode()
        self.dropped = 0  # connections the server closed
        self.opened = 0
        self._conns: dict[socket.socket, _Slow] = {}
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def open(self) -> int:
        return len(self._conns)

    def start(self) -> SlowClients:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        for sock in list(self._conns):
            sock.close()
        self._conns.clear()
        self._selector.close()

    def wait_open(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.open < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.open < self.count:
            raise AssertionError(f"only {self.open} of {self.count} slow connections opened")

    def _connect(self, kind: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        except OSError:
            sock.close()
            return
        slow = _Slow(sock, kind, self.host, self.body_path)
        slow.next_send = time.monotonic() + self.interval
        self._conns[sock] = slow
        self._selector.register(sock, selectors.EVENT_READ)
        self.opened += 1
        if kind == "body":
            self._send(slow, len(slow.pending))  # the head at once

    def _close(self, slow: _Slow) -> None:
        self._conns.pop(slow.sock, None)
        try:
            self._selector.unregister(slow.sock)
        except (KeyError, ValueError):
            pass
        slow.sock.close()

    def _send(self, slow: _Slow, n: int) -> None:
        if slow.kind == "body" and not slow.pending:
            slow.pending = b"x" * n
        data, slow.pending = slow.pending[:n], slow.pending[n:]
        try:
            slow.sock.send(data)
        except BlockingIOError:
            slow.pending = data + slow.pending  # not connected yet: next time
        except OSError:
            self.dropped += 1
            self._close(slow)

    def _run(self) -> None:
        kinds = ["head", "body"]
        while not self._stop.is_set():
            while len(self._conns) < self.count:
                self._connect(kinds[self.opened % 2])
            for key, _ in self._selector.select(timeout=0.02):
                sock = key.fileobj
                slow = self._conns.get(sock)  # type: ignore[call-overload]
                if slow is None:
                    continue
                try:
                    if not sock.recv(65536):  # type: ignore[union-attr]
                        self.dropped += 1
                        self._close(slow)
                except BlockingIOError:
                    pass
                except OSError:
                    self.dropped += 1
                    self._close(slow)
            now = time.monotonic()
            for slow in list(self._conns.values()):
                if now >= slow.next_send and slow.sock in self._conns:
                    slow.next_send = now + self.interval
                    if slow.kind == "head" and len(slow.pending) <= 4:
                        continue  # never the end of the head
                    self._send(slow, self.body_step if slow.kind == "body" else 1)


def get_latencies(port: int, paths: Sequence[str], connections: int = 4) -> list[float]:
    """Seconds per GET of each path, over ``connections`` persistent connections in parallel."""
    results: list[float] = []
    lock = threading.Lock()

    def worker(mine: Sequence[str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for path in mine:
                started = time.monotonic()
                conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
                response = conn.getresponse()
                response.read()
                took = time.monotonic() - started
                if response.status != 200:
                    raise AssertionError(f"GET answered {response.status}")
                with lock:
                    results.append(took)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(paths[i::connections],)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    if len(results) != len(paths):
        raise AssertionError(f"only {len(results)} of {len(paths)} GETs completed")
    return results


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": percentile(values, 50) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "mean_ms": statistics.fmean(values) * 1000,
    }
