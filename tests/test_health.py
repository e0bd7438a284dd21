"""Health that means something, and writes refused below the free-space reserve (in process).

The states: "ok"; "degraded" while the node still serves (a mirror member
down, a disk below its write reserve) -> HTTP 200; "failing" (the catalog
or the default placement errs) -> 503. A write that would take a disk below
its reserve is refused with 507 before its body is read.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred, fail

from tests.s3helpers import Server, error_code, raw_exchange, signed_head
from vaultaire.diskspace import GIB, reserve_for
from vaultaire.drivers.local import LocalDriver
from vaultaire.drivers.memory import MemoryDriver
from vaultaire.drivers.mirror import MirrorDriver
from vaultaire.engine.space import SpaceGuard
from vaultaire.errors import DriverUnavailable, InsufficientStorage
from vaultaire.ops.site import health_document

HUGE = 2**62  # a reserve no disk can honour: every write is below it


class Unplugged(MemoryDriver):
    """A mirror member that can be switched off."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.down = False

    def health(self) -> Deferred[dict[str, object]]:
        return fail(DriverUnavailable("unplugged")) if self.down else super().health()


@pytest_twisted.async_yield_fixture
async def server(tmp_path: Any) -> AsyncIterator[Server]:
    a, b = Unplugged("a"), Unplugged("b")
    s = Server(str(tmp_path), placements={"pair": MirrorDriver("pair", [a, b], reactor)})
    s.members = (a, b)  # type: ignore[attr-defined]
    await s.start("bucket")
    yield s
    await s.stop()


def served(report: dict[str, object]) -> tuple[int, dict[str, Any]]:
    code, body = health_document("1.0", 0.0, lambda: report)
    return code, json.loads(body)


@pytest_twisted.ensureDeferred
async def test_all_well_is_ok_and_the_catalog_is_probed(server: Server) -> None:
    report = await server.engine.health()
    assert report["status"] == "ok"
    catalog = report["catalog"]
    assert isinstance(catalog, dict) and catalog["status"] == "ok"
    assert isinstance(catalog["free_bytes"], int) and catalog["free_bytes"] > 0
    assert served(report)[0] == 200


@pytest_twisted.ensureDeferred
async def test_a_mirror_member_down_is_degraded_but_served(server: Server) -> None:
    server.members[1].down = True  # type: ignore[attr-defined]
    report = await server.engine.health()
    assert report["status"] == "degraded"
    assert report["drivers"]["pair"]["status"] == "degraded"  # type: ignore[index]
    code, doc = served(report)
    assert (code, doc["status"]) == (200, "degraded")  # a load balancer keeps the node


@pytest_twisted.ensureDeferred
async def test_a_broken_catalog_is_failing(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> sqlite3.Connection:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(server.catalog, "_db", broken)
    report = await server.engine.health()
    assert report["status"] == "failing"
    assert report["catalog"]["status"] == "error"  # type: ignore[index]
    code, doc = served(report)
    assert code == 503 and "disk I/O error" in doc["catalog"]["error"]


@pytest_twisted.ensureDeferred
async def test_a_local_disk_below_its_reserve_is_degraded(server: Server) -> None:
    driver = server.driver
    assert isinstance(driver, LocalDriver)
    driver.reserve = HUGE
    health = await driver.health()
    assert health["status"] == "degraded" and health["reserve_bytes"] == HUGE
    assert "below the reserve" in str(health["reason"])
    report = await server.engine.health()
    assert report["status"] == "degraded" and served(report)[0] == 200
    driver.reserve = 0
    assert (await driver.health())["status"] == "ok"


def test_the_default_reserve_is_one_percent_up_to_one_gib() -> None:
    assert reserve_for(64 * 2**20, -1) == 64 * 2**20 // 100
    assert reserve_for(10 * 2**40, -1) == GIB
    assert reserve_for(10 * 2**40, 0) == 0
    assert reserve_for(10 * 2**40, 12345) == 12345


def guard(server: Server, reserve: int) -> None:
    run = lambda fn, *args: threads.deferToThread(fn, *args)  # noqa: E731
    server.engine.space = SpaceGuard(server.data, server.engine.drivers, reserve, run)


@pytest_twisted.ensureDeferred
async def test_below_the_reserve_a_put_is_refused_before_its_body(server: Server) -> None:
    guard(server, HUGE)
    port = server.port.getHost().port
    head = signed_head(server, "PUT", "/bucket/big", 10 * 2**20, {"expect": "100-continue"})
    got = await threads.deferToThread(raw_exchange, port, head, [], True)
    assert got.startswith(b"HTTP/1.1 507"), got[:200]  # not 100 Continue: the body is never sent
    assert b"<Code>InsufficientStorage</Code>" in got and b"free-space reserve" in got
    # Reads, listings and deletes go on.
    guard(server, 0)
    assert (await server.request("PUT", "/bucket/kept", b"kept")).code == 200
    guard(server, HUGE)
    r = await server.request("PUT", "/bucket/small", b"x")
    assert (r.code, error_code(r)) == (507, "InsufficientStorage")
    r = await server.request("POST", "/bucket/up", query="uploads")
    assert (r.code, error_code(r)) == (507, "InsufficientStorage")
    assert (await server.request("GET", "/bucket/kept")).body == b"kept"
    assert (await server.request("HEAD", "/bucket/kept")).code == 200
    assert b"<Key>kept</Key>" in (await server.request("GET", "/bucket")).body
    assert (await server.request("DELETE", "/bucket/kept")).code == 204
    assert server.blob_files() == []  # the delete freed the blob at once


@pytest_twisted.ensureDeferred
async def test_a_write_that_fits_above_the_reserve_is_taken(server: Server) -> None:
    free = os.statvfs(server.data).f_bavail * os.statvfs(server.data).f_frsize
    guard(server, free - 2**20)  # room for 1 MiB, give or take what others write meanwhile
    r = await server.request("PUT", "/bucket/fits", b"x" * 1000)
    assert r.code == 200
    port = server.port.getHost().port
    head = signed_head(server, "PUT", "/bucket/too-big", 64 * 2**20, {"expect": "100-continue"})
    got = await threads.deferToThread(raw_exchange, port, head, [], True)
    assert got.startswith(b"HTTP/1.1 507"), got[:200]  # the announced size counts


def test_a_full_disk_postpones_metered_usage_in_one_line() -> None:
    from twisted.logger import LogLevel, globalLogPublisher

    from vaultaire.model import Tenant
    from vaultaire.ops.metering import Meter
    from vaultaire.ops.metrics import Metrics

    written: list[object] = []
    full = [True]

    def sink(rows: list[Any]) -> Deferred[None]:
        if full[0]:
            return fail(InsufficientStorage("The server's disk is full"))
        written.extend(rows)
        return Deferred.fromCoroutine(_nothing())

    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        meter = Meter(sink, Metrics(), lambda: 7200.0)
        tenant = Tenant(id="t1", name="t", status="active", created=0.0)
        meter.record(tenant, "bucket", "GET", "GetObject", 10, 0)
        meter.flush()
        full[0] = False
        meter.flush()
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert len(written) == 1  # kept, then written
    mine = [e for e in events if "metered usage" in str(e.get("log_format", ""))]
    assert [e["log_level"] for e in mine] == [LogLevel.warn] and "log_failure" not in mine[0]


async def _nothing() -> None:
    return None
