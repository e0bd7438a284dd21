"""Mirror and failover placements over member drivers that can be switched off."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail

from tests.driverio import put, read
from tests.s3helpers import later
from vaultaire.drivers.failover import FailoverDriver
from vaultaire.drivers.memory import MemoryDriver
from vaultaire.drivers.mirror import MirrorDriver
from vaultaire.errors import DriverError, DriverUnavailable


class Switchable(MemoryDriver):
    """A memory driver that answers DriverUnavailable to everything while ``down``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.down = False

    def _gone(self) -> Deferred[Any]:
        return fail(DriverUnavailable(f"{self.name} is down"))

    def open_writer(self, locator: str, size_hint: int | None = None) -> Any:
        writer = super().open_writer(locator, size_hint)
        driver = self

        class Writer:
            def write(self, data: bytes) -> Deferred[None]:
                return driver._gone() if driver.down else writer.write(data)

            def commit(self) -> Deferred[None]:
                return driver._gone() if driver.down else writer.commit()

            def abort(self) -> Deferred[None]:
                return writer.abort()

        return Writer()

    def open_reader(self, locator: str, start: int, end: int) -> Deferred[Any]:
        return self._gone() if self.down else super().open_reader(locator, start, end)

    def delete(self, locator: str) -> Deferred[None]:
        return self._gone() if self.down else super().delete(locator)

    def stat(self, locator: str) -> Deferred[int | None]:
        return self._gone() if self.down else super().stat(locator)

    def health(self) -> Deferred[dict[str, object]]:
        return self._gone() if self.down else super().health()


# -- mirror


@pytest.fixture
def mirror() -> tuple[MirrorDriver, Switchable, Switchable]:
    a, b = Switchable("a"), Switchable("b")
    return MirrorDriver("m", [a, b], reactor), a, b


@pytest_twisted.ensureDeferred
async def test_mirror_writes_every_member_and_reads_from_a_healthy_one(mirror):
    m, a, b = mirror
    await put(m, "1/aa/x", b"mirrored bytes", 14)
    assert a.blobs["1/aa/x"] == b.blobs["1/aa/x"] == b"mirrored bytes"
    a.down = True
    assert await read(m, "1/aa/x", 0, 13) == b"mirrored bytes"
    assert (await m.health())["status"] == "degraded"
    # a is now last in line: the next read goes straight to b
    assert await read(m, "1/aa/x", 9, 13) == b"bytes"


@pytest_twisted.ensureDeferred
async def test_mirror_write_is_refused_unless_every_member_commits_and_leaves_nothing(mirror):
    m, a, b = mirror
    b.down = True
    writer = m.open_writer("1/aa/y", 4)
    with pytest.raises(DriverUnavailable):
        await writer.write(b"half")
    # The abort cannot confirm b holds nothing, and says so (the engine then queues the locator).
    with pytest.raises(DriverError, match="may remain on b"):
        await writer.abort()
    assert "1/aa/y" not in a.blobs and "1/aa/y" not in b.blobs

    # b fails only at commit: a's committed copy is removed by the abort
    writer = m.open_writer("1/aa/z", 4)
    b.down = False
    await writer.write(b"half")
    b.down = True
    with pytest.raises(DriverUnavailable):
        await writer.commit()
    b.down = False
    await writer.abort()
    assert "1/aa/z" not in a.blobs and "1/aa/z" not in b.blobs


@pytest_twisted.ensureDeferred
async def test_mirror_repairs_a_missing_or_short_replica_on_read(mirror):
    m, a, b = mirror
    await put(m, "1/bb/x", b"0123456789", 10)
    del a.blobs["1/bb/x"]  # lost on the first member
    assert await read(m, "1/bb/x", 0, 9) == b"0123456789"
    for _ in range(50):
        if a.blobs.get("1/bb/x") == b"0123456789":
            break
        await later(0.01)
    assert a.blobs["1/bb/x"] == b"0123456789"
    assert m.repairs == 1


@pytest_twisted.ensureDeferred
async def test_mirror_delete_fails_while_a_member_is_down_and_succeeds_after(mirror):
    m, a, b = mirror
    await put(m, "1/cc/x", b"x", 1)
    b.down = True
    with pytest.raises(DriverError):
        await m.delete("1/cc/x")
    b.down = False
    await m.delete("1/cc/x")
    assert "1/cc/x" not in a.blobs and "1/cc/x" not in b.blobs


# -- failover


@pytest.fixture
def failover(tmp_path) -> tuple[FailoverDriver, Switchable, Switchable]:
    a, b = Switchable("primary"), Switchable("secondary")
    return FailoverDriver("f", [a, b], reactor, str(tmp_path)), a, b


@pytest_twisted.ensureDeferred
async def test_failover_writes_to_the_secondary_while_the_primary_is_down_and_reconciles(failover):
    f, a, b = failover
    await put(f, "1/aa/before", b"on the primary", 14)
    assert "1/aa/before" in a.blobs and not b.blobs

    a.down = True
    with pytest.raises(DriverUnavailable):  # the write that finds the primary down fails (the client retries)
        await put(f, "1/aa/first", b"lost", 4)
    await put(f, "1/aa/during", b"on the secondary", 16)
    await put(f, "1/aa/deleted", b"short-lived", 11)
    assert b.blobs.keys() == {"1/aa/during", "1/aa/deleted"}
    assert await read(f, "1/aa/during", 0, 15) == b"on the secondary"
    assert sorted(await f.journal.read()) == ["1/aa/deleted", "1/aa/during"]
    del b.blobs["1/aa/deleted"]  # as if deleted while the primary was down
    health = await f.health()
    assert health["writing_to"] == "secondary" and health["awaiting_reconcile"] == 2

    a.down = False
    health = await f.health()  # a pure probe: sees the primary back, moves nothing
    assert health["primary_up"] is True and health["awaiting_reconcile"] == 2
    assert "1/aa/during" not in a.blobs and b.blobs.keys() == {"1/aa/during"}
    # The periodic upkeep (once per data directory) moves the one blob still there.
    assert await f.reconcile_if_due() == 1
    assert await f.reconcile_if_due() == 0  # nothing left to do
    assert a.blobs["1/aa/during"] == b"on the secondary"
    assert "1/aa/deleted" not in a.blobs
    assert not b.blobs
    assert await f.journal.read() == []
    assert await read(f, "1/aa/during", 0, 15) == b"on the secondary"
    health = await f.health()
    assert health["writing_to"] == "primary" and health["awaiting_reconcile"] == 0 and health["reconciled"] == 1


@pytest_twisted.ensureDeferred
async def test_failover_upkeep_waits_for_the_primary(failover):
    f, a, b = failover
    a.down = True
    f.member_failed(a, DriverUnavailable("down"))
    await put(f, "1/ee/x", b"x", 1)
    assert await f.reconcile_if_due() == 0  # the primary still answers nothing
    assert b.blobs.keys() == {"1/ee/x"} and await f.journal.read() == ["1/ee/x"]
    a.down = False
    assert await f.reconcile_if_due() == 1  # its own probe sees the primary back
    assert a.blobs["1/ee/x"] == b"x" and not b.blobs


def test_failover_journal_appends_from_other_processes_survive_a_rewrite(tmp_path):
    """Workers append while the supervisor drops reconciled entries: no append is lost."""
    import multiprocessing

    from vaultaire.drivers.failover import Journal

    journal = Journal(str(tmp_path / "f.journal"), reactor)
    journal._append("seed")
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_append_many, args=(journal.path, w, 200)) for w in range(3)]
    for w in writers:
        w.start()
    for _ in range(50):
        journal._forget({"seed"})
    for w in writers:
        w.join(60)
        assert w.exitcode == 0
    entries = journal._read()
    assert len(entries) == 600 and set(entries) == {f"{w}-{i}" for w in range(3) for i in range(200)}


def _append_many(path: str, writer: int, n: int) -> None:
    from vaultaire.drivers.failover import Journal

    journal = Journal(path, None)
    for i in range(n):
        journal._append(f"{writer}-{i}")


@pytest_twisted.ensureDeferred
async def test_failover_journal_survives_a_restart(failover, tmp_path):
    f, a, b = failover
    a.down = True
    f.member_failed(a, DriverUnavailable("down"))
    await put(f, "1/dd/x", b"x", 1)
    again = FailoverDriver("f", [a, b], reactor, str(tmp_path))
    assert await again.journal.read() == ["1/dd/x"]
    a.down = False
    assert await again.reconcile() == 1
    assert a.blobs["1/dd/x"] == b"x" and not b.blobs
