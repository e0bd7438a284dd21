"""Tenants and their access keys: a mixin of SQLiteCatalog."""

from __future__ import annotations

import sqlite3
import uuid
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from vaultaire.catalog import sqlite_users
from vaultaire.catalog.sqlite_statements import SQLiteStatements
from vaultaire.errors import NoSuchTenant, TenantExists, TenantNotEmpty
from vaultaire.model import Credential, Tenant

if TYPE_CHECKING:
    from vaultaire.sealing import SecretBox


_TENANT_COLUMNS = "id, name, status, created, max_bytes, max_objects"


def _tenant(row: tuple[Any, ...]) -> Tenant:
    return Tenant(*row)


class TenantStatements(SQLiteStatements):
    """Tenants (with their status and quota) and the credentials that act for them."""

    if TYPE_CHECKING:
        _box: SecretBox
        _opened: dict[str, str]

    def _tenant_named(self, db: sqlite3.Connection, name: str) -> Tenant | None:
        row = db.execute(f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE name = ?", (name,)).fetchone()
        return None if row is None else _tenant(row)

    def _insert_tenant(self, db: sqlite3.Connection, name: str) -> Tenant:
        tenant = Tenant(id=uuid.uuid4().hex, name=name, status="active", created=self._clock())
        db.execute(
            "INSERT INTO tenants (id, name, status, created) VALUES (?, ?, ?, ?)",
            (tenant.id, tenant.name, tenant.status, tenant.created),
        )
        return tenant

    def ensure_tenant(self, name: str) -> Deferred[Tenant]:
        def work(db: sqlite3.Connection) -> Tenant:
            return self._tenant_named(db, name) or self._insert_tenant(db, name)

        return self._write(work)

    def create_tenant(self, name: str) -> Deferred[Tenant]:
        def work(db: sqlite3.Connection) -> Tenant:
            if self._tenant_named(db, name) is not None:
                raise TenantExists(name)
            return self._insert_tenant(db, name)

        return self._write(work)

    def _existing_tenant(self, db: sqlite3.Connection, name: str) -> Tenant:
        tenant = self._tenant_named(db, name)
        if tenant is None:
            raise NoSuchTenant(name)
        return tenant

    def tenant(self, name: str) -> Deferred[Tenant]:
        return self._run(lambda: self._existing_tenant(self._db(), name))

    def oldest_tenant_names(self, limit: int) -> Deferred[list[str]]:
        """The ``limit`` oldest tenants: the ones metrics label by name in every process."""
        return self._run(
            lambda: [
                r[0] for r in self._db().execute("SELECT name FROM tenants ORDER BY created, name LIMIT ?", (limit,))
            ]
        )

    def tenants(self) -> Deferred[list[Tenant]]:
        return self._run(
            lambda: [_tenant(r) for r in self._db().execute(f"SELECT {_TENANT_COLUMNS} FROM tenants ORDER BY name")]
        )

    def set_tenant_status(self, name: str, status: str) -> Deferred[Tenant]:
        def work(db: sqlite3.Connection) -> Tenant:
            tenant = self._existing_tenant(db, name)
            db.execute("UPDATE tenants SET status = ? WHERE id = ?", (status, tenant.id))
            return self._existing_tenant(db, name)

        return self._write(work)

    def set_quota(self, name: str, max_bytes: int | None, max_objects: int | None) -> Deferred[Tenant]:
        def work(db: sqlite3.Connection) -> Tenant:
            tenant = self._existing_tenant(db, name)
            db.execute(
                "UPDATE tenants SET max_bytes = ?, max_objects = ? WHERE id = ?", (max_bytes, max_objects, tenant.id)
            )
            return self._existing_tenant(db, name)

        return self._write(work)

    def delete_tenant(self, name: str) -> Deferred[Tenant]:
        """Only an empty tenant goes: its keys with it; its usage history stays for the bill."""

        def work(db: sqlite3.Connection) -> Tenant:
            tenant = self._existing_tenant(db, name)
            (count,) = db.execute("SELECT count(*) FROM containers WHERE tenant_id = ?", (tenant.id,)).fetchone()
            if count:
                raise TenantNotEmpty(f"tenant {name!r} still owns {count} container(s); delete them first")
            db.execute("DELETE FROM credentials WHERE tenant_id = ?", (tenant.id,))
            db.execute("DELETE FROM users WHERE tenant_id = ?", (tenant.id,))
            db.execute("DELETE FROM tenants WHERE id = ?", (tenant.id,))
            return tenant

        return self._write(work)

    def add_credential(self, tenant_id: str, access_key: str, secret_key: str, user: str = "") -> Deferred[Credential]:
        def work(db: sqlite3.Connection) -> Credential:
            created = self._clock()
            sqlite_users.check_user(db, tenant_id, user)
            db.execute(
                "INSERT INTO credentials (access_key, secret_key, tenant_id, created, user_name) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (access_key) DO UPDATE SET secret_key = excluded.secret_key,"
                " tenant_id = excluded.tenant_id, user_name = excluded.user_name",
                (access_key, self._box.seal(secret_key, access_key), tenant_id, created, user),
            )
            return Credential(access_key, secret_key, tenant_id, created, user)

        return self._write(work)

    def credentials(self, tenant_id: str | None) -> Deferred[list[tuple[str, str, float]]]:
        """(access key, tenant name, created) of one tenant or all; never a secret."""

        def work() -> list[tuple[str, str, float]]:
            sql = "SELECT c.access_key, t.name, c.created FROM credentials c JOIN tenants t ON t.id = c.tenant_id"
            args: tuple[str, ...] = ()
            if tenant_id is not None:
                sql, args = sql + " WHERE c.tenant_id = ?", (tenant_id,)
            return [tuple(r) for r in self._db().execute(sql + " ORDER BY t.name, c.created", args)]

        return self._run(work)

    def revoke_credential(self, access_key: str) -> Deferred[bool]:
        def work(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM credentials WHERE access_key = ?", (access_key,)).rowcount > 0

        return self._write(work)

    def credential(self, access_key: str) -> Deferred[tuple[Credential, Tenant] | None]:
        def work(db: sqlite3.Connection) -> tuple[Credential, Tenant] | None:
            row = db.execute(
                "SELECT c.access_key, c.secret_key, c.tenant_id, c.created, c.user_name,"
                " t.id, t.name, t.status, t.created, t.max_bytes, t.max_objects"
                " FROM credentials c JOIN tenants t ON t.id = c.tenant_id WHERE c.access_key = ?",
                (access_key,),
            ).fetchone()
            if row is None:
                return None
            secret = self._opened.get(row[1])
            if secret is None:
                secret = self._box.open(row[1], access_key)
                if len(self._opened) > 10_000:
                    self._opened.clear()
                self._opened[row[1]] = secret
            return Credential(row[0], secret, row[2], row[3], row[4]), _tenant(row[5:])

        return self._read(work)

    def count_credentials(self) -> Deferred[int]:
        return self._run(lambda: self._db().execute("SELECT count(*) FROM credentials").fetchone()[0])
