"""Blobs leave through here: deleted, or queued as garbage until their placement can take them.

Three kinds of blob are dropped: one no row ever referenced (a refused or failed
write, once the catalog has confirmed no commit referenced it; an unchosen or aborted
part; a dead writer's intent) is deleted at once;
one an overwrite or delete replaced is deleted once no read already streaming it
can need it (at once for a single blob whose open readers keep it, else after
``free_grace``); whatever cannot be deleted now stays queued for the sweep, which
runs on its timer only, once per data directory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from twisted.internet.defer import CancelledError
from twisted.logger import Logger

from vaultaire.catalog import inline
from vaultaire.catalog.interface import Catalog
from vaultaire.drivers.interface import Driver, keeps_blobs_for_readers
from vaultaire.errors import CatalogUnavailable, DriverError
from vaultaire.model import Artifact, Container

log = Logger()

# How long a replaced blob that a reader may still need is kept: longer than a GET of
# 5 GiB at 2 MB/s. Readers of local single blobs hold an open file and need none.
DEFAULT_FREE_GRACE = 3600.0


class BlobKeeper:
    """The one way the engine drops blobs."""

    def __init__(
        self, catalog: Catalog, drivers: Mapping[str, Driver], clock: Callable[[], float], free_grace: float
    ) -> None:
        self.catalog = catalog
        self.drivers = drivers  # the engine's own dict: a placement added later is seen
        self._clock = clock
        # Blobs an overwrite or delete replaced stay this long, so reads already streaming
        # them finish (see release); the sweep frees them after.
        self.free_grace = free_grace
        # Is a placement's local disk below its free-space reserve? (set by the engine's space guard)
        self.under_pressure: Callable[[str], Awaitable[bool]] | None = None
        # Blobs dropped while the catalog could not be told (a PostgreSQL outage): their intents
        # name this live process, so no sweep takes them; this process settles them (retry_pending).
        self.pending: dict[str, set[str]] = {}
        # Blobs of failed writes whose commit may have happened all the same (see withdraw):
        # kept, whole, until the catalog can say whether a row references them.
        self.undecided: dict[str, set[str]] = {}

    async def discard_pairs(self, queued: list[tuple[str, str]]) -> int:
        """(placement, locator) pairs no reader ever saw: parts of an upload that ended
        unfinished, blobs of writers that died."""
        by_placement: dict[str, list[str]] = {}
        for placement, locator in queued:
            by_placement.setdefault(placement, []).append(locator)
        freed = 0
        for placement, locators in by_placement.items():
            freed += await self.discard(placement, locators)
        return freed

    async def intend(self, placement: str, locators: list[str]) -> None:
        """Record that blobs are about to be written (before their first byte: a crash then
        leaves an intent the sweep turns into garbage, never a blob the catalog does not know).

        If recording fails, its commit may still have happened with only the answer lost (the
        database stopped meanwhile). Such an intent names this live process, which no sweep
        reclaims, so it is withdrawn as a failed write's are: now, or by ``retry_pending``."""
        try:
            await self.catalog.intend_blobs(placement, locators)
        except BaseException:
            try:
                await self.withdraw(placement, locators)
            except CatalogUnavailable:
                pass  # kept in ``undecided``
            raise

    async def withdraw(self, placement: str, locators: list[str]) -> int:
        """Drop the blobs of a write that failed (this process recorded their intents).

        The failure may have come after the write's commit happened, its answer lost (the
        database stopped meanwhile): then a row references the blob, which must stay. So the
        catalog decides first: only a blob whose intent is still recorded is deleted. Until
        the catalog answers, nothing is deleted; ``retry_pending`` asks again."""
        locators = [loc for loc in locators if not inline.is_inline(loc)]
        if not locators:
            return 0
        try:
            unreferenced = await self.catalog.withdraw_intents(placement, locators)
        except Exception:
            self.undecided.setdefault(placement, set()).update(locators)
            raise
        return await self.discard(placement, unreferenced)

    async def discard(self, placement: str, locators: list[str]) -> int:
        """Delete blobs nothing references (or ever will); what cannot be deleted now stays
        queued as garbage until its placement can take it. The one way blobs are dropped.

        Safe for blobs never published (a driver's delete of a missing blob is a no-op),
        queued or not, and for an intent's blobs: each ends deleted and forgotten, or queued.
        """
        # Inline blobs went with the transaction that dropped their row (or were never stored).
        locators = [loc for loc in locators if not inline.is_inline(loc)]
        if not locators:
            return 0
        driver = self.drivers.get(placement)
        freed: list[str] = []
        failed: list[str] = []
        for locator in locators:
            if driver is None:  # a placement no longer configured: kept until it is again
                failed.append(locator)
                continue
            try:
                await driver.delete(locator)
                freed.append(locator)
            except DriverError as e:
                # Expected while a driver is down: one line, no traceback; the sweep retries.
                log.warn("freeing blob {locator} failed ({error}); it stays queued", locator=locator, error=str(e))
                failed.append(locator)
            except CancelledError:
                # The request's client went away mid-free: nothing failed, and no traceback; the blob
                # stays queued like any other not freed now (the rest of this batch goes on).
                failed.append(locator)
            except Exception:
                log.failure("freeing blob {locator} failed; it stays queued", locator=locator)
                failed.append(locator)
        # Queued before the freed ones are forgotten: a crash in between leaves only rows.
        try:
            if failed:
                await self.catalog.queue_garbage(placement, failed)
            if freed:
                await self.catalog.forget_garbage(freed)
        except Exception:
            # Untold, their intents name this live process, which no sweep reclaims: settled by
            # ``retry_pending`` once the catalog answers (after an outage; or after a failure
            # nobody expected, which that retry logs while it lasts).
            self.pending.setdefault(placement, set()).update(locators)
            raise
        return len(freed)

    async def retry_pending(self) -> int:
        """Drop again what ``withdraw`` and ``discard`` could not record (periodic, in every
        process): failed writes' blobs decided, freed blobs forgotten, the rest queued, their
        intents settled. Returns how many were freed."""
        freed = 0
        # Undecided first: what they decide to free joins ``pending`` if it cannot be recorded.
        for waiting, drop in ((self.undecided, self.withdraw), (self.pending, self.discard)):
            for placement in list(waiting):
                locators = sorted(waiting.pop(placement, ()))
                if locators:
                    freed += await drop(placement, locators)  # back in ``waiting`` if it fails again
        return freed

    def _readers_keep(self, placement: str) -> bool:
        driver = self.drivers.get(placement)
        return keeps_blobs_for_readers(driver) and driver.readers_keep_blobs

    async def release(self, replaced: Artifact, container: Container) -> None:
        """Free what an overwrite or delete replaced (its commit queued it) once no read
        already streaming it can need it: at once for one blob on a driver whose open
        readers keep it (a local file); else after ``free_grace`` (a manifest's later parts
        are opened as the read reaches them; an upstream object is fetched by range)."""
        if replaced.delete_marker:
            return  # a delete marker owns no blob
        placement = replaced.placement or container.placement
        if self.free_grace <= 0 or (not replaced.parts and self._readers_keep(placement)):
            await self.discard(placement, list(replaced.locators))
        elif self.under_pressure is not None and await self.under_pressure(placement):
            # A disk below its reserve: emptying it through S3 must free space now, not after
            # the grace period; a read of these blobs that started earlier may be cut short.
            await self.discard(placement, list(replaced.locators))

    async def collect(self, batch: int = 1000) -> int:
        """The sweep (periodic, once per data directory): dead writers' blobs, then
        garbage older than the grace period, on placements configured. Returns how many."""
        total = 0
        abandoned = await self.catalog.reclaim_abandoned()
        if abandoned:
            log.info("{n} blobs of writers that died are being freed", n=len(abandoned))
            total += await self.discard_pairs(abandoned)
        while True:
            pending = await self.catalog.garbage(batch, self._clock() - self.free_grace, list(self.drivers))
            by_placement: dict[str, list[str]] = {}
            for placement, locator in pending:
                by_placement.setdefault(placement, []).append(locator)
            before = total
            for placement, locators in by_placement.items():
                total += await self.discard(placement, locators)
            # Stop when the queue is drained or a round freed nothing (a driver is failing).
            if len(pending) < batch or total == before:
                return total
