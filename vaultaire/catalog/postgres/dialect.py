"""The catalog's statements, written once for SQLite, spoken to PostgreSQL.

The statement modules (versions.py, accounting.py, blobs.py, sqlite_*.py...) and the
SQLiteCatalog methods run their SQL on a ``db`` with ``execute``/``executemany``. Most of it
is plain SQL both servers read alike; this module rewrites the few SQLite idioms they use
(``?`` placeholders, ``INSERT OR REPLACE``/``OR IGNORE``, ``json_extract``/``json_set``, the
new row's id) into PostgreSQL's, once per distinct statement, so one set of statements
(and of tests) serves both backends and a fix to one is a fix to both.

A statement this module does not know how to rewrite and PostgreSQL does not accept fails
loudly (a syntax error in the contract tests), never silently.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import psycopg
import psycopg.errors

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


class Rows:
    """What sqlite3's cursor offers the statements: rows, ``rowcount`` and ``lastrowid``."""

    def __init__(self, cursor: psycopg.Cursor[Any], returning_id: bool) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid: int | None = None
        if returning_id:
            row = cursor.fetchone()
            self.lastrowid = None if row is None else int(row[0])

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


class Connection:
    """A psycopg connection inside one transaction, speaking as a sqlite3 connection does."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Rows:
        text = translate(sql)
        cursor = self.raw.cursor()
        try:
            cursor.execute(text, tuple(params) if params is not None else None)
        except psycopg.errors.IntegrityError as e:
            # The shared statements catch sqlite3's type (a name taken, a user that exists).
            raise sqlite3.IntegrityError(str(e)) from e
        return Rows(cursor, text.endswith(" RETURNING id"))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        try:
            with self.raw.cursor() as cursor:
                cursor.executemany(translate(sql), rows)
        except psycopg.errors.IntegrityError as e:
            raise sqlite3.IntegrityError(str(e)) from e
