"""The two reads every GET makes, asked of PostgreSQL from the reactor itself: no thread hop.

A GET reads the catalog's generation (catalog/generation.py) and the key's current version.
On SQLite both are point reads on the reactor's own connection. On PostgreSQL through
threads each cost a hand-off there and back (measured with py-spy: the reactor's share was
the pool's queues and taking the GIL back from the threads, ~150 µs of gateway CPU per read,
several times what psycopg itself spends). Here one connection of this process's own is
driven by the reactor, non-blocking (libpq's socket in the reactor's epoll, psycopg's own
Transformer converting parameters and rows). Each statement is prepared once per session:
PostgreSQL's parse and plan per read cost it more CPU than the read (bench/catalog_backends.py:
144 µs of server CPU per GET, 44 prepared), on the cores the gateways need.

The statements that wait while a batch is on the wire go out together as the next batch, in
libpq's pipeline mode: one write, one Sync, their answers read as they come and handed out
at the batch's end. A statement sent alone cost the gateway ~45 µs and PostgreSQL ~31 µs
(a write, a wake-up of each side, a transaction); four in a batch cost 8 and 11 each. A
statement that fails fails alone: the others of its batch, which the server then skips,
go out again in the next.

The generation read stays exact: a request waits for a read *sent after it arrived*, never
for one already on the wire, so a change committed before the request is seen, as with a
read of its own. Requests arriving while one read is on the wire share the next one, so
under load the reads are fewer than the requests.

Anything unusual goes to the ordinary path: a key without a current data version, a
version asked by id, a connection not (yet, or no longer) open; the connection is opened
again in a thread, at most once a second, while the ordinary path serves.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg._queries import PostgresQuery  # parameters to the wire as psycopg's own cursor does
from psycopg.adapt import Transformer
from psycopg.pq import ExecStatus
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFDSet, IReactorFromThreads, IReadWriteDescriptor
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

# How soon a lost connection is opened again (meanwhile the ordinary path serves).
_REOPEN_SECONDS = 1.0

# At most this many statements go out in one batch (one write, one Sync, one answer to read).
_BATCH = 64

Rows = list[tuple[Any, ...]]
Shape = tuple[bytes, tuple[int, ...]]  # a statement's text and its parameters' types
Waiting = tuple[bytes, Sequence[Any], Deferred[Rows]]  # a statement, its parameters, its caller


class _Sent:
    """One message of the batch on the wire: a statement (``waiting`` its caller) or a preparation."""

    __slots__ = ("shape", "name", "waiting", "result")

    def __init__(self, shape: Shape, name: bytes, waiting: Waiting | None = None) -> None:
        self.shape = shape
        self.name = name
        self.waiting = waiting
        self.result: Any = None  # the server's answer (a psycopg PGresult), once read


def _deliver(answers: list[tuple[Deferred[Rows], Rows | Failure]]) -> None:
    """Each caller hears its statement's answer: rows, or the failure."""
    for d, answer in answers:
        if isinstance(answer, Failure):
            d.errback(answer)
        else:
            d.callback(answer)


def _refused(result: Any) -> psycopg.DatabaseError:
    """The server's error answer to a statement, as the statement's caller hears it."""
    return psycopg.DatabaseError((result.error_message or b"statement failed").decode("utf-8", "replace").strip())


class Unavailable(Exception):
    """The reactor's connection is not open: use the ordinary path."""


@implementer(IReadWriteDescriptor)
class ReactorConnection:
    """One PostgreSQL connection stepped by the reactor; ``query`` runs one statement at a time, in order."""

    def __init__(self, reactor: Any, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._reactor = reactor
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None
        self._fd = -1
        self._opening = False
        self._opened_at = 0.0
        self._queue: deque[Waiting] = deque()
        self._tx: Any = None  # psycopg's Transformer (a C class when psycopg_binary is in, no type for mypy)
        # Statements prepared on this session, by text and parameter types: the server then parses
        # and plans each once, not per GET (PostgreSQL's CPU per read, on the gateways' cores too).
        self._prepared: dict[Shape, bytes] = {}
        # The batch on the wire: its statements (and preparations) in order, until its end is read.
        self._batch: deque[_Sent] = deque()
        self._on_wire = False
        self._answers: list[tuple[Deferred[Rows], Rows | Failure]] = []  # handed out at the batch's end
        self._retries: list[Waiting] = []  # not run: an earlier statement of their batch failed
        self._failed_preparations: dict[bytes, Any] = {}  # name -> the server's answer, for this batch
        self._handing_out = False
        self.batches = 0  # batches sent on this connection's sessions (what the tests count)
        self._names = itertools.count()

    @staticmethod
    def usable(reactor: object) -> bool:
        return IReactorFDSet.providedBy(reactor) and IReactorFromThreads.providedBy(reactor)

    # -- opening and closing

    def open(self) -> None:
        """Open the connection in a thread (soon, not now); until it is, ``query`` is Unavailable."""
        if self._opening or self._conn is not None or time.monotonic() - self._opened_at < _REOPEN_SECONDS:
            return
        self._opening = True
        self._opened_at = time.monotonic()
        deferToThread(self._connect).addCallbacks(self._opened, self._not_opened)

    def _opened(self, conn: psycopg.Connection[Any]) -> None:
        self._opening = False
        conn.pgconn.nonblocking = 1
        conn.pgconn.enter_pipeline_mode()
        self._conn = conn
        # A duplicate of libpq's socket is what the reactor watches: libpq closes its own when it
        # finds the session gone, which would pull the descriptor from under the reactor's epoll.
        self._fd = os.dup(conn.pgconn.socket)
        self._tx = Transformer(conn)
        self._reactor.addReader(self)

    def _not_opened(self, failure: Failure) -> None:
        self._opening = False
        log.debug("reactor catalog connection not opened: {e}", e=failure.getErrorMessage())

    def close(self) -> None:
        self._lost(Unavailable("closed"), reopen=False)

    # -- statements

    def query(self, sql: str, params: Sequence[Any]) -> Deferred[Rows]:
        """The rows of ``sql`` (psycopg's %s placeholders), or Unavailable."""
        if self._conn is None:
            self.open()
            raise Unavailable("not open")
        d: Deferred[Rows] = Deferred()
        self._queue.append((sql.encode("utf-8"), params, d))
        self._next()
        return d

    def _next(self) -> None:
        """Send what waits as one batch, unless a batch is on the wire or its answers are being handed out."""
        if self._on_wire or self._handing_out or not self._queue or self._conn is None or self._tx is None:
            return
        pgconn = self._conn.pgconn
        naming: dict[Shape, bytes] = {}  # prepared in this batch, before their first use in it
        try:
            while self._queue and len(self._batch) < _BATCH:
                waiting = self._queue.popleft()
                sql, params, d = waiting
                query = PostgresQuery(self._tx)
                try:
                    query.convert(sql, params)
                except Exception:
                    d.errback(Failure())
                    continue
                shape = (sql, tuple(query.types or ()))
                name = self._prepared.get(shape) or naming.get(shape)
                # In the batch before it is sent: a send that fails fails it with the others.
                if name is None:
                    name = naming[shape] = b"v%d" % next(self._names)
                    self._batch.append(_Sent(shape, name))
                    self._batch.append(_Sent(shape, name, waiting))
                    pgconn.send_prepare(name, query.query, param_types=query.types)
                else:
                    self._batch.append(_Sent(shape, name, waiting))
                pgconn.send_query_prepared(name, query.params, param_formats=query.formats)
            pgconn.pipeline_sync()
            self._on_wire = True
            self.batches += 1
            if pgconn.flush():
                self._reactor.addWriter(self)  # rare: the batch did not fit the socket's buffer at once
        except psycopg.OperationalError as e:
            self._lost(e)

    def _collect(self) -> None:
        """Take every answer that has arrived; hand them out once the batch's end is read."""
        assert self._conn is not None
        pgconn = self._conn.pgconn
        try:
            pgconn.consume_input()
            while self._on_wire:
                if pgconn.is_busy():
                    return  # the rest is still on its way
                result = pgconn.get_result()
                if result is None:  # the end of one statement's answer
                    if not self._batch:  # answers past the batch's end: the session is not what it seems
                        self._lost(Unavailable("the session answered more than was asked"))
                        return
                    self._answered(self._batch.popleft())
                elif result.status == ExecStatus.PIPELINE_SYNC:
                    self._on_wire = False
                elif self._batch:
                    self._batch[0].result = result
        except psycopg.OperationalError as e:
            self._lost(e)
            return
        self._hand_out()

    def _answered(self, sent: _Sent) -> None:
        """One statement's answer is complete: note what it says (handed out at the batch's end)."""
        result = sent.result
        if sent.waiting is None:  # a preparation
            if result is not None and result.status == ExecStatus.COMMAND_OK:
                self._prepared[sent.shape] = sent.name
            elif result is not None and result.status != ExecStatus.PIPELINE_ABORTED:
                self._failed_preparations[sent.name] = result  # refused: its statement is wrong
            return  # (skipped: prepared again when its statement is sent again)
        sql, params, d = sent.waiting
        if result is None or result.status == ExecStatus.PIPELINE_ABORTED:
            refused = self._failed_preparations.get(sent.name)
            if refused is not None:  # its preparation failed: the statement itself is wrong
                self._answers.append((d, Failure(_refused(refused))))
            else:  # not run (an earlier statement of the batch failed): sent again in the next
                self._retries.append((sql, params, d))
            return
        if result.status != ExecStatus.TUPLES_OK:
            # Prepared again at its next use, under a new name: a schema changed under a
            # running gateway (a migration) fails a prepared statement's plan until then.
            self._prepared.pop(sent.shape, None)
            self._answers.append((d, Failure(_refused(result))))
            return
        assert self._tx is not None
        try:
            self._tx.set_pgresult(result)
            rows: Rows = self._tx.load_rows(0, result.ntuples, tuple)
        except BaseException:
            self._answers.append((d, Failure()))
        else:
            self._answers.append((d, rows))

    def _hand_out(self) -> None:
        answers, self._answers = self._answers, []
        self._queue.extendleft(reversed(self._retries))
        self._retries = []
        self._failed_preparations.clear()
        # Statements asked by these callbacks wait and go out together, in the next batch.
        self._handing_out = True
        try:
            _deliver(answers)
        finally:
            self._handing_out = False
        self._next_unless_lost()

    def _next_unless_lost(self) -> None:
        # An error answer may be the session's end (an administrator's pg_terminate_backend):
        # seen now, the statements waiting go the ordinary way at once, not after a failed send.
        if not self._lost_if_closed():
            self._next()

    def _lost_if_closed(self) -> bool:
        """True, the connection given up, if the server has ended the session."""
        if self._conn is not None and self._conn.pgconn.status != psycopg.pq.ConnStatus.OK:
            self._lost(Unavailable("the server closed the session"))
            return True
        return False

    def _lost(self, error: BaseException, reopen: bool = True) -> None:
        """The connection is gone: every statement not yet answered fails over to the ordinary path."""
        if self._conn is not None:
            self._reactor.removeReader(self)
            self._reactor.removeWriter(self)
            conn, self._conn = self._conn, None
            os.close(self._fd)
            self._fd = -1
            try:
                conn.close()
            except Exception:
                pass
        answers = self._answers
        unanswered = [sent.waiting for sent in self._batch if sent.waiting is not None]
        unanswered += self._retries + list(self._queue)
        self._batch.clear()
        self._queue.clear()
        self._on_wire, self._answers, self._retries = False, [], []
        self._failed_preparations.clear()
        self._prepared.clear()  # a new session has none
        _deliver(answers)  # answered before the loss: those answers stand
        for _sql, _params, d in unanswered:
            d.errback(Failure(Unavailable(f"{type(error).__name__}: {error}")))
        if reopen:
            self.open()

    # -- IReadWriteDescriptor

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:
        if self._conn is None:
            return
        if self._on_wire:
            self._collect()
            return
        # Idle: a notice, or the server closing the session (a restart, an idle timeout).
        try:
            self._conn.pgconn.consume_input()
        except psycopg.OperationalError as e:
            self._lost(e)
            return
        self._lost_if_closed()

    def doWrite(self) -> None:
        if self._conn is None:
            self._reactor.removeWriter(self)
            return
        try:
            if not self._conn.pgconn.flush():
                self._reactor.removeWriter(self)
        except psycopg.OperationalError as e:
            self._lost(e)

    def connectionLost(self, reason: Failure) -> None:
        self._lost(reason.value if isinstance(reason.value, BaseException) else Unavailable(str(reason)))

    def logPrefix(self) -> str:
        return "vaultaire-catalog-pg-reactor"


class GenerationReads:
    """The generation, read exactly (see the module docstring), sharing reads among waiting requests."""

    def __init__(self, connection: ReactorConnection, sql: str) -> None:
        self._connection = connection
        self._sql = sql
        self._waiting: list[Deferred[int]] = []
        self._on_wire = False

    def read(self) -> Deferred[int]:
        """The generation as of a read sent after this call; Unavailable at once if there is no connection."""
        d: Deferred[int] = Deferred()
        self._waiting.append(d)
        if not self._on_wire:
            try:
                self._send()
            except Unavailable:
                self._waiting.remove(d)
                raise
        return d

    def _send(self) -> None:
        waiting, self._waiting = self._waiting, []
        try:
            pending = self._connection.query(self._sql, ())
        except Unavailable:
            self._waiting = waiting + self._waiting
            raise
        self._on_wire = True
        pending.addBoth(self._answered, waiting)

    def _answered(self, result: Rows | Failure, waiting: list[Deferred[int]]) -> None:
        self._on_wire = False
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(int(result[0][0]))
        if self._waiting:
            try:
                self._send()
            except Unavailable as e:
                waiting, self._waiting = self._waiting, []
                for d in waiting:
                    d.errback(Failure(e))
