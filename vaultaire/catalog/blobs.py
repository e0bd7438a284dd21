"""Blobs the catalog does not (or no longer) reference: write intents and garbage.

A blob exists on a driver in exactly one of three states the catalog knows:

* **intended**: a write in progress recorded it (``intents``) before its
  first byte reached the driver; the transaction that commits a reference to
  it removes the intent, and a failed write removes it after dropping the blob;
* **referenced**: an artifact or a part names it;
* **garbage**: nothing references it any more (``garbage``), queued in the
  transaction that dropped the reference, until the sweep frees it.

So no crash can leave a blob the catalog has forgotten: an intent whose
writer died is moved to the garbage (:func:`abandon`) by the next sweep. A
writer is alive while it holds an exclusive lock on its file in the writers
directory (see :class:`WriterLease`); the kernel releases it when the process
dies, however it dies, so a sweep never takes a live worker's blob.

Statements only: each function runs inside a transaction its caller owns.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import uuid
from collections.abc import Iterable

from vaultaire.catalog import inline, sqlite_inline
from vaultaire.errors import BlobWithdrawn

SCHEMA = """
-- Blobs no longer referenced, queued in the same transaction that dropped them.
CREATE TABLE IF NOT EXISTS garbage (
    locator TEXT PRIMARY KEY,
    placement TEXT NOT NULL,
    queued REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS garbage_by_age ON garbage (queued);
-- Blobs being written and not yet referenced, by the writer (a process) writing them.
CREATE TABLE IF NOT EXISTS intents (
    locator TEXT PRIMARY KEY,
    placement TEXT NOT NULL,
    owner TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS intents_by_owner ON intents (owner);
"""


def intend(db: sqlite3.Connection, owner: str, placement: str, locators: Iterable[str], now: float) -> None:
    db.executemany(
        "INSERT INTO intents (locator, placement, owner, created) VALUES (?, ?, ?, ?)",
        [(loc, placement, owner, now) for loc in locators],
    )


def settle(db: sqlite3.Connection, locators: Iterable[str], claim: bool = False) -> None:
    """The blobs are referenced now (or gone): they are no longer intents. With ``claim``
    (a write's own new blobs), each intent must still be there: see ``claim_intents``.

    Inline locators never had one (their bytes reach no driver): no statement for them."""
    if claim:
        claim_intents(db, locators)
        return
    db.executemany("DELETE FROM intents WHERE locator = ?", [(loc,) for loc in locators if not inline.is_inline(loc)])


def claim_intents(db: sqlite3.Connection, locators: Iterable[str]) -> None:
    """``settle`` for a write's own new blobs: each intent must still be recorded, or the
    transaction is refused (BlobWithdrawn) and rolls back.

    An intent is the blob's one token: the commit that references the blob consumes it, or
    ``withdraw`` (the write failed) or ``abandon`` (its writer died) does, and only that one
    may decide the blob's fate. Without the check, a commit that reaches PostgreSQL after
    its write was withdrawn (a session cut from its client, its statements delivered late)
    would reference a deleted blob."""
    for loc in locators:
        if inline.is_inline(loc):
            continue
        if isinstance(db, sqlite3.Connection):
            if db.execute("DELETE FROM intents WHERE locator = ?", (loc,)).rowcount != 1:
                raise BlobWithdrawn(f"the intent of blob {loc} is gone")
        else:
            # On PostgreSQL the check runs in the server (schema version 4): a write in the group
            # commit's pipeline waits for no answer; its failure comes with the write's sync.
            db.execute("SELECT vaultaire_claim_intent(?)", (loc,))


def queue(db: sqlite3.Connection, placement: str, locators: Iterable[str], now: float) -> None:
    """Queue blobs for the sweep; an intent for one of them is settled by it.

    Blobs kept in the catalog itself (inline locators) need no sweep: their rows go now."""
    rows = list(locators)
    if any(inline.is_inline(loc) for loc in rows):
        sqlite_inline.drop(db, rows)
        rows = [loc for loc in rows if not inline.is_inline(loc)]
    db.executemany(
        "INSERT OR IGNORE INTO garbage (locator, placement, queued) VALUES (?, ?, ?)",
        [(loc, placement, now) for loc in rows],
    )
    settle(db, rows)


def withdraw(db: sqlite3.Connection, placement: str, locators: Iterable[str], now: float) -> list[str]:
    """A failed write's blobs whose intents are still here become garbage; returns them.

    The write's commit may have happened with only its answer lost (the database stopped
    meanwhile): that commit settled the intent, so a blob without one is referenced and is
    not returned. The DELETE takes the intent's row lock, so a commit still in flight for
    it (a session cut from its client) is waited for, never raced."""
    withdrawn = [
        loc
        for loc in locators
        if not inline.is_inline(loc)
        and db.execute("DELETE FROM intents WHERE locator = ? RETURNING locator", (loc,)).fetchall()
    ]
    db.executemany(
        "INSERT OR IGNORE INTO garbage (locator, placement, queued) VALUES (?, ?, ?)",
        [(loc, placement, now) for loc in withdrawn],
    )
    return withdrawn


def forget(db: sqlite3.Connection, locators: Iterable[str]) -> None:
    """The blobs are deleted: nothing about them is kept."""
    rows = [(loc,) for loc in locators]
    db.executemany("DELETE FROM garbage WHERE locator = ?", rows)
    db.executemany("DELETE FROM intents WHERE locator = ?", rows)


def due(
    db: sqlite3.Connection, queued_before: float, limit: int, placements: Iterable[str] | None = None
) -> list[tuple[str, str]]:
    """(placement, locator) of garbage queued at or before ``queued_before``, oldest first;
    only on ``placements`` when given."""
    sql = "SELECT placement, locator FROM garbage WHERE queued <= ?"
    args: list[object] = [queued_before]
    if placements is not None:
        names = sorted(placements)
        sql += f" AND placement IN ({', '.join('?' * len(names))})"
        args += names
    rows = db.execute(sql + " ORDER BY queued LIMIT ?", [*args, limit])
    return [(r[0], r[1]) for r in rows]


def owners(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute("SELECT DISTINCT owner FROM intents")]


def abandon(db: sqlite3.Connection, owner: str, now: float) -> list[tuple[str, str]]:
    """A dead writer's intents become garbage (its blobs may be whole, staged or absent);
    returns their (placement, locator)."""
    found = [(r[0], r[1]) for r in db.execute("SELECT placement, locator FROM intents WHERE owner = ?", (owner,))]
    db.execute(
        "INSERT OR IGNORE INTO garbage (locator, placement, queued)"
        " SELECT locator, placement, ? FROM intents WHERE owner = ?",
        (now, owner),
    )
    db.execute("DELETE FROM intents WHERE owner = ?", (owner,))
    return found


class WriterLease:
    """This process's name as a writer, alive as long as the process holds its lock file.

    The file is created and locked under a temporary name, then renamed into
    place, so a sweep never sees an unlocked lease of a live writer. Lock
    files are host-local: every process writing to one catalog must share
    the directory (true of the daemon and its workers on one data directory).
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.owner = uuid.uuid4().hex
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lease (once; later calls keep it)."""
        if self._fd is not None:
            return
        os.makedirs(self.directory, exist_ok=True)
        temporary = os.path.join(self.directory, f".{self.owner}.new")
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(temporary, os.path.join(self.directory, self.owner))
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.directory, self.owner))
        os.close(self._fd)
        self._fd = None

    def dead_owners(self, known: Iterable[str]) -> list[str]:
        """Owners among ``known`` and the leases on disk whose process is gone.

        A lease we can lock is a dead writer's: it is removed here, after
        the caller has been told (the caller abandons its intents first, so
        a crash between the two leaves the lease for the next sweep).
        """
        try:
            on_disk = {n for n in os.listdir(self.directory) if not n.startswith(".")}
        except FileNotFoundError:
            on_disk = set()
        dead = []
        for owner in sorted((set(known) | on_disk) - {self.owner}):
            if owner not in on_disk or self._lockable(owner):
                dead.append(owner)
        return dead

    def _lockable(self, owner: str) -> bool:
        try:
            fd = os.open(os.path.join(self.directory, owner), os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)  # closing drops our lock too; the lease is removed by bury()
        return True

    def bury(self, owner: str) -> None:
        """Remove a dead writer's lease once its intents are garbage."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.directory, owner))
