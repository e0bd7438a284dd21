"""What the lifecycle runner asks of the SQLite catalog: a mixin of SQLiteCatalog.

Kept apart from sqlite.py so the runner's statements are read (and changed) in one place.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred

from vaultaire.catalog import accounting
from vaultaire.model import Artifact, Container

T = TypeVar("T")


class LifecycleStatements:
    """Containers that have a setting, and the compare-and-delete an expiration needs."""

    if TYPE_CHECKING:
        _clock: Callable[[], float]

        def _run(self, fn: Callable[..., T], *args: Any) -> Deferred[T]: ...

        def _write(self, work: Callable[[sqlite3.Connection], T]) -> Deferred[T]: ...

        def _db(self) -> sqlite3.Connection: ...

        def _replace(self, db: sqlite3.Connection, container_id: int, key: bytes) -> Artifact | None: ...

        def _queue_garbage(
            self, db: sqlite3.Connection, container_id: int, locators: Iterable[str], placement: str | None = None
        ) -> None: ...

    def containers_with_setting(self, name: str, after_id: int, limit: int) -> Deferred[list[tuple[Container, str]]]:
        def work() -> list[tuple[Container, str]]:
            rows = self._db().execute(
                "SELECT c.id, c.tenant_id, c.name, c.placement, c.created, s.value FROM container_settings s"
                " JOIN containers c ON c.id = s.container_id WHERE s.name = ? AND c.id > ? ORDER BY c.id LIMIT ?",
                (name, after_id, limit),
            )
            return [
                (Container(id=r[0], tenant_id=r[1], name=r[2], placement=r[3], created=r[4]), str(r[5])) for r in rows
            ]

        return self._run(work)

    def expire_artifact(self, old: Artifact) -> Deferred[Artifact | None]:
        """Delete the key if it still holds exactly ``old``; the removed artifact, or None."""

        def work(db: sqlite3.Connection) -> Artifact | None:
            raw = old.key.encode("utf-8")
            current = self._replace_if(db, old, raw)
            if current is None:
                return None
            db.execute("DELETE FROM artifacts WHERE container_id = ? AND key = ?", (old.container_id, raw))
            accounting.account(db, old.container_id, -current.size, -1, self._clock())
            return current

        return self._write(work)

    def _replace_if(self, db: sqlite3.Connection, old: Artifact, raw: bytes) -> Artifact | None:
        """The key's artifact, its blobs queued as garbage, if it is still exactly ``old`` (same
        blobs, same time); None, changing nothing, if a client wrote or deleted it meanwhile."""
        savepoint = "lifecycle_expire"
        db.execute(f"SAVEPOINT {savepoint}")
        current = self._replace(db, old.container_id, raw)
        if current is None or current.locators != old.locators or current.modified != old.modified:
            db.execute(f"ROLLBACK TO {savepoint}")
            db.execute(f"RELEASE {savepoint}")
            return None
        db.execute(f"RELEASE {savepoint}")
        return current
