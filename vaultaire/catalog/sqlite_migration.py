"""Moving a container's blobs to another placement: a mixin of SQLiteCatalog."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from vaultaire.catalog import blobs, versions
from vaultaire.catalog.rows import ARTIFACT_COLUMNS as _ARTIFACT_COLUMNS
from vaultaire.catalog.rows import artifact_row as _artifact
from vaultaire.catalog.sqlite_statements import SQLiteStatements
from vaultaire.catalog.sqlite_uploads import _PART_COLUMNS, _part
from vaultaire.errors import NoSuchContainer
from vaultaire.model import Artifact, Part


class MigrationStatements(SQLiteStatements):
    """Switch a container's placement, find what is still elsewhere, and swap in moved blobs."""

    if TYPE_CHECKING:

        def _queue_garbage(
            self, db: sqlite3.Connection, container_id: int, locators: Iterable[str], placement: str | None = None
        ) -> None: ...

    def begin_migration(self, container_id: int, target: str) -> Deferred[str]:
        """Point the container's new writes at ``target``; returns the placement it had.

        In the same transaction, every artifact and part that does not yet say
        where its blobs are gets the old placement written down, so that after
        the switch nothing is read from the wrong driver.
        """

        def work(db: sqlite3.Connection) -> str:
            row = db.execute("SELECT placement FROM containers WHERE id = ?", (container_id,)).fetchone()
            if row is None:
                raise NoSuchContainer(str(container_id))
            old: str = row[0]
            for table in ("artifacts", "versions"):
                db.execute(
                    f"UPDATE {table} SET metadata = json_set(metadata, '$.placement', ?)"
                    " WHERE container_id = ? AND coalesce(json_extract(metadata, '$.placement'), '') = ''",
                    (old, container_id),
                )
            db.execute(
                "UPDATE parts SET placement = ? WHERE coalesce(placement, '') = ''"
                " AND upload_id IN (SELECT id FROM uploads WHERE container_id = ?)",
                (old, container_id),
            )
            db.execute("UPDATE containers SET placement = ? WHERE id = ?", (target, container_id))
            return old

        return self._write(work)

    def misplaced_artifacts(
        self, container_id: int, target: str, after: str | None, limit: int
    ) -> Deferred[list[Artifact]]:
        """Artifacts whose blobs are not on ``target``, in key order after ``after``."""

        def work() -> list[Artifact]:
            rows = self._db().execute(
                f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE container_id = ? AND key > ?"
                " AND coalesce(json_extract(metadata, '$.placement'), '') != ? ORDER BY key LIMIT ?",
                (container_id, (after or "").encode("utf-8"), target, limit),
            )
            return [_artifact(r) for r in rows]

        return self._run(work)

    def misplaced_versions(
        self, container_id: int, target: str, after: tuple[str, str] | None, limit: int
    ) -> Deferred[list[Artifact]]:
        """Noncurrent data versions whose blobs are not on ``target``, by (key, version id) after ``after``."""
        return self._run(lambda: versions.misplaced(self._db(), container_id, target, after, limit))

    def move_artifact(self, old: Artifact, moved: Artifact, *, intended: bool = False) -> Deferred[bool]:
        """Swap in ``moved``'s blobs (only those: the version's other attributes stay as they are
        now) if that version still holds exactly ``old``'s blobs; the old blobs are queued as
        garbage. False if its bytes changed meanwhile."""
        return self._write(lambda db: versions.replace_blobs(db, old, moved, self._clock(), intended))

    def misplaced_parts(self, container_id: int, target: str, limit: int) -> Deferred[list[Part]]:
        """Parts of the container's unfinished uploads whose blobs are not on ``target``."""

        def work() -> list[Part]:
            rows = self._db().execute(
                f"SELECT {_PART_COLUMNS} FROM parts WHERE coalesce(placement, '') != ?"
                " AND upload_id IN (SELECT id FROM uploads WHERE container_id = ?) LIMIT ?",
                (target, container_id, limit),
            )
            return [_part(r) for r in rows]

        return self._run(work)

    def move_part(self, container_id: int, old: Part, moved: Part, *, intended: bool = False) -> Deferred[bool]:
        """Like ``move_artifact``, for a part of an unfinished upload."""

        def work(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT locator FROM parts WHERE upload_id = ? AND number = ?", (old.upload_id, old.number)
            ).fetchone()
            if row is None or row[0] != old.locator:
                return False
            self._queue_garbage(db, container_id, [old.locator], old.placement)
            db.execute(
                "UPDATE parts SET locator = ?, placement = ? WHERE upload_id = ? AND number = ?",
                (moved.locator, moved.placement, old.upload_id, old.number),
            )
            blobs.settle(db, [moved.locator], claim=intended)
            return True

        return self._write(work)

    def queue_garbage(self, placement: str, locators: list[str]) -> Deferred[None]:
        """Queue blobs no row references (a failed write's leftovers) for the next sweep;
        their intents are settled in the same transaction."""
        return self._write(lambda db: blobs.queue(db, placement, locators, self._clock()))

    def withdraw_intents(self, placement: str, locators: list[str]) -> Deferred[list[str]]:
        """A failed write's blobs still intended become garbage (returned); the rest were
        referenced by a commit whose answer was lost, and stay."""
        return self._write(lambda db: blobs.withdraw(db, placement, locators, self._clock()))

    def forget_garbage(self, locators: list[str]) -> Deferred[None]:
        """The blobs are deleted: their garbage rows and intents go."""
        return self._write_unrefusable(lambda db: blobs.forget(db, locators))
