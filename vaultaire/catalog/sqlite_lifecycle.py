"""What the lifecycle runner asks of the SQLite catalog: a mixin of SQLiteCatalog.

Kept apart from sqlite.py so the runner's statements are read (and changed) in one place.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred

from vaultaire.model import Container

T = TypeVar("T")


class LifecycleStatements:
    """Containers that have a setting: the runner's way to every configured container."""

    if TYPE_CHECKING:

        def _run(self, fn: Callable[..., T], *args: Any) -> Deferred[T]: ...

        def _db(self) -> sqlite3.Connection: ...

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
