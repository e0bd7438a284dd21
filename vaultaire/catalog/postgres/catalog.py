"""The Catalog contract on PostgreSQL: one namespace for many gateways.

Every method is SQLiteCatalog's own (the same statement modules, spoken to PostgreSQL by
``dialect.Connection``); what differs is how work reaches the database:

* A pool of connections per process (psycopg_pool), each call on a worker thread of a
  Twisted thread pool of the same size: the reactor never blocks on the network.
  psycopg's blocking interface in threads rather than its asyncio one: the daemon runs the
  default (epoll) reactor, and every statement module is synchronous code shared with SQLite.
* Each write runs in a transaction that first takes a transaction-scoped advisory lock shared
  by every gateway (``WRITE_LOCK``), then reads at READ COMMITTED: writes are serialised as on
  SQLite, so of two conditional creates exactly one wins, two uploads cannot both take the
  last bytes of a quota, a delete cannot race an Object Lock change. The price, one writer at
  a time in the whole deployment, is paid per group: a gateway's writes that queue meanwhile
  share the next transaction, lock and commit, each in a savepoint (group_commit.py), on a
  connection in pipeline mode (fewer round trips while the lock is held).
* Reads run in autocommit (each statement sees the latest commit of any gateway), as the
  SQLite catalog's reader does.
* The database unreachable (restart, network, pool exhausted past its timeout, statement
  timeout) is ``CatalogUnavailable``, which the S3 layer answers 503 SlowDown; a pooled
  connection found dead at the start of a call is replaced and the call retried, so service
  resumes by itself after a restart.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg.types.numeric import NumericLoader
from psycopg_pool import ConnectionPool, PoolTimeout
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from vaultaire.catalog import blobs, inline
from vaultaire.catalog.postgres import group_commit, schema
from vaultaire.catalog.postgres import listing as pg_listing
from vaultaire.catalog.postgres.dialect import Connection
from vaultaire.catalog.postgres.lease import AdvisoryLease
from vaultaire.catalog.postgres.reactor_reads import GenerationReads, ReactorConnection, Unavailable
from vaultaire.catalog.postgres.readers import ReaderThreads
from vaultaire.catalog.postgres_leases import PostgresLeaseStatements
from vaultaire.catalog.rows import ARTIFACT_COLUMNS, artifact_row
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.catalog.sqlite_listing import COLUMNS as LISTED_COLUMNS
from vaultaire.catalog.sqlite_listing import listed_artifact
from vaultaire.diskspace import AUTO_RESERVE
from vaultaire.errors import CatalogUnavailable
from vaultaire.model import Artifact, ListedPage, ListingPage
from vaultaire.sealing import SecretBox

T = TypeVar("T")
P = TypeVar("P", ListingPage, ListedPage)
log = Logger()

# A serialization failure is retried from the start; past this many, something is very hot.
_ATTEMPTS = 32

# How long the pool retries one lost connection before leaving it to the next request.
RECONNECT_SECONDS = 5.0

# How often the writer lease's session is checked (a local check: see AdvisoryLease._alive).
LEASE_CHECK_SECONDS = 5.0

# How long a call waits for a pooled connection while the database is known to be down.
_DOWN_WAIT = 0.5

# The reads of reactor_reads.py, in psycopg's placeholders (the shared statements' are sqlite3's).
_GENERATION_SQL = "SELECT value FROM generation WHERE id = 0"
# The current version, and a small object's bytes with it (its inline locator's hex id in SQL):
# a GET of an inline object is then two reads, not three.
_CURRENT_SQL = (
    f"SELECT {ARTIFACT_COLUMNS}, CASE WHEN left(artifacts.locator, 7) = 'inline:' THEN"
    " (SELECT data FROM inline_blobs WHERE id = ('x' || substr(artifacts.locator, 8))::bit(64)::bigint) END"
    " FROM artifacts WHERE container_id = %s AND key = %s"
)
# How many such bytes wait for their GET's inline_data (a HEAD never asks): oldest dropped first.
_PREFETCHED = 64
_INLINE_SQL = "SELECT data FROM inline_blobs WHERE id = %s"


class _IntNumeric(NumericLoader):
    """sum() of bigint columns is numeric in PostgreSQL: whole values read as int, as in SQLite."""

    def load(self, data: Any) -> Any:
        value = super().load(data)
        return int(value) if value == value.to_integral_value() else value


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_loader("numeric", _IntNumeric)


def _last(entries: list[tuple[bytes, bytes | None]]) -> str | None:
    """The page's last key or common prefix, to continue after."""
    if not entries:
        return None
    key, rolled = entries[-1]
    return (key if rolled is None else rolled).decode("utf-8")


def _unavailable(e: BaseException) -> CatalogUnavailable:
    return CatalogUnavailable(f"the PostgreSQL catalog is unavailable: {type(e).__name__}: {e}".strip())


class PostgresCatalog(PostgresLeaseStatements, SQLiteCatalog):
    """The Catalog contract on a PostgreSQL database (``postgresql://...`` URL)."""

    def __init__(
        self,
        url: str,
        reactor: IReactorFromThreads,
        box: SecretBox,
        clock: Callable[[], float] = time.time,
        pool_size: int = 8,
        statement_timeout: float = 10.0,
        pool_timeout: float = 5.0,
        reader_threads: int = 4,
    ) -> None:
        # Not SQLiteCatalog.__init__: no file, no writer thread; the attributes its methods read.
        self.headroom = None
        self._reserve_setting = AUTO_RESERVE
        self._reactor = reactor
        self._box = box
        self._opened: dict[str, str] = {}
        self._clock = clock
        self._url = url
        self._pool_timeout = pool_timeout
        # Set while the database is unreachable: calls then wait for a connection only briefly,
        # so every request of an outage is a prompt 503, not one held for the pool's timeout.
        self._down = False
        # Writes (one group at a time), the lease and start/stop on Twisted's pool; reads, the
        # request path's many small calls, on leaner threads of their own (readers.py).
        self._threads = ThreadPool(minthreads=1, maxthreads=pool_size, name="vaultaire-catalog-pg")
        self._readers = ReaderThreads(reactor, reader_threads, "vaultaire-catalog-pg-read")
        # A GET's two reads from the reactor itself, where it can watch a socket (reactor_reads.py).
        self._on_reactor: ReactorConnection | None = None
        self._generations: GenerationReads | None = None
        if ReactorConnection.usable(reactor):
            self._on_reactor = ReactorConnection(reactor, self._reactor_connection)
            self._generations = GenerationReads(self._on_reactor, _GENERATION_SQL)
        self._statement_timeout = statement_timeout
        self._prefetched: OrderedDict[str, bytes] = OrderedDict()
        self._connections = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=pool_timeout,
            # A lost connection is retried with backoff (1, 2, 4... s) for this long, then given
            # up; the next request that finds no connection starts a fresh series. Unbounded (the
            # pool's default is 5 min), the backoff of a long outage delays service by as much
            # once the server is back.
            reconnect_timeout=RECONNECT_SECONDS,
            configure=_configure,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, round(pool_timeout)),
                "options": f"-c statement_timeout={round(statement_timeout * 1000)}",
            },
            name="vaultaire-catalog",
        )
        self._local = threading.local()
        self._queue = []
        self._queue_lock = threading.Lock()
        self._draining = False
        self._lease = AdvisoryLease(url)  # type: ignore[assignment]  # the SQLite lease's duck: same calls, advisory locks
        self._lease_check: LoopingCall | None = None

    # -- running work on a pooled connection, off the reactor

    def _db(self) -> Connection:  # type: ignore[override]  # dialect.Connection speaks sqlite3's calls
        db: Connection | None = getattr(self._local, "db", None)
        if db is None:
            raise RuntimeError("catalog statements run only inside _run, _read or _write")
        return db

    def _wait(self) -> float:
        """How long a call waits for a pooled connection: briefly while the database is down."""
        return min(_DOWN_WAIT, self._pool_timeout) if self._down else self._pool_timeout

    def _on_connection(self, fn: Callable[[Connection], T]) -> T:
        """On a worker thread: ``fn`` on a pooled connection, in autocommit (reads)."""
        attempt = 0
        while True:
            attempt += 1
            broken = False
            try:
                with self._connections.connection(timeout=self._wait()) as conn:
                    self._local.db = Connection(conn)
                    try:
                        result = fn(self._local.db)
                        self._down = False
                        return result
                    except psycopg.OperationalError:
                        broken = conn.broken
                        raise
                    finally:
                        self._local.db = None
            except PoolTimeout as e:
                # Unreachable, or every connection busy for pool_timeout: either way, until a call
                # succeeds again, shed load at once rather than hold requests (and their clients).
                self._down = True
                raise _unavailable(e) from e
            except Exception as e:
                if attempt < _ATTEMPTS and group_commit.retryable(e):
                    continue
                if isinstance(e, psycopg.OperationalError):
                    self._down = True  # until a call succeeds, wait for a connection only briefly
                    if broken and attempt <= self._connections.max_size:
                        # The session was lost (a restart, a terminated backend), not the statement
                        # refused: a read is safe to run again, on the next (or a fresh) connection.
                        continue
                    raise _unavailable(e) from e
                if isinstance(e, psycopg.InterfaceError):
                    raise _unavailable(e) from e
                raise

    def _run(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        return self._readers.submit(self._on_connection, lambda db: fn(*args))

    def _read(self, work: Callable[[Any], T]) -> Deferred[T]:
        return self._readers.submit(self._on_connection, work)

    # The write queue and its drain are SQLiteCatalog's (catalog/sqlite_group_commit.py: a gateway's
    # waiting writes commit as one group); a group holds the lock every gateway's writes wait for,
    # so it is bounded.
    _MAX_GROUP = group_commit.MAX_GROUP

    def _start_writer(self, drain: Callable[[], None]) -> Deferred[None]:
        return deferToThreadPool(self._reactor, self._threads, drain)

    def _commit_writes(self, batch: list[tuple[group_commit.Work, Deferred[Any]]]) -> list[Any]:  # type: ignore[override]  # dialect.Connection for sqlite3's
        try:
            return self._commit_group(batch)
        except BaseException:
            failure = Failure()
            return [(d, failure) for _work, d in batch]

    def _commit_group(self, group: list[tuple[group_commit.Work, Deferred[Any]]]) -> list[tuple[Deferred[Any], Any]]:
        attempt = 0
        while True:
            attempt += 1
            started = False
            try:
                with self._connections.connection(timeout=self._wait()) as conn:
                    try:
                        with conn.pipeline() as pipeline:
                            db = Connection(conn, pipeline)
                            self._local.db = db
                            group_commit.begin(conn, pipeline)
                            # A restart cut the writer lease's session too: take it again before
                            # anything this process writes (a local check unless it was cut).
                            self._lease.acquire()
                            started = True
                            outcomes = group_commit.run_group(db, group, _ATTEMPTS, _unavailable)
                            self._down = False
                            return outcomes
                    except BaseException:
                        if not conn.broken and not conn.closed:
                            conn.execute("ROLLBACK")
                        raise
                    finally:
                        self._local.db = None
            except PoolTimeout as e:
                # Unreachable, or every connection busy for pool_timeout: either way, until a call
                # succeeds again, shed load at once rather than hold requests (and their clients).
                self._down = True
                raise _unavailable(e) from e
            except Exception as e:
                if isinstance(e, psycopg.OperationalError | psycopg.InterfaceError):
                    # A connection that died idle in the pool (a PostgreSQL restart) fails its first
                    # statement: nothing ran, so the pool's next (fresh) connection may run it all.
                    if not started and attempt <= self._connections.max_size:
                        continue
                    self._down = True
                    raise _unavailable(e) from e
                raise

    # -- lifecycle

    def start(self) -> Deferred[None]:
        def open_all() -> None:
            with psycopg.connect(self._url, autocommit=True, connect_timeout=10) as conn:
                schema.migrate(conn)
            self._connections.open(wait=True, timeout=max(self._pool_timeout, 30.0))
            self._lease.acquire()

        def check_lease() -> Deferred[None]:
            # Failing while the database is down, and retried at the next tick: nothing to log.
            return deferToThreadPool(self._reactor, self._threads, self._lease.acquire).addErrback(lambda f: None)

        def keep_lease(result: None) -> None:
            # A writer streaming a long upload writes nothing to the catalog until its commit:
            # its lease is checked (and taken again after a restart) on a timer too, well within
            # the grace the sweep gives writers after a restart (lease.RESTART_GRACE).
            if IReactorTime.providedBy(self._reactor):
                self._lease_check = LoopingCall(check_lease)
                self._lease_check.clock = self._reactor
                self._lease_check.start(LEASE_CHECK_SECONDS, now=False)

        def open_reactor_connection(result: None) -> None:
            if self._on_reactor is not None:
                self._on_reactor.open()

        self._threads.start()
        self._readers.start()
        return (
            deferToThreadPool(self._reactor, self._threads, open_all)
            .addCallback(keep_lease)
            .addCallback(open_reactor_connection)
        )

    def stop(self) -> Deferred[None]:
        if self._on_reactor is not None:
            self._on_reactor.close()
        if self._lease_check is not None and self._lease_check.running:
            self._lease_check.stop()

        def close() -> None:
            self._connections.close()
            self._lease.release()

        def stop_threads(result: object) -> object:
            self._readers.stop()
            self._threads.stop()
            return result

        return deferToThreadPool(self._reactor, self._threads, close).addBoth(stop_threads)

    def _reactor_connection(self) -> psycopg.Connection[Any]:
        """In a thread: the connection the reactor drives (reactor_reads.py), as the pool's are."""
        conn = psycopg.connect(
            self._url,
            autocommit=True,
            connect_timeout=max(1, round(self._pool_timeout)),
            options=f"-c statement_timeout={round(self._statement_timeout * 1000)}",
        )
        _configure(conn)
        return conn

    # -- a GET's reads, from the reactor when it can (reactor_reads.py), else as every read

    def generation(self) -> Deferred[int]:
        if self._generations is None:
            return super().generation()
        try:
            read = self._generations.read()
        except Unavailable:
            return super().generation()
        # Lost on the wire (a restart): asked again the ordinary way, which says 503 if it must.
        return read.addErrback(lambda f: super(PostgresCatalog, self).generation())

    def artifact(self, container_id: int, key: str, version_id: str | None = None) -> Deferred[Artifact | None]:
        if self._on_reactor is None or version_id is not None:
            return super().artifact(container_id, key, version_id)
        try:
            read = self._on_reactor.query(_CURRENT_SQL, (container_id, key.encode("utf-8")))
        except Unavailable:
            return super().artifact(container_id, key, version_id)

        def found(rows: list[tuple[Any, ...]]) -> Artifact | None | Deferred[Artifact | None]:
            if rows:
                row = rows[0]
                if row[-1] is not None:
                    self._prefetched[row[2]] = bytes(row[-1])
                    while len(self._prefetched) > _PREFETCHED:
                        self._prefetched.popitem(last=False)
                return artifact_row(row)
            # No current data version: absent, or a delete marker (the versions table says which).
            return super(PostgresCatalog, self).artifact(container_id, key, None)

        return read.addCallbacks(found, lambda f: super(PostgresCatalog, self).artifact(container_id, key, version_id))

    def inline_data(self, locator: str) -> Deferred[bytes | None]:
        # Read with the version just now (an inline locator's bytes never change: a new write
        # mints a new locator).
        prefetched = self._prefetched.pop(locator, None)
        if prefetched is not None:
            return succeed(prefetched)
        if self._on_reactor is None:
            return super().inline_data(locator)
        try:
            read = self._on_reactor.query(_INLINE_SQL, (inline.row_id(locator),))
        except Unavailable:
            return super().inline_data(locator)
        return read.addCallbacks(
            lambda rows: bytes(rows[0][0]) if rows else None,
            lambda f: super(PostgresCatalog, self).inline_data(locator),
        )

    def probe(self) -> Deferred[dict[str, object]]:
        """A round trip to the database through the pool: "error" while it cannot be reached."""

        def probe(db: Connection) -> dict[str, object]:
            t0 = time.monotonic()
            db.execute("SELECT 1").fetchall()
            return {"status": "ok", "backend": "postgresql", "latency_seconds": round(time.monotonic() - t0, 6)}

        return self._read(probe).addErrback(lambda f: {"status": "error", "error": f.getErrorMessage()})

    # -- listings with a delimiter: the walk past common prefixes in one statement (listing.py)

    def list_artifacts(
        self, container_id: int, prefix: str, delimiter: str, after: str | None, limit: int
    ) -> Deferred[ListingPage]:
        if not delimiter or limit <= 0:
            return super().list_artifacts(container_id, prefix, delimiter, after, limit)
        return self._delimited(
            ListingPage, ARTIFACT_COLUMNS, artifact_row, container_id, prefix, delimiter, after, limit
        )

    def list_listed(
        self, container_id: int, prefix: str, delimiter: str, after: str | None, limit: int
    ) -> Deferred[ListedPage]:
        if not delimiter or limit <= 0:
            return super().list_listed(container_id, prefix, delimiter, after, limit)
        return self._delimited(
            ListedPage, LISTED_COLUMNS, listed_artifact, container_id, prefix, delimiter, after, limit
        )

    def _delimited(
        self,
        page: Callable[..., P],
        columns: str,
        parse: Callable[[Any], Any],
        container_id: int,
        prefix: str,
        delimiter: str,
        after: str | None,
        limit: int,
    ) -> Deferred[P]:
        """A page with a delimiter, ``page`` of the rows of ``columns`` read by ``parse``."""

        def work(db: Connection) -> P:
            entries, truncated, rows = self._walk(db, columns, container_id, prefix, delimiter, after, limit)
            return page(
                artifacts=tuple(parse(r) for r in rows),
                prefixes=tuple(rolled.decode("utf-8") for _, rolled in entries if rolled is not None),
                truncated=truncated,
                next_marker=_last(entries),
            )

        return self._read(work)

    @staticmethod
    def _walk(
        db: Connection, columns: str, container_id: int, prefix: str, delimiter: str, after: str | None, limit: int
    ) -> tuple[list[tuple[bytes, bytes | None]], bool, list[Any]]:
        entries, truncated = pg_listing.walk(
            db.raw,
            container_id,
            prefix.encode("utf-8"),
            delimiter.encode("utf-8"),
            None if after is None else after.encode("utf-8"),
            limit,
        )
        keys = [key for key, rolled in entries if rolled is None]
        rows: list[Any] = []
        if keys:
            rows = db.execute(
                f"SELECT {columns} FROM artifacts WHERE container_id = ? AND key = ANY(?) ORDER BY key",
                (container_id, keys),
            ).fetchall()
        return entries, truncated, rows

    # -- writers' liveness: advisory locks in the database, not lock files (see lease.py)

    def intend_blobs(self, placement: str, locators: list[str]) -> Deferred[None]:
        def work(db: Connection) -> None:
            # The lease was checked (and taken again if a restart cut it) as the transaction began.
            blobs.intend(db, self._lease.owner, placement, locators, self._clock())  # type: ignore[arg-type]  # dialect.Connection for sqlite3's

        return self._write_unrefusable(work)

    def _write_unrefusable(self, work: Callable[[Any], T]) -> Deferred[T]:
        # No savepoint, no round trip of its own: it rides the group's next one (group_commit.py).
        return self._write(group_commit.Unguarded(work))

    def reclaim_abandoned(self) -> Deferred[list[tuple[str, str]]]:
        def work(db: Connection) -> list[tuple[str, str]]:
            lease: AdvisoryLease = self._lease  # type: ignore[assignment]  # set so in __init__
            found: list[tuple[str, str]] = []
            for owner in lease.dead_owners(blobs.owners(db), db.raw):  # type: ignore[arg-type]  # dialect.Connection
                found += blobs.abandon(db, owner, self._clock())  # type: ignore[arg-type]  # dialect.Connection
                lease.forget(owner, db.raw)
            return found

        return self._write(work)
