"""The event log: one JSON line per S3 operation, written off the reactor.

``EventLog.emit`` only copies the event onto a bounded queue; a daemon
thread serialises, batches and appends to ``<directory>/events.jsonl``,
rotating it by size and by UTC day.  Nothing here may block the reactor
or raise into a request: overflow and failures are counted instead.

Several worker processes may share the file: each batch is one
``write()`` on an ``O_APPEND`` descriptor, which Linux applies whole, so
lines never interleave; the size is re-read from the file before each
batch; and the rename of a rotation happens under an ``flock`` of the file
being renamed, after checking that no other process has rotated it already.
"""

from __future__ import annotations

import collections
import datetime
import fcntl
import json
import os
import threading
import time as _time
from collections.abc import Callable, Mapping

from twisted.logger import Logger

__all__ = ["EventLog", "format_time", "make_event"]

CURRENT_NAME = "events.jsonl"

# Bounds one write() so a huge backlog cannot hold a giant buffer in memory.
_MAX_BATCH = 10_000
# The writer wakes this often and writes what accumulated. emit() never wakes it:
# signalling a thread per request cost a quarter of a small GET's CPU.
_POLL_SECONDS = 0.05
# Minimum spacing between logged write errors, so a full disk cannot flood the log.
_ERROR_LOG_INTERVAL = 60.0

_log = Logger()


# The formatted second format_time last saw: requests come many a second, and formatting a
# datetime cost more than the rest of an event together. One tuple, swapped whole (threads).
_last_second: tuple[int, str] = (-1, "")


def format_time(timestamp: float) -> str:
    """ISO-8601 UTC with milliseconds, e.g. ``2026-11-21T15:04:05.123Z``."""
    global _last_second
    # Work in integer milliseconds so rounding can never yield ".1000".
    total_ms = int(timestamp * 1000)
    seconds, ms = divmod(total_ms, 1000)
    cached, prefix = _last_second
    if cached != seconds:
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
        prefix = f"{moment:%Y-%m-%dT%H:%M:%S}"
        _last_second = (seconds, prefix)
    return f"{prefix}.{ms:03d}Z"


def make_event(
    *,
    time: float,
    request_id: str,
    tenant: str | None,
    operation: str,
    container: str | None,
    key: str | None,
    bytes_in: int,
    bytes_out: int,
    status: int,
    duration: float,
    error: str | None = None,
) -> dict[str, object]:
    """Build the canonical event dict; ``duration`` is in seconds."""
    return {
        "time": format_time(time),
        "request_id": request_id,
        "tenant": tenant,
        "operation": operation,
        "container": container,
        "key": key,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "status": status,
        "duration_ms": round(duration * 1000.0, 3),
        "error": error,
    }


def _utc_day(timestamp: float) -> datetime.date:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).date()


class EventLog:
    """Append-only JSON-lines event log with a background writer thread.

    Counters (read them from any thread; they are only ever incremented):
    ``dropped`` events never written because the queue was full, emit failed
    or the event could not be serialised; ``write_errors`` I/O failures;
    ``lost`` events discarded because of those I/O failures.
    """

    def __init__(
        self,
        directory: str,
        *,
        max_bytes: int = 64 * 2**20,
        rotate_daily: bool = True,
        queue_size: int = 100_000,
        clock: Callable[[], float] = _time.time,
    ) -> None:
        self.directory = directory
        self.path = os.path.join(directory, CURRENT_NAME)
        self.max_bytes = max_bytes
        self.rotate_daily = rotate_daily
        self._clock = clock
        # deque.append and popleft are atomic: the reactor appends, the writer pops.
        self._pending: collections.deque[object] = collections.deque()
        self._queue_size = queue_size
        self._in_flight = 0  # popped by the writer, not yet written
        self._counter_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.write_errors = 0
        self.lost = 0
        # Writer-thread state; only touched by the writer (and stop() after join).
        self._fh: int | None = None  # an O_APPEND descriptor
        self._size = 0
        self._opened_at = 0.0
        self._identity: tuple[int, int] | None = None
        self._last_error_log: float | None = None

    # -- public API (reactor side) ------------------------------------------

    def start(self) -> None:
        """Start the daemon writer thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="vaultaire-eventlog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write out what is queued, then stop the thread (waits at most ``timeout``)."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()  # wakes the writer, which drains before it returns
        thread.join(timeout)
        if not thread.is_alive():
            self._thread = None
            self._close()

    def emit(self, event: Mapping[str, object]) -> None:
        """Queue one event; never blocks, never raises."""
        try:
            if len(self._pending) >= self._queue_size:
                self._count_dropped(1)
                return
            # Shallow copy: callers may reuse/mutate their dict after emitting.
            self._pending.append(dict(event))
        except BaseException:
            self._count_dropped(1)

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything emitted so far is written; for tests and shutdown."""
        deadline = _time.monotonic() + timeout
        while self._pending or self._in_flight:
            if _time.monotonic() >= deadline:
                return False
            _time.sleep(0.005)
        return True

    # -- writer thread --------------------------------------------------------

    def _count_dropped(self, n: int) -> None:
        with self._counter_lock:
            self.dropped += n

    def _run(self) -> None:
        while True:
            stopping = self._stopping.wait(_POLL_SECONDS)
            while self._pending:
                batch: list[object] = []
                self._in_flight = 1  # flush() must not see "empty" between popleft and write
                while self._pending and len(batch) < _MAX_BATCH:
                    batch.append(self._pending.popleft())
                try:
                    self._write_batch(batch)
                except Exception:
                    _log.failure("event log writer failed on a batch")
                finally:
                    self._in_flight = 0
            if stopping:
                return

    def _encode(self, batch: list[object]) -> list[bytes]:
        lines: list[bytes] = []
        bad = 0
        for item in batch:
            try:
                text = json.dumps(item, separators=(",", ":"), ensure_ascii=False, default=str)
            except Exception:
                bad += 1
                continue
            # backslashreplace keeps lone surrogates as \uXXXX: still valid JSON.
            lines.append((text + "\n").encode("utf-8", "backslashreplace"))
        if bad:
            self._count_dropped(bad)
        return lines

    def _write_batch(self, batch: list[object]) -> None:
        lines = self._encode(batch)
        if not lines:
            return
        pending = len(lines)
        # One clock reading per batch: rotation is decided batch by batch.
        now = self._clock()
        try:
            self._ensure_open()
            buf: list[bytes] = []
            for line in lines:
                if self._needs_rotation(len(line), now):
                    self._write_out(buf)
                    pending -= len(buf)
                    buf = []
                    self._rotate(now)
                buf.append(line)
                self._size += len(line)
            self._write_out(buf)
        except OSError as e:
            self._io_failed(e, pending)

    def _write_out(self, buf: list[bytes]) -> None:
        if buf:
            assert self._fh is not None
            # One write per batch, unbuffered: whole lines even with other writers; no fsync by design.
            view = memoryview(b"".join(buf))
            while view:
                view = view[os.write(self._fh, view) :]

    def _needs_rotation(self, incoming: int, now: float) -> bool:
        if self._size == 0:
            # Nothing to rotate away, but restart the day so an empty file
            # opened yesterday is not rotated right after its first line.
            self._opened_at = now
            return False
        if self._size + incoming > self.max_bytes:
            return True
        if self.rotate_daily:
            return _utc_day(now) != _utc_day(self._opened_at)
        return False

    def _ensure_open(self) -> None:
        """Open the current file, reopening if it was moved or deleted underneath us."""
        if self._fh is not None:
            try:
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self._identity:
                    self._size = st.st_size  # other processes may have appended too
                    return
            except OSError:
                pass  # gone (or its directory is): reopen below, which may raise
            self._close()
        os.makedirs(self.directory, exist_ok=True)
        fh = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            st = os.fstat(fh)
            self._identity = (st.st_dev, st.st_ino)
            self._size = st.st_size
            # A pre-existing file dates from its last write, so a restart on a
            # new day still rotates yesterday's file.
            self._opened_at = st.st_mtime if st.st_size else self._clock()
            if st.st_size and not self._ends_with_newline():
                # A previous failure left a partial line: terminate it so the
                # next event starts on a line of its own.
                os.write(fh, b"\n")
                self._size += 1
        except BaseException:
            os.close(fh)
            raise
        self._fh = fh

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def _rotate(self, now: float) -> None:
        assert self._fh is not None
        # Under the lock of the file being renamed, so of several processes
        # deciding to rotate at once, only the first renames it.
        fcntl.flock(self._fh, fcntl.LOCK_EX)
        try:
            try:
                st = os.stat(self.path)
                ours = (st.st_dev, st.st_ino) == self._identity
            except FileNotFoundError:
                ours = False
            if ours:
                stamp = datetime.datetime.fromtimestamp(self._opened_at, tz=datetime.UTC).strftime("%Y%m%d-%H%M%S")
                os.rename(self.path, self._free_name(stamp))
        finally:
            self._close()  # closing drops the lock
        self._ensure_open()
        self._opened_at = now

    def _free_name(self, stamp: str) -> str:
        n = 0
        while True:
            suffix = f"-{n}" if n else ""
            candidate = os.path.join(self.directory, f"events-{stamp}{suffix}.jsonl")
            if not os.path.exists(candidate):
                return candidate
            n += 1

    def _close(self) -> None:
        fh, self._fh = self._fh, None
        self._identity = None
        self._size = 0
        if fh is not None:
            try:
                os.close(fh)
            except OSError:
                pass  # already failing; the next open reports it

    def _io_failed(self, error: OSError, lost: int) -> None:
        with self._counter_lock:
            self.write_errors += 1
            self.lost += lost
        # Drop the handle so the next batch retries from a clean open.
        self._close()
        now = _time.monotonic()
        if self._last_error_log is None or now - self._last_error_log >= _ERROR_LOG_INTERVAL:
            self._last_error_log = now
            _log.error(
                "event log write to {path} failed ({count} errors so far): {error}",
                path=self.path,
                count=self.write_errors,
                error=error,
            )
