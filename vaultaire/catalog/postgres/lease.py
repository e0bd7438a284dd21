"""A writer's liveness on a shared catalog: a PostgreSQL advisory lock, held by its session.

The SQLite catalog knows a writer is alive while it holds a lock file in the data directory
(vaultaire/catalog/blobs.py, WriterLease); gateways on several hosts share no directory,
but they share the database. Each process holds a session-level advisory lock named by its
owner id on a connection of its own, which PostgreSQL drops when that session ends, however
the process ends (kill -9, a host lost: the server notices the dead TCP connection). An
owner whose lock another session can take is a dead writer's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import psycopg

# Advisory lock keys of writers live in their own two-int space: (this class, owner's bits).
_CLASS = 0x56415554  # "VAUT"


def _key(owner: str) -> int:
    return int(owner[:8], 16) - (1 << 31)  # a signed 32-bit int: the second half of the lock's name


class AdvisoryLease:
    """This process's name as a writer; the same methods as blobs.WriterLease, over PostgreSQL."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.owner = uuid.uuid4().hex
        self._conn: psycopg.Connection[Any] | None = None

    def acquire(self) -> None:
        """Take the lease (blocking: on a worker thread). If the session that held it died (a
        PostgreSQL restart), a new owner name is taken: intents under the old one may have been
        reclaimed by another gateway meanwhile, and are no longer this process's to settle."""
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return
        if self._conn is not None:
            self.owner = uuid.uuid4().hex
        conn = psycopg.connect(self._url, autocommit=True)
        conn.execute("SELECT pg_advisory_lock(%s, %s)", (_CLASS, _key(self.owner)))
        self._conn = conn

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.closed and not self._conn.broken

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def dead_owners(self, known: Iterable[str], conn: psycopg.Connection[Any]) -> list[str]:
        """Owners among ``known`` whose lock no session holds (asked on ``conn``, a session
        other than the lease's own, which would take its own lock again)."""
        dead = []
        for owner in sorted(set(known) - {self.owner}):
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (_CLASS, _key(owner))).fetchone()
            if row is not None and row[0]:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_CLASS, _key(owner)))
                dead.append(owner)
        return dead

    def bury(self, owner: str) -> None:
        """Nothing is kept per owner outside the database."""
