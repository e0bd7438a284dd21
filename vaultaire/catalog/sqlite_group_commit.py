"""Group commit on the catalog's writer: the writes that wait share one transaction and one fsync.

A write is queued with its Deferred; one drain at a time (on the writer's thread) takes what
waits, runs each in a savepoint of its own (a refused write rolls back alone) and commits
them together. Every caller's Deferred fires only after that commit is durable. A write that
met a full disk is retried once after the headroom file is released, else refused cleanly.

Mixed into SQLiteCatalog; the PostgreSQL catalog keeps the queue and the drain and overrides
where the drain runs (``_start_writer``), how many writes a group holds (``_MAX_GROUP``) and
how a group commits (``_commit_writes``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger
from twisted.python.failure import Failure

from vaultaire.catalog.headroom import Headroom
from vaultaire.catalog.sqlite_statements import SQLiteStatements
from vaultaire.catalog.sqlite_write_lock import WriteTurn
from vaultaire.diskspace import is_full
from vaultaire.errors import InsufficientStorage

T = TypeVar("T")
log = Logger()

Write = tuple[Callable[[sqlite3.Connection], Any], Deferred[Any]]


def _fire_all(outcomes: list[tuple[Deferred[Any], Any]]) -> None:
    for d, outcome in outcomes:
        if isinstance(outcome, Failure):
            d.errback(outcome)
        else:
            d.callback(outcome)


class GroupCommit(SQLiteStatements):
    """Mixed into SQLiteCatalog: ``_write``, and the writer's drain."""

    _reactor: IReactorFromThreads
    _queue: list[Write]
    _queue_lock: threading.Lock
    _draining: bool
    _turn: WriteTurn
    headroom: Headroom | None

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> Deferred[T]:
        """Run ``work`` in a transaction, committed together with whatever else is waiting.

        Group commit: writes that arrive while the catalog thread is busy are
        run in one transaction, each in a savepoint of its own (a refused
        write rolls back alone), and committed with one fsync. Every caller's
        Deferred fires only after that commit is durable.
        """
        d: Deferred[T] = Deferred()
        with self._queue_lock:
            self._queue.append((work, d))
            if self._draining:
                return d
            self._draining = True
        self._start_writer(self._drain).addErrback(lambda f: log.failure("catalog writer failed", f))
        return d

    def _write_unrefusable(self, work: Callable[[sqlite3.Connection], T]) -> Deferred[T]:
        """``_write`` of a write that cannot be refused (new rows under keys nobody else mints, or
        deletions): here the same; the PostgreSQL catalog runs it without a savepoint of its own."""
        return self._write(work)

    # Writes committed in one transaction at most (None: all that wait).
    _MAX_GROUP: int | None = None

    def _start_writer(self, drain: Callable[[], None]) -> Deferred[None]:
        """Run ``drain`` on the thread that commits writes: here the catalog thread."""
        return self._run(drain)

    def _drain(self) -> None:
        """On the writer's thread: commit batches until the queue is empty."""
        while True:
            with self._queue_lock:
                cut = len(self._queue) if self._MAX_GROUP is None else self._MAX_GROUP
                batch, self._queue = self._queue[:cut], self._queue[cut:]
                if not batch:
                    self._draining = False
                    return
            self._reactor.callFromThread(_fire_all, self._commit_writes(batch))

    def _commit_writes(self, batch: list[Write]) -> list[Any]:
        """One batch committed: each write's Deferred with its outcome."""
        return self._on_full_disk(batch, self._commit_batch(batch))

    def _on_full_disk(self, batch: list[Write], outcomes: list[Any]) -> list[Any]:
        """Writes that met a full disk: retried once after releasing the headroom, else refused cleanly."""
        full = {id(d) for d, o in outcomes if isinstance(o, Failure) and is_full(o.value)}
        if not full:
            return outcomes
        if self.headroom is not None and self.headroom.release():
            retried = dict((id(d), (d, o)) for d, o in self._commit_batch([w for w in batch if id(w[1]) in full]))
            outcomes = [retried.get(id(d), (d, o)) for d, o in outcomes]
        refused = InsufficientStorage("The server's disk is full; the catalog could not record the change.")
        return [(d, Failure(refused)) if isinstance(o, Failure) and is_full(o.value) else (d, o) for d, o in outcomes]

    def _commit_batch(self, batch: list[Write]) -> list[Any]:
        db = self._db()
        try:
            with self._turn.held():
                return self._commit_batch_in_turn(db, batch)
        except Exception:
            failure = Failure()
            return [(d, failure) for _work, d in batch]

    def _commit_batch_in_turn(self, db: sqlite3.Connection, batch: list[Write]) -> list[Any]:
        outcomes: list[tuple[Deferred[Any], Any]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for work, d in batch:
                db.execute("SAVEPOINT one_write")
                try:
                    result = work(db)
                except Exception:
                    outcomes.append((d, Failure()))
                    db.execute("ROLLBACK TO one_write")
                else:
                    outcomes.append((d, result))
                db.execute("RELEASE one_write")
            db.execute("COMMIT")
        except Exception:
            failure = Failure()
            if db.in_transaction:
                db.execute("ROLLBACK")
            return [(d, failure) for _work, d in batch]
        return outcomes
