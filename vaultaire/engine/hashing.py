"""The hashes of an upload (MD5 for the ETag, any checksums asked for), computed beside its writes.

MD5 runs at about 600-750 MB/s on this class of machine, slower than a disk's writes
and the socket's reads, so it sets the pace of a large upload. The engine hands each
chunk to the line and goes on reading and writing; one pool thread at a time takes the
queued chunks in order and hashes them one after another (hashlib drops the GIL on large
updates). Only a backlog of more than ``BACKLOG`` bytes not yet hashed makes the engine
wait, and only until it is back within, so memory stays bounded.

The thread takes the next chunk itself. When each chunk was a trip of its own (pool
thread, back to the reactor, the next chunk handed out), the hasher idled between
chunks: about a fifth of a 1 GiB PUT's hashing time.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred

# Called with every digest ("md5" and the caller's hashers) once the body has
# ended and before anything is committed; raises to refuse the upload.
Verifier = Callable[[Mapping[str, bytes]], None]

# Below this a thread hop costs more than hashing on the reactor thread.
HASH_IN_THREAD_MIN = 64 * 1024
# Bytes read but not yet hashed beyond which the upload waits for the hashers.
BACKLOG = 8 * 1024 * 1024


class Hasher(Protocol):
    """hashlib's interface: what the engine feeds every byte of an upload to."""

    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class HashingLine:
    """Feeds chunks to ``hashers`` in the order given, off the reactor thread for large ones.

    ``add``, ``done`` and ``drop`` are called on the reactor thread; the queue is drained
    by one pool thread at a time, which tells the reactor only what it waits for.
    """

    def __init__(self, reactor: Any, hashers: Iterable[Hasher], backlog: int = BACKLOG) -> None:
        self._reactor = reactor
        self._hashers = tuple(hashers)
        self._backlog = backlog
        self._lock = threading.Lock()
        # Shared with the draining thread, under the lock:
        self._queue: deque[bytes] = deque()
        self._waiting = 0  # bytes given to ``add`` and not yet hashed
        self._draining = False  # a pool thread is on the queue
        self._error: BaseException | None = None  # what stopped the hashing
        self._dropped = False
        self._want_room = False  # ``add`` waits for the backlog to shrink
        self._want_idle = False  # ``done`` waits for the queue to empty
        # The reactor's own:
        self._room: Deferred[None] | None = None
        self._idle: Deferred[None] | None = None

    async def add(self, chunk: bytes) -> None:
        """Queue ``chunk``; returns at once unless the backlog is full (then once it is back within)."""
        with self._lock:
            error = self._error
            inline = error is None and not self._draining and len(chunk) < HASH_IN_THREAD_MIN
            if error is None and not inline:
                self._queue.append(chunk)
                self._waiting += len(chunk)
                start, self._draining = not self._draining, True
                wait = self._want_room = self._waiting > self._backlog
        if error is not None:
            raise error
        if inline:
            self._absorb(chunk)  # nothing before it waits: in order already
            return
        if start:
            self._reactor.getThreadPool().callInThread(self._drain)
        if wait:
            # The thread's call to make room, however early, runs on this thread after this.
            self._room = Deferred()
            await self._room

    async def done(self) -> None:
        """Wait until every chunk given is hashed (or raise what failed)."""
        with self._lock:
            self._want_idle = busy = self._draining
        if busy:
            self._idle = Deferred()
            await self._idle
        with self._lock:
            error, self._error = self._error, None
        if error is not None and not self._dropped:
            raise error

    def drop(self) -> None:
        """The upload failed: hash nothing more, and let no failure of the hashing be reported."""
        with self._lock:
            self._dropped = True
            self._queue.clear()
        self._make_room()

    # -- the draining thread

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue or self._dropped or self._error is not None:
                    self._queue.clear()
                    self._draining = False
                    idle, self._want_idle = self._want_idle, False
                    room, self._want_room = self._want_room, False
                    break
                chunk = self._queue.popleft()
            try:
                self._absorb(chunk)
            except BaseException as e:  # reported by ``done``, or by the next ``add``
                with self._lock:
                    self._error = e
                continue
            with self._lock:
                self._waiting -= len(chunk)
                room = self._want_room and self._waiting <= self._backlog
                if room:
                    self._want_room = False
            if room:
                self._reactor.callFromThread(self._make_room)
        if room:
            self._reactor.callFromThread(self._make_room)
        if idle:
            self._reactor.callFromThread(self._go_idle)

    # -- back on the reactor thread

    def _make_room(self) -> None:
        room, self._room = self._room, None
        if room is None:
            return
        with self._lock:
            error = None if self._dropped else self._error
        if error is None:
            room.callback(None)
        else:
            room.errback(error)  # the waiting ``add`` raises it

    def _go_idle(self) -> None:
        idle, self._idle = self._idle, None
        if idle is not None:
            idle.callback(None)

    def _absorb(self, chunk: bytes) -> None:
        for hasher in self._hashers:
            hasher.update(chunk)
