"""Leases on a PostgreSQL catalog (see ``Leases`` in catalog/interface_storage.py).

The same table and the same one-statement take as catalog/sqlite_leases.py, with
one difference that matters across hosts: expiry is the database server's clock
(``clock_timestamp()``), not the gateway's, so gateways whose clocks drift
apart still agree on when a lease has expired. ``PostgresLeaseStatements`` is a
mixin for the PostgreSQL catalog (listed before its SQLite base, whose
``LeaseStatements`` it overrides); ``SCHEMA`` belongs in its migrations.

Statements take a psycopg connection (or anything with psycopg's ``execute``
and ``%s`` placeholders) inside a transaction the caller owns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
"""

# Seconds since the epoch on the server's clock, at the statement's own moment (not the
# transaction's start, which a long transaction would leave behind).
_NOW = "extract(epoch FROM clock_timestamp())"

_TAKE = (
    f"INSERT INTO leases AS l (name, holder, expires_at) VALUES (%s, %s, {_NOW} + %s)"
    " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
    f" WHERE l.expires_at <= {_NOW} OR (%s AND l.holder = excluded.holder)"
    " RETURNING holder"
)


def take(conn: Any, name: str, holder: str, seconds: float, renew: bool) -> bool:
    return conn.execute(_TAKE, (name, holder, float(seconds), bool(renew))).fetchone() is not None


def release(conn: Any, name: str, holder: str) -> None:
    conn.execute("DELETE FROM leases WHERE name = %s AND holder = %s", (name, holder))


def holder(conn: Any, name: str) -> tuple[str, float] | None:
    row = conn.execute(
        f"SELECT holder, expires_at - {_NOW} FROM leases WHERE name = %s AND expires_at > {_NOW}", (name,)
    ).fetchone()
    return (str(row[0]), float(row[1])) if row is not None else None


class PostgresLeaseStatements:
    """The Leases contract on the PostgreSQL catalog: its ``_write``/``_read`` hand work a
    connection wrapper whose ``raw`` is the psycopg connection (catalog/postgres/dialect.py)."""

    if TYPE_CHECKING:

        def _write(self, work: Callable[[Any], T]) -> Deferred[T]: ...

        def _read(self, work: Callable[[Any], T]) -> Deferred[T]: ...

    def take_lease(self, name: str, holder: str, seconds: float, renew: bool = True) -> Deferred[bool]:
        return self._write(lambda db: take(db.raw, name, holder, seconds, renew))

    def release_lease(self, name: str, holder: str) -> Deferred[None]:
        return self._write(lambda db: release(db.raw, name, holder))

    def lease_holder(self, name: str) -> Deferred[tuple[str, float] | None]:
        return self._read(lambda db: holder(db.raw, name))
