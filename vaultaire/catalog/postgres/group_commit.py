"""Writes on PostgreSQL committed in groups: one transaction, one lock, one commit for many.

Every write takes the deployment's write lock (``WRITE_LOCK``), so they run one after
another whatever the concurrency; what a write costs is how long it holds the lock: its
round trips to the server, and a commit (a WAL flush) of its own. So, as the SQLite
catalog's writer does, a gateway's writes that queue while one transaction runs go
together into the next: ``BEGIN``, the lock, then each write in a savepoint of its own (a
refused write rolls back alone, as if it had never been in the group), one ``COMMIT``.
Every caller hears of its write only after that commit. Writes that cannot be refused
(``Unguarded``: a writer's intents, a freed blob's rows) take no savepoint and no round
trip of their own.

The connection is in pipeline mode throughout (see dialect.py): statements whose answer
nobody waits for (the savepoints, most of a write's UPDATEs and INSERTs) go with the next
read's round trip; each write ends with a sync, so a failure is its own write's, never its
neighbour's.

The guarantees are the one-write transaction's: the lock is taken before any write's first
read, every write reads the latest commit and what the writes before it in the group did
(so of two conditional creates exactly one wins, a quota counts the group's earlier bytes),
and garbage is queued in the same transaction as the change that dropped it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import psycopg.errors
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from vaultaire.catalog.postgres.dialect import Connection

# Writers take one lock, across gateways, before their first read: the SQLite catalog's one
# writer at a time (BEGIN IMMEDIATE), so every statement after it reads the latest commit and no
# race can be lost. Measured: SERIALIZABLE without it retried so often on the container's
# totals row (every PUT updates it) that 8 concurrent PUTs ran out of attempts (503s).
WRITE_LOCK = 0x76617577

# A group holds the lock that every gateway's writes wait for: bounded, so the others get a turn.
MAX_GROUP = 64

Work = Callable[[Connection], Any]


class Unguarded:
    """A write that cannot be refused: only new rows under keys nobody else mints (a writer's
    intents), or deletions (a freed blob's rows). It runs with no savepoint of its own and
    waits for no answer: its statements ride the next write's round trip, or the commit's.
    Should one fail all the same (only a lost connection, in practice), the group fails.

    Measured: a 4 KiB PUT's three writes are an intent, its version and a freed blob's rows;
    the two unguarded ones cost a round trip each under the write lock, and four statements."""

    def __init__(self, work: Work) -> None:
        self.work = work

    def __call__(self, db: Connection) -> Any:
        return self.work(db)


def retryable(e: BaseException) -> bool:
    """A race lost to another transaction: the work is run again from the start."""
    if isinstance(e, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected):
        return True
    # A unique key taken by a concurrent commit the statements checked for (ensure_tenant...):
    # on the retry, their check sees it. (Raised at a sync in pipeline mode, so maybe untranslated.)
    return isinstance(e, psycopg.errors.UniqueViolation) or isinstance(e.__cause__, psycopg.errors.UniqueViolation)


def connection_lost(conn: psycopg.Connection[Any], e: BaseException) -> bool:
    """The session is gone (or unusable): the whole group fails, no savepoint can save it."""
    return conn.broken or conn.closed or isinstance(e, psycopg.InterfaceError)


def begin(conn: psycopg.Connection[Any], pipeline: psycopg.Pipeline) -> None:
    """Open the group's transaction and wait for the write lock (one round trip)."""
    conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
    pipeline.sync()


def run_one(
    db: Connection,
    work: Work,
    attempts: int,
    unavailable: Callable[[BaseException], BaseException],
) -> Any:
    """``work`` in a savepoint of the open transaction: its result, or a Failure (rolled back alone).

    Raises only when the connection itself is lost (or an ``Unguarded`` write fails): then the
    whole group has failed."""
    conn, pipeline = db.raw, db.pipeline
    assert pipeline is not None
    if isinstance(work, Unguarded):
        return work(db)
    attempt = 0
    while True:
        attempt += 1
        conn.execute("SAVEPOINT one_write")
        try:
            result = work(db)
            db.sync()  # its deferred statements' errors are its own
        except Exception as e:
            failure = Failure()
            if connection_lost(conn, e):
                raise
            try:
                pipeline.sync()  # out of the pipeline's aborted state, if an error put it there
            except psycopg.Error:
                pass
            if connection_lost(conn, e):
                raise
            conn.execute("ROLLBACK TO SAVEPOINT one_write")
            # Waited for: psycopg forgets its prepared statements when it reads a ROLLBACK's
            # answer, so no statement may be sent before it, naming one of them (found measured:
            # "prepared statement ... does not exist"). It has the server drop them with the next
            # statement it sends: the RELEASE here, before any write can have psycopg prepare a
            # statement that the drop would take too (an executemany's is prepared at once).
            pipeline.sync()
            conn.execute("RELEASE SAVEPOINT one_write")
            pipeline.sync()
            if attempt < attempts and retryable(e):
                continue
            if isinstance(e, psycopg.OperationalError):
                # A statement timeout, the server shutting down...: the write is refused as
                # unavailable (503), as a write on its own would be.
                return Failure(unavailable(e))
            return failure
        conn.execute("RELEASE SAVEPOINT one_write")
        return result


def run_group(
    db: Connection,
    group: list[tuple[Work, Deferred[Any]]],
    attempts: int,
    unavailable: Callable[[BaseException], BaseException],
) -> list[tuple[Deferred[Any], Any]]:
    """The group in one transaction, committed; each Deferred with its write's outcome.

    The transaction is open, the lock held (``begin``). Raises if the commit (or the
    connection) fails: then no write of the group happened."""
    outcomes = [(d, run_one(db, work, attempts, unavailable)) for work, d in group]
    db.raw.execute("COMMIT")
    assert db.pipeline is not None
    db.pipeline.sync()
    return outcomes
