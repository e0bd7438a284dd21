"""The local-disk driver: one file per blob under a root directory.

Each blob is written to ``<locator>.part`` next to its final place, fsynced,
renamed, and its directory fsynced, so a blob either exists whole or not at
all; a large one has its writeback started as it arrives (``writeback.py``).
Every system call that can block runs in the reactor's thread pool.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IConsumer, IPushProducer, IReactorFromThreads, IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vaultaire.diskspace import AUTO_RESERVE, is_full, sample
from vaultaire.drivers.bytes_reader import BytesReader
from vaultaire.drivers.interface import BlobReader
from vaultaire.drivers.writeback import Writeback
from vaultaire.errors import DriverError, InsufficientStorage

T = TypeVar("T")

STAGING_SUFFIX = ".part"
# Ranges up to this size are read on the reactor thread (see open_reader).
INLINE_READ_MAX = 64 * 1024
READ_CHUNK = 1024 * 1024  # big reads: 16 KiB (FileSender's size) caps throughput

log = Logger()


class _ThreadRunner:
    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def __call__(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), fn, *args)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobWriter:
    def __init__(self, run: _ThreadRunner, final_path: str, size_hint: int | None = None) -> None:
        self._run = run
        self._final = final_path
        # The contract: a blob announced with a size is published with exactly that size or not at all.
        self._size_hint = size_hint
        self._written = 0
        self._staging = final_path + STAGING_SUFFIX
        self._fd: int | None = None
        self._done = False
        # Writes run in pool threads; a cancelled request can abort while one is
        # still running. The lock makes abort wait for it, and the flag stops a
        # late write from recreating the staged file after abort removed it.
        self._lock = threading.Lock()
        self._aborted = False
        self._writeback = Writeback()  # the disk writes while the upload goes on; fsync waits less

    def _open(self) -> int:
        if self._fd is None:
            os.makedirs(os.path.dirname(self._staging), exist_ok=True)
            self._fd = os.open(self._staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        return self._fd

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self._aborted:
                return
            fd = self._open()
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            self._writeback.wrote(fd, len(data))

    def write(self, data: bytes) -> Deferred[None]:
        if self._done:
            raise DriverError("write after commit or abort")
        self._written += len(data)
        return self._run(self._write, data).addErrback(self._failed)

    def _failed(self, failure: Failure) -> Failure:
        if isinstance(failure.value, OSError) and is_full(failure.value):
            raise InsufficientStorage("The server's disk is full; delete objects and retry.")
        if isinstance(failure.value, OSError):
            raise DriverError(f"local disk write failed: {failure.value.strerror}")
        return failure

    def _commit(self) -> None:
        with self._lock:
            if self._aborted:
                raise DriverError("commit after abort")
            self._commit_locked()

    def _commit_locked(self) -> None:
        fd = self._open()
        os.fsync(fd)
        os.close(fd)
        self._fd = None
        os.rename(self._staging, self._final)
        _fsync_dir(os.path.dirname(self._final))

    def commit(self) -> Deferred[None]:
        self._done = True
        if self._size_hint is not None and self._written != self._size_hint:
            return fail(DriverError(f"blob has {self._written} bytes, {self._size_hint} were announced"))
        return self._run(self._commit).addErrback(self._failed)

    def _abort(self) -> None:
        with self._lock:
            self._aborted = True
            self._abort_locked()

    def _abort_locked(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self._staging)
        except FileNotFoundError:
            pass

    def abort(self) -> Deferred[None]:
        self._done = True
        return self._run(self._abort)


@implementer(IPushProducer)
class LocalBlobReader:
    """Reads ahead one chunk in a thread while the previous one drains to the consumer."""

    def __init__(self, run: _ThreadRunner, fd: int, start: int, end: int, chunk: int = READ_CHUNK) -> None:
        self._run = run
        self._fd: int | None = fd
        self._offset = start
        self._remaining = max(0, end - start + 1)
        self._chunk = chunk
        self._pending: bytes | None = None
        self._reading = False
        self._paused = False
        self._stopped = False
        self._written = 0
        self._consumer: IConsumer | None = None
        self._sending: Deferred[int] | None = None  # the consumer's sendfile, when it took the fd
        self._done: Deferred[int] = Deferred()

    def stream_to(self, consumer: IConsumer) -> Deferred[int]:
        self._consumer = consumer
        # A consumer that can have the kernel send a file (an HTTP response on plain TCP)
        # gets the descriptor: nothing to compute per chunk, so no byte passes through here.
        send_file = getattr(consumer, "send_file", None)
        if send_file is not None and self._fd is not None and self._remaining > 0:
            sending = send_file(self._fd, self._offset, self._remaining)
            if sending is not None:
                self._sending = sending
                sending.addCallbacks(self._sent, self._send_failed)
                return self._done
        consumer.registerProducer(self, True)
        self._pump()
        return self._done

    def _sent(self, count: int) -> None:
        self._sending = None
        self._written += count
        self._remaining -= count
        self._consumer = None  # never registered as its producer
        self._finish()

    def _send_failed(self, failure: Failure) -> None:
        self._sending = None
        self._consumer = None
        self._error_msg(f"sending the blob failed: {failure.getErrorMessage()}")

    def _pump(self) -> None:
        if self._stopped:
            return
        if self._pending is not None and not self._paused:
            data, self._pending = self._pending, None
            self._written += len(data)
            assert self._consumer is not None
            self._consumer.write(data)
            if self._stopped:
                return
        if self._pending is None and not self._reading:
            if self._remaining > 0:
                self._reading = True
                n = min(self._chunk, self._remaining)
                assert self._fd is not None
                self._run(os.pread, self._fd, n, self._offset).addCallbacks(self._got, self._error)
            else:
                self._finish()

    def _got(self, data: bytes) -> None:
        self._reading = False
        if self._stopped:
            self._close()
            return
        if not data:
            self._error_msg("blob is shorter than the catalog says")
            return
        self._offset += len(data)
        self._remaining -= len(data)
        self._pending = data
        self._pump()

    def _error(self, failure: Any) -> None:
        self._reading = False
        self._error_msg(f"local disk read failed: {failure.getErrorMessage()}")

    def _error_msg(self, message: str) -> None:
        self._stopped = True
        self._unregister()
        self._close()
        if not self._done.called:  # a cancelled consumer has already been told
            self._done.errback(DriverError(message))

    def _finish(self) -> None:
        self._stopped = True
        self._unregister()
        self._close()
        if not self._done.called:
            self._done.callback(self._written)

    def _unregister(self) -> None:
        if self._consumer is not None:
            self._consumer.unregisterProducer()
            self._consumer = None

    def _close(self) -> None:
        if self._fd is not None and not self._reading:
            os.close(self._fd)
            self._fd = None

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._consumer = None
        sending, self._sending = self._sending, None
        self._close()
        if not self._done.called:
            self._done.errback(DriverError("reader stopped before the end"))
            self._done.addErrback(lambda f: None)
        if sending is not None:
            sending.cancel()  # the kernel's copy stops too (it sends from its own descriptors)


def _read_range(path: str, start: int, end: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, max(0, end - start + 1), start)
    finally:
        os.close(fd)


class LocalDriver:
    """Blobs as files under ``root``; the locator is the relative path."""

    # A reader holds the open file, so a blob deleted under it still reads whole.
    readers_keep_blobs = True

    def __init__(
        self,
        root: str,
        reactor: IReactorThreads | IReactorFromThreads,
        name: str = "local",
        scrub_staging: bool = True,
        reserve: int = AUTO_RESERVE,
    ) -> None:
        self.name = name
        # Free space kept on this filesystem (the engine refuses writes below it); see diskspace.
        self.reserve = reserve
        # Only the one process that owns the directory may scrub: with several
        # workers, a staged file may be another live worker's upload.
        self._scrub = scrub_staging
        self._root = os.path.abspath(root)
        # The engine samples free space here before a write (engine/space.py).
        self.disk_root = self._root
        self._run = _ThreadRunner(reactor)

    def _path(self, locator: str) -> str:
        # Locators come from the engine, never from a client; refuse anything odd anyway.
        if locator.startswith("/") or ".." in locator.split("/") or "\x00" in locator:
            raise DriverError(f"bad locator {locator!r}")
        return os.path.join(self._root, locator)

    def _scrub_staging(self) -> int:
        removed = 0
        for dirpath, _dirs, files in os.walk(self._root):
            for name in files:
                if name.endswith(STAGING_SUFFIX):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
        return removed

    def start(self) -> Deferred[None]:
        os.makedirs(self._root, exist_ok=True)

        def report(n: int) -> None:
            if n:
                log.info("local driver removed {n} staged blobs left by an earlier run", n=n)

        if not self._scrub:
            return succeed(None)
        # This process owns the directory, so any staged file is a dead write's.
        return self._run(self._scrub_staging).addCallback(report)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def open_writer(self, locator: str, size_hint: int | None = None) -> LocalBlobWriter:
        return LocalBlobWriter(self._run, self._path(locator), size_hint)

    def open_reader(self, locator: str, start: int, end: int) -> Deferred[BlobReader]:
        path = self._path(locator)
        if end - start + 1 <= INLINE_READ_MAX:
            # A small blob is read on the reactor thread: open, pread and close from
            # the page cache cost less than the two thread switches a trip takes.
            try:
                data = _read_range(path, start, end)
            except OSError as e:
                return fail(DriverError(f"blob {locator} cannot be read: {e.strerror}"))
            if len(data) < end - start + 1:
                return fail(DriverError(f"blob {locator} is shorter than the catalog says"))
            return succeed(BytesReader(data))

        def opened(fd: int) -> BlobReader:
            return LocalBlobReader(self._run, fd, start, end)

        def missing(failure: Failure) -> NoReturn:
            failure.trap(OSError)
            assert isinstance(failure.value, OSError)  # trap re-raised anything else
            raise DriverError(f"blob {locator} cannot be opened: {failure.value.strerror}")

        return self._run(os.open, path, os.O_RDONLY | os.O_CLOEXEC).addCallbacks(opened, missing)

    def delete(self, locator: str) -> Deferred[None]:
        path = self._path(locator)

        def unlink() -> None:
            # The staged file too: a writer that died (its intent swept) may have left either.
            for name in (path, path + STAGING_SUFFIX):
                try:
                    os.unlink(name)
                except FileNotFoundError:
                    pass

        return self._run(unlink)

    def stat(self, locator: str) -> Deferred[int | None]:
        path = self._path(locator)

        def size() -> int | None:
            try:
                return os.stat(path).st_size
            except FileNotFoundError:
                return None

        return self._run(size)

    def health(self) -> Deferred[dict[str, object]]:
        """ok; degraded (serving reads and deletes, refusing writes) on a disk below its
        reserve or read-only; error when the directory cannot be examined."""

        def probe() -> dict[str, object]:
            t0 = time.monotonic()
            try:
                space = sample(self._root, self.reserve)
            except OSError as e:
                return {"status": "error", "error": f"{self._root}: {e.strerror}"}
            status = "ok"
            if space.read_only:
                status, why = "degraded", "the disk is read-only: writes are refused"
            elif space.below_reserve:
                status, why = "degraded", "free space is below the reserve: writes are refused"
            report: dict[str, object] = {
                "status": status,
                **space.report(),
                "latency_seconds": round(time.monotonic() - t0, 6),
            }
            if status != "ok":
                report["reason"] = why
            return report

        return self._run(probe)
