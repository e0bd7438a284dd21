"""The embedded catalog: SQLite in WAL mode, every call on one dedicated thread.

One thread owns the connection, so transactions never interleave and the
reactor never waits on a lock or an fsync. ``synchronous=FULL`` makes each
commit durable before the caller's Deferred fires.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from vaultaire.catalog.listing import list_page
from vaultaire.errors import ContainerExists, ContainerNotEmpty, PreconditionFailed
from vaultaire.model import Artifact, Container, Credential, ListingPage, Tenant, WriteCondition

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'active',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    access_key TEXT PRIMARY KEY,
    secret_key TEXT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS containers (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    placement TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (tenant_id, name)
);
-- Keys are stored as UTF-8 BLOBs: SQLite compares BLOBs with memcmp, which
-- is exactly S3's UTF-8 binary listing order, and the primary key is the index.
CREATE TABLE IF NOT EXISTS artifacts (
    container_id INTEGER NOT NULL,
    key BLOB NOT NULL,
    locator TEXT NOT NULL,
    size INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    modified REAL NOT NULL,
    content_type TEXT NOT NULL,
    metadata TEXT NOT NULL,
    PRIMARY KEY (container_id, key)
) WITHOUT ROWID;
-- Blobs no longer referenced, queued in the same transaction that dropped them.
CREATE TABLE IF NOT EXISTS garbage (
    locator TEXT PRIMARY KEY,
    placement TEXT NOT NULL,
    queued REAL NOT NULL
);
"""

_ARTIFACT_COLUMNS = "container_id, key, locator, size, md5, modified, content_type, metadata"


def _artifact(row: tuple[Any, ...]) -> Artifact:
    extra = json.loads(row[7])
    return Artifact(
        container_id=row[0],
        key=bytes(row[1]).decode("utf-8"),
        locator=row[2],
        size=row[3],
        md5=row[4],
        modified=row[5],
        content_type=row[6],
        metadata=tuple((k, v) for k, v in extra["meta"]),
        headers=tuple((k, v) for k, v in extra["headers"]),
        storage_class=extra.get("class", "STANDARD"),
    )


def _extra(artifact: Artifact) -> str:
    """Metadata, stored headers and storage class: one JSON column, read whole with the row."""
    return json.dumps(
        {
            "meta": [list(kv) for kv in artifact.metadata],
            "headers": [list(kv) for kv in artifact.headers],
            "class": artifact.storage_class,
        }
    )


def _container(row: tuple[Any, ...]) -> Container:
    return Container(id=row[0], tenant_id=row[1], name=row[2], placement=row[3], created=row[4])


def _tenant(row: tuple[Any, ...]) -> Tenant:
    return Tenant(id=row[0], name=row[1], status=row[2], created=row[3])


class SQLiteCatalog:
    """The Catalog contract on one SQLite file."""

    def __init__(self, path: str, reactor: IReactorFromThreads, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._reactor = reactor
        self._clock = clock
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="vaultaire-catalog")
        self._conn: sqlite3.Connection | None = None

    # -- running work on the catalog thread

    def _run(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        return deferToThreadPool(self._reactor, self._pool, fn, *args)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.executescript(SCHEMA)
            self._conn = conn
        return self._conn

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    def start(self) -> Deferred[None]:
        os.makedirs(os.path.dirname(os.path.abspath(self._path)), exist_ok=True)
        self._pool.start()
        return self._run(lambda: None if self._db() else None)

    def stop(self) -> Deferred[None]:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        d = self._run(close)
        d.addBoth(lambda r: (self._pool.stop(), r)[1])
        return d

    # -- tenants and keys

    def ensure_tenant(self, name: str) -> Deferred[Tenant]:
        def work(db: sqlite3.Connection) -> Tenant:
            row = db.execute("SELECT id, name, status, created FROM tenants WHERE name = ?", (name,)).fetchone()
            if row is None:
                row = (uuid.uuid4().hex, name, "active", self._clock())
                db.execute("INSERT INTO tenants (id, name, status, created) VALUES (?, ?, ?, ?)", row)
            return _tenant(row)

        return self._run(self._transaction, work)

    def add_credential(self, tenant_id: str, access_key: str, secret_key: str) -> Deferred[Credential]:
        def work(db: sqlite3.Connection) -> Credential:
            created = self._clock()
            db.execute(
                "INSERT INTO credentials (access_key, secret_key, tenant_id, created) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (access_key) DO UPDATE SET secret_key = excluded.secret_key,"
                " tenant_id = excluded.tenant_id",
                (access_key, secret_key, tenant_id, created),
            )
            return Credential(access_key, secret_key, tenant_id, created)

        return self._run(self._transaction, work)

    def credential(self, access_key: str) -> Deferred[tuple[Credential, Tenant] | None]:
        def work() -> tuple[Credential, Tenant] | None:
            row = (
                self._db()
                .execute(
                    "SELECT c.access_key, c.secret_key, c.tenant_id, c.created,"
                    " t.id, t.name, t.status, t.created"
                    " FROM credentials c JOIN tenants t ON t.id = c.tenant_id WHERE c.access_key = ?",
                    (access_key,),
                )
                .fetchone()
            )
            if row is None:
                return None
            return Credential(*row[:4]), _tenant(row[4:])

        return self._run(work)

    def count_credentials(self) -> Deferred[int]:
        return self._run(lambda: self._db().execute("SELECT count(*) FROM credentials").fetchone()[0])

    # -- containers

    def create_container(self, tenant_id: str, name: str, placement: str) -> Deferred[Container]:
        def work(db: sqlite3.Connection) -> Container:
            created = self._clock()
            try:
                cur = db.execute(
                    "INSERT INTO containers (tenant_id, name, placement, created) VALUES (?, ?, ?, ?)",
                    (tenant_id, name, placement, created),
                )
            except sqlite3.IntegrityError:
                raise ContainerExists(name) from None
            assert cur.lastrowid is not None
            return Container(id=cur.lastrowid, tenant_id=tenant_id, name=name, placement=placement, created=created)

        return self._run(self._transaction, work)

    def container(self, tenant_id: str, name: str) -> Deferred[Container | None]:
        def work() -> Container | None:
            row = (
                self._db()
                .execute(
                    "SELECT id, tenant_id, name, placement, created FROM containers WHERE tenant_id = ? AND name = ?",
                    (tenant_id, name),
                )
                .fetchone()
            )
            return None if row is None else _container(row)

        return self._run(work)

    def containers(self, tenant_id: str) -> Deferred[list[Container]]:
        def work() -> list[Container]:
            rows = self._db().execute(
                "SELECT id, tenant_id, name, placement, created FROM containers WHERE tenant_id = ? ORDER BY name",
                (tenant_id,),
            )
            return [_container(r) for r in rows]

        return self._run(work)

    def delete_container(self, container: Container) -> Deferred[None]:
        def work(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM artifacts WHERE container_id = ? LIMIT 1", (container.id,)).fetchone():
                raise ContainerNotEmpty(container.name)
            db.execute("DELETE FROM containers WHERE id = ?", (container.id,))

        return self._run(self._transaction, work)

    # -- artifacts

    def artifact(self, container_id: int, key: str) -> Deferred[Artifact | None]:
        def work() -> Artifact | None:
            row = (
                self._db()
                .execute(
                    f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE container_id = ? AND key = ?",
                    (container_id, key.encode("utf-8")),
                )
                .fetchone()
            )
            return None if row is None else _artifact(row)

        return self._run(work)

    def _replace(self, db: sqlite3.Connection, container_id: int, key: bytes) -> Artifact | None:
        row = db.execute(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE container_id = ? AND key = ?",
            (container_id, key),
        ).fetchone()
        if row is None:
            return None
        old = _artifact(row)
        placement = db.execute("SELECT placement FROM containers WHERE id = ?", (container_id,)).fetchone()
        db.execute(
            "INSERT OR IGNORE INTO garbage (locator, placement, queued) VALUES (?, ?, ?)",
            (old.locator, placement[0] if placement else "local", self._clock()),
        )
        return old

    def put_artifact(self, artifact: Artifact, condition: WriteCondition | None = None) -> Deferred[Artifact | None]:
        def work(db: sqlite3.Connection) -> Artifact | None:
            key = artifact.key.encode("utf-8")
            if condition is not None:
                row = db.execute(
                    "SELECT md5 FROM artifacts WHERE container_id = ? AND key = ?", (artifact.container_id, key)
                ).fetchone()
                if condition.must_not_exist and row is not None:
                    raise PreconditionFailed("the key exists")
                if condition.etag_must_be is not None and (row is None or row[0] != condition.etag_must_be):
                    raise PreconditionFailed("the key does not have the expected ETag")
            old = self._replace(db, artifact.container_id, key)
            db.execute(
                f"INSERT OR REPLACE INTO artifacts ({_ARTIFACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    artifact.container_id,
                    key,
                    artifact.locator,
                    artifact.size,
                    artifact.md5,
                    artifact.modified,
                    artifact.content_type,
                    _extra(artifact),
                ),
            )
            return old

        return self._run(self._transaction, work)

    def delete_artifact(self, container_id: int, key: str) -> Deferred[Artifact | None]:
        def work(db: sqlite3.Connection) -> Artifact | None:
            raw = key.encode("utf-8")
            old = self._replace(db, container_id, raw)
            if old is not None:
                db.execute("DELETE FROM artifacts WHERE container_id = ? AND key = ?", (container_id, raw))
            return old

        return self._run(self._transaction, work)

    def list_artifacts(
        self, container_id: int, prefix: str, delimiter: str, after: str | None, limit: int
    ) -> Deferred[ListingPage]:
        def work() -> ListingPage:
            db = self._db()

            def fetch(lower: bytes, inclusive: bool, upper: bytes | None, n: int) -> list[tuple[Any, ...]]:
                op = ">=" if inclusive else ">"
                sql = f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE container_id = ? AND key {op} ?"
                args: list[Any] = [container_id, lower]
                if upper is not None:
                    sql += " AND key < ?"
                    args.append(upper)
                sql += " ORDER BY key LIMIT ?"
                args.append(n)
                return db.execute(sql, args).fetchall()

            rows, prefixes, truncated, last = list_page(
                fetch,
                lambda row: bytes(row[1]),
                prefix.encode("utf-8"),
                delimiter.encode("utf-8"),
                None if after is None else after.encode("utf-8"),
                limit,
            )
            return ListingPage(
                artifacts=tuple(_artifact(r) for r in rows),
                prefixes=tuple(p.decode("utf-8") for p in prefixes),
                truncated=truncated,
                next_marker=None if last is None else last.decode("utf-8"),
            )

        return self._run(work)

    # -- garbage

    def garbage(self, limit: int) -> Deferred[list[tuple[str, str]]]:
        def work() -> list[tuple[str, str]]:
            rows = self._db().execute("SELECT placement, locator FROM garbage ORDER BY queued LIMIT ?", (limit,))
            return [(r[0], r[1]) for r in rows]

        return self._run(work)

    def forget_garbage(self, locators: list[str]) -> Deferred[None]:
        def work(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM garbage WHERE locator = ?", [(loc,) for loc in locators])

        return self._run(self._transaction, work)
