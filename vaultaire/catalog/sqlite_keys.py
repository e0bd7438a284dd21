"""Encryption keys in the SQLite catalog: SSE-KMS keys, and re-sealing under a new master key.

A mixin of SQLiteCatalog (catalog/sqlite.py wires it in): the catalog is where the
daemon's workers and ``vaultaire-admin`` already meet, so a key an admin disables
is refused by every worker at its next use, and a re-seal commits beside the
daemon's own writes, row by row, without a lock on the whole catalog.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from functools import partial
from typing import Any

from twisted.internet.defer import Deferred

from vaultaire.catalog.sqlite_statements import SQLiteStatements
from vaultaire.errors import KmsKeyExists, NoSuchKmsKey
from vaultaire.model import KmsKey

SCHEMA = """
-- SSE-KMS keys kept by Vaultaire: material is sealed by the master key (never plain).
CREATE TABLE IF NOT EXISTS kms_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    material TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    created REAL NOT NULL,
    tenant_id TEXT NOT NULL DEFAULT ''
);
"""

_COLUMNS = "id, name, material, enabled, created, tenant_id"
_BATCH = 500  # rows re-sealed per transaction: short enough never to hold the daemon's writes up

# Tables of artifact rows (the current version of each key; noncurrent versions), their keys, and a
# key below every row's.
_VERSIONED = (
    ("artifacts", "container_id, key", (-1, b"")),
    ("versions", "container_id, key, rank", (-1, b"", -(2**63))),
)

# (mode, token) -> the token re-wrapped under the newest master key, or None to leave it.
Rewrap = Callable[[str, str], "str | None"]


def _key(row: tuple[Any, ...]) -> KmsKey:
    return KmsKey(row[0], row[1], row[2], bool(row[3]), row[4], row[5])


class KeyStoreMixin(SQLiteStatements):
    """KMS keys and re-sealing."""

    # -- KMS keys

    def kms_keys(self) -> Deferred[list[KmsKey]]:
        return self._run(
            lambda: [_key(r) for r in self._db().execute(f"SELECT {_COLUMNS} FROM kms_keys ORDER BY name")]
        )

    def kms_key(self, id_or_name: str) -> Deferred[KmsKey | None]:
        def work(db: sqlite3.Connection) -> KmsKey | None:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM kms_keys WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1",
                (id_or_name, id_or_name, id_or_name),
            ).fetchone()
            return None if row is None else _key(row)

        return self._read(work)

    def create_kms_key(self, key: KmsKey) -> Deferred[None]:
        def work(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM kms_keys WHERE name = ? OR id = ?", (key.name, key.name)).fetchone():
                raise KmsKeyExists(key.name)
            db.execute(
                f"INSERT INTO kms_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (key.id, key.name, key.material, int(key.enabled), key.created, key.tenant_id),
            )

        return self._write(work)

    def set_kms_key_enabled(self, id_or_name: str, enabled: bool) -> Deferred[KmsKey]:
        def work(db: sqlite3.Connection) -> KmsKey:
            row = db.execute(f"SELECT {_COLUMNS} FROM kms_keys WHERE id = ? OR name = ?", (id_or_name, id_or_name))
            found = row.fetchone()
            if found is None:
                raise NoSuchKmsKey(id_or_name)
            db.execute("UPDATE kms_keys SET enabled = ? WHERE id = ?", (int(enabled), found[0]))
            return _key((*found[:3], enabled, *found[4:]))

        return self._write(work)

    # -- re-sealing under the newest master key

    def reseal(
        self,
        data_key: Rewrap,
        material: Callable[[str, str], str | None],
        secret: Callable[[str, str], str | None],
    ) -> Deferred[dict[str, int]]:
        """Re-wrap every data key ``data_key`` re-wraps (artifacts, upload parts), every
        KMS key's material and every sealed secret key; counts of what changed.

        Each batch reads and writes its rows in one transaction, so a row the daemon
        changes meanwhile is re-read, never overwritten with an older copy."""
        counts = {"artifacts": 0, "parts": 0, "kms_keys": 0, "secrets": 0}

        def batch(db: sqlite3.Connection, table: str, columns: str, after: tuple[Any, ...]) -> tuple[Any, ...] | None:
            """One batch of a table's rows (current versions, or the noncurrent ones) past ``after``."""
            names = columns.split(", ")
            rows = db.execute(
                f"SELECT {columns}, metadata FROM {table} WHERE ({columns}) > ({', '.join('?' * len(names))})"
                f" ORDER BY {columns} LIMIT ?",
                (*after, _BATCH),
            ).fetchall()
            for row in rows:
                changed = _rewrap_extra(row[-1], data_key)
                if changed is not None:
                    where = " AND ".join(f"{name} = ?" for name in names)
                    db.execute(f"UPDATE {table} SET metadata = ? WHERE {where}", (changed, *row[:-1]))
                    counts["artifacts"] += 1
            return tuple(rows[-1][:-1]) if len(rows) == _BATCH else None

        def uploads(db: sqlite3.Connection) -> None:
            for upload_id, extra in db.execute("SELECT id, extra FROM uploads").fetchall():
                sealing = json.loads(extra).get("sealing")
                if not sealing:
                    continue
                mode = sealing["mode"]
                parts = db.execute(
                    "SELECT number, sealed_key FROM parts WHERE upload_id = ? AND sealed_key IS NOT NULL", (upload_id,)
                ).fetchall()
                for number, token in parts:
                    fresh = data_key(mode, token) if token else None
                    if fresh is not None:
                        db.execute(
                            "UPDATE parts SET sealed_key = ? WHERE upload_id = ? AND number = ?",
                            (fresh, upload_id, number),
                        )
                        counts["parts"] += 1

        def keys(db: sqlite3.Connection) -> None:
            for key_id, sealed in db.execute("SELECT id, material FROM kms_keys").fetchall():
                fresh = material(key_id, sealed)
                if fresh is not None:
                    db.execute("UPDATE kms_keys SET material = ? WHERE id = ?", (fresh, key_id))
                    counts["kms_keys"] += 1
            for access, sealed in db.execute("SELECT access_key, secret_key FROM credentials").fetchall():
                fresh = secret(access, sealed)
                if fresh is not None:
                    db.execute("UPDATE credentials SET secret_key = ? WHERE access_key = ?", (fresh, access))
                    counts["secrets"] += 1

        async def run() -> dict[str, int]:
            for table, columns, first in _VERSIONED:
                after: tuple[Any, ...] | None = first
                while after is not None:
                    after = await self._write(partial(batch, table=table, columns=columns, after=after))
            await self._write(uploads)
            await self._write(keys)
            return counts

        return Deferred.fromCoroutine(run())


def _rewrap_extra(extra: str, data_key: Rewrap) -> str | None:
    """An artifact's JSON column with its data keys re-wrapped, or None if none changed."""
    document = json.loads(extra)
    sealing = document.get("sealing")
    if not sealing:
        return None
    keys = [data_key(sealing["mode"], token) for token in sealing.get("keys", ())]
    if all(k is None for k in keys):
        return None
    sealing["keys"] = [fresh or old for fresh, old in zip(keys, sealing["keys"], strict=True)]
    return json.dumps(document)
