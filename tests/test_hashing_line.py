"""The hashing line: chunks hashed in order off the reactor, beside the writes, with a bounded backlog."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from vaultaire.engine.hashing import HASH_IN_THREAD_MIN, HashingLine


@pytest_twisted.ensureDeferred
async def test_chunks_of_any_size_are_hashed_in_order() -> None:
    sizes = [10, HASH_IN_THREAD_MIN, 3, 5 * HASH_IN_THREAD_MIN, 1, 2 * 2**20, 7, HASH_IN_THREAD_MIN - 1]
    chunks = [os.urandom(n) for n in sizes]
    md5, sha = hashlib.md5(), hashlib.sha256()
    line = HashingLine(reactor, [md5, sha])
    for chunk in chunks:
        await line.add(chunk)
    await line.done()
    whole = b"".join(chunks)
    assert md5.digest() == hashlib.md5(whole).digest()
    assert sha.digest() == hashlib.sha256(whole).digest()


class SlowHasher:
    """Holds every update until released, and records the thread it ran on."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.threads: set[int] = set()
        self.inner = hashlib.md5()

    def update(self, data: bytes, /) -> None:
        self.threads.add(threading.get_ident())
        self.gate.wait(10)
        self.inner.update(data)

    def digest(self) -> bytes:
        return self.inner.digest()


@pytest_twisted.ensureDeferred
async def test_adding_waits_only_once_the_backlog_is_full() -> None:
    hasher = SlowHasher()
    line = HashingLine(reactor, [hasher], backlog=3 * 2**20)
    chunk = os.urandom(2**20)
    for _ in range(3):
        await line.add(chunk)  # within the backlog: returns while the hasher is held
    assert line._waiting == 3 * 2**20
    fourth = Deferred.fromCoroutine(line.add(chunk))
    assert not fourth.called  # past the backlog: waits for the hashing
    hasher.gate.set()
    await fourth
    await line.done()
    assert hasher.digest() == hashlib.md5(chunk * 4).digest()
    assert threading.get_ident() not in hasher.threads  # never on the reactor thread


class Failing:
    def update(self, data: bytes, /) -> None:
        raise ValueError("broken hasher")

    def digest(self) -> bytes:
        return b""


@pytest_twisted.ensureDeferred
async def test_a_failure_surfaces_at_done_and_drop_silences_it() -> None:
    line = HashingLine(reactor, [Failing()])
    await line.add(os.urandom(HASH_IN_THREAD_MIN))
    with pytest.raises(ValueError):
        await line.done()
    dropped = HashingLine(reactor, [Failing()])
    await dropped.add(os.urandom(HASH_IN_THREAD_MIN))
    dropped.drop()  # the upload failed for another reason: nothing more is reported
    await dropped.done()


class Counting:
    """Holds the first update until released; says when ``expected`` updates are done."""

    def __init__(self, expected: int) -> None:
        self.gate = threading.Event()
        self.finished = threading.Event()
        self.expected = expected
        self.updates = 0
        self.inner = hashlib.md5()

    def update(self, data: bytes, /) -> None:
        self.gate.wait(10)
        self.inner.update(data)
        self.updates += 1
        if self.updates == self.expected:
            self.finished.set()

    def digest(self) -> bytes:
        return self.inner.digest()


@pytest_twisted.ensureDeferred
async def test_queued_chunks_are_hashed_one_after_another_without_the_reactor() -> None:
    # When each chunk was a trip of its own, the next one was handed out by the reactor
    # thread: the hasher idled between chunks whenever the reactor was busy.
    hasher = Counting(expected=3)
    line = HashingLine(reactor, [hasher], backlog=16 * 2**20)
    chunks = [os.urandom(2**20) for _ in range(3)]
    for chunk in chunks:
        await line.add(chunk)  # all queued behind the held first one
    hasher.gate.set()
    assert hasher.finished.wait(10)  # the reactor thread is blocked right here all along
    await line.done()
    assert hasher.digest() == hashlib.md5(b"".join(chunks)).digest()


class FailingLater(SlowHasher):
    def update(self, data: bytes, /) -> None:
        super().update(data)
        raise ValueError("broken hasher")


@pytest_twisted.ensureDeferred
async def test_a_failure_reaches_an_add_waiting_for_room() -> None:
    hasher = FailingLater()
    line = HashingLine(reactor, [hasher], backlog=2**20)
    await line.add(os.urandom(2**20))
    waiting = Deferred.fromCoroutine(line.add(os.urandom(2**20)))
    assert not waiting.called
    hasher.gate.set()
    with pytest.raises(ValueError):
        await waiting
    with pytest.raises(ValueError):
        await line.add(os.urandom(HASH_IN_THREAD_MIN))  # the line stays stopped
