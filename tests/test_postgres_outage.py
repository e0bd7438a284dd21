"""After a long PostgreSQL outage, the catalog is back within seconds of the server, not a minute.

The connection pool retries a lost connection with exponential backoff (1, 2, 4, 8, 16... s);
left to itself, after an outage of a minute its next attempt could come a minute after the
server is back, and every request meanwhile gets 503. The catalog bounds each retry series, so
the next request past it starts a fresh one (catalog/postgres/catalog.py, RECONNECT_SECONDS).
"""

from __future__ import annotations

import os
import time

import pytest_twisted
from postgres import PostgresServer
from twisted.internet import reactor, threads

from vaultaire.catalog.postgres import PostgresCatalog
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
