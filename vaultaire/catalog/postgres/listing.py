"""A listing page with a delimiter, walked inside PostgreSQL in one statement.

catalog/listing.py's ``list_page`` seeks the key index once per common prefix: a page of 1000
common prefixes is 1000 queries. In-process SQLite answers each in microseconds; over a
connection to PostgreSQL each is a round trip (measured, bench/gateways_pg.py listing: 550 ms a
page on 1,000,000 keys). Here the same walk (the next key at or past a bound; a key that rolls up
to a common prefix moves the bound past the whole prefix) is a recursive query, so a page is one
round trip for the walk and one for the page's rows. The entries are the same as ``list_page``'s,
in the same order, with the same truncation and last entry: the contract tests check both
backends against one another.
"""

from __future__ import annotations

from typing import Any

from vaultaire.catalog.listing import successor

# The bytea just past every key that starts with ``rolled`` (which ends in the delimiter, never
# a 0xff byte in UTF-8): its last byte plus one.
_PAST_ROLLED = "overlay(w.rolled placing set_byte('\\x00'::bytea, 0, get_byte(w.rolled, length(w.rolled) - 1) + 1)"
_PAST_ROLLED += " from length(w.rolled) for 1)"


def _rollup(key: str) -> str:
    """SQL for the common prefix ``key`` rolls up to (NULL: none), given %(l1)s = len(prefix) + 1."""
    at = f"position(%(d)s::bytea in substring({key} from %(l1)s))"
    return f"CASE WHEN {at} > 0 THEN substring({key} from 1 for %(l)s + {at} - 1 + %(dl)s) END"


def walk(
    conn: Any, container_id: int, prefix: bytes, delimiter: bytes, after: bytes | None, limit: int
) -> tuple[list[tuple[bytes, bytes | None]], bool]:
    """Up to ``limit`` entries after ``after`` (keys, or common prefixes: (key, rolled)), and
    whether more follow. ``conn`` is a psycopg connection; ``delimiter`` is not empty."""
    upper = successor(prefix) if prefix else None
    if after is not None and after >= prefix:
        lower = after + b"\x00"  # the smallest key past ``after``
    else:
        lower = prefix
    within = " AND key < %(upper)s" if upper is not None else ""
    emit = "TRUE" if after is None else "(r.rolled IS NULL OR r.rolled > %(after)s)"
    sql = f"""
WITH RECURSIVE walk(key, rolled, emit, step) AS (
    SELECT f.key, r.rolled, {emit}, 1
    FROM (SELECT key FROM artifacts WHERE container_id = %(c)s AND key >= %(lower)s{within}
          ORDER BY key LIMIT 1) f,
         LATERAL (SELECT {_rollup("f.key")} AS rolled) r
  UNION ALL
    SELECT f.key, r.rolled, {emit}, w.step + 1
    FROM walk w,
         LATERAL (SELECT key FROM artifacts WHERE container_id = %(c)s
                  AND key >= CASE WHEN w.rolled IS NULL THEN w.key || '\\x00'::bytea ELSE {_PAST_ROLLED} END{within}
                  ORDER BY key LIMIT 1) f,
         LATERAL (SELECT {_rollup("f.key")} AS rolled) r
    WHERE w.step < %(steps)s
)
SELECT key, rolled FROM walk WHERE emit ORDER BY step LIMIT %(n)s
"""
    params = {
        "c": container_id,
        "lower": lower,
        "upper": upper,
        "after": after,
        "d": delimiter,
        "l": len(prefix),
        "l1": len(prefix) + 1,
        "dl": len(delimiter),
        # At most one step is not emitted: the common prefix ``after`` sits inside.
        "steps": limit + 2,
        "n": limit + 1,
    }
    found = [(bytes(k), None if r is None else bytes(r)) for k, r in conn.execute(sql, params).fetchall()]
    return found[:limit], len(found) > limit
