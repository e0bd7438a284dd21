"""Stored totals, quotas and metered usage, inside the catalog's own transactions.

Every change to what a container stores goes through :func:`account` in the
transaction that makes the change, so the quota check and the totals can never
disagree with the artifacts, even with several processes writing.

Stored byte-hours are integrated, not sampled: each container keeps its
current byte count and the time it last changed (``since``); every change
first adds ``bytes x elapsed`` to the hourly usage rows it spans, split at hour
boundaries. Time is handled in integer microseconds so the arithmetic is exact;
a row holds byte-seconds as a 64-bit integer (up to ~2.5 PB in one container).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from vaultaire.errors import QuotaExceeded
from vaultaire.model import StoredTotals, UsageRow

SCHEMA = """
CREATE TABLE IF NOT EXISTS stored (
    container_id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    container TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0,
    objects INTEGER NOT NULL DEFAULT 0,
    since_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS stored_by_tenant ON stored (tenant_id);
CREATE TABLE IF NOT EXISTS usage (
    tenant_id TEXT NOT NULL,
    container TEXT NOT NULL,
    hour INTEGER NOT NULL,
    byte_seconds INTEGER NOT NULL DEFAULT 0,
    bytes_in INTEGER NOT NULL DEFAULT 0,
    bytes_out INTEGER NOT NULL DEFAULT 0,
    class_a INTEGER NOT NULL DEFAULT 0,
    class_b INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, hour, container)
) WITHOUT ROWID;
"""

HOUR_US = 3600 * 1_000_000


def micros(seconds: float) -> int:
    return round(seconds * 1_000_000)


def describe_bytes(n: int) -> str:
    size: float = n
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def open_container(db: sqlite3.Connection, container_id: int, tenant_id: str, name: str, now: float) -> None:
    db.execute(
        "INSERT OR IGNORE INTO stored (container_id, tenant_id, container, since_us) VALUES (?, ?, ?, ?)",
        (container_id, tenant_id, name, micros(now)),
    )


def close_container(db: sqlite3.Connection, container_id: int, now: float) -> None:
    """The container is being deleted: bill what it held up to now, then forget it."""
    integrate(db, container_id, now)
    db.execute("DELETE FROM stored WHERE container_id = ?", (container_id,))


def integrate(db: sqlite3.Connection, container_id: int, now: float) -> tuple[str, int, int] | None:
    """Add byte-seconds up to ``now`` to the hourly rows; (tenant_id, bytes, objects) after."""
    row = db.execute(
        "SELECT tenant_id, container, bytes, objects, since_us FROM stored WHERE container_id = ?", (container_id,)
    ).fetchone()
    if row is None:
        return None
    until = _integrate_row(db, row, now)
    if until is not None:
        db.execute("UPDATE stored SET since_us = ? WHERE container_id = ?", (until, container_id))
    return row[0], row[2], row[3]


def _integrate_row(db: sqlite3.Connection, row: tuple[Any, ...], now: float) -> int | None:
    """Byte-seconds of a ``stored`` row (tenant_id, container, bytes, objects, since_us) up to
    ``now`` added; the new ``since_us`` for the caller to write, None if time did not move."""
    tenant_id, name, stored, _objects, since = row
    until = micros(now)
    if until <= since:
        return None
    if stored:
        _add_byte_seconds(db, tenant_id, name, stored, since, until)
    return until


def _add_byte_seconds(db: sqlite3.Connection, tenant_id: str, name: str, stored: int, since: int, until: int) -> None:
    rows = []
    start = since
    while start < until:
        hour = start // HOUR_US
        end = min(until, (hour + 1) * HOUR_US)
        # Whole byte-seconds per slice; at whole-second change times this is exact.
        rows.append((tenant_id, name, hour, stored * (end - start) // 1_000_000))
        start = end
    db.executemany(
        "INSERT INTO usage (tenant_id, container, hour, byte_seconds) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (tenant_id, hour, container) DO UPDATE SET byte_seconds = byte_seconds + excluded.byte_seconds",
        rows,
    )


def ask_totals(db: sqlite3.Connection, container_id: int) -> sqlite3.Cursor:
    """The read ``account`` starts with, sent now: a caller with other reads to make asks them all
    before reading any answer (one round trip on PostgreSQL's pipeline), then hands it to ``account``.
    Only ``account`` may change the row in between."""
    return db.execute(
        "SELECT s.tenant_id, s.container, s.bytes, s.objects, s.since_us, t.max_bytes, t.max_objects"
        " FROM stored s LEFT JOIN tenants t ON t.id = s.tenant_id WHERE s.container_id = ?",
        (container_id,),
    )


def account(
    db: sqlite3.Connection,
    container_id: int,
    delta_bytes: int,
    delta_objects: int,
    now: float,
    asked: sqlite3.Cursor | None = None,
) -> None:
    """Apply a change to a container's totals, refusing it if it breaks the tenant's quota.

    Raising rolls the caller's whole transaction back, so an over-quota
    artifact is never committed, however many uploads race for the last bytes.
    ``asked``: ``ask_totals`` of this container, made by the caller earlier in this write.
    """
    # Every write's path: the totals row and the tenant's limits in one read, one UPDATE after
    # (on PostgreSQL each statement costs under the write lock).
    row = (asked if asked is not None else ask_totals(db, container_id)).fetchone()
    if row is None:
        return
    until = _integrate_row(db, row[:5], now)
    tenant_id = row[0]
    if (delta_bytes > 0 or delta_objects > 0) and (row[5] is not None or row[6] is not None):
        _check_limits(db, tenant_id, row[5], row[6], delta_bytes, delta_objects)
    if delta_bytes or delta_objects:
        db.execute(
            "UPDATE stored SET bytes = bytes + ?, objects = objects + ?, since_us = coalesce(?, since_us)"
            " WHERE container_id = ?",
            (delta_bytes, delta_objects, until, container_id),
        )
    elif until is not None:
        db.execute("UPDATE stored SET since_us = ? WHERE container_id = ?", (until, container_id))


def tenant_totals(db: sqlite3.Connection, tenant_id: str) -> StoredTotals:
    row = db.execute(
        "SELECT coalesce(sum(bytes), 0), coalesce(sum(objects), 0) FROM stored WHERE tenant_id = ?", (tenant_id,)
    ).fetchone()
    return StoredTotals(bytes=row[0], objects=row[1])


def check_quota(db: sqlite3.Connection, tenant_id: str, more_bytes: int, more_objects: int) -> None:
    """QuotaExceeded if the tenant cannot take ``more_bytes`` and ``more_objects`` on top of what it has."""
    limits = db.execute("SELECT max_bytes, max_objects FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
    if limits is None or (limits[0] is None and limits[1] is None):
        return
    _check_limits(db, tenant_id, limits[0], limits[1], more_bytes, more_objects)


def _check_limits(
    db: sqlite3.Connection,
    tenant_id: str,
    max_bytes: int | None,
    max_objects: int | None,
    more_bytes: int,
    more_objects: int,
) -> None:
    totals = tenant_totals(db, tenant_id)
    if max_bytes is not None and more_bytes > 0 and totals.bytes + more_bytes > max_bytes:
        raise QuotaExceeded(
            f"Storing {describe_bytes(more_bytes)} more would exceed the account's quota of {describe_bytes(max_bytes)}"
            f" ({describe_bytes(totals.bytes)} stored)."
        )
    if max_objects is not None and more_objects > 0 and totals.objects + more_objects > max_objects:
        raise QuotaExceeded(
            f"Storing {more_objects} more object(s) would exceed the account's quota of {max_objects} objects"
            f" ({totals.objects} stored)."
        )


def rollup(db: sqlite3.Connection, now: float) -> int:
    """Integrate every container up to ``now``; returns how many were brought up to date."""
    ids = [r[0] for r in db.execute("SELECT container_id FROM stored WHERE bytes > 0")]
    for container_id in ids:
        integrate(db, container_id, now)
    return len(ids)


def add_traffic(db: sqlite3.Connection, rows: Iterable[UsageRow]) -> None:
    db.executemany(
        "INSERT INTO usage (tenant_id, container, hour, bytes_in, bytes_out, class_a, class_b)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (tenant_id, hour, container) DO UPDATE SET"
        " bytes_in = bytes_in + excluded.bytes_in, bytes_out = bytes_out + excluded.bytes_out,"
        " class_a = class_a + excluded.class_a, class_b = class_b + excluded.class_b",
        [(r.tenant_id, r.container, r.hour, r.bytes_in, r.bytes_out, r.class_a, r.class_b) for r in rows],
    )


def usage_rows(db: sqlite3.Connection, tenant_id: str, first_hour: int, end_hour: int) -> list[UsageRow]:
    """Rows of hours first_hour <= hour < end_hour, oldest first."""
    rows = db.execute(
        "SELECT tenant_id, container, hour, byte_seconds, bytes_in, bytes_out, class_a, class_b FROM usage"
        " WHERE tenant_id = ? AND hour >= ? AND hour < ? ORDER BY hour, container",
        (tenant_id, first_hour, end_hour),
    )
    return [UsageRow(*r) for r in rows]


def all_tenant_totals(db: sqlite3.Connection) -> dict[str, StoredTotals]:
    rows = db.execute("SELECT tenant_id, sum(bytes), sum(objects) FROM stored GROUP BY tenant_id")
    return {r[0]: StoredTotals(bytes=r[1], objects=r[2]) for r in rows}


def backfill(db: sqlite3.Connection, now: float) -> None:
    """Catalogs from before metering: start every container's totals from what it holds now."""
    missing = db.execute(
        "SELECT c.id, c.tenant_id, c.name FROM containers c LEFT JOIN stored s ON s.container_id = c.id"
        " WHERE s.container_id IS NULL"
    ).fetchall()
    for container_id, tenant_id, name in missing:
        size, count = db.execute(
            "SELECT coalesce(sum(size), 0), count(*) FROM artifacts WHERE container_id = ?", (container_id,)
        ).fetchone()
        (parts,) = db.execute(
            "SELECT coalesce(sum(size), 0) FROM parts"
            " WHERE upload_id IN (SELECT id FROM uploads WHERE container_id = ?)",
            (container_id,),
        ).fetchone()
        db.execute(
            "INSERT INTO stored (container_id, tenant_id, container, bytes, objects, since_us)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (container_id, tenant_id, name, size + parts, count, micros(now)),
        )
