"""A writer's liveness on a shared catalog: a PostgreSQL advisory lock, held by its session.

The SQLite catalog knows a writer is alive while it holds a lock file in the data directory
(vaultaire/catalog/blobs.py, WriterLease); gateways on several hosts share no directory,
but they share the database. Each process holds a session-level advisory lock named by its
owner id on a connection of its own, which PostgreSQL drops when that session ends, however
the process ends (kill -9, a host lost: the server notices the dead TCP connection). An
owner whose lock another session can take is a dead writer's.
"""

from __future__ import annotations

import contextlib
import select
import threading
import uuid
from collections.abc import Iterable
from typing import Any

import psycopg

# Advisory lock keys of writers live in their own two-int space: (this class, owner's bits).
_CLASS = 0x56415554  # "VAUT"


# After PostgreSQL starts, how long a free lock of a writer that has not taken it since the
# start does not yet say that writer is dead: every writer's lock went with the restart, and a
# live one takes it again within seconds (PostgresCatalog checks its lease at each write and every
# LEASE_CHECK_SECONDS). A writer that took its lock since the start and lost it is dead at once.
RESTART_GRACE = 60.0

# Which server start a writer last took its lock under: a row of the leases table per writer,
# named "writer:OWNER", its expires_at column holding that start (not an expiry: these rows are
# never taken as leases).
_STARTED = "extract(epoch FROM pg_postmaster_start_time())"
_RECORD = (
    f"INSERT INTO leases (name, holder, expires_at) VALUES (%s, %s, {_STARTED})"
    " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
)


def _row(owner: str) -> str:
    return f"writer:{owner}"


def _key(owner: str) -> int:
    return int(owner[:8], 16) - (1 << 31)  # a signed 32-bit int: the second half of the lock's name


class AdvisoryLease:
    """This process's name as a writer; the same methods as blobs.WriterLease, over PostgreSQL."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.owner = uuid.uuid4().hex
        self._conn: psycopg.Connection[Any] | None = None
        self._guard = threading.Lock()  # writes on several worker threads check the lease at once

    def acquire(self) -> None:
        """Take the lease, or take it again if its session died (blocking: on a worker thread).

        A PostgreSQL restart ends every session, and with them every writer's lock, while the
        writers live on with intents in flight; each takes its lock again, under the same name,
        at its next write and on a timer (PostgresCatalog checks at each write and every
        LEASE_CHECK_SECONDS), so its intents are its own again.
        Until then a sweep elsewhere could take them for a dead writer's, which is why
        ``dead_owners`` waits ``RESTART_GRACE`` after a server start for writers not yet back."""
        with self._guard:
            if self._alive():
                return
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
            try:
                conn.execute("SELECT pg_advisory_lock(%s, %s)", (_CLASS, _key(self.owner)))
                conn.execute(_RECORD, (_row(self.owner), self.owner))
            except BaseException:
                conn.close()
                raise
            self._conn = conn

    def _alive(self) -> bool:
        """Whether the lease's session still holds the lock, without a round trip in the usual case.

        An idle session receives nothing unless the server ends it (a restart, a terminated
        backend): a readable socket is the cue to ask the server, and a dead one fails to answer."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            return False
        try:
            readable, _, _ = select.select([conn.fileno()], [], [], 0)
            if readable:
                conn.execute("SELECT 1")
        except (OSError, psycopg.Error):
            return False
        return not conn.broken

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.closed and not self._conn.broken

    def release(self) -> None:
        with self._guard:
            if self._conn is not None:
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("DELETE FROM leases WHERE name = %s", (_row(self.owner),))
                self._conn.close()
                self._conn = None

    def dead_owners(self, known: Iterable[str], conn: psycopg.Connection[Any]) -> list[str]:
        """Owners among ``known`` whose lock no session holds (asked on ``conn``, a session
        other than the lease's own, which would take its own lock again), less those that may
        yet come back: for ``RESTART_GRACE`` after a server start, a writer that has not taken
        its lock since that start. The rows of dead writers with no intent go on the way."""
        known = set(known) - {self.owner}
        row = conn.execute(f"SELECT extract(epoch FROM clock_timestamp()) - {_STARTED}").fetchone()
        settled = row is not None and float(row[0]) >= RESTART_GRACE
        if settled:
            # Rows of writers gone before the start (a live one has written its row again since).
            conn.execute(f"DELETE FROM leases WHERE name LIKE 'writer:%%' AND expires_at < {_STARTED}")
        recorded = {
            str(r[0])
            for r in conn.execute(f"SELECT holder FROM leases WHERE name LIKE 'writer:%%' AND expires_at = {_STARTED}")
        } - {self.owner}
        dead = []
        for owner in sorted((known | recorded) if settled else recorded):
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (_CLASS, _key(owner))).fetchone()
            if row is not None and row[0]:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_CLASS, _key(owner)))
                dead.append(owner)
        for owner in dead:
            if owner not in known:
                self.forget(owner, conn)  # a writer that died with nothing in flight
        return [owner for owner in dead if owner in known]

    def forget(self, owner: str, conn: psycopg.Connection[Any]) -> None:
        """A dead writer's row goes with its intents."""
        conn.execute("DELETE FROM leases WHERE name = %s", (_row(owner),))

    def bury(self, owner: str) -> None:
        """Nothing is kept per owner outside the database."""
