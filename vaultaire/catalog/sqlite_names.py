"""Container names across tenants: one name, one container (SQLite statements, run in the catalog's transactions).

A name means one container in the whole deployment, as on S3, so a path, a
virtual host or a grant across tenants can name it. The ``containers`` table
keeps its ``UNIQUE (tenant_id, name)``: data directories written before names
were unique may hold one name under several tenants, and must keep working.
So uniqueness is checked inside the write transaction that creates or renames
a container (writers are serialised by ``BEGIN IMMEDIATE``, across processes
too), and a name held by several tenants resolves for no one but its owners,
each reaching its own container through its tenant.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from vaultaire.catalog import accounting
from vaultaire.errors import ContainerExists, ContainerNameTaken, NoSuchContainer
from vaultaire.model import Container
from vaultaire.names import policy_renamed

_COLUMNS = "id, tenant_id, name, placement, created"


def container_row(row: tuple[Any, ...]) -> Container:
    return Container(id=row[0], tenant_id=row[1], name=row[2], placement=row[3], created=row[4])


def check_available(db: sqlite3.Connection, tenant_id: str, name: str) -> None:
    """ContainerExists if the tenant holds the name, ContainerNameTaken if another tenant does."""
    owners = {row[0] for row in db.execute("SELECT tenant_id FROM containers WHERE name = ?", (name,))}
    if tenant_id in owners:
        raise ContainerExists(name)
    if owners:
        raise ContainerNameTaken(name)


def container_named(db: sqlite3.Connection, name: str) -> Container | None:
    """The one container of that name, whatever its tenant; None if none or several hold it."""
    rows = db.execute(f"SELECT {_COLUMNS} FROM containers WHERE name = ? LIMIT 2", (name,)).fetchall()
    return container_row(rows[0]) if len(rows) == 1 else None


def conflicts(db: sqlite3.Connection) -> list[tuple[str, list[str]]]:
    """Names held by several tenants: (name, tenant names in the order they made their containers)."""
    rows = db.execute(
        "SELECT c.name, t.name FROM containers c JOIN tenants t ON t.id = c.tenant_id"
        " WHERE c.name IN (SELECT name FROM containers GROUP BY name HAVING count(*) > 1)"
        " ORDER BY c.name, c.created, c.id"
    ).fetchall()
    found: dict[str, list[str]] = {}
    for name, tenant in rows:
        found.setdefault(name, []).append(tenant)
    return list(found.items())


def rename(db: sqlite3.Connection, tenant_id: str, old: str, new: str, now: float) -> Container:
    """Give the tenant's container ``old`` the name ``new``; nothing else changes (its id, blobs, settings).

    Its stored bytes are billed under the old name up to now and under the new one after; its
    bucket policy's resources that named the old bucket name the new one.
    """
    row = db.execute(f"SELECT {_COLUMNS} FROM containers WHERE tenant_id = ? AND name = ?", (tenant_id, old)).fetchone()
    if row is None:
        raise NoSuchContainer(old)
    if new == old:
        return container_row(row)
    check_available(db, tenant_id, new)
    accounting.integrate(db, row[0], now)
    db.execute("UPDATE containers SET name = ? WHERE id = ?", (new, row[0]))
    db.execute("UPDATE stored SET container = ? WHERE container_id = ?", (new, row[0]))
    policy = db.execute(
        "SELECT value FROM container_settings WHERE container_id = ? AND name = 'policy'", (row[0],)
    ).fetchone()
    if policy is not None:
        db.execute(
            "UPDATE container_settings SET value = ? WHERE container_id = ? AND name = 'policy'",
            (policy_renamed(policy[0], old, new), row[0]),
        )
    return container_row((row[0], row[1], new, row[3], row[4]))
