"""Users of a tenant, their identity policies, whose keys are whose, and a container found by
name with the documents that decide who may use it: the SQLite side of access control (issue 14).

``SQLiteCatalog`` inherits ``UsersMixin``; the schema and the migration of a catalog written
before users existed (its keys become the root user's) are run by it at open.
"""

from __future__ import annotations

import secrets
import sqlite3
from typing import Any

from twisted.internet.defer import Deferred

from vaultaire.catalog.sqlite_statements import SQLiteStatements
from vaultaire.errors import NoSuchTenant, NoSuchUser, UserExists
from vaultaire.model import Container, ContainerAccess, Tenant, User

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    policy TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (tenant_id, name)
) WITHOUT ROWID;
"""

# The container settings the authorization step reads with the container, in the same point read.
ACCESS_DOCUMENTS = ("policy", "acl", "public-access-block", "ownership")

_USER_COLUMNS = "tenant_id, name, id, policy, created"


def migrate(db: sqlite3.Connection) -> None:
    """Keys written before users existed act for their tenant's root user (user "")."""
    if "user_name" not in {r[1] for r in db.execute("PRAGMA table_info(credentials)")}:
        db.execute("ALTER TABLE credentials ADD COLUMN user_name TEXT NOT NULL DEFAULT ''")


def new_user_id() -> str:
    # AWS's form for IAM user ids (AIDA + 16 characters): what aws:userid holds for a user.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return "AIDA" + "".join(secrets.choice(alphabet) for _ in range(17))


def _user(row: tuple[Any, ...]) -> User:
    return User(tenant_id=row[0], name=row[1], id=row[2], policy=row[3], created=row[4])


def _existing_user(db: sqlite3.Connection, tenant_id: str, name: str) -> User:
    sql = f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = ? AND name = ?"
    row = db.execute(sql, (tenant_id, name)).fetchone()
    if row is None:
        raise NoSuchUser(name)
    return _user(row)


def check_user(db: sqlite3.Connection, tenant_id: str, user: str) -> None:
    """For add_credential: a key may act only for a user that exists (or the root user, "")."""
    if user:
        _existing_user(db, tenant_id, user)


class UsersMixin(SQLiteStatements):
    def create_user(self, tenant_id: str, name: str, policy: str | None) -> Deferred[User]:
        def work(db: sqlite3.Connection) -> User:
            if db.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)).fetchone() is None:
                raise NoSuchTenant(tenant_id)
            user = User(tenant_id, name, new_user_id(), policy, self._clock())
            try:
                db.execute(
                    f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                    (user.tenant_id, user.name, user.id, user.policy, user.created),
                )
            except sqlite3.IntegrityError:
                raise UserExists(name) from None
            return user

        return self._write(work)

    def user(self, tenant_id: str, name: str) -> Deferred[User]:
        return self._read(lambda db: _existing_user(db, tenant_id, name))

    def users(self, tenant_id: str) -> Deferred[list[User]]:
        def work() -> list[User]:
            rows = self._db().execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = ? ORDER BY name", (tenant_id,)
            )
            return [_user(r) for r in rows]

        return self._run(work)

    def set_user_policy(self, tenant_id: str, name: str, policy: str | None) -> Deferred[User]:
        def work(db: sqlite3.Connection) -> User:
            _existing_user(db, tenant_id, name)
            db.execute("UPDATE users SET policy = ? WHERE tenant_id = ? AND name = ?", (policy, tenant_id, name))
            return _existing_user(db, tenant_id, name)

        return self._write(work)

    def delete_user(self, tenant_id: str, name: str) -> Deferred[User]:
        def work(db: sqlite3.Connection) -> User:
            user = _existing_user(db, tenant_id, name)
            db.execute("DELETE FROM credentials WHERE tenant_id = ? AND user_name = ?", (tenant_id, name))
            db.execute("DELETE FROM users WHERE tenant_id = ? AND name = ?", (tenant_id, name))
            return user

        return self._write(work)

    def user_keys(self, tenant_id: str, name: str) -> Deferred[list[str]]:
        def work() -> list[str]:
            rows = self._db().execute(
                "SELECT access_key FROM credentials WHERE tenant_id = ? AND user_name = ? ORDER BY created",
                (tenant_id, name),
            )
            return [r[0] for r in rows]

        return self._run(work)

    def containers_named(self, name: str) -> Deferred[list[ContainerAccess]]:
        def work(db: sqlite3.Connection) -> list[ContainerAccess]:
            marks = ", ".join("?" * len(ACCESS_DOCUMENTS))
            rows = db.execute(
                "SELECT c.id, c.tenant_id, c.name, c.placement, c.created,"
                " t.id, t.name, t.status, t.created, t.max_bytes, t.max_objects, s.name, s.value"
                " FROM containers c JOIN tenants t ON t.id = c.tenant_id"
                f" LEFT JOIN container_settings s ON s.container_id = c.id AND s.name IN ({marks})"
                " WHERE c.name = ? ORDER BY c.id",
                (*ACCESS_DOCUMENTS, name),
            ).fetchall()
            found: dict[int, tuple[Container, Tenant, list[tuple[str, str]]]] = {}
            for row in rows:
                if row[0] not in found:
                    container = Container(id=row[0], tenant_id=row[1], name=row[2], placement=row[3], created=row[4])
                    found[row[0]] = (container, Tenant(*row[5:11]), [])
                if row[11] is not None:
                    found[row[0]][2].append((row[11], row[12]))
            return [ContainerAccess(c, t, tuple(sorted(docs))) for c, t, docs in found.values()]

        return self._read(work)
