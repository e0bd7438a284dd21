"""The PostgreSQL catalog's group commit (vaultaire/catalog/postgres/group_commit.py): writes that
queue while a transaction holds the write lock share the next one, and each keeps its own outcome.

The tests hold the write lock themselves (as another gateway's transaction would) to queue
writes deterministically, then look at which transaction wrote each row (``xmin``)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import psycopg
import pytest_twisted
from twisted.internet import defer, reactor, task, threads

from tests.test_postgres_catalog import BOX, blob, outcomes
from vaultaire.catalog.postgres import PostgresCatalog
from vaultaire.catalog.postgres.group_commit import WRITE_LOCK
from vaultaire.errors import PreconditionFailed, QuotaExceeded
from vaultaire.model import Artifact, WriteCondition


class WriteLock:
    """The deployment's write lock, held by the test's own session (as by another gateway)."""

    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))

    async def wait_for_a_waiter(self) -> None:
        """Until a catalog's transaction waits for the lock: its group is formed, later writes queue."""
        deadline = time.monotonic() + 60
        while True:
            (waiting,) = await threads.deferToThread(
                lambda: self._conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()
            )
            if waiting:
                return
            assert time.monotonic() < deadline, "no write waited for the lock"
            await task.deferLater(reactor, 0.05, lambda: None)

    def release(self) -> None:
        self._conn.close()


def note_writers(url: str) -> None:
    """Record, for every row written to artifacts, the transaction that wrote it (the top-level
    transaction's id: a savepoint's rows are its group's)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE written_by (key BYTEA, txid BIGINT);"
            " CREATE FUNCTION note_writer() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN INSERT INTO written_by VALUES (NEW.key, txid_current()); RETURN NULL; END $$;"
            " CREATE TRIGGER note_writer AFTER INSERT OR UPDATE ON artifacts"
            " FOR EACH ROW EXECUTE FUNCTION note_writer()"
        )


def writers(url: str) -> dict[str, int]:
    """key -> the transaction that wrote it last."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT convert_from(key, 'UTF8'), txid FROM written_by ORDER BY txid").fetchall()
    return {key: txid for key, txid in rows}


async def started(url: str) -> PostgresCatalog:
    catalog = PostgresCatalog(url, reactor, BOX)
    await catalog.start()
    return catalog


@pytest_twisted.ensureDeferred
async def test_writes_queued_while_the_lock_is_held_commit_in_one_transaction(postgres: Any) -> None:
    url = postgres.fresh_database()
    catalog = await started(url)
    try:
        tenant = await catalog.ensure_tenant("t")
        container = await catalog.create_container(tenant.id, "b", "local")
        note_writers(url)
        lock = WriteLock(url)
        first = catalog.put_artifact(blob(container.id, "k0", "l0"))
        await lock.wait_for_a_waiter()
        rest = [catalog.put_artifact(blob(container.id, f"k{i}", f"l{i}")) for i in range(1, 16)]
        lock.release()
        await defer.gatherResults([first, *rest])
        found = writers(url)
        assert sorted(found) == sorted(f"k{i}" for i in range(16))
        # k0's group was formed before the others were asked for; the 15 others went in one more.
        assert len(set(found.values())) == 2, found
        assert found["k0"] != found["k1"]
        assert (await catalog.tenant_totals(tenant.id)).objects == 16
    finally:
        await catalog.stop()


@pytest_twisted.ensureDeferred
async def test_a_refused_write_in_a_group_rolls_back_alone(postgres: Any) -> None:
    url = postgres.fresh_database()
    catalog = await started(url)
    try:
        tenant = await catalog.ensure_tenant("t")
        await catalog.set_quota("t", 10**6, None)
        container = await catalog.create_container(tenant.id, "b", "local")
        await catalog.put_artifact(blob(container.id, "taken", "l-taken"))
        taken_inline = "inline:0000000000000001"
        await catalog.put_inline_artifact(blob(container.id, "inline", taken_inline), b"x" * 10)
        await catalog.add_credential(tenant.id, "AKIAEXAMPLE", "secret")
        note_writers(url)
        lock = WriteLock(url)
        first = catalog.put_artifact(blob(container.id, "first", "l-first"))
        await lock.wait_for_a_waiter()
        huge = Artifact(container.id, "huge", "l-huge", 10**7, "0" * 32, time.time())
        group = [
            catalog.put_artifact(blob(container.id, "new1", "l1")),
            catalog.put_artifact(blob(container.id, "taken", "l2"), WriteCondition(must_not_exist=True)),
            catalog.put_artifact(blob(container.id, "new2", "l3")),
            catalog.put_artifact(huge),  # over the tenant's quota
            catalog.put_artifact(blob(container.id, "new3", "l4")),
            # A failure PostgreSQL reports only at a later sync (an INSERT sent without waiting):
            # the write that sent it fails, not the one after it.
            catalog.put_inline_artifact(blob(container.id, "inline-again", taken_inline), b"y" * 10),
            catalog.put_artifact(blob(container.id, "new4", "l5")),
            catalog.revoke_credential("AKIAEXAMPLE"),
            catalog.revoke_credential("AKIAMISSING"),
        ]
        lock.release()
        await first
        results = await outcomes(group)
        assert isinstance(results[1], PreconditionFailed), results
        assert isinstance(results[3], QuotaExceeded), results
        assert isinstance(results[5], sqlite3.IntegrityError), results
        assert results[7:] == [True, False]  # row counts, in pipeline mode too
        found = writers(url)
        assert "huge" not in found and "inline-again" not in found
        assert (await catalog.artifact(container.id, "taken")).locator == "l-taken"  # type: ignore[union-attr]
        # The others committed, together: the refused ones were in their group and left no trace.
        assert len({found[k] for k in ("new1", "new2", "new3", "new4")}) == 1, found
        totals = await catalog.tenant_totals(tenant.id)
        assert (totals.objects, totals.bytes) == (7, 70)
    finally:
        await catalog.stop()


@pytest_twisted.ensureDeferred
async def test_intents_and_forgotten_blobs_ride_their_group_and_a_failing_one_fails_it_whole(postgres: Any) -> None:
    """Intents and a freed blob's rows are written unguarded (no savepoint, no round trip of their
    own): they commit with their group; should one fail all the same (a locator taken twice,
    which minted locators never are), the whole group fails, nothing of it is left, and the
    catalog goes on."""
    url = postgres.fresh_database()
    catalog = await started(url)
    try:
        tenant = await catalog.ensure_tenant("t")
        container = await catalog.create_container(tenant.id, "b", "local")
        await catalog.intend_blobs("local", ["taken", "freed"])
        note_writers(url)
        lock = WriteLock(url)
        first = catalog.put_artifact(blob(container.id, "first", "l-first"))
        await lock.wait_for_a_waiter()
        group = [
            catalog.intend_blobs("local", ["new-intent"]),
            catalog.forget_garbage(["freed"]),
            catalog.put_artifact(blob(container.id, "k1", "l1")),
        ]
        lock.release()
        await first
        assert (await outcomes(group))[:2] == [None, None]
        assert set(await intent_locators(url)) == {"taken", "new-intent"}

        lock = WriteLock(url)
        first = catalog.put_artifact(blob(container.id, "first-again", "l-first-again"))
        await lock.wait_for_a_waiter()
        group = [
            catalog.put_artifact(blob(container.id, "k2", "l2")),
            catalog.intend_blobs("local", ["taken"]),
            catalog.forget_garbage(["new-intent"]),
            catalog.put_artifact(blob(container.id, "k3", "l3")),
        ]
        lock.release()
        await first
        results = await outcomes(group)
        assert all(isinstance(r, Exception) for r in results), results
        found = writers(url)
        assert "k2" not in found and "k3" not in found
        assert set(await intent_locators(url)) == {"taken", "new-intent"}
        # The connection was given back clean: the next writes commit.
        await catalog.intend_blobs("local", ["after"])
        await catalog.put_artifact(blob(container.id, "k4", "l4"))
        assert "after" in await intent_locators(url)
        assert (await catalog.artifact(container.id, "k4")) is not None
    finally:
        await catalog.stop()


async def intent_locators(url: str) -> list[str]:
    def read() -> list[str]:
        with psycopg.connect(url, autocommit=True) as conn:
            return [r[0] for r in conn.execute("SELECT locator FROM intents").fetchall()]

    return await threads.deferToThread(read)


@pytest_twisted.ensureDeferred
async def test_conditional_creates_in_one_group_have_exactly_one_winner(postgres: Any) -> None:
    url = postgres.fresh_database()
    catalog = await started(url)
    try:
        tenant = await catalog.ensure_tenant("t")
        container = await catalog.create_container(tenant.id, "b", "local")
        lock = WriteLock(url)
        first = catalog.put_artifact(blob(container.id, "other", "l-other"))
        await lock.wait_for_a_waiter()
        calls = [
            catalog.put_artifact(blob(container.id, "k", f"l{i}"), WriteCondition(must_not_exist=True))
            for i in range(10)
        ]
        lock.release()
        await first
        results = await outcomes(calls)
        winners = [r for r in results if not isinstance(r, Exception)]
        assert len(winners) == 1, results
        assert all(isinstance(r, PreconditionFailed) for r in results if r not in winners)
        assert (await catalog.artifact(container.id, "k")).locator == winners[0].written.locator  # type: ignore[union-attr]
        assert (await catalog.tenant_totals(tenant.id)).objects == 2
    finally:
        await catalog.stop()


@pytest_twisted.ensureDeferred
async def test_a_statement_first_prepared_after_a_refused_write_stays_prepared(postgres: Any) -> None:
    """psycopg forgets its prepared statements when it reads a ROLLBACK's answer (a refused
    write's ROLLBACK TO SAVEPOINT) and drops them on the server with the next statement it
    sends. A statement it prepared in between (an intent's executemany, always prepared) was
    dropped with them while psycopg still named it: the next group using it failed whole
    ("prepared statement ... does not exist"), a PUT got a 500 and a live writer's intent was
    left behind (found under load in the three-gateway test). One connection, so every group
    here is on the session psycopg prepared on."""
    url = postgres.fresh_database()
    catalog = PostgresCatalog(url, reactor, BOX, pool_size=1)
    await catalog.start()
    try:
        tenant = await catalog.ensure_tenant("t")
        container = await catalog.create_container(tenant.id, "b", "local")
        await catalog.put_artifact(blob(container.id, "taken", "l-taken"))
        await catalog.intend_blobs("local", ["before"])  # psycopg names a statement: it has some to forget
        lock = WriteLock(url)
        first = catalog.put_artifact(blob(container.id, "first", "l-first"))
        await lock.wait_for_a_waiter()
        group = [
            catalog.put_artifact(blob(container.id, "taken", "l2"), WriteCondition(must_not_exist=True)),
            catalog.intend_blobs("local", ["in-the-group"]),
        ]
        lock.release()
        await first
        results = await outcomes(group)
        assert isinstance(results[0], PreconditionFailed) and results[1] is None, results
        # The same statements again, in groups of their own on the same session.
        await catalog.intend_blobs("local", ["after"])
        await catalog.forget_garbage(["before", "in-the-group", "after"])
        assert await intent_locators(url) == []
    finally:
        await catalog.stop()
