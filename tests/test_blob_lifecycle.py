"""A blob's life in the engine: announced size, publication, freeing.

In process: the engine on a real SQLite catalog, with the local driver and
drivers that misbehave on purpose (one ignores the announced size, one fails
its deletes), so each guarantee is shown to come from the engine itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail

from tests.s3helpers import Chunks, later
from vaultaire.drivers.local import LocalDriver
from vaultaire.drivers.memory import MemoryBlobWriter, MemoryDriver
from vaultaire.engine import Engine
from vaultaire.errors import DriverError, IncompleteBody
from vaultaire.model import RequestContext


class LaxWriter(MemoryBlobWriter):
    """Publishes whatever it got, whatever size was announced (a driver breaking its contract)."""

    def __init__(self, store: dict[str, bytes], locator: str) -> None:
        super().__init__(store, locator, None)


class LaxDriver(MemoryDriver):
    def open_writer(self, locator: str, size_hint: int | None = None) -> MemoryBlobWriter:
        return LaxWriter(self.blobs, locator)


class FailingDeletes(MemoryDriver):
    """Deletes fail while ``down`` (an upstream that went away)."""

    down = False

    def delete(self, locator: str) -> Deferred[None]:
        if self.down:
            return fail(DriverError("upstream unreachable"))
        return super().delete(locator)


def blob_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest_twisted.async_yield_fixture
async def engine(tmp_path: Path, catalog_factory: Any) -> Any:
    catalog = catalog_factory()  # on each backend
    drivers: dict[str, Any] = {
        "local": LocalDriver(str(tmp_path / "blobs"), reactor),
        "lax": LaxDriver("lax"),
        "flaky": FailingDeletes("flaky"),
    }
    e = Engine(catalog, drivers, reactor, default_placement="local")
    await e.start()
    e.test_ctx = RequestContext("test", await catalog.ensure_tenant("t"))  # type: ignore[attr-defined]
    e.test_root = tmp_path / "blobs"  # type: ignore[attr-defined]
    yield e
    await e.stop()


async def read_all(engine: Engine, container: Any, key: str) -> bytes:
    from tests.driverio import Collector

    _, _, reader = await engine.open(engine.test_ctx, container, key, lambda a: None)  # type: ignore[attr-defined]
    sink = Collector()
    await reader.stream_to(sink)
    return sink.data


@pytest.mark.parametrize("placement", ["local", "lax"])
@pytest_twisted.ensureDeferred
async def test_a_short_body_never_replaces_the_object(engine: Engine, placement: str) -> None:
    ctx = engine.test_ctx  # type: ignore[attr-defined]
    container = await engine.create_container(ctx, "c", placement)
    await engine.put(ctx, container, "k", Chunks(b"old bytes"), content_type="x", declared_size=9)
    with pytest.raises(IncompleteBody):
        await engine.put(ctx, container, "k", Chunks(b"new", b" by"), content_type="x", declared_size=100)
    assert await read_all(engine, container, "k") == b"old bytes"
    # The refused blob was dropped, not published.
    if placement == "lax":
        assert len(engine.drivers["lax"].blobs) == 1  # type: ignore[attr-defined]
    else:
        assert len(blob_files(engine.test_root)) == 1  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
async def test_a_short_part_is_refused_before_its_commit(engine: Engine) -> None:
    ctx = engine.test_ctx  # type: ignore[attr-defined]
    container = await engine.create_container(ctx, "c", "lax")
    upload = await engine.create_upload(ctx, container, "k", content_type="x")
    first = await engine.put_part(ctx, container, upload.id, 1, Chunks(b"12345"), declared_size=5)
    with pytest.raises(IncompleteBody):
        await engine.put_part(ctx, container, upload.id, 1, Chunks(b"12"), declared_size=5)
    _, parts = await engine.list_parts(ctx, container, upload.id, 0, 10)
    assert [(p.number, p.md5, p.size) for p in parts] == [(1, first.md5, 5)]


# -- one discard-or-queue path: nothing dropped without being deleted or queued


async def catalog_rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    return await engine.catalog._run(lambda: engine.catalog._db().execute(sql).fetchall())  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
async def test_a_failed_commit_queues_the_blob_when_its_delete_fails(engine: Engine) -> None:
    ctx = engine.test_ctx  # type: ignore[attr-defined]
    container = await engine.create_container(ctx, "c", "flaky")
    flaky = engine.drivers["flaky"]
    from vaultaire.model import WriteCondition

    await engine.put(ctx, container, "k", Chunks(b"one"), content_type="x")
    flaky.down = True  # type: ignore[attr-defined]
    from vaultaire.errors import ConditionalConflict

    # A writer that raced past the early check: skip it, so the commit's own check refuses.
    async def skip_early(*args: Any) -> None:
        return None

    engine._check_condition = skip_early  # type: ignore[method-assign]
    with pytest.raises(ConditionalConflict):
        await engine.put(
            ctx, container, "k", Chunks(b"two"), content_type="x", condition=WriteCondition(must_not_exist=True)
        )
    # The refused blob could not be deleted: it is queued, not forgotten, and no intent is left.
    assert len(flaky.blobs) == 2  # type: ignore[attr-defined]
    garbage = await engine.catalog.garbage(10)
    assert len(garbage) == 1 and garbage[0][0] == "flaky"
    assert await catalog_rows(engine, "SELECT COUNT(*) FROM intents") == [(0,)]
    flaky.down = False  # type: ignore[attr-defined]
    engine.free_grace = 0
    assert await engine.collect_garbage() == 1
    assert len(flaky.blobs) == 1  # type: ignore[attr-defined]
    assert await engine.catalog.garbage(10) == []


@pytest_twisted.ensureDeferred
async def test_an_aborted_write_queues_what_the_driver_could_not_drop(engine: Engine) -> None:
    ctx = engine.test_ctx  # type: ignore[attr-defined]
    container = await engine.create_container(ctx, "c", "flaky")
    flaky = engine.drivers["flaky"]
    flaky.down = True  # type: ignore[attr-defined]
    with pytest.raises(IncompleteBody):
        await engine.put(ctx, container, "k", Chunks(b"short"), content_type="x", declared_size=10)
    assert [g[0] for g in await engine.catalog.garbage(10)] == ["flaky"]
    assert await catalog_rows(engine, "SELECT COUNT(*) FROM intents") == [(0,)]


@pytest_twisted.ensureDeferred
async def test_garbage_of_a_placement_no_longer_configured_is_kept(engine: Engine) -> None:
    await engine.catalog.queue_garbage("gone", ["9/aa/blob"])
    engine.free_grace = 0
    assert await engine.collect_garbage() == 0
    assert await engine.catalog.garbage(10) == [("gone", "9/aa/blob")]
    # Configured again: the sweep frees it.
    engine.drivers["gone"] = MemoryDriver("gone")
    engine.drivers["gone"].blobs["9/aa/blob"] = b"x"  # type: ignore[attr-defined]
    assert await engine.collect_garbage() == 1
    assert await engine.catalog.garbage(10) == []
    assert engine.drivers["gone"].blobs == {}  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
async def test_completing_an_upload_frees_only_its_own_blobs(engine: Engine) -> None:
    ctx = engine.test_ctx  # type: ignore[attr-defined]
    container = await engine.create_container(ctx, "c", "lax")
    engine.min_part_size = 1
    await engine.catalog.queue_garbage("lax", ["1/aa/someone-elses"])  # due for the periodic sweep
    engine.drivers["lax"].blobs["1/aa/someone-elses"] = b"x"  # type: ignore[attr-defined]
    upload = await engine.create_upload(ctx, container, "k", content_type="x")
    one = await engine.put_part(ctx, container, upload.id, 1, Chunks(b"a"))
    await engine.put_part(ctx, container, upload.id, 2, Chunks(b"b"))  # uploaded, never chosen
    await engine.complete_upload(ctx, container, upload.id, [(1, one.md5)])
    # The unchosen part went at once; the unrelated garbage waits for the sweep's timer.
    assert set(engine.drivers["lax"].blobs) == {one.locator, "1/aa/someone-elses"}  # type: ignore[attr-defined]
    assert await engine.catalog.garbage(10) == [("lax", "1/aa/someone-elses")]


# -- write intents: recorded before the first byte, swept only from dead writers

LIVE_WRITER = """
import sqlite3, sys, time
from vaultaire.catalog.blobs import WriterLease, intend
lease = WriterLease(sys.argv[1] + ".writers")
lease.acquire()
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
intend(db, lease.owner, "local", [sys.argv[2]], time.time())
db.execute("COMMIT")
open(sys.argv[1] + "." + sys.argv[2].replace("/", "_"), "w").write("ready")
time.sleep(120)
"""

# The same writer on a PostgreSQL catalog: alive while its session holds its advisory lock.
LIVE_WRITER_PG = """
import sys, time, psycopg
from vaultaire.catalog.blobs import intend
from vaultaire.catalog.postgres.dialect import Connection
from vaultaire.catalog.postgres.lease import AdvisoryLease
lease = AdvisoryLease(sys.argv[1])
lease.acquire()
with psycopg.connect(sys.argv[1]) as conn:
    intend(Connection(conn), lease.owner, "local", [sys.argv[2]], time.time())
open(sys.argv[3] + "." + sys.argv[2].replace("/", "_"), "w").write("ready")
time.sleep(120)
"""


@pytest_twisted.ensureDeferred
async def test_intents_of_a_live_writer_are_never_swept_those_of_a_dead_one_are(
    engine: Engine, tmp_path: Path, catalog_factory: Any
) -> None:
    import subprocess
    import sys

    database = str(tmp_path / "catalog.sqlite3")
    locator = "1/ab/inflight"
    (engine.test_root / "1" / "ab").mkdir(parents=True)  # type: ignore[attr-defined]
    (engine.test_root / "1" / "ab" / "inflight.part").write_bytes(b"half a blob")  # type: ignore[attr-defined]
    ready = tmp_path / ("catalog.sqlite3." + locator.replace("/", "_"))
    if catalog_factory.backend == "sqlite":
        writer = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, database, locator])
    else:
        writer = subprocess.Popen([sys.executable, "-c", LIVE_WRITER_PG, catalog_factory.url, locator, database])
    try:
        for _ in range(600):
            if ready.exists():
                break
            await later(0.05)
        assert ready.exists(), "the writer process did not start"
        engine.free_grace = 0
        await engine.collect_garbage()
        # Alive: its intent and its staged file stay.
        assert await catalog_rows(engine, "SELECT locator FROM intents") == [(locator,)]
        assert blob_files(engine.test_root) == ["1/ab/inflight.part"]  # type: ignore[attr-defined]
    finally:
        writer.kill()
        writer.wait(10)
    # Dead (however it died): the next sweep frees what it was writing. On PostgreSQL the dead
    # session's lock goes once its server process has seen the client gone: a moment, longer
    # on a loaded machine, so the sweep is run again until then (the daemon's runs on a timer).
    for _ in range(100):
        await engine.collect_garbage()
        if await catalog_rows(engine, "SELECT COUNT(*) FROM intents") == [(0,)]:
            break
        await later(0.1)
    assert await catalog_rows(engine, "SELECT COUNT(*) FROM intents") == [(0,)]
    assert await engine.catalog.garbage(10) == []
    assert blob_files(engine.test_root) == []  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
async def test_a_write_is_an_intent_until_its_commit(engine: Engine) -> None:
    ctx = engine.test_ctx  # type: ignore[attr-defined]
    container = await engine.create_container(ctx, "c", "local")
    seen: list[list[tuple[Any, ...]]] = []

    class Watching(Chunks):
        def read(self) -> Deferred[bytes]:
            d = Deferred.fromCoroutine(catalog_rows(engine, "SELECT placement FROM intents"))
            return d.addCallback(lambda rows: (seen.append(rows), super(Watching, self).read())[1])

    await engine.put(ctx, container, "k", Watching(b"abc"), content_type="x")
    assert seen[0] == [("local",)]  # recorded before the first byte was read
    assert await catalog_rows(engine, "SELECT COUNT(*) FROM intents") == [(0,)]  # settled by the commit


def test_a_writer_lease_is_taken_once_and_seen_alive_until_released(tmp_path: Path) -> None:
    from vaultaire.catalog.blobs import WriterLease

    mine, other = WriterLease(str(tmp_path / "w")), WriterLease(str(tmp_path / "w"))
    mine.acquire()
    mine.acquire()  # every intent asks again: one file, one descriptor
    assert os.listdir(tmp_path / "w") == [mine.owner]
    other.acquire()
    assert mine.dead_owners([other.owner, "never-started"]) == ["never-started"]
    other.release()
    assert mine.dead_owners([other.owner]) == [other.owner]
    mine.release()
    assert os.listdir(tmp_path / "w") == []


@pytest.mark.parametrize("failure", ["an outage", "a failure nobody foresaw"])
@pytest_twisted.ensureDeferred
async def test_an_intent_a_failed_write_could_not_settle_is_settled_by_the_retry(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """The intent names this live process, so no sweep takes it; it must not stay for ever.

    An outage: the database stops between the intent's commit and its answer, the PUT fails
    (503) and the catalog is still down when the blob is dropped. A failure nobody foresaw:
    found on PostgreSQL, a group commit that failed whole (a bug since fixed) took a failed
    write's settling with it."""
    from vaultaire.errors import CatalogUnavailable

    ctx = engine.test_ctx  # type: ignore[attr-defined]
    container = await engine.create_container(ctx, "c", "local")
    catalog = engine.catalog
    intend, forget = catalog.intend_blobs, catalog.forget_garbage
    error: Exception
    if failure == "an outage":
        error, declared_size = CatalogUnavailable("still down"), None

        async def committed_then_lost(placement: str, locators: list[str]) -> None:
            await intend(placement, locators)
            raise CatalogUnavailable("the answer was lost")

        monkeypatch.setattr(catalog, "intend_blobs", committed_then_lost)
    else:
        error, declared_size = RuntimeError(failure), 100  # a short body fails the write

    async def failing(locators: list[str]) -> None:
        raise error

    monkeypatch.setattr(catalog, "forget_garbage", failing)
    with pytest.raises(type(error)):
        await engine.put(ctx, container, "k", Chunks(b"abc"), content_type="x", declared_size=declared_size)
    # The blob is still known to the catalog (its intent, or the garbage row withdrawing it made),
    # and this process holds it for the retry.
    known = "SELECT (SELECT COUNT(*) FROM intents) + (SELECT COUNT(*) FROM garbage)"
    assert await catalog_rows(engine, known) == [(1,)]
    assert sum(map(len, engine.blobs.pending.values())) + sum(map(len, engine.blobs.undecided.values())) == 1
    monkeypatch.setattr(catalog, "forget_garbage", forget)
    await engine.blobs.retry_pending()  # the periodic retry, once the catalog answers again
    assert await catalog_rows(engine, known) == [(0,)]
    assert blob_files(engine.test_root) == []  # type: ignore[attr-defined]
