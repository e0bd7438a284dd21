"""A commit whose answer is lost: the write fails for its client, yet its row may be there.

PostgreSQL stopped (or a network cut) between a transaction's COMMIT and its answer:
the commit happened, the caller saw an error. Found in CI: a PUT's commit took effect,
its 503 dropped the blob, and the catalog was left naming a blob that was gone. So a
failed write's blob is deleted only once the catalog confirms that no commit referenced
it (its intent is still recorded); while the catalog cannot answer, nothing is deleted.

In process, on both catalogs: the engine with two local placements, the catalog's commit
wrapped to lose its answer.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from attrs import evolve
from twisted.internet import reactor

from tests.s3helpers import Chunks
from tests.test_blob_lifecycle import catalog_rows, read_all
from vaultaire.drivers.local import LocalDriver
from vaultaire.engine import Engine
from vaultaire.engine.migrate import migrate
from vaultaire.errors import CatalogUnavailable
from vaultaire.model import Container, RequestContext


@pytest_twisted.async_yield_fixture
async def engine(tmp_path: Path, catalog_factory: Any) -> Any:
    catalog = catalog_factory()  # on each backend
    drivers: dict[str, Any] = {
        "local": LocalDriver(str(tmp_path / "blobs"), reactor),
        "cold": LocalDriver(str(tmp_path / "cold"), reactor),
    }
    e = Engine(catalog, drivers, reactor, default_placement="local")
    await e.start()
    e.min_part_size = 1
    e.test_ctx = RequestContext("test", await catalog.ensure_tenant("t"))  # type: ignore[attr-defined]
    e.test_root = tmp_path  # type: ignore[attr-defined]
    yield e
    await e.stop()


def lose_the_answer(monkeypatch: pytest.MonkeyPatch, engine: Engine, method: str, *, commit: bool = True) -> None:
    """``method`` commits (or, with ``commit=False``, does nothing), then fails as an outage does."""
    real = getattr(engine.catalog, method)

    async def answer_lost(*args: Any, **kwargs: Any) -> Any:
        if commit:
            await real(*args, **kwargs)
        raise CatalogUnavailable("the connection was lost before the answer")

    monkeypatch.setattr(engine.catalog, method, answer_lost)


async def answer_lost(monkeypatch: pytest.MonkeyPatch, engine: Engine, method: str, action: Awaitable[Any]) -> None:
    """``action`` (not yet started) fails, its catalog ``method`` having committed and lost its answer."""
    lose_the_answer(monkeypatch, engine, method)
    with pytest.raises(CatalogUnavailable):
        await action
    monkeypatch.undo()


def still_down(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    """The catalog cannot say which intents remain (the outage goes on)."""

    async def down(placement: str, locators: list[str]) -> list[str]:
        raise CatalogUnavailable("still down")

    monkeypatch.setattr(engine.catalog, "withdraw_intents", down)


async def failing_put(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    container: Container,
    key: str,
    body: bytes,
    *,
    committed: bool,
    stays_down: bool = False,
) -> None:
    """A PUT whose commit fails as an outage does, after it happened (``committed``) or before;
    with ``stays_down``, the catalog cannot answer the withdrawal either."""
    lose_the_answer(monkeypatch, engine, "put_artifact", commit=committed)
    if stays_down:
        still_down(monkeypatch, engine)
    with pytest.raises(CatalogUnavailable):
        await engine.put(engine.test_ctx, container, key, Chunks(body), content_type="x")  # type: ignore[attr-defined]
    monkeypatch.undo()


def blob_files(engine: Engine, placement: str = "blobs") -> list[str]:
    root: Path = engine.test_root / placement  # type: ignore[attr-defined]
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".staging" not in p.parts)


async def intents(engine: Engine) -> int:
    return int((await catalog_rows(engine, "SELECT COUNT(*) FROM intents"))[0][0])


@pytest_twisted.ensureDeferred
async def test_a_put_whose_commit_happened_keeps_its_blob_though_its_answer_was_lost(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = await engine.create_container(engine.test_ctx, "c", "local")  # type: ignore[attr-defined]
    await failing_put(engine, monkeypatch, container, "k", b"committed", committed=True)
    # The client saw a failure, but the key names the new blob: it must be there, whole.
    assert await read_all(engine, container, "k") == b"committed"
    assert len(blob_files(engine)) == 1 and await intents(engine) == 0
    await engine.blobs.retry_pending()
    assert await read_all(engine, container, "k") == b"committed"


@pytest_twisted.ensureDeferred
async def test_while_the_catalog_cannot_answer_a_failed_puts_blob_is_kept_then_decided(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = await engine.create_container(engine.test_ctx, "c", "local")  # type: ignore[attr-defined]
    # One commit happened (its answer lost), one did not; the catalog stays down after both.
    await failing_put(engine, monkeypatch, container, "committed", b"kept", committed=True, stays_down=True)
    await failing_put(engine, monkeypatch, container, "refused", b"dropped", committed=False, stays_down=True)
    # Nothing deleted while nobody can say which blob a row names.
    assert len(blob_files(engine)) == 2 and sum(map(len, engine.blobs.undecided.values())) == 2
    monkeypatch.undo()
    assert await engine.blobs.retry_pending() == 1  # the catalog is back: the periodic retry decides
    assert engine.blobs.undecided == {} and engine.blobs.pending == {}
    assert await read_all(engine, container, "committed") == b"kept"
    assert len(blob_files(engine)) == 1 and await intents(engine) == 0
    assert await engine.catalog.garbage(10) == []


@pytest_twisted.ensureDeferred
async def test_a_part_whose_commit_happened_keeps_its_blob_though_its_answer_was_lost(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = engine.test_ctx  # type: ignore[attr-defined]
    container = await engine.create_container(ctx, "c", "local")
    upload = await engine.create_upload(ctx, container, "k", content_type="x")
    await answer_lost(monkeypatch, engine, "put_part", engine.put_part(ctx, container, upload.id, 1, Chunks(b"one")))
    # The client retries nothing: the part it was told failed is listed, and completes.
    _, parts = await engine.catalog.parts(container.id, upload.id, 0, 10)
    await engine.complete_upload(ctx, container, upload.id, [(1, parts[0].md5)])
    assert await read_all(engine, container, "k") == b"one"
    assert await intents(engine) == 0


@pytest_twisted.ensureDeferred
async def test_a_migration_swap_that_happened_keeps_the_copy_though_its_answer_was_lost(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = engine.test_ctx  # type: ignore[attr-defined]
    container = await engine.create_container(ctx, "c", "local")
    await engine.put(ctx, container, "k", Chunks(b"moving"), content_type="x")
    await answer_lost(monkeypatch, engine, "move_artifact", migrate(engine, container, "cold"))
    # The swap took effect: the key reads from its copy on the new placement.
    assert await read_all(engine, container, "k") == b"moving"
    assert len(blob_files(engine, "cold")) == 1 and await intents(engine) == 0


# -- the other way round: a commit that arrives after its write was withdrawn is refused


@pytest_twisted.ensureDeferred
async def test_a_commit_arriving_after_its_blob_was_withdrawn_is_refused(engine: Engine) -> None:
    """A session cut from its gateway may deliver its write to PostgreSQL late, after the write
    was withdrawn and its blob deleted: that commit must not make a key name the deleted blob."""
    from vaultaire.errors import BlobWithdrawn
    from vaultaire.model import Artifact, Part

    ctx = engine.test_ctx  # type: ignore[attr-defined]
    container = await engine.create_container(ctx, "c", "local")
    catalog = engine.catalog
    upload = await engine.create_upload(ctx, container, "multi", content_type="x")
    await engine.put(ctx, container, "moving", Chunks(b"old"), content_type="x")
    moving = await catalog.artifact(container.id, "moving")
    assert moving is not None
    late = ["c/aa/late-object", "c/aa/late-part", "c/aa/late-copy"]
    await catalog.intend_blobs("local", late)
    assert sorted(await catalog.withdraw_intents("local", late)) == sorted(late)  # the writes failed
    with pytest.raises(BlobWithdrawn):
        await catalog.put_artifact(Artifact(container.id, "k", late[0], 3, "0" * 32, 1.0), intended=True)
    with pytest.raises(BlobWithdrawn):
        await catalog.put_part(container.id, Part(upload.id, 1, late[1], 3, "0" * 32, 1.0), intended=True)
    with pytest.raises(BlobWithdrawn):
        await catalog.move_artifact(moving, evolve(moving, locator=late[2]), intended=True)
    # Refused whole: nothing names the withdrawn blobs, which stay garbage for the sweep.
    assert await catalog.artifact(container.id, "k") is None
    assert (await catalog.parts(container.id, upload.id, 0, 10))[1] == []
    assert await read_all(engine, container, "moving") == b"old"
    assert sorted(loc for _, loc in await catalog.garbage(10)) == sorted(late)


@pytest_twisted.ensureDeferred
async def test_a_refused_claim_fails_only_its_own_write(engine: Engine) -> None:
    """On PostgreSQL, writes that queue together share one transaction (the group commit):
    the refusal rolls back its own write, never a neighbour's."""
    from twisted.internet import defer

    from vaultaire.errors import BlobWithdrawn
    from vaultaire.model import Artifact

    ctx = engine.test_ctx  # type: ignore[attr-defined]
    container = await engine.create_container(ctx, "c", "local")
    catalog = engine.catalog
    locators = [f"c/aa/blob-{i}" for i in range(6)]
    await catalog.intend_blobs("local", locators)
    await catalog.withdraw_intents("local", locators[2:3])
    results = await defer.DeferredList(
        [
            catalog.put_artifact(Artifact(container.id, f"k{i}", loc, 1, "0" * 32, 1.0), intended=True)
            for i, loc in enumerate(locators)
        ],
        consumeErrors=True,
    )
    assert [ok for ok, _ in results] == [True, True, False, True, True, True]
    assert results[2][1].check(BlobWithdrawn)
    assert [await catalog.artifact(container.id, f"k{i}") is not None for i in range(6)] == [
        True,
        True,
        False,
        True,
        True,
        True,
    ]
    assert await intents(engine) == 0
