"""Leases on the SQLite catalog (see ``Leases`` in catalog/interface_storage.py): a mixin of SQLiteCatalog.

Gateways sharing one SQLite file share one machine, hence one clock: expiry is
the catalog's clock. Each operation is one statement in its own transaction.
"""

from __future__ import annotations

import sqlite3

from twisted.internet.defer import Deferred

from vaultaire.catalog.sqlite_statements import SQLiteStatements

SCHEMA = """
-- Who does a once-per-deployment job, until when (seconds since the epoch, the catalog's clock).
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""

# Insert, or take over an expired lease, or (renew) extend one's own: one statement, so two
# takers racing for a free lease cannot both win. An UPDATE whose WHERE is false returns no row.
# Plain ? placeholders and a boolean: the PostgreSQL catalog's dialect adapter reads it too.
_TAKE = (
    "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
    " WHERE leases.expires_at <= ? OR (? AND leases.holder = excluded.holder)"
    " RETURNING holder"
)


def take(db: sqlite3.Connection, name: str, holder: str, seconds: float, renew: bool, now: float) -> bool:
    return db.execute(_TAKE, (name, holder, now + seconds, now, bool(renew))).fetchone() is not None


def release(db: sqlite3.Connection, name: str, holder: str) -> None:
    db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))


def holder(db: sqlite3.Connection, name: str, now: float) -> tuple[str, float] | None:
    row = db.execute("SELECT holder, expires_at FROM leases WHERE name = ? AND expires_at > ?", (name, now)).fetchone()
    return (str(row[0]), float(row[1]) - now) if row is not None else None


class LeaseStatements(SQLiteStatements):
    """The Leases contract for SQLiteCatalog."""

    def take_lease(self, name: str, holder: str, seconds: float, renew: bool = True) -> Deferred[bool]:
        return self._write(lambda db: take(db, name, holder, seconds, renew, self._clock()))

    def release_lease(self, name: str, holder: str) -> Deferred[None]:
        return self._write(lambda db: release(db, name, holder))

    def lease_holder(self, name: str) -> Deferred[tuple[str, float] | None]:
        return self._run(lambda: holder(self._db(), name, self._clock()))
