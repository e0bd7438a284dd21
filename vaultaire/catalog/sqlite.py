"""The embedded catalog: SQLite in WAL mode, every call on one dedicated thread.

One thread owns the connection, so transactions never interleave and the
reactor never waits on a lock or an fsync. ``synchronous=FULL`` makes each
commit durable before the caller's Deferred fires.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from vaultaire.catalog.listing import list_page, successor
from vaultaire.errors import (
    ContainerExists,
    ContainerNotEmpty,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    NoSuchUpload,
    PreconditionFailed,
)
from vaultaire.model import Artifact, Container, Credential, ListingPage, Part, Tenant, Upload, WriteCondition

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
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    container_id INTEGER NOT NULL,
    key BLOB NOT NULL,
    created REAL NOT NULL,
    content_type TEXT NOT NULL,
    extra TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (container_id, key, created, id);
CREATE INDEX IF NOT EXISTS uploads_by_age ON uploads (created);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    locator TEXT NOT NULL,
    size INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    modified REAL NOT NULL,
    checksum TEXT,
    PRIMARY KEY (upload_id, number)
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
        parts=tuple((loc, size) for loc, size in extra.get("parts", ())),
        checksum=tuple(extra["checksum"]) if extra.get("checksum") else None,  # type: ignore[arg-type]
    )


def _extra(artifact: Artifact) -> str:
    """Metadata, stored headers and storage class: one JSON column, read whole with the row."""
    return json.dumps(
        {
            "meta": [list(kv) for kv in artifact.metadata],
            "headers": [list(kv) for kv in artifact.headers],
            "class": artifact.storage_class,
            "parts": [list(p) for p in artifact.parts],
            "checksum": list(artifact.checksum) if artifact.checksum else None,
        }
    )


_UPLOAD_COLUMNS = "id, container_id, key, created, content_type, extra"
_PART_COLUMNS = "upload_id, number, locator, size, md5, modified, checksum"


def _upload(row: tuple[Any, ...]) -> Upload:
    extra = json.loads(row[5])
    return Upload(
        id=row[0],
        container_id=row[1],
        key=bytes(row[2]).decode("utf-8"),
        created=row[3],
        content_type=row[4],
        metadata=tuple((k, v) for k, v in extra["meta"]),
        headers=tuple((k, v) for k, v in extra["headers"]),
        storage_class=extra["class"],
        checksum_algorithm=extra["checksum"],
        checksum_type=extra.get("checksum_type"),
    )


def _part(row: tuple[Any, ...]) -> Part:
    return Part(*row)


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
            # Unfinished uploads go with their container; their parts become garbage.
            parts = db.execute(
                "SELECT locator FROM parts WHERE upload_id IN (SELECT id FROM uploads WHERE container_id = ?)",
                (container.id,),
            ).fetchall()
            self._queue_garbage(db, container.id, [r[0] for r in parts])
            db.execute(
                "DELETE FROM parts WHERE upload_id IN (SELECT id FROM uploads WHERE container_id = ?)", (container.id,)
            )
            db.execute("DELETE FROM uploads WHERE container_id = ?", (container.id,))
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
        self._queue_garbage(db, container_id, old.locators)
        return old

    def _queue_garbage(self, db: sqlite3.Connection, container_id: int, locators: Iterable[str]) -> None:
        placement = db.execute("SELECT placement FROM containers WHERE id = ?", (container_id,)).fetchone()
        now = self._clock()
        db.executemany(
            "INSERT OR IGNORE INTO garbage (locator, placement, queued) VALUES (?, ?, ?)",
            [(loc, placement[0] if placement else "local", now) for loc in locators],
        )

    def _check_condition(
        self, db: sqlite3.Connection, container_id: int, key: bytes, condition: WriteCondition
    ) -> None:
        row = db.execute("SELECT md5 FROM artifacts WHERE container_id = ? AND key = ?", (container_id, key)).fetchone()
        if condition.must_not_exist and row is not None:
            raise PreconditionFailed("the key exists")
        if condition.etag_must_be is not None and (row is None or row[0] != condition.etag_must_be):
            raise PreconditionFailed("the key does not have the expected ETag")

    def _write_artifact(self, db: sqlite3.Connection, artifact: Artifact) -> None:
        db.execute(
            f"INSERT OR REPLACE INTO artifacts ({_ARTIFACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                artifact.container_id,
                artifact.key.encode("utf-8"),
                artifact.locator,
                artifact.size,
                artifact.md5,
                artifact.modified,
                artifact.content_type,
                _extra(artifact),
            ),
        )

    def put_artifact(self, artifact: Artifact, condition: WriteCondition | None = None) -> Deferred[Artifact | None]:
        def work(db: sqlite3.Connection) -> Artifact | None:
            key = artifact.key.encode("utf-8")
            if condition is not None:
                self._check_condition(db, artifact.container_id, key, condition)
            old = self._replace(db, artifact.container_id, key)
            self._write_artifact(db, artifact)
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

            def fetch(lower: bytes, inclusive: bool, upper: bytes | None, n: int) -> Iterable[tuple[Any, ...]]:
                op = ">=" if inclusive else ">"
                sql = f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE container_id = ? AND key {op} ?"
                args: list[Any] = [container_id, lower]
                if upper is not None:
                    sql += " AND key < ?"
                    args.append(upper)
                sql += " ORDER BY key LIMIT ?"
                args.append(n)
                return db.execute(sql, args)  # a lazy cursor: list_page reads only what it needs

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

    # -- multipart uploads

    def create_upload(self, upload: Upload) -> Deferred[None]:
        def work(db: sqlite3.Connection) -> None:
            extra = json.dumps(
                {
                    "meta": [list(kv) for kv in upload.metadata],
                    "headers": [list(kv) for kv in upload.headers],
                    "class": upload.storage_class,
                    "checksum": upload.checksum_algorithm,
                    "checksum_type": upload.checksum_type,
                }
            )
            db.execute(
                "INSERT INTO uploads (id, container_id, key, created, content_type, extra) VALUES (?, ?, ?, ?, ?, ?)",
                (upload.id, upload.container_id, upload.key.encode(), upload.created, upload.content_type, extra),
            )

        return self._run(self._transaction, work)

    def _upload(self, db: sqlite3.Connection, container_id: int, upload_id: str) -> Upload:
        row = db.execute(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE id = ? AND container_id = ?", (upload_id, container_id)
        ).fetchone()
        if row is None:
            raise NoSuchUpload(upload_id)
        return _upload(row)

    def upload(self, container_id: int, upload_id: str) -> Deferred[Upload]:
        return self._run(lambda: self._upload(self._db(), container_id, upload_id))

    def put_part(self, container_id: int, part: Part) -> Deferred[Part | None]:
        """Record a part (the upload must still exist); a re-sent part replaces the old one."""

        def work(db: sqlite3.Connection) -> Part | None:
            self._upload(db, container_id, part.upload_id)
            row = db.execute(
                f"SELECT {_PART_COLUMNS} FROM parts WHERE upload_id = ? AND number = ?", (part.upload_id, part.number)
            ).fetchone()
            old = None if row is None else _part(row)
            if old is not None:
                self._queue_garbage(db, container_id, [old.locator])
            db.execute(
                f"INSERT OR REPLACE INTO parts ({_PART_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (part.upload_id, part.number, part.locator, part.size, part.md5, part.modified, part.checksum),
            )
            return old

        return self._run(self._transaction, work)

    def parts(self, container_id: int, upload_id: str, after: int, limit: int) -> Deferred[tuple[Upload, list[Part]]]:
        def work() -> tuple[Upload, list[Part]]:
            db = self._db()
            upload = self._upload(db, container_id, upload_id)
            rows = db.execute(
                f"SELECT {_PART_COLUMNS} FROM parts WHERE upload_id = ? AND number > ? ORDER BY number LIMIT ?",
                (upload_id, after, limit),
            )
            return upload, [_part(r) for r in rows]

        return self._run(work)

    def complete_upload(
        self,
        container_id: int,
        upload_id: str,
        chosen: list[tuple[int, str]],
        min_part_size: int,
        modified: float,
        condition: WriteCondition | None,
        checksum_of: Callable[[Upload, list[Part]], tuple[str, str] | None] = lambda upload, parts: None,
    ) -> Deferred[tuple[Artifact, Artifact | None, list[Part]]]:
        """Turn an upload into a manifest artifact in one transaction; no byte moves.

        Returns (new artifact, replaced artifact, the chosen parts). Parts
        uploaded but not chosen are queued as garbage with the replaced artifact.
        ``checksum_of`` derives the artifact's checksum from the chosen parts
        (it may raise to refuse the completion).
        """

        def work(db: sqlite3.Connection) -> tuple[Artifact, Artifact | None, list[Part]]:
            upload = self._upload(db, container_id, upload_id)
            stored = {
                p.number: p
                for p in map(_part, db.execute(f"SELECT {_PART_COLUMNS} FROM parts WHERE upload_id = ?", (upload_id,)))
            }
            picked: list[Part] = []
            previous = 0
            for number, md5 in chosen:
                if number <= previous:
                    raise InvalidPartOrder(str(number))
                previous = number
                part = stored.get(number)
                if part is None or part.md5 != md5:
                    raise InvalidPart(str(number))
                picked.append(part)
            for part in picked[:-1]:
                if part.size < min_part_size:
                    raise EntityTooSmall(str(part.number))
            key = upload.key.encode("utf-8")
            if condition is not None:
                self._check_condition(db, container_id, key, condition)
            digest = hashlib.md5(b"".join(bytes.fromhex(p.md5) for p in picked)).hexdigest()
            artifact = Artifact(
                container_id=container_id,
                key=upload.key,
                locator="",
                size=sum(p.size for p in picked),
                md5=f"{digest}-{len(picked)}",
                modified=modified,
                content_type=upload.content_type,
                metadata=upload.metadata,
                headers=upload.headers,
                storage_class=upload.storage_class,
                parts=tuple((p.locator, p.size) for p in picked),
                checksum=checksum_of(upload, picked),
            )
            old = self._replace(db, container_id, key)
            self._write_artifact(db, artifact)
            chosen_numbers = {p.number for p in picked}
            self._queue_garbage(db, container_id, [p.locator for n, p in stored.items() if n not in chosen_numbers])
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
            return artifact, old, picked

        return self._run(self._transaction, work)

    def abort_upload(self, container_id: int, upload_id: str) -> Deferred[None]:
        def work(db: sqlite3.Connection) -> None:
            self._upload(db, container_id, upload_id)
            locators = [r[0] for r in db.execute("SELECT locator FROM parts WHERE upload_id = ?", (upload_id,))]
            self._queue_garbage(db, container_id, locators)
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))

        return self._run(self._transaction, work)

    def list_uploads(
        self, container_id: int, prefix: str, delimiter: str, key_marker: str | None, id_marker: str | None, limit: int
    ) -> Deferred[tuple[list[Upload], list[str], bool]]:
        """Uploads in (key, created, id) order after the markers; (uploads, common prefixes, truncated)."""

        def work() -> tuple[list[Upload], list[str], bool]:
            db = self._db()
            raw_prefix = prefix.encode("utf-8")
            raw_delim = delimiter.encode("utf-8")
            upper = successor(raw_prefix) if raw_prefix else None
            uploads: list[Upload] = []
            prefixes: list[str] = []
            lower = max(raw_prefix, key_marker.encode("utf-8")) if key_marker else raw_prefix
            # With only a key marker, every upload of that key was listed already.
            skip_key = key_marker.encode("utf-8") if key_marker and not id_marker else None
            after_id = (key_marker.encode("utf-8"), id_marker) if key_marker and id_marker else None
            while True:
                sql = f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE container_id = ? AND key >= ?"
                args: list[Any] = [container_id, lower]
                if upper is not None:
                    sql += " AND key < ?"
                    args.append(upper)
                rows = db.execute(sql + " ORDER BY key, created, id LIMIT ?", [*args, limit + 2]).fetchall()
                jumped = False
                for row in rows:
                    key = bytes(row[2])
                    if skip_key is not None and key == skip_key:
                        continue
                    if after_id is not None and key == after_id[0]:
                        # same key as the marker: only uploads after the marked one
                        if row[0] == after_id[1]:
                            after_id = None
                        continue
                    if raw_delim:
                        at = key.find(raw_delim, len(raw_prefix))
                        if at >= 0:
                            rolled = key[: at + len(raw_delim)]
                            if len(uploads) + len(prefixes) == limit:
                                return uploads, prefixes, True
                            if not key_marker or rolled.decode("utf-8") > key_marker:
                                prefixes.append(rolled.decode("utf-8"))
                            nxt = successor(rolled)
                            assert nxt is not None
                            lower, jumped = nxt, True
                            break
                    if len(uploads) + len(prefixes) == limit:
                        return uploads, prefixes, True
                    uploads.append(_upload(row))
                if not jumped:
                    return uploads, prefixes, False

        return self._run(work)

    def stale_uploads(self, created_before: float, limit: int) -> Deferred[list[Upload]]:
        def work() -> list[Upload]:
            rows = self._db().execute(
                f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE created < ? ORDER BY created LIMIT ?",
                (created_before, limit),
            )
            return [_upload(r) for r in rows]

        return self._run(work)

    # -- garbage

    def garbage(self, limit: int) -> Deferred[list[tuple[str, str]]]:
        def work() -> list[tuple[str, str]]:
            rows = self._db().execute("SELECT placement, locator FROM garbage ORDER BY queued LIMIT ?", (limit,))
            return [(r[0], r[1]) for r in rows]

        return self._run(work)

    def queue_garbage(self, placement: str, locators: list[str]) -> Deferred[None]:
        """Queue blobs no row references (a failed write's leftovers) for the next sweep."""

        def work(db: sqlite3.Connection) -> None:
            now = self._clock()
            db.executemany(
                "INSERT OR IGNORE INTO garbage (locator, placement, queued) VALUES (?, ?, ?)",
                [(loc, placement, now) for loc in locators],
            )

        return self._run(self._transaction, work)

    def forget_garbage(self, locators: list[str]) -> Deferred[None]:
        def work(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM garbage WHERE locator = ?", [(loc,) for loc in locators])

        return self._run(self._transaction, work)
