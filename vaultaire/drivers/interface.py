"""The driver contract: opaque locators in, bytes out, nothing else.

A locator is chosen by the engine (``<container-id>/<ab>/<uuid>``) and means
nothing to the driver beyond a name that is safe to use as a relative path.
A driver never sees a tenant, a bucket name or a key.

The contract, in full:

* **write**: ``open_writer(locator, size_hint)`` returns a writer; chunks go in
  with ``write`` (each Deferred fires when the next chunk may come: that is
  the backpressure), then exactly one of ``commit`` (the blob is durable and
  whole at its locator before the Deferred fires) or ``abort`` (nothing is
  left behind). A blob that is never committed must never become readable,
  and a committed locator is never written again (the engine always picks a
  fresh one), so drivers need no overwrite semantics.
* **read**: ``open_reader(locator, start, end)`` fires with a reader for the
  inclusive range once the driver knows the blob is there (a missing blob is
  a DriverError here, not later); ``stream_to(consumer)`` registers the
  reader as a push producer on the consumer, so a slow consumer pauses the
  source; ``stop`` releases it early.
* **delete** frees a blob; a blob already gone is not an error. A driver whose
  open readers keep reading a blob deleted under them (a local file) says so
  with a true ``readers_keep_blobs`` attribute; the engine then frees replaced
  blobs at once instead of after its grace period.
* **stat** answers a blob's size, or None when it is not there.
* **health** reports ``{"status": "ok" | "error" | ..., ...}`` and never raises.
* **start** fails with a clear DriverError when the driver cannot work at all
  (an upstream bucket that does not exist); **stop** releases connections.

Every failure of the byte store is a ``vaultaire.errors.DriverError``; the S3
layer answers it with 503, so clients retry.

Some drivers have more: the optional capabilities below (``KeepsBlobsForReaders``,
``OnLocalDisk``, ``Composite``, ``Reconciling``), which callers test with the functions at
the end (``is_on_local_disk`` and its siblings: isinstance, remembered per driver).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, Protocol, TypeGuard, runtime_checkable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer


class BlobWriter(Protocol):
    """Chunks in, then exactly one of commit or abort."""

    def write(self, data: bytes) -> Deferred[None]:
        """Accept a chunk; the Deferred fires when the writer can take another (backpressure)."""

    def commit(self) -> Deferred[None]:
        """Make the blob durable at its locator before firing."""

    def abort(self) -> Deferred[None]:
        """Drop everything written; safe to call more than once and after a failure."""


class BlobReader(Protocol):
    """Streams a byte range of one blob into a consumer, honouring its backpressure."""

    def stream_to(self, consumer: IConsumer) -> Deferred[int]:
        """Register as a push producer on ``consumer`` and write the range.

        Fires with the number of bytes written; unregisters before firing.
        """

    def stop(self) -> None:
        """The consumer is gone: stop reading and release the blob."""


class Driver(Protocol):
    """A byte store. Implementations declare the protocol's own return types
    (``Deferred[BlobReader]``, not ``Deferred[TheirReader]``): a Deferred is
    invariant in its result, so a narrower one would not be a Driver to mypy."""

    name: str

    def start(self) -> Deferred[None]:
        """Check the store can work; fails with a DriverError saying why not."""

    def stop(self) -> Deferred[None]:
        """Release connections; blobs being read or written may be cut short."""

    def open_writer(self, locator: str, size_hint: int | None = None) -> BlobWriter:
        """A writer for a new blob. ``size_hint`` is the exact size when the
        caller knows it (a PUT's Content-Length): a driver may stream a blob of
        known size in one request and must fail the commit if it was wrong."""

    def open_reader(self, locator: str, start: int, end: int) -> Deferred[BlobReader]:
        """A reader for bytes start..end inclusive (end < start for an empty blob)."""

    def delete(self, locator: str) -> Deferred[None]:
        """Free the blob; a blob already gone is not an error."""

    def stat(self, locator: str) -> Deferred[int | None]:
        """The blob's size in bytes, or None when there is no such blob."""

    def health(self) -> Deferred[dict[str, object]]:
        """``{"status": "ok" | "error" | ..., ...}`` with details; never fails."""


# -- optional capabilities: a driver has them or not, and callers ask with is_on_local_disk & co.


@runtime_checkable
class KeepsBlobsForReaders(Protocol):
    """Open readers keep reading a blob deleted under them (a local file, bytes in memory)
    when this is true: the engine then frees replaced blobs at once, not after a grace."""

    readers_keep_blobs: bool


@runtime_checkable
class OnLocalDisk(Protocol):
    """Writes its blobs under this directory of a local filesystem (its free space is watched)."""

    disk_root: str


@runtime_checkable
class Composite(Protocol):
    """A placement over other drivers (mirror, failover)."""

    members: Sequence[Driver]


@runtime_checkable
class Reconciling(Protocol):
    """Has upkeep of its own, run once per deployment by the periodic work."""

    def reconcile_if_due(self) -> Deferred[int]:
        """Do the upkeep if it is due (failover: move blobs back to a primary that is up);
        fires with how many blobs it moved."""


_capabilities: weakref.WeakKeyDictionary[Any, dict[Any, bool]] = weakref.WeakKeyDictionary()


def _offers(driver: object, capability: Any) -> bool:
    """``isinstance(driver, capability)`` for a capability Protocol above, remembered per
    driver: a runtime-checkable Protocol's isinstance inspects the class each time (6 µs here,
    and a PUT asked five of them), while what a driver offers is fixed once it is built."""
    try:
        known = _capabilities.get(driver)
    except TypeError:  # unhashable, or no weak references to it: ask each time
        return isinstance(driver, capability)
    if known is None:
        known = _capabilities[driver] = {}
    answer = known.get(capability)
    if answer is None:
        answer = known[capability] = isinstance(driver, capability)
    return answer


def is_on_local_disk(driver: object) -> TypeGuard[OnLocalDisk]:
    return _offers(driver, OnLocalDisk)


def is_composite(driver: object) -> TypeGuard[Composite]:
    return _offers(driver, Composite)


def keeps_blobs_for_readers(driver: object) -> TypeGuard[KeepsBlobsForReaders]:
    return _offers(driver, KeepsBlobsForReaders)


def is_reconciling(driver: object) -> TypeGuard[Reconciling]:
    return _offers(driver, Reconciling)
