"""The catalog's statements, written once for SQLite, spoken to PostgreSQL.

The statement modules (versions.py, accounting.py, blobs.py, sqlite_*.py...) and the
SQLiteCatalog methods run their SQL on a ``db`` with ``execute``/``executemany``. Most of it
is plain SQL both servers read alike; this module rewrites the few SQLite idioms they use
(``?`` placeholders, ``INSERT OR REPLACE``/``OR IGNORE``, ``json_extract``/``json_set``, the
new row's id) into PostgreSQL's, once per distinct statement, so one set of statements
(and of tests) serves both backends and a fix to one is a fix to both.

A statement this module does not know how to rewrite and PostgreSQL does not accept fails
loudly (a syntax error in the contract tests), never silently.

Inside a write (``Connection(conn, pipeline)``, the connection in psycopg's pipeline mode), a
statement is sent without waiting for its answer: a read waits when its rows are fetched, so
the writes between two reads share one round trip. Only writes whose failure no statement
module catches where it is made are left waiting (``deferrable``): a failure surfaces at the
next fetch or sync instead, which still rolls the write back.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg
import psycopg.errors

from vaultaire.errors import BlobWithdrawn

# INSERT OR REPLACE needs the table's primary key to say what a conflict is.
PRIMARY_KEYS = {
    "artifacts": ("container_id", "key"),
    "versions": ("container_id", "key", "rank"),
    "container_settings": ("container_id", "name"),
    "parts": ("upload_id", "number"),
}

# Tables whose INSERT must report the new row's id (sqlite3's cursor.lastrowid).
_RETURNING_ID = {"containers"}

# JSON functions, by the exact fragments the statements use (the metadata column is JSON text).
_FRAGMENTS = (
    (
        "json_set(metadata, '$.placement', ?)",
        "jsonb_set(metadata::jsonb, '{placement}', to_jsonb(?::text))::text",
    ),
    (
        "coalesce(json_extract(metadata, '$.placement'), '')",
        "coalesce(metadata::jsonb ->> 'placement', '')",
    ),
    (
        "coalesce(json_extract(metadata, '$.marker'), 0) = 0",
        "coalesce((metadata::jsonb ->> 'marker')::boolean, false) = false",
    ),
)

# Plain INSERTs sent without waiting: their keys are minted at random (a collision is a bug, not a
# race a statement module handles). Any other plain INSERT waits: create_user turns a taken key
# into UserExists at the statement that took it.
_MINTED_KEYS = {"inline_blobs", "intents"}

_INSERT = re.compile(r"^\s*INSERT\s+(OR\s+(REPLACE|IGNORE)\s+)?INTO\s+(\w+)\s*\(([^)]*)\)", re.IGNORECASE)


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """The PostgreSQL text of one SQLite statement."""
    for sqlite_text, pg_text in _FRAGMENTS:
        sql = sql.replace(sqlite_text, pg_text)
    if "json_" in sql:
        raise NotImplementedError(f"no PostgreSQL form for this JSON function: {sql}")
    sql = sql.replace("%", "%%").replace("?", "%s")
    insert = _INSERT.match(sql)
    if insert is not None:
        verb, table, columns = insert.group(2), insert.group(3), insert.group(4)
        if verb is not None:
            sql = "INSERT INTO" + sql[insert.start(3) - 1 :]  # drop "OR REPLACE" / "OR IGNORE"
        if verb is not None and verb.upper() == "IGNORE":
            sql += " ON CONFLICT DO NOTHING"
        elif verb is not None:
            key = PRIMARY_KEYS[table]
            names = [c.strip() for c in columns.split(",")]
            updates = ", ".join(f"{c} = excluded.{c}" for c in names if c not in key)
            sql += f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        if " DO UPDATE SET " in sql:
            # SQLite reads a bare column in DO UPDATE as the stored row's; PostgreSQL wants it named.
            head, _, tail = sql.partition(" DO UPDATE SET ")
            sql = head + " DO UPDATE SET " + re.sub(r"= (\w+) \+", rf"= {table}.\1 +", tail)
        if table in _RETURNING_ID:
            sql += " RETURNING id"
    return sql


@lru_cache(maxsize=1024)
def deferrable(sql: str) -> bool:
    """May this (translated) statement's answer wait for the next fetch or sync?"""
    head = sql.lstrip()[:6].upper()
    if head in ("SELECT", "UPDATE", "DELETE"):
        return True
    insert = _INSERT.match(sql)
    return insert is not None and (" ON CONFLICT " in sql or insert.group(3) in _MINTED_KEYS)


# Raised by the schema's vaultaire_claim_intent: a write's blob was withdrawn (blobs.claim_intents).
BLOB_WITHDRAWN = "VT001"


@contextmanager
def _integrity_as_sqlite() -> Iterator[None]:
    """The shared statements catch sqlite3's type (a name taken, a user that exists), and
    blobs.claim_intents's refusal is the one the SQLite catalog raises."""
    try:
        yield
    except psycopg.errors.IntegrityError as e:
        raise sqlite3.IntegrityError(str(e)) from e
    except psycopg.Error as e:
        if e.sqlstate == BLOB_WITHDRAWN:
            raise BlobWithdrawn(e.diag.message_primary or str(e)) from e
        raise


class Rows:
    """What sqlite3's cursor offers the statements: rows, ``rowcount`` and ``lastrowid``.

    In pipeline mode the answer may not have come yet: asking for it waits (a fetch, or a sync
    for the row count of a statement that returns no rows)."""

    def __init__(
        self, cursor: psycopg.Cursor[Any], returning_id: bool, pipeline: psycopg.Pipeline | None = None
    ) -> None:
        self._cursor = cursor
        self._pipeline = pipeline
        self.lastrowid: int | None = None
        if returning_id:
            row = self.fetchone()
            self.lastrowid = None if row is None else int(row[0])

    @property
    def rowcount(self) -> int:
        if self._pipeline is not None and self._cursor.pgresult is None:
            with _integrity_as_sqlite():
                self._pipeline.sync()
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        with _integrity_as_sqlite():
            return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        with _integrity_as_sqlite():
            return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class Connection:
    """A psycopg connection inside one transaction, speaking as a sqlite3 connection does.

    With ``pipeline`` (the connection is in pipeline mode), deferrable statements are sent
    without waiting for their answer; the others wait for theirs, as outside pipeline mode."""

    def __init__(self, conn: psycopg.Connection[Any], pipeline: psycopg.Pipeline | None = None) -> None:
        self.raw = conn
        self.pipeline = pipeline

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Rows:
        text = translate(sql)
        cursor = self.raw.cursor()
        with _integrity_as_sqlite():
            cursor.execute(text, tuple(params) if params is not None else None)
            if self.pipeline is not None and not deferrable(text):
                self.pipeline.sync()
        return Rows(cursor, text.endswith(" RETURNING id"), self.pipeline)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        text = translate(sql)
        with _integrity_as_sqlite():
            # In pipeline mode psycopg rides the pipeline: the rows go without a round trip each
            # (and the cursor stays open: its answers may still be on their way).
            self.raw.cursor().executemany(text, rows)
            if self.pipeline is not None and not deferrable(text):
                self.pipeline.sync()

    def sync(self) -> None:
        """Wait for every statement sent so far: their errors are raised here (pipeline mode)."""
        if self.pipeline is not None:
            with _integrity_as_sqlite():
                self.pipeline.sync()
