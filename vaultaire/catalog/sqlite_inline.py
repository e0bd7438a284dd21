"""Small blobs in the catalog (see vaultaire/catalog/inline.py): the SQL, kept small to port.

One table, ``inline_blobs(id, data)``: PostgreSQL has the same with ``bigint`` and ``bytea``.
The functions run inside a transaction their caller owns; the mixin gives SQLiteCatalog
the two calls of the contract (``put_inline_artifact`` and ``inline_data``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from twisted.internet.defer import Deferred

from vaultaire.catalog import inline
from vaultaire.model import Artifact, VersionChange, WriteCondition

T = TypeVar("T")

# A rowid table, not WITHOUT ROWID: its rows are up to the inline limit (64 KiB by default),
# and SQLite keeps large rows best in a table b-tree with overflow pages.
SCHEMA = """
CREATE TABLE IF NOT EXISTS inline_blobs (
    id INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
"""


def store(db: sqlite3.Connection, locator: str, data: bytes) -> None:
    db.execute("INSERT INTO inline_blobs (id, data) VALUES (?, ?)", (inline.row_id(locator), data))


def fetch(db: sqlite3.Connection, locator: str) -> bytes | None:
    row = db.execute("SELECT data FROM inline_blobs WHERE id = ?", (inline.row_id(locator),)).fetchone()
    return None if row is None else bytes(row[0])


def drop(db: sqlite3.Connection, locators: Iterable[str]) -> None:
    """The rows of inline locators among ``locators`` go (others are left to the caller)."""
    db.executemany(
        "DELETE FROM inline_blobs WHERE id = ?", [(inline.row_id(loc),) for loc in locators if inline.is_inline(loc)]
    )


class InlineStatements:
    """The inline calls of the catalog contract, on SQLiteCatalog's connections."""

    if TYPE_CHECKING:

        def _write(self, work: Callable[[sqlite3.Connection], T]) -> Deferred[T]: ...

        def _read(self, work: Callable[[sqlite3.Connection], T]) -> Deferred[T]: ...

        def _install(
            self, db: sqlite3.Connection, artifact: Artifact, condition: WriteCondition | None, intended: bool = False
        ) -> VersionChange: ...

    def put_inline_artifact(
        self, artifact: Artifact, data: bytes, condition: WriteCondition | None = None
    ) -> Deferred[VersionChange]:
        """``put_artifact`` of an artifact whose (inline) locator's bytes are ``data``: both in
        one transaction, so the group commit that makes the row durable makes the bytes durable."""

        def work(db: sqlite3.Connection) -> VersionChange:
            store(db, artifact.locator, data)
            return self._install(db, artifact, condition)

        return self._write(work)

    def inline_data(self, locator: str) -> Deferred[bytes | None]:
        """The bytes of an inline locator, None when its row is gone (an overwrite dropped it)."""
        return self._read(lambda db: fetch(db, locator))
