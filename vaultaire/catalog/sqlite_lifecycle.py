"""What the lifecycle runner asks of the SQLite catalog: a mixin of SQLiteCatalog.

Kept apart from sqlite.py so the runner's statements are read (and changed) in one place.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from twisted.internet.defer import Deferred

from vaultaire.catalog import versions
from vaultaire.catalog.sqlite_statements import SQLiteStatements
from vaultaire.model import Artifact, Container, VersionChange


class LifecycleStatements(SQLiteStatements):
    """Containers that have a setting, and an expiration checked in its own transaction."""

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

    def expire_current(
        self, container_id: int, key: str, guard: Callable[[Artifact | None, Artifact | None], None]
    ) -> Deferred[VersionChange]:
        def work(db: sqlite3.Connection) -> VersionChange:
            raw = key.encode("utf-8")
            found = versions.current(db, container_id, raw)
            now_current = found[0] if found is not None else None
            # What delete_key will remove for good: the current version of a never versioned
            # container, the null version (current or not) of a suspended one, nothing if enabled.
            mode = versions.state(db, container_id)
            if mode is None:
                doomed = now_current
            elif mode == versions.ENABLED:
                doomed = None
            elif now_current is not None and now_current.version_id == versions.NULL:
                doomed = now_current
            else:
                stored = versions.stored_version(db, container_id, raw, versions.NULL)
                doomed = stored[0] if stored is not None and not stored[0].delete_marker else None
            guard(now_current, doomed)
            marker, removed = versions.delete_key(db, container_id, key, self._clock())
            return VersionChange(marker, removed)

        return self._write(work)
