"""Catalog reads handed to a few threads, with as little Python between reactor and thread as can be.

A GET asks PostgreSQL two point reads (the generation, the artifact), each well under 30 µs of
client CPU in psycopg. Through Twisted's ThreadPool each cost ~300 µs of gateway CPU more
(measured with py-spy under bench/catalog_backends.py: the reactor thread's time went to
the pool's Team/LockWorker/Condition hand-offs and to taking the GIL back from eight busy
workers), which made a GET on PostgreSQL three times a GET on SQLite. Here a read is one
``SimpleQueue.put`` (C, no Condition) to a fixed set of threads, and answers return in
batches: a thread wakes the reactor only when it hands in the first answer of a batch, so
under load one wake-up delivers many. (A GET's own reads have since moved to the reactor
itself, reactor_reads.py; every other read, and those when its connection is down, come here.)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure

T = TypeVar("T")

_Job = tuple[Deferred[Any], Callable[..., Any], tuple[Any, ...]]


class ReaderThreads:
    """``count`` daemon threads running submitted calls; each call's Deferred fires on the reactor."""

    def __init__(self, reactor: IReactorFromThreads, count: int, name: str) -> None:
        self._reactor = reactor
        self._count = count
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._done: list[tuple[Deferred[Any], bool, Any]] = []
        self._done_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self._count):
            thread = threading.Thread(target=self._work, name=f"{self._name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Let each thread finish the call it runs, then end (calls still queued are run first)."""
        for _ in self._threads:
            self._jobs.put(None)
        self._threads = []

    def submit(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        d: Deferred[T] = Deferred()
        self._jobs.put((d, fn, args))
        return d

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            d, fn, args = job
            try:
                outcome: tuple[Deferred[Any], bool, Any] = (d, True, fn(*args))
            except BaseException:
                outcome = (d, False, Failure())
            with self._done_lock:
                first = not self._done
                self._done.append(outcome)
            if first:
                self._reactor.callFromThread(self._deliver)

    def _deliver(self) -> None:
        """On the reactor: fire every answer handed in since the last delivery."""
        with self._done_lock:
            done, self._done = self._done, []
        for d, ok, result in done:
            if ok:
                d.callback(result)
            else:
                d.errback(result)
