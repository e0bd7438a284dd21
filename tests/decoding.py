"""Drive a body decoder over arbitrary bytes in arbitrary splits, with a deadline and a memory bound.

Shared by the decoder property tests and the request-path fuzz. A decoder that
loops without consuming input (the aws-chunked ``-1`` chunk size did) would hang
the test forever; ``deadline`` turns that into a failure instead.
"""

from __future__ import annotations

import signal
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from twisted.internet.defer import Deferred, succeed


class DecoderHung(AssertionError):
    pass


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (DecoderHung) if the block runs longer than ``seconds``: a hung decoder never returns."""

    def expire(signum: int, frame: Any) -> None:
        raise DecoderHung(f"no termination within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Pieces:
    """A ChunkSource serving fixed pieces, then b"" (end of body) for ever; counts reads."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self._pieces = list(pieces)
        self.reads = 0

    def read(self) -> Deferred[bytes]:
        self.reads += 1
        return succeed(self._pieces.pop(0) if self._pieces else b"")


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length, sorted, deduplicated)."""
    if not data:
        return []
    points = sorted({c % len(data) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def result_of(d: Deferred[Any]) -> Any:
    """The result of a Deferred that must already have fired (every source here is synchronous)."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the decoder waited for input that a synchronous source had already given"
    outcome = box[0]
    if hasattr(outcome, "raiseException"):
        outcome.raiseException()
    return outcome


def drain(read: Callable[[], Deferred[bytes]], max_reads: int) -> bytes:
    """Read to the end (b""); more than ``max_reads`` reads is a decoder that makes no progress."""
    out = []
    for _ in range(max_reads):
        data = result_of(read())
        if not data:
            return b"".join(out)
        out.append(data)
    raise DecoderHung(f"still returning data after {max_reads} reads")


@contextmanager
def peak_memory(limit: int) -> Iterator[None]:
    """Fail if the block's peak of Python allocations exceeds ``limit`` bytes."""
    tracemalloc.start()
    try:
        yield
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= limit, f"peak memory {peak} bytes > {limit}"
