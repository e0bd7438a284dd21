"""ListObjects' page read from SQLite: only the columns a listing shows.

``list_artifacts`` builds whole Artifacts (each row's JSON document decoded in
Python); a listing shows five fields of each, and decoding a thousand documents
was most of a page's cost. Here only the storage class is found in the document
(by a text search, see _storage_class), and each row becomes one tuple.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from vaultaire.catalog.listing import list_page
from vaultaire.model import ListedArtifact, ListedPage

# key first: list_page reads it as row[0]
COLUMNS = _COLUMNS = "key, size, md5, modified, metadata"


def listed_artifact(r: tuple[Any, ...]) -> ListedArtifact:
    """The listed fields of a row of COLUMNS."""
    return ListedArtifact(bytes(r[0]).decode("utf-8"), r[1], r[2], r[3], _storage_class(r[4]))


# How json.dumps (catalog/rows.py extra_json) writes the storage class in the row's document. No
# other part of the document can hold this text: it is the only "class" key of the top-level
# object, and a quote inside any string value is escaped (\").
_CLASS = '"class": "'


def _storage_class(document: str) -> str:
    at = document.find(_CLASS)
    if at < 0:
        return str(json.loads(document).get("class", "STANDARD"))  # written some other way
    start = at + len(_CLASS)
    return document[start : document.index('"', start)]


def artifact_rows(
    db: sqlite3.Connection, columns: str, container_id: int
) -> Callable[[bytes, bool, bytes | None, int], Iterable[tuple[Any, ...]]]:
    """list_page's ``fetch`` over the artifacts of one container: ``columns`` of up to ``n``
    rows from ``lower`` (inclusive or not) to below ``upper``, in key order, seeking the key index."""

    def fetch(lower: bytes, inclusive: bool, upper: bytes | None, n: int) -> Iterable[tuple[Any, ...]]:
        op = ">=" if inclusive else ">"
        sql = f"SELECT {columns} FROM artifacts WHERE container_id = ? AND key {op} ?"
        args: list[Any] = [container_id, lower]
        if upper is not None:
            sql += " AND key < ?"
            args.append(upper)
        sql += " ORDER BY key LIMIT ?"
        args.append(n)
        return db.execute(sql, args)  # a lazy cursor: list_page reads only what it needs

    return fetch


def listed_page(
    db: sqlite3.Connection, container_id: int, prefix: str, delimiter: str, after: str | None, limit: int
) -> ListedPage:
    """The same page as ``list_artifacts`` (the same seek through the key index), lean rows."""

    fetch = artifact_rows(db, _COLUMNS, container_id)

    rows, prefixes, truncated, last = list_page(
        fetch,
        lambda row: row[0],  # a BLOB column: bytes
        prefix.encode("utf-8"),
        delimiter.encode("utf-8"),
        None if after is None else after.encode("utf-8"),
        limit,
    )
    return ListedPage(
        artifacts=tuple(listed_artifact(r) for r in rows),
        prefixes=tuple(p.decode("utf-8") for p in prefixes),
        truncated=truncated,
        next_marker=None if last is None else last.decode("utf-8"),
    )
