"""A GET's reads on PostgreSQL from the reactor (catalog/postgres/reactor_reads.py).

The generation read must stay exact while reads are shared: a request waits for a read sent
after it arrived. The reads must take no thread, and a session lost under them (a restart,
an administrator's pg_terminate_backend) must cost no request: the ordinary path answers
while the reactor's connection is opened again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task, threads
from twisted.internet.defer import Deferred

from tests.test_postgres_catalog import BOX, blob
from vaultaire.catalog import inline
from vaultaire.catalog.postgres import PostgresCatalog
from vaultaire.catalog.postgres.reactor_reads import GenerationReads, ReactorConnection
from vaultaire.model import Container


class _Wire:
    """A stand-in connection: answers only when the test says, and records what was sent."""

    def __init__(self) -> None:
        self.sent: list[Deferred[list[tuple[Any, ...]]]] = []

    def query(self, sql: str, params: Sequence[Any]) -> Deferred[list[tuple[Any, ...]]]:
        d: Deferred[list[tuple[Any, ...]]] = Deferred()
        self.sent.append(d)
        return d


def test_a_generation_read_already_on_the_wire_answers_only_those_who_came_before_it() -> None:
    wire = _Wire()
    reads = GenerationReads(wire, "SELECT value FROM generation WHERE id = 0")  # type: ignore[arg-type]  # the stand-in has query()
    got: dict[str, int] = {}
    reads.read().addCallback(lambda v: got.__setitem__("first", v))
    assert len(wire.sent) == 1
    # Arrived while the first read is on the wire: it may have been answered before a change
    # this request must see, so these wait for a read of their own, and share it.
    reads.read().addCallback(lambda v: got.__setitem__("second", v))
    reads.read().addCallback(lambda v: got.__setitem__("third", v))
    assert len(wire.sent) == 1
    wire.sent[0].callback([(7,)])
    assert got == {"first": 7}
    assert len(wire.sent) == 2  # sent when the first came back
    wire.sent[1].callback([(8,)])
    assert got == {"first": 7, "second": 8, "third": 8}
    reads.read()
    assert len(wire.sent) == 3  # nothing on the wire: a read at once


@pytest_twisted.ensureDeferred
async def test_a_gets_reads_take_no_thread_and_see_every_commit(postgres: Any, monkeypatch: Any) -> None:
    url = postgres.fresh_database()
    writer, reader = PostgresCatalog(url, reactor, BOX), PostgresCatalog(url, reactor, BOX)
    await writer.start()
    await reader.start()
    try:
        container = await _bucket(writer)
        await _until_open(reader)
        hops: list[str] = []
        monkeypatch.setattr(reader._readers, "submit", lambda *a: hops.append("thread") or Deferred())
        for i in range(20):
            await writer.put_artifact(blob(container.id, "k", f"loc-{i}"))
            before = await reader.generation()
            found = await reader.artifact(container.id, "k")
            assert found is not None and found.locator == f"loc-{i}"  # the write just acknowledged
            await writer.ensure_tenant(f"t{i}")  # a change the cached reads watch
            assert await reader.generation() != before
        assert hops == []
    finally:
        await reader.stop()
        await writer.stop()


@pytest_twisted.ensureDeferred
async def test_a_session_killed_under_the_reads_costs_no_request(postgres: Any) -> None:
    url = postgres.fresh_database()
    catalog, container = await _started(url)
    try:
        await catalog.put_artifact(blob(container.id, "k", "loc"))
        await _until_open(catalog)
        for _round in range(3):
            pending = [catalog.artifact(container.id, "k") for _ in range(50)]
            pending += [catalog.generation() for _ in range(50)]
            await _kill_other_sessions(postgres, url)
            pending += [catalog.artifact(container.id, "k") for _ in range(50)]
            for d in pending:
                result = await d
                assert isinstance(result, int) or result.locator == "loc"
        await _until_open(catalog)  # and it comes back by itself
    finally:
        await catalog.stop()


async def _started(url: str) -> tuple[PostgresCatalog, Container]:
    """A started catalog on ``url``, with bucket "b"."""
    catalog = PostgresCatalog(url, reactor, BOX)
    await catalog.start()
    return catalog, await _bucket(catalog)


async def _kill_other_sessions(postgres: Any, url: str) -> None:
    """Every session on ``url`` but the one this runs on: the reactor's connection among them."""
    await threads.deferToThread(
        postgres.sql,
        url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )


async def _bucket(catalog: PostgresCatalog) -> Container:
    """Bucket "b" of tenant "t", on the local placement."""
    tenant = await catalog.ensure_tenant("t")
    return await catalog.create_container(tenant.id, "b", "local")


async def _until_open(catalog: PostgresCatalog) -> ReactorConnection:
    """Wait for the catalog's reactor connection (opened in a thread after start, or after a loss); returns it."""
    connection: ReactorConnection | None = catalog._on_reactor
    assert connection is not None
    deadline = time.monotonic() + 20
    while connection._conn is None:
        assert time.monotonic() < deadline, "the reactor's connection did not open"
        connection.open()
        await task.deferLater(reactor, 0.05, lambda: None)
    assert threading.current_thread() is threading.main_thread()
    return connection


@pytest_twisted.ensureDeferred
async def test_a_small_objects_bytes_come_with_its_version_in_one_read(postgres: Any, monkeypatch: Any) -> None:
    url = postgres.fresh_database()
    catalog, container = await _started(url)
    try:
        locator = inline.new_locator()
        await catalog.put_inline_artifact(blob(container.id, "small", locator), b"tiny bytes")
        connection = await _until_open(catalog)
        sent: list[str] = []
        query = connection.query
        monkeypatch.setattr(connection, "query", lambda sql, params: sent.append(sql) or query(sql, params))
        monkeypatch.setattr(catalog._readers, "submit", lambda *a: pytest.fail("a thread was used"))
        found = await catalog.artifact(container.id, "small")
        assert found is not None and found.locator == locator
        assert await catalog.inline_data(locator) == b"tiny bytes"
        assert len(sent) == 1
        # Asked again (a second GET, or after a HEAD that never asked): read again, still right.
        assert await catalog.inline_data(locator) == b"tiny bytes"
        assert len(sent) == 2
    finally:
        await catalog.stop()


@pytest_twisted.ensureDeferred
async def test_the_reads_are_prepared_once_per_session_and_again_after_a_loss(postgres: Any, monkeypatch: Any) -> None:
    # PostgreSQL then parses and plans a GET's reads once per session, not per GET
    # (bench/catalog_backends.py: its CPU per GET went from 144 to 44 µs).
    url = postgres.fresh_database()
    catalog, container = await _started(url)
    try:
        await catalog.put_artifact(blob(container.id, "k", "loc"))
        connection = catalog._on_reactor
        assert connection is not None
        hops: list[object] = []
        submit = catalog._readers.submit
        monkeypatch.setattr(catalog._readers, "submit", lambda *a: hops.append(a) or submit(*a))

        async def prepared() -> list[str]:
            rows = await connection.query("SELECT statement FROM pg_prepared_statements", ())
            return [row[0] for row in rows]

        for _session in range(2):
            await _until_open(catalog)
            hops.clear()
            for _ in range(3):
                found = await catalog.artifact(container.id, "k")
                assert found is not None and found.locator == "loc"
                await catalog.generation()
            statements = await prepared()
            assert len(statements) == 3  # the artifact read, the generation read, this one
            assert any("artifacts" in s for s in statements)
            # A wrong statement is its caller's error; the session goes on serving.
            with pytest.raises(Exception, match="nowhere"):
                await connection.query("SELECT 1 FROM nowhere", ())
            assert len(await prepared()) == 3
            assert hops == []  # all of it from the reactor's own session
            await _kill_other_sessions(postgres, url)
            for _ in range(200):  # until the reactor's connection has seen its loss
                if connection._conn is None:
                    break
                try:
                    await connection.query("SELECT 1", ())
                except Exception:
                    pass
                await task.deferLater(reactor, 0.01, lambda: None)
            assert connection._conn is None
    finally:
        await catalog.stop()


@pytest_twisted.ensureDeferred
async def test_a_statement_whose_table_changed_is_prepared_again(postgres: Any) -> None:
    # A migration under running gateways changes a table their prepared reads name: the read
    # that meets it fails (and goes the ordinary way), the next one is prepared anew.
    url = postgres.fresh_database()
    catalog, _container = await _started(url)
    try:
        connection = await _until_open(catalog)
        await threads.deferToThread(postgres.sql, url, "CREATE TABLE probe (id int PRIMARY KEY, x int)")
        await threads.deferToThread(postgres.sql, url, "INSERT INTO probe VALUES (1, 7)")
        read = "SELECT x FROM probe WHERE id = %s"
        assert await connection.query(read, (1,)) == [(7,)]
        await threads.deferToThread(postgres.sql, url, "ALTER TABLE probe ALTER COLUMN x TYPE text")
        with pytest.raises(Exception, match="cached plan"):
            await connection.query(read, (1,))
        assert await connection.query(read, (1,)) == [("7",)]
        assert connection._conn is not None  # the same session all along
    finally:
        await catalog.stop()


@pytest_twisted.ensureDeferred
async def test_reads_asked_while_a_batch_is_on_the_wire_go_out_together_in_the_next(postgres: Any) -> None:
    # One write, one Sync and one answer for many GETs' reads: what made PostgreSQL's GETs
    # cost the gateway ~110 µs more than SQLite's when each read went out alone.
    url = postgres.fresh_database()
    catalog, container = await _started(url)
    try:
        for i in range(20):
            await catalog.put_artifact(blob(container.id, f"k{i}", f"loc-{i}"))
        connection = await _until_open(catalog)
        before = connection.batches
        first = catalog.artifact(container.id, "k0")  # on the wire alone
        rest = [catalog.artifact(container.id, f"k{i}") for i in range(1, 20)]
        rest += [catalog.generation() for _ in range(5)]
        found = [await d for d in [first, *rest]]
        assert [a.locator for a in found[:20]] == [f"loc-{i}" for i in range(20)]
        assert all(isinstance(g, int) for g in found[20:])
        # The first alone; then the 19 reads and one generation read; then one more generation
        # read for the four asked while the first was already waiting (see GenerationReads).
        assert connection.batches - before == 3
    finally:
        await catalog.stop()


@pytest_twisted.ensureDeferred
async def test_a_statement_that_fails_in_a_batch_fails_alone(postgres: Any) -> None:
    # The server skips what follows a failed statement up to the batch's end: those are
    # sent again, and each caller hears only its own statement's answer.
    url = postgres.fresh_database()
    catalog, _container = await _started(url)
    try:
        connection = await _until_open(catalog)
        blocker = connection.query("SELECT pg_sleep(0.2)", ())  # the next ones wait and go out together
        divide = "SELECT 10 / %s"
        asked = [
            connection.query(divide, (2,)),
            connection.query(divide, (0,)),  # fails when it runs
            connection.query(divide, (5,)),
            connection.query("SELECT 1 FROM nowhere", ()),  # fails when it is prepared
            connection.query(divide, (1,)),
        ]
        await blocker
        answers: list[object] = []
        for d in asked:
            try:
                answers.append(await d)
            except Exception as e:
                answers.append(str(e))
        assert answers[0] == [(5,)] and answers[2] == [(2,)] and answers[4] == [(10,)]
        assert isinstance(answers[1], str) and "division by zero" in answers[1]
        assert isinstance(answers[3], str) and "nowhere" in answers[3]
        assert await connection.query(divide, (3,)) == [(3,)]  # the session goes on serving
    finally:
        await catalog.stop()
