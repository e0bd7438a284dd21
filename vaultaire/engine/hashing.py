"""The hashes of an upload (MD5 for the ETag, any checksums asked for), computed beside its writes.

MD5 runs at about 700 MB/s on this class of machine, slower than a disk's writes
and the socket's reads. Hashed in step with the writes (each chunk hashed and
written, both awaited, then the next read), an upload ran at the speed of the
slower of the two plus the gaps between them. Here the chunks queue for the
hashers in order, in the thread pool (hashlib drops the GIL on large updates),
while the engine goes on reading and writing: only a backlog of more than
``BACKLOG`` bytes not yet hashed makes it wait, so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool

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
    """Feeds chunks to ``hashers`` in the order given, off the reactor thread for large ones."""

    def __init__(self, reactor: Any, hashers: Iterable[Hasher], backlog: int = BACKLOG) -> None:
        self._reactor = reactor
        self._hashers = tuple(hashers)
        self._backlog = backlog
        self._waiting = 0  # bytes given to ``add`` and not yet hashed
        self._line: Deferred[None] | None = None  # the hashing under way, chunk after chunk
        self._dropped = False

    async def add(self, chunk: bytes) -> None:
        """Queue ``chunk``; returns at once unless the backlog is full (then once it is hashed)."""
        if self._line is None and len(chunk) < HASH_IN_THREAD_MIN:
            self._absorb(chunk)  # nothing before it waits: in order already
            return
        self._waiting += len(chunk)
        line = self._line if self._line is not None else succeed(None)
        self._line = line.addCallback(lambda _: self._hash_in_thread(chunk))
        if self._waiting > self._backlog:
            await self.done()

    async def done(self) -> None:
        """Wait until every chunk given is hashed (or raise what failed)."""
        line, self._line = self._line, None
        if line is not None:
            await line

    def drop(self) -> None:
        """The upload failed: hash nothing more, and let no failure of the hashing be reported."""
        self._dropped = True
        if self._line is not None:
            self._line.addErrback(lambda _: None)
            self._line = None

    def _hash_in_thread(self, chunk: bytes) -> Deferred[None] | None:
        if self._dropped:
            return None
        hashed: Deferred[None] = deferToThreadPool(self._reactor, self._reactor.getThreadPool(), self._absorb, chunk)
        return hashed.addCallback(self._hashed, len(chunk))

    def _hashed(self, _: None, size: int) -> None:
        self._waiting -= size

    def _absorb(self, chunk: bytes) -> None:
        for hasher in self._hashers:
            hasher.update(chunk)
