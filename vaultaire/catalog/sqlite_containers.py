"""Containers, their settings, and their names across tenants (SQLite statements, run on the catalog's connections)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from vaultaire.catalog import accounting, sqlite_names, versions
from vaultaire.catalog.sqlite_names import container_row
from vaultaire.catalog.sqlite_statements import SQLiteStatements
from vaultaire.errors import ContainerExists, ContainerNotEmpty, NoSuchContainer
from vaultaire.model import Container


class ContainerStatements(SQLiteStatements):
    """Create, find, list and delete containers; their settings; names across tenants."""

    if TYPE_CHECKING:

        def _queue_parts(
            self, db: sqlite3.Connection, container_id: int, rows: Iterable[tuple[str, str | None]]
        ) -> None: ...

    # -- containers

    def create_container(
        self, tenant_id: str, name: str, placement: str, settings: Mapping[str, str] | None = None
    ) -> Deferred[Container]:
        def work(db: sqlite3.Connection) -> Container:
            created = self._clock()
            sqlite_names.check_available(db, tenant_id, name)
            try:
                cur = db.execute(
                    "INSERT INTO containers (tenant_id, name, placement, created) VALUES (?, ?, ?, ?)",
                    (tenant_id, name, placement, created),
                )
            except sqlite3.IntegrityError:
                raise ContainerExists(name) from None
            assert cur.lastrowid is not None
            accounting.open_container(db, cur.lastrowid, tenant_id, name, created)
            # The settings it is created with (tags, ACL, ownership, Object Lock) in the same
            # transaction: no crash leaves the container without them.
            db.executemany(
                "INSERT INTO container_settings (container_id, name, value) VALUES (?, ?, ?)",
                [(cur.lastrowid, setting, value) for setting, value in (settings or {}).items()],
            )
            return Container(id=cur.lastrowid, tenant_id=tenant_id, name=name, placement=placement, created=created)

        return self._write(work)

    def container(self, tenant_id: str, name: str) -> Deferred[Container | None]:
        def work(db: sqlite3.Connection) -> Container | None:
            row = db.execute(
                "SELECT id, tenant_id, name, placement, created FROM containers WHERE tenant_id = ? AND name = ?",
                (tenant_id, name),
            ).fetchone()
            return None if row is None else container_row(row)

        return self._read(work)

    def containers(
        self, tenant_id: str, prefix: str = "", after: str | None = None, limit: int | None = None
    ) -> Deferred[list[Container]]:
        def work() -> list[Container]:
            sql = "SELECT id, tenant_id, name, placement, created FROM containers WHERE tenant_id = ?"
            args: list[Any] = [tenant_id]
            if prefix:
                sql += " AND name >= ? AND substr(name, 1, ?) = ?"
                args += [prefix, len(prefix), prefix]
            if after is not None:
                sql += " AND name > ?"
                args.append(after)
            sql += " ORDER BY name"
            if limit is not None:
                sql += " LIMIT ?"
                args.append(limit)
            return [container_row(r) for r in self._db().execute(sql, args)]

        return self._run(work)

    def delete_container(self, container: Container) -> Deferred[None]:
        def work(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM artifacts WHERE container_id = ? LIMIT 1", (container.id,)).fetchone():
                raise ContainerNotEmpty(container.name)
            if versions.any_version(db, container.id):  # S3: every version and delete marker first
                raise ContainerNotEmpty(container.name)
            # Unfinished uploads go with their container; their parts become garbage.
            parts = db.execute(
                "SELECT locator, placement FROM parts WHERE upload_id IN"
                " (SELECT id FROM uploads WHERE container_id = ?)",
                (container.id,),
            ).fetchall()
            self._queue_parts(db, container.id, parts)
            db.execute(
                "DELETE FROM parts WHERE upload_id IN (SELECT id FROM uploads WHERE container_id = ?)", (container.id,)
            )
            db.execute("DELETE FROM uploads WHERE container_id = ?", (container.id,))
            accounting.close_container(db, container.id, self._clock())
            db.execute("DELETE FROM container_settings WHERE container_id = ?", (container.id,))
            db.execute("DELETE FROM containers WHERE id = ?", (container.id,))

        return self._write(work)

    # -- per-container settings

    def setting(self, container: Container, name: str) -> Deferred[str | None]:
        # A primary-key point read on every PUT's path (encryption, versioning and Object Lock
        # each ask): on the reactor's reader, not a round trip through the catalog thread.
        def work(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT value FROM container_settings WHERE container_id = ? AND name = ?", (container.id, name)
            ).fetchone()
            return None if row is None else str(row[0])

        return self._read(work)

    def put_setting(self, container: Container, name: str, value: str) -> Deferred[None]:
        def work(db: sqlite3.Connection) -> None:
            # Checked in the same transaction: a setting must never outlive its
            # container (and container ids can be reused after a delete).
            if db.execute("SELECT 1 FROM containers WHERE id = ?", (container.id,)).fetchone() is None:
                raise NoSuchContainer(container.name)
            db.execute(
                "INSERT OR REPLACE INTO container_settings (container_id, name, value) VALUES (?, ?, ?)",
                (container.id, name, value),
            )

        return self._write(work)

    def delete_setting(self, container: Container, name: str) -> Deferred[bool]:
        def work(db: sqlite3.Connection) -> bool:
            cur = db.execute("DELETE FROM container_settings WHERE container_id = ? AND name = ?", (container.id, name))
            return cur.rowcount > 0

        return self._write(work)

    def settings_by_name(self, tenant_id: str | None, container: str, name: str) -> Deferred[list[str | None]]:
        def work() -> list[str | None]:
            sql = (
                "SELECT s.value FROM containers c LEFT JOIN container_settings s"
                " ON s.container_id = c.id AND s.name = ? WHERE c.name = ?"
            )
            args: list[Any] = [name, container]
            if tenant_id is not None:
                sql += " AND c.tenant_id = ?"
                args.append(tenant_id)
            found = [row[0] for row in self._db().execute(sql + " ORDER BY c.id", args)]
            # A name several tenants hold (from before names were unique) resolves for no one but them.
            return found if tenant_id is not None or len(found) < 2 else []

        return self._run(work)

    # -- names across tenants (vaultaire/catalog/sqlite_names.py)

    def container_named(self, name: str) -> Deferred[Container | None]:
        return self._read(lambda db: sqlite_names.container_named(db, name))

    def name_conflicts(self) -> Deferred[list[tuple[str, list[str]]]]:
        return self._run(lambda: sqlite_names.conflicts(self._db()))

    def rename_container(self, tenant_id: str, old: str, new: str) -> Deferred[Container]:
        return self._write(lambda db: sqlite_names.rename(db, tenant_id, old, new, self._clock()))
