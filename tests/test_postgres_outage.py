"""After a long PostgreSQL outage, the catalog is back within seconds of the server, not a minute.

The connection pool retries a lost connection with exponential backoff (1, 2, 4, 8, 16... s);
left to itself, after an outage of a minute its next attempt could come a minute after the
server is back, and every request meanwhile gets 503. The catalog bounds each retry series, so
the next request past it starts a fresh one (catalog/postgres/catalog.py, RECONNECT_SECONDS).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import pytest_twisted
from postgres import PostgresServer
from twisted.internet import defer, reactor, threads

from vaultaire.catalog.postgres import PostgresCatalog
from vaultaire.drivers.memory import MemoryDriver
from vaultaire.engine.blobs import BlobKeeper
from vaultaire.errors import CatalogUnavailable
from vaultaire.model import Artifact
from vaultaire.sealing import SecretBox

OUTAGE = 16.0  # long enough for the pool's backoff to reach 8 s, then 16 s


async def pause(seconds: float) -> None:
    await threads.deferToThread(time.sleep, seconds)


@pytest_twisted.ensureDeferred
async def test_service_resumes_within_seconds_of_the_server_after_a_long_outage() -> None:
    server = await threads.deferToThread(PostgresServer)
    catalog = PostgresCatalog(
        server.fresh_database(), reactor, SecretBox(os.urandom(32)), pool_size=2, pool_timeout=2.0
    )
    try:
        await catalog.start()
        tenant = await catalog.ensure_tenant("t")
        container = await catalog.create_container(tenant.id, "b", "local")
        await catalog.put_artifact(Artifact(container.id, "k", "l1", 1, "0" * 32, time.time()))
        await threads.deferToThread(server.halt)
        # Requests keep coming during the outage, as to a live gateway; each is refused.
        down = time.monotonic()
        while time.monotonic() - down < OUTAGE:
            try:
                await catalog.artifact(container.id, "k")
                raise AssertionError("answered while PostgreSQL is stopped")
            except CatalogUnavailable:
                pass
            await pause(0.5)
        await threads.deferToThread(server.resume)
        back = time.monotonic()
        while True:
            try:
                found = await catalog.artifact(container.id, "k")
                break
            except CatalogUnavailable:
                assert time.monotonic() - back < 60, "never reconnected"
                await pause(0.2)
        waited = time.monotonic() - back
        print(f"served again {waited:.1f} s after PostgreSQL was back (outage {OUTAGE:.0f} s)")
        assert found is not None and found.locator == "l1"
        assert waited < 8, waited
    finally:
        await catalog.stop()
        await threads.deferToThread(server.stop)


class DownCatalog:
    """The two calls BlobKeeper.discard makes, failing as a catalog in an outage while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.forgotten: list[str] = []
        self.queued: list[str] = []

    def forget_garbage(self, locators: list[str]) -> Any:
        if self.down:
            return defer.fail(CatalogUnavailable("the PostgreSQL catalog is unavailable"))
        self.forgotten += locators
        return defer.succeed(None)

    def queue_garbage(self, placement: str, locators: list[str]) -> Any:
        if self.down:
            return defer.fail(CatalogUnavailable("the PostgreSQL catalog is unavailable"))
        self.queued += locators
        return defer.succeed(None)


@pytest_twisted.ensureDeferred
async def test_a_blob_dropped_during_an_outage_is_settled_by_its_process_once_the_catalog_is_back() -> None:
    # A failed write's blob: deleted from its driver, but its intent cannot be settled while the
    # catalog is down. No sweep would take the intent of a live process: the process retries.
    driver = MemoryDriver()
    driver.blobs["c/ab/blob"] = b"bytes"
    catalog = DownCatalog()
    keeper = BlobKeeper(catalog, {"p": driver}, time.time, free_grace=0)  # type: ignore[arg-type]
    with pytest.raises(CatalogUnavailable):
        await keeper.discard("p", ["c/ab/blob"])
    assert keeper.pending == {"p": {"c/ab/blob"}} and driver.blobs == {}
    await defer.ensureDeferred(keeper.retry_pending()).addErrback(lambda f: f.trap(CatalogUnavailable))
    assert keeper.pending == {"p": {"c/ab/blob"}} and catalog.forgotten == []  # still down: kept
    catalog.down = False
    assert await keeper.retry_pending() == 1
    assert catalog.forgotten == ["c/ab/blob"] and keeper.pending == {}
