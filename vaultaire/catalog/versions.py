"""Every key holds versions, newest first: the statements that keep them (SQLite).

Where each version lives, so that the hot paths do not change with versioning:

* ``artifacts`` holds the **current data version** of each key, exactly as before
  versioning: a GET of the current version is one primary-key lookup, and
  ListObjects reads this table alone, so its pages stay flat however many
  versions lie below.
* ``versions`` holds every other version: **noncurrent** versions, and **delete
  markers** (a key whose current version is a marker has no ``artifacts`` row; its
  marker is the newest row here).

Invariant: a key with rows in ``versions`` and none in ``artifacts`` has a delete
marker as its newest version. Deleting the current version promotes the next
newest: a data version moves back to ``artifacts``, a marker stays where it is.

Order: each version has a ``rank``, smaller = newer, minted in the transaction
that writes it below every rank the key holds (so two processes writing one key
still order their versions by commit). Version ids are ``<rank, 16 hex><16 random
hex>``, so they sort newest first within a key; ``null`` is S3's id of what an
unversioned or suspended container writes. Rows written before versioning carry
no rank: their order is their modification time's.

Versioning state is the container setting ``versioning``: absent (never enabled),
``Enabled`` or ``Suspended``. Read in each write's own transaction.

Statements only: each function runs inside a transaction its caller owns. ListObjectVersions
reads them in vaultaire/catalog/version_listing.py.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from attrs import evolve

from vaultaire.catalog import accounting, blobs
from vaultaire.catalog.rows import ARTIFACT_COLUMNS, artifact_and_rank, artifact_row, extra_json
from vaultaire.errors import NoSuchArtifact, NoSuchVersion
from vaultaire.model import Artifact

SCHEMA = """
-- Noncurrent versions and delete markers (see vaultaire/catalog/versions.py); the current
-- data version of each key is its artifacts row. Same columns, then its order and id.
CREATE TABLE IF NOT EXISTS versions (
    container_id INTEGER NOT NULL,
    key BLOB NOT NULL,
    locator TEXT NOT NULL,
    size INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    modified REAL NOT NULL,
    content_type TEXT NOT NULL,
    metadata TEXT NOT NULL,
    rank INTEGER NOT NULL,
    version_id TEXT NOT NULL,
    PRIMARY KEY (container_id, key, rank)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS versions_by_id ON versions (container_id, key, version_id);
"""

# 1: before versioning; 2: the versions table; 3: small blobs in inline_blobs (catalog/inline.py),
# which a Vaultaire knowing only 2 could not read. PRAGMA user_version of the catalog file.
SCHEMA_VERSION = 3

SETTING = "versioning"  # the container setting: absent, "Enabled" or "Suspended"
ENABLED = "Enabled"
SUSPENDED = "Suspended"

NULL = "null"
# Ranks count down from here by microseconds of the clock: newer versions rank lower.
_BASE = 1 << 62
_VERSION_ID = re.compile(r"[0-9a-f]{32}")
VERSION_COLUMNS = ARTIFACT_COLUMNS + ", rank, version_id"


def valid_version_id(version_id: str) -> bool:
    """Could this be a version id of ours? (S3 answers a malformed one 400, an unknown one 404.)"""
    return version_id == NULL or _VERSION_ID.fullmatch(version_id) is not None


def _mint(rank: int) -> str:
    return f"{rank:016x}{secrets.token_hex(8)}"


def _rank_of_time(modified: float) -> int:
    return _BASE - accounting.micros(modified)


def _ask_state(db: sqlite3.Connection, container_id: int) -> sqlite3.Cursor:
    return db.execute(
        "SELECT value FROM container_settings WHERE container_id = ? AND name = ?", (container_id, SETTING)
    )


def _state_of(asked: sqlite3.Cursor) -> str | None:
    row = asked.fetchone()
    return None if row is None else str(row[0])


def state(db: sqlite3.Connection, container_id: int) -> str | None:
    return _state_of(_ask_state(db, container_id))


# -- finding versions


def _ask_current(db: sqlite3.Connection, container_id: int, key: bytes) -> sqlite3.Cursor:
    sql = f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE container_id = ? AND key = ?"
    return db.execute(sql, (container_id, key))


def current(db: sqlite3.Connection, container_id: int, key: bytes) -> tuple[Artifact, int] | None:
    """The key's current data version and its rank, or None (no key, or a delete marker)."""
    return _current_of(_ask_current(db, container_id, key))


def _current_of(asked: sqlite3.Cursor) -> tuple[Artifact, int] | None:
    row = asked.fetchone()
    if row is None:
        return None
    artifact, rank = artifact_and_rank(row)
    return artifact, _rank_of_time(artifact.modified) if rank is None else rank


def noncurrent(row: tuple[Any, ...]) -> tuple[Artifact, int]:
    return artifact_row(row, is_latest=False), int(row[8])


def _newest_stored(db: sqlite3.Connection, container_id: int, key: bytes) -> tuple[Artifact, int] | None:
    row = db.execute(
        f"SELECT {VERSION_COLUMNS} FROM versions WHERE container_id = ? AND key = ? ORDER BY rank LIMIT 1",
        (container_id, key),
    ).fetchone()
    return None if row is None else noncurrent(row)


def stored_version(
    db: sqlite3.Connection, container_id: int, key: bytes, version_id: str
) -> tuple[Artifact, int] | None:
    row = db.execute(
        f"SELECT {VERSION_COLUMNS} FROM versions WHERE container_id = ? AND key = ? AND version_id = ?",
        (container_id, key, version_id),
    ).fetchone()
    return None if row is None else noncurrent(row)


def lookup(db: sqlite3.Connection, container_id: int, key: str, version_id: str | None) -> Artifact | None:
    """The version (None: the current one, which may be a delete marker), or None."""
    raw = key.encode("utf-8")
    row = db.execute(
        f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE container_id = ? AND key = ?", (container_id, raw)
    ).fetchone()
    # Every GET of a current version: one lookup, one parse, as before versioning.
    found = None if row is None else artifact_row(row)
    if found is not None and version_id in (None, found.version_id):
        return found
    if version_id is None:
        # No current data version: the key is absent, or its current version is a marker.
        newest = _newest_stored(db, container_id, raw)
        return None if newest is None else evolve(newest[0], is_latest=True)
    stored = stored_version(db, container_id, raw, version_id)
    if stored is None:
        return None
    if found is None and _newest_stored(db, container_id, raw) == stored:
        return evolve(stored[0], is_latest=True)  # the current delete marker
    return stored[0]


# -- writing versions


def _fresh_rank(db: sqlite3.Connection, container_id: int, key: bytes, now: float, ranks: Iterable[int]) -> int:
    """A rank newer than every version of the key (``ranks``: those not in the versions table)."""
    (oldest,) = db.execute(
        "SELECT min(rank) FROM versions WHERE container_id = ? AND key = ?", (container_id, key)
    ).fetchone()
    taken = [int(r) for r in (oldest, *ranks) if r is not None]
    return min([_rank_of_time(now), *(r - 1 for r in taken)])


def _write_current(db: sqlite3.Connection, artifact: Artifact, rank: int) -> None:
    db.execute(
        f"INSERT OR REPLACE INTO artifacts ({ARTIFACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            artifact.container_id,
            artifact.key.encode("utf-8"),
            artifact.locator,
            artifact.size,
            artifact.md5,
            artifact.modified,
            artifact.content_type,
            extra_json(artifact, rank),
        ),
    )


def _write_stored(db: sqlite3.Connection, artifact: Artifact, rank: int) -> None:
    db.execute(
        f"INSERT OR REPLACE INTO versions ({VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            artifact.container_id,
            artifact.key.encode("utf-8"),
            artifact.locator,
            artifact.size,
            artifact.md5,
            artifact.modified,
            artifact.content_type,
            extra_json(artifact, rank),
            rank,
            artifact.version_id,
        ),
    )


def _drop_current(db: sqlite3.Connection, container_id: int, key: bytes) -> None:
    db.execute("DELETE FROM artifacts WHERE container_id = ? AND key = ?", (container_id, key))


def _drop_stored(db: sqlite3.Connection, container_id: int, key: bytes, rank: int) -> None:
    db.execute("DELETE FROM versions WHERE container_id = ? AND key = ? AND rank = ?", (container_id, key, rank))


def queue_blobs(db: sqlite3.Connection, artifact: Artifact, now: float) -> None:
    """A data version is gone for good: its blobs become garbage (a marker has none)."""
    if artifact.delete_marker:
        return
    placement = artifact.placement
    if not placement:
        row = db.execute("SELECT placement FROM containers WHERE id = ?", (artifact.container_id,)).fetchone()
        placement = row[0] if row else "local"
    blobs.queue(db, placement, artifact.locators, now)


def _free(db: sqlite3.Connection, artifact: Artifact, now: float) -> tuple[int, int]:
    """Queue a removed version's blobs; the (bytes, objects) it took off the totals."""
    if artifact.delete_marker:
        return 0, 0
    queue_blobs(db, artifact, now)
    return -artifact.size, -1


def _null_out(
    db: sqlite3.Connection, container_id: int, key: bytes, found: tuple[Artifact, int] | None
) -> tuple[Artifact | None, bool]:
    """Before a suspended container writes the ``null`` version: take the old one away and
    demote a current non-null version. (removed null version, current row dropped?)"""
    if found is not None and found[0].version_id == NULL:
        _drop_current(db, container_id, key)
        return found[0], True
    if found is not None:
        _write_stored(db, evolve(found[0], is_latest=False), found[1])
    stored = stored_version(db, container_id, key, NULL)
    if stored is not None:
        _drop_stored(db, container_id, key, stored[1])
    return (stored[0] if stored else None), found is not None


def install(
    db: sqlite3.Connection, artifact: Artifact, new_bytes: int, now: float, intended: bool = False
) -> tuple[Artifact, Artifact | None]:
    """Make ``artifact`` the key's current version: (as stored, with its id; version removed).

    ``new_bytes``: what it adds to the stored totals (its size; a completed upload's parts
    are counted already). Enabled: a new version, the old current one kept below it.
    Otherwise the ``null`` version is replaced and the others kept. ``intended``: its blob
    is new, under an intent this commit claims (blobs.claim_intents: refused if the intent is gone).
    """
    container_id, key = artifact.container_id, artifact.key.encode("utf-8")
    # Every PUT's path: its three reads are asked before any answer is read (on PostgreSQL's
    # pipeline, one round trip under the write lock instead of three).
    asked_state = _ask_state(db, container_id)
    asked_current = _ask_current(db, container_id, key)
    asked_totals = accounting.ask_totals(db, container_id)
    mode = _state_of(asked_state)
    found = _current_of(asked_current)
    removed: Artifact | None = None
    if mode is None:
        # Never versioned: one version per key, as before versioning (the fast path).
        rank = _rank_of_time(now) if found is None else min(_rank_of_time(now), found[1] - 1)
        version_id = NULL
        removed = found[0] if found is not None else None
    else:
        rank = _fresh_rank(db, container_id, key, now, [found[1]] if found else [])
        if mode == ENABLED:
            version_id = _mint(rank)
            if found is not None:
                _write_stored(db, evolve(found[0], is_latest=False), found[1])
        else:
            version_id = NULL
            removed, _ = _null_out(db, container_id, key, found)
    freed_bytes, freed_objects = _free(db, removed, now) if removed is not None else (0, 0)
    accounting.account(db, container_id, new_bytes + freed_bytes, 1 + freed_objects, now, asked_totals)
    stored = evolve(artifact, version_id=version_id, delete_marker=False, is_latest=True)
    _write_current(db, stored, rank)
    blobs.settle(db, stored.locators, claim=intended)
    return stored, removed


def delete_key(
    db: sqlite3.Connection, container_id: int, key: str, now: float
) -> tuple[Artifact | None, Artifact | None]:
    """DELETE without a version id: (delete marker added, version removed).

    Never versioned: the key goes. Enabled: a new delete marker on top. Suspended: a
    ``null`` delete marker replaces the ``null`` version.
    """
    raw = key.encode("utf-8")
    mode = state(db, container_id)
    found = current(db, container_id, raw)
    if mode is None:
        if found is None:
            return None, None
        _drop_current(db, container_id, raw)
        accounting.account(db, container_id, *_free(db, found[0], now), now)
        return None, found[0]
    rank = _fresh_rank(db, container_id, raw, now, [found[1]] if found else [])
    removed: Artifact | None = None
    if mode == ENABLED:
        version_id = _mint(rank)
        if found is not None:
            _write_stored(db, evolve(found[0], is_latest=False), found[1])
            _drop_current(db, container_id, raw)
    else:
        version_id = NULL
        removed, dropped = _null_out(db, container_id, raw, found)
        if dropped and found is not None and found[0].version_id != NULL:
            _drop_current(db, container_id, raw)
    if removed is not None:
        accounting.account(db, container_id, *_free(db, removed, now), now)
    marker = Artifact(
        container_id=container_id,
        key=key,
        locator="",
        size=0,
        md5="",
        modified=now,
        version_id=version_id,
        delete_marker=True,
        is_latest=True,
    )
    _write_stored(db, marker, rank)
    return marker, removed


def _promote(db: sqlite3.Connection, container_id: int, key: bytes) -> None:
    """The current version went: the next newest, if data, becomes current (a marker stays)."""
    newest = _newest_stored(db, container_id, key)
    if newest is not None and not newest[0].delete_marker:
        _drop_stored(db, container_id, key, newest[1])
        _write_current(db, evolve(newest[0], is_latest=True), newest[1])


def delete_version(
    db: sqlite3.Connection,
    container_id: int,
    key: str,
    version_id: str,
    guard: Callable[[Artifact], None] | None,
    now: float,
) -> Artifact | None:
    """Remove one version for good (``guard`` may refuse by raising); the removed version, or
    None if the key has no such version. Removing the current one promotes the next newest."""
    raw = key.encode("utf-8")
    found = current(db, container_id, raw)
    if found is not None and found[0].version_id == version_id:
        victim = found[0]
        if guard is not None:
            guard(victim)
        _drop_current(db, container_id, raw)
    else:
        stored = stored_version(db, container_id, raw, version_id)
        if stored is None:
            return None
        victim = stored[0]
        if found is None and _newest_stored(db, container_id, raw) == stored:
            victim = evolve(victim, is_latest=True)
        if guard is not None:
            guard(victim)
        _drop_stored(db, container_id, raw, stored[1])
    if found is None or found[0].version_id == version_id:
        _promote(db, container_id, raw)
    accounting.account(db, container_id, *_free(db, victim, now), now)
    return victim


def amend(
    db: sqlite3.Connection, container_id: int, key: str, version_id: str | None, change: Callable[[Artifact], Artifact]
) -> Artifact:
    """Change one data version's attributes in place (see Catalog.amend_artifact)."""
    raw = key.encode("utf-8")
    found = current(db, container_id, raw)
    in_current = found is not None and version_id in (None, found[0].version_id)
    if in_current:
        assert found is not None
        old, rank = found
    else:
        stored = None if version_id is None else stored_version(db, container_id, raw, version_id)
        if stored is None:
            raise NoSuchArtifact(key) if version_id is None else NoSuchVersion(version_id)
        old, rank = stored
    if old.delete_marker:
        raise NoSuchArtifact(key)
    new = change(old)
    same = ("container_id", "key", "locator", "size", "md5", "version_id", "parts", "placement", "delete_marker")
    if any(getattr(new, name) != getattr(old, name) for name in same):
        raise ValueError("amend_artifact changes attributes only")
    table = "artifacts" if in_current else "versions"
    where = "container_id = ? AND key = ?" + ("" if in_current else " AND rank = ?")
    args: list[Any] = [extra_json(new, rank), container_id, raw] + ([] if in_current else [rank])
    db.execute(f"UPDATE {table} SET metadata = ? WHERE {where}", args)
    return new


def replace_blobs(db: sqlite3.Connection, old: Artifact, moved: Artifact, now: float, intended: bool = False) -> bool:
    """A migration's compare-and-swap: ``moved``'s blobs (its locators, placement and storage
    class) replace ``old``'s if the version still holds exactly ``old``'s blobs, wherever it is now.

    Only where the bytes are changes: the version's other attributes are taken as they are now,
    not as the mover listed them, so a tag, retention, legal-hold or ACL change made while the
    bytes were copied is kept."""
    raw = old.key.encode("utf-8")
    found = current(db, old.container_id, raw)
    if found is not None and found[0].version_id == old.version_id:
        where = found
        in_current = True
    else:
        stored = stored_version(db, old.container_id, raw, old.version_id)
        if stored is None:
            return False
        where, in_current = stored, False
    if where[0].delete_marker or where[0].locators != old.locators:
        return False
    queue_blobs(db, old, now)
    kept = evolve(
        where[0], locator=moved.locator, parts=moved.parts, placement=moved.placement, storage_class=moved.storage_class
    )
    (_write_current if in_current else _write_stored)(db, kept, where[1])
    blobs.settle(db, moved.locators, claim=intended)
    return True


def misplaced(
    db: sqlite3.Connection, container_id: int, target: str, after: tuple[str, str] | None, limit: int
) -> list[Artifact]:
    """Noncurrent data versions whose blobs are not on ``target``, by (key, version id)."""
    key, version_id = after if after is not None else ("", "")
    rows = db.execute(
        f"SELECT {VERSION_COLUMNS} FROM versions WHERE container_id = ? AND (key, version_id) > (?, ?)"
        " AND coalesce(json_extract(metadata, '$.marker'), 0) = 0"
        " AND coalesce(json_extract(metadata, '$.placement'), '') != ? ORDER BY key, version_id LIMIT ?",
        (container_id, key.encode("utf-8"), version_id, target, limit),
    )
    return [noncurrent(r)[0] for r in rows]


def any_version(db: sqlite3.Connection, container_id: int) -> bool:
    """Does the container hold any noncurrent version or delete marker?"""
    return db.execute("SELECT 1 FROM versions WHERE container_id = ? LIMIT 1", (container_id,)).fetchone() is not None
