"""Small artifacts whose bytes the catalog keeps (see vaultaire/catalog/inline.py).

A PUT of at most ``inline_max`` bytes, announced with its size, on a placement that is a
plain local disk, gathers its (sealed, when encrypted) bytes in an :class:`InlineWriter`
and hands them to the catalog with the artifact's row: the catalog's group commit makes
both durable with one fsync shared by every write in its batch, where a blob file costs
an fsync of the file, of its directory and of the intent recorded before it.

Only plain local placements take inline bytes: a placement naming an upstream, a mirror
or a failover pair promises where the bytes are (another machine, two copies), and the
catalog's disk is not that. Multipart parts always go to their driver (a part is listed,
copied and completed as a blob of its own; they are rarely small).

:class:`InlineStore` reads them back the way a driver would, so encrypted ranges, copies,
migration and lifecycle transitions open an inline blob like any other.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed

from vaultaire.catalog.interface import Catalog
from vaultaire.drivers.bytes_reader import BytesReader
from vaultaire.drivers.interface import BlobReader, BlobWriter, Driver, is_composite, is_on_local_disk
from vaultaire.errors import DriverError, IncompleteBody

# The default of ``[storage] inline_max_bytes``: objects up to this size are kept in the catalog.
DEFAULT_INLINE_MAX = 64 * 1024
# The largest setting allowed: each upload in flight holds its bytes in memory until the commit.
INLINE_MAX_LIMIT = 1024 * 1024


def takes_inline(driver: Driver) -> bool:
    """Does a placement of this driver keep small blobs in the catalog? Plain local disks only."""
    return is_on_local_disk(driver) and not is_composite(driver)


class InlineWriter:
    """A BlobWriter into memory, holding at most ``size`` bytes (the announced size, so
    memory stays bounded however long a lying body is); the catalog commit stores them."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._chunks: list[bytes] = []
        self._written = 0
        self._done = False

    def write(self, data: bytes) -> Deferred[None]:
        if self._done:
            return fail(DriverError("write after commit or abort"))
        self._written += len(data)
        if self._written > self._size:
            self._chunks.clear()
            return fail(IncompleteBody(f"more than the {self._size} bytes announced arrived"))
        self._chunks.append(data)
        return succeed(None)

    def commit(self) -> Deferred[None]:
        # Nothing to make durable here: the catalog transaction that stores the bytes does.
        self._done = True
        if self._written != self._size:
            return fail(DriverError(f"blob has {self._written} bytes, {self._size} were announced"))
        return succeed(None)

    def abort(self) -> Deferred[None]:
        self._done = True
        self._chunks.clear()
        return succeed(None)

    @property
    def data(self) -> bytes:
        return b"".join(self._chunks)


class InlineStore:
    """Inline blobs, read like a driver's: the source a copy, a migration or a GET opens
    for an inline locator. Writes go with the artifact's row (``put_inline_artifact``), and
    rows go with the transaction that stops referencing them, so ``open_writer`` and
    ``delete`` have nothing to do here."""

    name = "inline"
    readers_keep_blobs = True  # a reader holds the bytes it read

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def open_writer(self, locator: str, size_hint: int | None = None) -> BlobWriter:
        raise DriverError("inline blobs are written with their artifact's row, not on their own")

    def open_reader(self, locator: str, start: int, end: int) -> Deferred[BlobReader]:
        def got(data: bytes | None) -> BlobReader:
            if data is None:
                raise DriverError(f"blob {locator} is gone (its version was replaced or deleted)")
            if end >= len(data):
                raise DriverError(f"blob {locator} is shorter than the catalog says")
            # A whole blob (the usual GET) is handed over as is, not copied.
            return BytesReader(data if start == 0 and end == len(data) - 1 else data[start : end + 1])

        return self._catalog.inline_data(locator).addCallback(got)

    def delete(self, locator: str) -> Deferred[None]:
        return succeed(None)

    def stat(self, locator: str) -> Deferred[int | None]:
        return self._catalog.inline_data(locator).addCallback(lambda data: None if data is None else len(data))

    def health(self) -> Deferred[dict[str, object]]:
        return succeed({"status": "ok"})
