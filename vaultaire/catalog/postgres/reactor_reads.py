"""The two reads every GET makes, asked of PostgreSQL from the reactor itself: no thread hop.

A GET reads the catalog's generation (catalog/generation.py) and the key's current version.
On SQLite both are point reads on the reactor's own connection. On PostgreSQL through
threads each cost a hand-off there and back (measured with py-spy: the reactor's share was
the pool's queues and taking the GIL back from the threads, ~150 µs of gateway CPU per read,
several times what psycopg itself spends). Here one connection of this process's own is
driven by the reactor, non-blocking (libpq's socket in the reactor's epoll, psycopg's own
generators stepping the protocol, its Transformer converting parameters and rows), one
statement in flight at a time. Each statement is prepared once per session: PostgreSQL's
parse and plan per read cost it more CPU than the read (bench/catalog_backends.py: 144 µs of
server CPU per GET, 44 prepared), on the cores the gateways need.

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
from psycopg import generators
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

_WAIT_R = 1  # psycopg's Wait.R / Ready.R (selectors.EVENT_READ)
_WAIT_W = 2  # Wait.W / Ready.W (selectors.EVENT_WRITE)

Rows = list[tuple[Any, ...]]
Shape = tuple[bytes, tuple[int, ...]]  # a statement's text and its parameters' types


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
        self._queue: deque[tuple[bytes, Sequence[Any], Deferred[Rows]]] = deque()
        self._gen: Any = None  # the statement on the wire: psycopg's generator, and its Deferred
        self._current: Deferred[Rows] | None = None
        self._tx: Any = None  # psycopg's Transformer (a C class when psycopg_binary is in, no type for mypy)
        # Statements prepared on this session, by text and parameter types: the server then parses
        # and plans each once, not per GET (PostgreSQL's CPU per read, on the gateways' cores too).
        self._prepared: dict[Shape, bytes] = {}
        self._preparing: tuple[Shape, bytes] | None = None  # a statement being prepared, and its name
        self._sent_shape: Shape | None = None  # the prepared statement on the wire
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
        if self._gen is None:
            self._next()
        return d

    def _next(self) -> None:
        # A callback of the statement just answered may have sent the next one already.
        if self._gen is not None or not self._queue or self._conn is None or self._tx is None:
            return
        sql, params, d = self._queue.popleft()
        pgconn = self._conn.pgconn
        query = PostgresQuery(self._tx)
        try:
            query.convert(sql, params)
        except Exception:
            d.errback(Failure())
            self._next()
            return
        shape = (sql, tuple(query.types or ()))
        name = self._prepared.get(shape)
        try:
            if name is None:
                # Prepared first (its answer comes to _finish), then sent as the statement it is.
                self._queue.appendleft((sql, params, d))
                self._preparing = (shape, b"v%d" % next(self._names))
                pgconn.send_prepare(self._preparing[1], query.query, param_types=query.types)
            else:
                self._current, self._sent_shape = d, shape
                pgconn.send_query_prepared(name, query.params, param_formats=query.formats)
        except psycopg.OperationalError as e:
            self._lost(e)
            return
        self._gen = generators.execute(pgconn)
        self._step(None)

    def _step(self, ready: int | None) -> None:
        try:
            wait = next(self._gen) if ready is None else self._gen.send(ready)
        except StopIteration as done:
            self._finish(done.value)
            return
        except BaseException as e:
            self._lost(e)
            return
        if wait & _WAIT_W:
            # Rare: the statement did not fit the socket's buffer at once.
            self._reactor.addWriter(self)

    def _finish(self, results: list[Any]) -> None:
        if self._preparing is not None:
            self._prepared_one(results)
            return
        d, self._current, self._gen = self._current, None, None
        assert d is not None and self._tx is not None
        try:
            (result,) = results
            if result.status != ExecStatus.TUPLES_OK:
                # Prepared again at its next use, under a new name: a schema changed under a
                # running gateway (a migration) fails a prepared statement's plan until then.
                if self._sent_shape is not None:
                    self._prepared.pop(self._sent_shape, None)
                raise _refused(result)
            self._tx.set_pgresult(result)
            rows: Rows = self._tx.load_rows(0, result.ntuples, tuple)
        except BaseException:
            d.errback(Failure())
        else:
            d.callback(rows)
        self._next_unless_lost()

    def _prepared_one(self, results: list[Any]) -> None:
        preparing, self._preparing, self._gen = self._preparing, None, None
        assert preparing is not None
        (result,) = results
        if result.status == ExecStatus.COMMAND_OK:
            shape, name = preparing
            self._prepared[shape] = name
        else:  # the statement itself is wrong: its caller hears why, as from the statement
            _sql, _params, d = self._queue.popleft()
            d.errback(Failure(_refused(result)))
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
        """The connection is gone: every statement fails over to the ordinary path."""
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
        pending = [d for d in [self._current] if d is not None] + [d for _sql, _params, d in self._queue]
        self._queue.clear()
        self._current, self._gen, self._preparing = None, None, None
        self._prepared.clear()  # a new session has none
        for d in pending:
            d.errback(Failure(Unavailable(f"{type(error).__name__}: {error}")))
        if reopen:
            self.open()

    # -- IReadWriteDescriptor

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:
        if self._gen is not None:
            self._step(_WAIT_R)
            return
        # Idle: a notice, or the server closing the session (a restart, an idle timeout).
        if self._conn is not None:
            pgconn = self._conn.pgconn
            try:
                pgconn.consume_input()
            except psycopg.OperationalError as e:
                self._lost(e)
                return
            self._lost_if_closed()

    def doWrite(self) -> None:
        self._reactor.removeWriter(self)
        if self._gen is not None:
            self._step(_WAIT_W)

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
