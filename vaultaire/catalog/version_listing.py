"""ListObjectVersions over the two tables of vaultaire/catalog/versions.py.

Current data versions (``artifacts``) and the others (``versions``) are read as one
stream in key order, newest first within a key, by merging two index scans; a
delimiter's common prefix is jumped over with a new seek, as in catalog/listing.py,
so a page costs what it holds, not what the container holds.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterator
from typing import Any

from vaultaire.catalog.listing import successor
from vaultaire.catalog.rows import ARTIFACT_COLUMNS, artifact_row
from vaultaire.catalog.versions import NULL, VERSION_COLUMNS, current, noncurrent, stored_version
from vaultaire.model import Artifact, VersionsPage


def _ordered(db: sqlite3.Connection, container_id: int, lower: bytes, upper: bytes | None, n: int) -> Iterator[Any]:
    """Rows of keys in [lower, upper) as (key, position, row): by key, then newest first;
    a current data version has position -1, above every rank."""
    bound = "" if upper is None else " AND key < ?"
    args: list[Any] = [container_id, lower] + ([] if upper is None else [upper]) + [n]
    currents = db.execute(
        f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE container_id = ? AND key >= ?{bound} ORDER BY key LIMIT ?",
        args,
    )
    stored = db.execute(
        f"SELECT {VERSION_COLUMNS} FROM versions WHERE container_id = ? AND key >= ?{bound} ORDER BY key, rank LIMIT ?",
        args,
    )
    return heapq.merge(
        ((bytes(r[1]), -1, r) for r in currents),
        ((bytes(r[1]), int(r[8]), r) for r in stored),
        key=lambda t: (t[0], t[1]),
    )


def _marker_position(db: sqlite3.Connection, container_id: int, key: bytes, version_id: str) -> int:
    """Where a version-id-marker sits within its key: -1 for the current data version."""
    found = current(db, container_id, key)
    if found is not None and found[0].version_id == version_id:
        return -1
    stored = stored_version(db, container_id, key, version_id)
    if stored is not None:
        return stored[1]
    if version_id != NULL:
        return int(version_id[:16], 16)  # gone meanwhile: its id still says where it was
    return -1  # a null version gone meanwhile: list the key's remaining versions again


def list_versions(
    db: sqlite3.Connection,
    container_id: int,
    prefix: str,
    delimiter: str,
    key_marker: str | None,
    version_id_marker: str | None,
    limit: int,
) -> VersionsPage:
    """A page of versions as S3's ListObjectVersions gives it (see Catalog.list_versions)."""
    raw_prefix, raw_delim = prefix.encode("utf-8"), delimiter.encode("utf-8")
    upper = successor(raw_prefix) if raw_prefix else None
    marker = None if key_marker is None else key_marker.encode("utf-8")
    out: list[Artifact] = []
    prefixes: list[str] = []
    last: tuple[str, str | None] | None = None
    if limit <= 0:
        return VersionsPage((), (), False, None, None)

    def full() -> bool:
        return len(out) + len(prefixes) >= limit

    def page(truncated: bool) -> VersionsPage:
        return VersionsPage(
            tuple(out),
            tuple(prefixes),
            truncated,
            last[0] if truncated and last else None,
            last[1] if truncated and last else None,
        )

    previous_key: bytes | None = None
    # The rest of the marker's own key first, after the marked version.
    if marker is not None and version_id_marker and marker.startswith(raw_prefix):
        position = _marker_position(db, container_id, marker, version_id_marker)
        rolled = _rolled(marker, raw_prefix, raw_delim)
        if rolled is None:
            previous_key = marker
            rows = db.execute(
                f"SELECT {VERSION_COLUMNS} FROM versions WHERE container_id = ? AND key = ? AND rank > ?"
                " ORDER BY rank LIMIT ?",
                (container_id, marker, position, limit + 1),
            )
            for row in rows:
                if full():
                    return page(True)
                version = noncurrent(row)[0]
                out.append(version)
                last = (version.key, version.version_id)
    if marker is not None and marker >= raw_prefix:
        lower = marker + b"\x00"  # the smallest key after the marker's
    else:
        lower = raw_prefix
    while True:
        wanted = limit + 1 - len(out) - len(prefixes)
        jumped = False
        for key, _position, row in _ordered(db, container_id, lower, upper, wanted):
            rolled = _rolled(key, raw_prefix, raw_delim)
            if rolled is not None:
                if marker is None or rolled > marker:
                    if full():
                        return page(True)
                    text = rolled.decode("utf-8")
                    prefixes.append(text)
                    last = (text, None)
                lower, jumped = _past(rolled), True
                break
            if full():
                return page(True)
            version = artifact_row(row, is_latest=key != previous_key)
            previous_key = key
            out.append(version)
            last = (version.key, version.version_id)
        if not jumped:
            # The batch ran out before the page was full (the page never reads past one
            # more row than it holds, so neither of the merged queries was cut short).
            return page(False)


def _rolled(key: bytes, prefix: bytes, delimiter: bytes) -> bytes | None:
    if not delimiter:
        return None
    at = key.find(delimiter, len(prefix))
    return None if at < 0 else key[: at + len(delimiter)]


def _past(rolled: bytes) -> bytes:
    nxt = successor(rolled)
    assert nxt is not None  # a rolled-up prefix ends in the delimiter, never all 0xff
    return nxt
