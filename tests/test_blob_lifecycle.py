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

from tests.s3helpers import Chunks
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.drivers.local import LocalDriver
from vaultaire.drivers.memory import MemoryBlobWriter, MemoryDriver
from vaultaire.engine import Engine
from vaultaire.errors import DriverError, IncompleteBody
from vaultaire.model import RequestContext
from vaultaire.sealing import SecretBox


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
async def engine(tmp_path: Path) -> Any:
    catalog = SQLiteCatalog(str(tmp_path / "catalog.sqlite3"), reactor, SecretBox(os.urandom(32)))
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
    from tests.test_drivers import Collector

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
