"""What the SQLite catalog's statement mixins (tenants, containers, uploads...) use of SQLiteCatalog."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred

T = TypeVar("T")


class SQLiteStatements:
    """Base of the statement mixins: SQLiteCatalog gives them its threads, connections and clock."""

    if TYPE_CHECKING:

        def _run(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
            """``fn(*args)`` on the catalog thread."""

        def _db(self) -> sqlite3.Connection:
            """The catalog thread's connection (only on that thread)."""

        def _write(self, work: Callable[[sqlite3.Connection], T]) -> Deferred[T]:
            """``work`` in a transaction of the group commit (catalog/sqlite_group_commit.py)."""

        def _write_unrefusable(self, work: Callable[[sqlite3.Connection], T]) -> Deferred[T]:
            """``_write`` of a write that cannot be refused (see sqlite_group_commit.py)."""

        def _read(self, work: Callable[[sqlite3.Connection], T]) -> Deferred[T]:
            """``work`` as a point read, on the reactor's own read-only connection."""

        _clock: Callable[[], float]
