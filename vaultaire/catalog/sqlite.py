"""The embedded catalog: SQLite in WAL mode, every call on one dedicated thread.

One thread owns the connection, so transactions never interleave and the
reactor never waits on a lock or an fsync. ``synchronous=FULL`` makes each
commit durable before the caller's Deferred fires.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from vaultaire.catalog import (
    accounting,
    blobs,
    generation,
    sqlite_keys,
    sqlite_leases,
    sqlite_listing,
    sqlite_users,
    version_listing,
    versions,
)
from vaultaire.catalog.headroom import Headroom
from vaultaire.catalog.listing import list_page
from vaultaire.catalog.rows import ARTIFACT_COLUMNS as _ARTIFACT_COLUMNS
from vaultaire.catalog.rows import artifact_row as _artifact
from vaultaire.catalog.sqlite_console import ConsoleStatements
from vaultaire.catalog.sqlite_containers import ContainerStatements
from vaultaire.catalog.sqlite_group_commit import GroupCommit, Write
from vaultaire.catalog.sqlite_inline import SCHEMA as INLINE_SCHEMA
from vaultaire.catalog.sqlite_inline import InlineStatements
from vaultaire.catalog.sqlite_leases import LeaseStatements
from vaultaire.catalog.sqlite_lifecycle import LifecycleStatements
from vaultaire.catalog.sqlite_migration import MigrationStatements
from vaultaire.catalog.sqlite_schema import SCHEMA, migrate
from vaultaire.catalog.sqlite_tenants import TenantStatements
from vaultaire.catalog.sqlite_uploads import UploadStatements
from vaultaire.catalog.sqlite_users import UsersMixin
from vaultaire.catalog.sqlite_write_lock import WriteTurn
from vaultaire.diskspace import AUTO_RESERVE, sample
from vaultaire.errors import (
    NoSuchArtifact,
    PreconditionFailed,
)
from vaultaire.model import (
    Artifact,
    ListedPage,
    ListingPage,
    StoredTotals,
    UsageRow,
    VersionChange,
    VersionsPage,
    WriteCondition,
)
from vaultaire.sealing import SecretBox

T = TypeVar("T")
log = Logger()


class SQLiteCatalog(
    GroupCommit,
    ContainerStatements,
    TenantStatements,
    UploadStatements,
    MigrationStatements,
    LeaseStatements,
    LifecycleStatements,
    UsersMixin,
    sqlite_keys.KeyStoreMixin,
    ConsoleStatements,
    InlineStatements,
):
    """The Catalog contract on one SQLite file."""

    def __init__(
        self,
        path: str,
        reactor: IReactorFromThreads,
        box: SecretBox,
        clock: Callable[[], float] = time.time,
        headroom: Headroom | None = None,
    ) -> None:
        self._path = path
        # Space given back when a write meets a full disk, so deletes still commit.
        self.headroom = headroom
        self._reserve_setting = headroom.reserve_setting if headroom is not None else AUTO_RESERVE
        self._reactor = reactor
        self._box = box
        self._opened: dict[str, str] = {}  # sealed -> secret: AES-GCM once per key, not per request
        self._clock = clock
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="vaultaire-catalog")
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._queue: list[Write] = []
        self._queue_lock = threading.Lock()
        self._draining = False
        # Write intents are recorded under this process's name (see catalog/blobs.py).
        self._lease = blobs.WriterLease(path + ".writers")
        self._turn = WriteTurn(path)

    # -- running work on the catalog thread

    def _run(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        return deferToThreadPool(self._reactor, self._pool, fn, *args)

    def probe(self) -> Deferred[dict[str, object]]:
        """A read on the catalog thread (so a stuck writer shows), and the free space of its disk."""

        def probe() -> dict[str, object]:
            t0 = time.monotonic()
            try:
                self._db().execute("SELECT 1 FROM tenants LIMIT 1").fetchall()
                space = sample(os.path.dirname(os.path.abspath(self._path)), self._reserve_setting)
            except (sqlite3.Error, OSError) as e:
                return {"status": "error", "error": f"{type(e).__name__}: {e}"}
            report: dict[str, object] = {"status": "ok", **space.report()}
            if space.read_only or space.below_reserve:
                report["status"] = "degraded"
                report["reason"] = "writes are refused: " + ("read-only" if space.read_only else "below the reserve")
            report["latency_seconds"] = round(time.monotonic() - t0, 6)
            return report

        return self._run(probe).addErrback(lambda f: {"status": "error", "error": f.getErrorMessage()})

    def restore_headroom(self) -> Deferred[bool]:
        """Take the headroom back once the disk has room (on the catalog thread, between writes)."""
        if self.headroom is None:
            return succeed(False)
        return self._run(self.headroom.restore)

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> Deferred[T]:
        """A point read on the reactor thread, on a read-only connection of its own.

        WAL readers never wait for the writer, and a lookup by primary key in
        a warm page cache costs microseconds: far less than the two thread
        switches of a trip to the catalog thread. Each statement reads the
        latest commit of any process, so an admin's change is seen at once.
        Listings (many rows) still go to the catalog thread.
        """
        if self._reader is None:
            return self._run(lambda: work(self._db()))
        try:
            return succeed(work(self._reader))
        except BaseException:
            return fail()

    def _open_reader(self) -> None:
        reader = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA query_only=1")
        reader.execute("PRAGMA mmap_size=268435456")
        reader.execute("PRAGMA busy_timeout=1000")
        self._reader = reader

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.executescript(SCHEMA)
            self._conn = conn
            conn.executescript(accounting.SCHEMA)
            conn.executescript(blobs.SCHEMA)
            conn.executescript(sqlite_keys.SCHEMA)
            conn.executescript(sqlite_users.SCHEMA)
            conn.executescript(versions.SCHEMA)
            conn.executescript(INLINE_SCHEMA)
            conn.executescript(sqlite_leases.SCHEMA)
            conn.executescript(generation.SCHEMA)  # last: its triggers watch the tables above
            self._transaction(lambda db: migrate(db, self._box, self._clock()))
        return self._conn

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db()
        with self._turn.held():
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
        self._lease.acquire()
        self._pool.start()
        # The schema exists once the writer has opened the file; then the reader may.
        return self._run(lambda: None if self._db() else None).addCallback(lambda _: self._open_reader())

    def stop(self) -> Deferred[None]:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._turn.close()

        def stop_pool(result: object) -> object:
            self._pool.stop()
            # Released last: intents still recorded under this name are a dead writer's from now on.
            self._lease.release()
            return result

        return self._run(close).addBoth(stop_pool)

    # -- the catalog's generation (tenants and keys: vaultaire/catalog/sqlite_tenants.py)

    def generation(self) -> Deferred[int]:
        # Once per request: a primary-key read on the reactor's reader (catalog/generation.py).
        return self._read(generation.read)

    # -- artifacts

    def artifact(self, container_id: int, key: str, version_id: str | None = None) -> Deferred[Artifact | None]:
        return self._read(lambda db: versions.lookup(db, container_id, key, version_id))

    def _queue_garbage(
        self, db: sqlite3.Connection, container_id: int, locators: Iterable[str], placement: str | None = None
    ) -> None:
        """Queue blobs on ``placement`` (empty or None: where the container's blobs go)."""
        if not placement:
            row = db.execute("SELECT placement FROM containers WHERE id = ?", (container_id,)).fetchone()
            placement = row[0] if row else "local"
        blobs.queue(db, placement, locators, self._clock())

    def _queue_parts(self, db: sqlite3.Connection, container_id: int, rows: Iterable[tuple[str, str | None]]) -> None:
        """Queue (locator, placement) pairs of parts, each on its own placement."""
        by_placement: dict[str, list[str]] = {}
        for locator, placement in rows:
            by_placement.setdefault(placement or "", []).append(locator)
        for placement, locators in by_placement.items():
            self._queue_garbage(db, container_id, locators, placement)

    def _check_condition(
        self, db: sqlite3.Connection, container_id: int, key: bytes, condition: WriteCondition
    ) -> None:
        row = db.execute("SELECT md5 FROM artifacts WHERE container_id = ? AND key = ?", (container_id, key)).fetchone()
        if condition.must_not_exist and row is not None:
            raise PreconditionFailed("the key exists")
        if (condition.must_exist or condition.etag_must_be is not None) and row is None:
            # S3: If-Match on a missing key is 404 NoSuchKey, not 412.
            raise NoSuchArtifact("the key does not exist")
        if condition.etag_must_be is not None and row[0] != condition.etag_must_be:
            raise PreconditionFailed("the key does not have the expected ETag")

    def _install(
        self, db: sqlite3.Connection, artifact: Artifact, condition: WriteCondition | None, intended: bool = False
    ) -> VersionChange:
        if condition is not None:
            self._check_condition(db, artifact.container_id, artifact.key.encode("utf-8"), condition)
        stored, removed = versions.install(db, artifact, artifact.size, self._clock(), intended)
        return VersionChange(stored, removed)

    def put_artifact(
        self, artifact: Artifact, condition: WriteCondition | None = None, *, intended: bool = False
    ) -> Deferred[VersionChange]:
        return self._write(lambda db: self._install(db, artifact, condition, intended))

    def delete_artifact(self, container_id: int, key: str) -> Deferred[VersionChange]:
        def work(db: sqlite3.Connection) -> VersionChange:
            marker, removed = versions.delete_key(db, container_id, key, self._clock())
            return VersionChange(marker, removed)

        return self._write(work)

    def delete_version(
        self, container_id: int, key: str, version_id: str, guard: Callable[[Artifact], None] | None = None
    ) -> Deferred[VersionChange]:
        def work(db: sqlite3.Connection) -> VersionChange:
            return VersionChange(None, versions.delete_version(db, container_id, key, version_id, guard, self._clock()))

        return self._write(work)

    def amend_artifact(
        self, container_id: int, key: str, version_id: str | None, change: Callable[[Artifact], Artifact]
    ) -> Deferred[Artifact]:
        return self._write(lambda db: versions.amend(db, container_id, key, version_id, change))

    def list_versions(
        self,
        container_id: int,
        prefix: str,
        delimiter: str,
        key_marker: str | None,
        version_id_marker: str | None,
        limit: int,
    ) -> Deferred[VersionsPage]:
        return self._run(
            lambda: version_listing.list_versions(
                self._db(), container_id, prefix, delimiter, key_marker, version_id_marker, limit
            )
        )

    def list_artifacts(
        self, container_id: int, prefix: str, delimiter: str, after: str | None, limit: int
    ) -> Deferred[ListingPage]:
        def work() -> ListingPage:
            db = self._db()

            fetch = sqlite_listing.artifact_rows(db, _ARTIFACT_COLUMNS, container_id)

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

    def list_listed(
        self, container_id: int, prefix: str, delimiter: str, after: str | None, limit: int
    ) -> Deferred[ListedPage]:
        # ListObjects' lean page (catalog/sqlite_listing.py)
        return self._run(lambda: sqlite_listing.listed_page(self._db(), container_id, prefix, delimiter, after, limit))

    # -- blobs not referenced: write intents and garbage (statements in catalog/blobs.py)

    def garbage(
        self, limit: int, queued_before: float = float("inf"), placements: Iterable[str] | None = None
    ) -> Deferred[list[tuple[str, str]]]:
        """(placement, locator) of garbage queued at or before ``queued_before``, oldest first,
        only on ``placements`` when given (garbage of another placement waits for it)."""
        wanted = None if placements is None else list(placements)
        return self._run(lambda: blobs.due(self._db(), queued_before, limit, wanted))

    def intend_blobs(self, placement: str, locators: list[str]) -> Deferred[None]:
        """Record, durably, that these blobs are about to be written by this process."""
        self._lease.acquire()  # never an intent under a name no lock keeps alive
        owner = self._lease.owner
        return self._write_unrefusable(lambda db: blobs.intend(db, owner, placement, locators, self._clock()))

    def reclaim_abandoned(self) -> Deferred[list[tuple[str, str]]]:
        """Move the intents of writers that died (kill -9, power loss) to the garbage.

        Returns their (placement, locator): nothing ever referenced them, so
        no reader can have them open and they may be freed at once.
        """

        def find() -> list[str]:
            return self._lease.dead_owners(blobs.owners(self._db()))

        def reclaim(dead: list[str]) -> Deferred[list[tuple[str, str]]]:
            def work(db: sqlite3.Connection) -> list[tuple[str, str]]:
                found = []
                for owner in dead:
                    found += blobs.abandon(db, owner, self._clock())
                return found

            def buried(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
                for owner in dead:
                    self._lease.bury(owner)
                return found

            return self._write(work).addCallback(buried)

        return self._run(find).addCallback(reclaim)

    # -- usage and quotas

    def tenant_totals(self, tenant_id: str) -> Deferred[StoredTotals]:
        return self._read(lambda db: accounting.tenant_totals(db, tenant_id))

    def all_tenant_totals(self) -> Deferred[dict[str, StoredTotals]]:
        return self._run(lambda: accounting.all_tenant_totals(self._db()))

    def check_quota(self, tenant_id: str, more_bytes: int, more_objects: int) -> Deferred[None]:
        """Raises QuotaExceeded now if the write cannot fit; the commit checks again atomically."""
        return self._run(lambda: accounting.check_quota(self._db(), tenant_id, more_bytes, more_objects))

    def add_traffic(self, rows: list[UsageRow]) -> Deferred[None]:
        return self._write(lambda db: accounting.add_traffic(db, rows))

    def rollup_usage(self) -> Deferred[int]:
        return self._write(lambda db: accounting.rollup(db, self._clock()))

    def usage(self, tenant_id: str, first_hour: int, end_hour: int) -> Deferred[list[UsageRow]]:
        """Hourly rows, brought up to date first so the current hour's storage is counted."""

        def work(db: sqlite3.Connection) -> list[UsageRow]:
            accounting.rollup(db, self._clock())
            return accounting.usage_rows(db, tenant_id, first_hour, end_hour)

        return self._write(work)
