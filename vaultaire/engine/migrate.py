"""Moving a container's blobs to another placement while it stays readable and writable.

The order makes it safe and resumable:

1. ``begin_migration`` switches the container's placement (new writes go to
   the target from now on) and, in the same transaction, writes the old
   placement down on every artifact and part that did not say where it is.
2. Parts of unfinished uploads, then artifacts (current versions, then
   noncurrent ones), whose placement is not the target are copied, blob by
   blob, to fresh locators on the target. Each is swapped in by a
   compare-and-swap on the catalog row: if the version was overwritten or
   deleted meanwhile, the copy is dropped instead and the newer row (already
   on the target) wins. The old blobs are queued as
   garbage in the swap's transaction and freed by the sweep once reads that
   may still stream them are over (the engine's grace period).
3. Passes repeat until one finds nothing left to move.

A version a lifecycle Transition moved (its storage class names the placement it is on)
is not the container's to move: it stays where its rule put it, in its storage class, and
is counted as kept. Migrating the container changes where its other bytes live, not what a
rule decided for those.

Readers find each artifact's blobs through its own placement, so a read
never looks in the wrong place; one that opened the old blob just before the
swap keeps reading it (the engine retries a read whose blob vanished between
the catalog lookup and the open). Interrupted at any point, running it again
resumes: the catalog says what is still where. Each copy is recorded as a
write intent before its first byte, so a crash between a copy and its swap
leaves an intent the sweep turns into garbage: nothing leaks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from attrs import define, evolve
from twisted.logger import Logger

from vaultaire.drivers.copy import copy_blob
from vaultaire.encryption.packages import sealed_size
from vaultaire.engine.engine import Engine
from vaultaire.errors import DriverError, NoSuchPlacement, NoSuchUpload
from vaultaire.model import Artifact, Container, Part

log = Logger()


@define
class MigrationReport:
    container: str
    source: str  # the placement the container had when this run began
    target: str
    artifacts_moved: int = 0
    parts_moved: int = 0
    bytes_moved: int = 0
    skipped: int = 0  # changed by a client while being copied: the client's version won
    passes: int = 0
    kept: int = 0  # transitioned by lifecycle to another placement: left there (last pass's count)


def _fresh_locator(container: Container) -> str:
    blob = uuid.uuid4().hex
    return f"{container.id}/{blob[:2]}/{blob}"


async def migrate(
    engine: Engine,
    container: Container,
    target: str,
    *,
    batch: int = 100,
    progress: Callable[[MigrationReport], None] = lambda report: None,
) -> MigrationReport:
    """Move every blob of ``container`` to placement ``target``; see the module's docstring."""
    if target not in engine.drivers:
        raise NoSuchPlacement(target)
    source = await engine.catalog.begin_migration(container.id, target)
    report = MigrationReport(container.name, source, target)
    while True:
        report.passes += 1
        report.kept = 0  # counted again by each pass
        moved_before = report.artifacts_moved + report.parts_moved + report.skipped
        await _move_parts(engine, container, target, batch, report, progress)
        await _move_every_version(engine, container, target, batch, report, progress)
        if report.artifacts_moved + report.parts_moved + report.skipped == moved_before:
            break
    return report


def _stored(plain_size: int, sealed: bool) -> int:
    """A blob's size on its driver: an encrypted one holds its packages' tags too (copied as is)."""
    return sealed_size(plain_size) if sealed else plain_size


async def _copy(
    engine: Engine, container: Container, placement: str, target: str, locator: str, size: int, copied: list[str]
) -> str:
    """Copy one blob to a fresh locator on ``target``, listed in ``copied`` once its intent is recorded."""
    new = _fresh_locator(container)
    await engine.blobs.intend(target, [new])
    copied.append(new)
    source = engine.source(placement or container.placement, locator)
    await copy_blob(source, engine.placement(target), locator, size, new)
    return new


async def _move_every_version(
    engine: Engine,
    container: Container,
    target: str,
    batch: int,
    report: MigrationReport,
    progress: Callable[[MigrationReport], None],
) -> None:
    """Current versions, then noncurrent ones (stored bytes alike), page by page."""
    after_key: str | None = None
    while True:
        page = await engine.catalog.misplaced_artifacts(container.id, target, after_key, batch)
        await _move_page(engine, container, target, page, report, progress)
        if len(page) < batch:
            break
        after_key = page[-1].key
    after_version: tuple[str, str] | None = None
    while True:
        page = await engine.catalog.misplaced_versions(container.id, target, after_version, batch)
        await _move_page(engine, container, target, page, report, progress)
        if len(page) < batch:
            return
        after_version = (page[-1].key, page[-1].version_id)


async def _move_page(
    engine: Engine,
    container: Container,
    target: str,
    page: list[Artifact],
    report: MigrationReport,
    progress: Callable[[MigrationReport], None],
) -> None:
    for artifact in page:
        await _move_artifact(engine, container, target, artifact, report)
        progress(report)


def transitioned(engine: Engine, artifact: Artifact) -> bool:
    """Moved by a lifecycle Transition: its storage class names a placement, the one it is on."""
    return artifact.storage_class == artifact.placement and artifact.placement in engine.drivers


async def _move_artifact(
    engine: Engine, container: Container, target: str, artifact: Artifact, report: MigrationReport
) -> None:
    if transitioned(engine, artifact):
        report.kept += 1
        return
    copied: list[str] = []
    try:
        if artifact.parts:
            parts = []
            for locator, size in artifact.parts:
                stored = _stored(size, artifact.sealing is not None)
                new_part = await _copy(engine, container, artifact.placement, target, locator, stored, copied)
                parts.append((new_part, size))
            moved = evolve(artifact, parts=tuple(parts), placement=target)
        else:
            stored = _stored(artifact.size, artifact.sealing is not None)
            new = await _copy(engine, container, artifact.placement, target, artifact.locator, stored, copied)
            moved = evolve(artifact, locator=new, placement=target)
        swapped = await engine.catalog.move_artifact(artifact, moved, intended=True)
    except DriverError:
        await engine.blobs.withdraw(target, copied)
        current = await engine.catalog.artifact(container.id, artifact.key, artifact.version_id)
        if current is not None and current.locators == artifact.locators:
            raise  # a real failure: the blob is still the artifact's
        report.skipped += 1  # overwritten or deleted while copying: its blob was freed under us
        return
    except BaseException:
        await engine.blobs.withdraw(target, copied)
        raise
    if swapped:
        report.artifacts_moved += 1
        report.bytes_moved += artifact.size
        await engine.release(artifact, container)  # the old blobs, queued by the swap
    else:
        report.skipped += 1
        await engine.blobs.withdraw(target, copied)


async def _move_parts(
    engine: Engine,
    container: Container,
    target: str,
    batch: int,
    report: MigrationReport,
    progress: Callable[[MigrationReport], None],
) -> None:
    while True:
        page = await engine.catalog.misplaced_parts(container.id, target, batch)
        for part in page:
            await _move_part(engine, container, target, part, report)
            progress(report)
        if len(page) < batch:
            return


async def _move_part(engine: Engine, container: Container, target: str, part: Part, report: MigrationReport) -> None:
    copied: list[str] = []
    try:
        stored = _stored(part.size, bool(part.sealed_key))
        new = await _copy(engine, container, part.placement, target, part.locator, stored, copied)
    except DriverError:
        await engine.blobs.withdraw(target, copied)
        if await _part_unchanged(engine, container, part):
            raise
        report.skipped += 1  # re-sent, completed or aborted while copying
        return
    try:
        moved = evolve(part, locator=new, placement=target)
        swapped = await engine.catalog.move_part(container.id, part, moved, intended=True)
    except BaseException:
        await engine.blobs.withdraw(target, [new])
        raise
    if swapped:
        report.parts_moved += 1
        report.bytes_moved += part.size
        # No reader streams a part of an unfinished upload: the old blob can go now.
        await engine.discard(part.placement or container.placement, [part.locator])
    else:
        report.skipped += 1  # re-sent, completed or aborted meanwhile
        await engine.blobs.withdraw(target, [new])


async def _part_unchanged(engine: Engine, container: Container, part: Part) -> bool:
    try:
        _, found = await engine.catalog.parts(container.id, part.upload_id, part.number - 1, 1)
    except NoSuchUpload:
        return False
    return bool(found) and found[0].number == part.number and found[0].locator == part.locator
