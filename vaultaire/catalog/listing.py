"""Listing with prefix, delimiter and pagination by seeking an ordered key index.

The algorithm is independent of the store: it asks ``fetch(lower, inclusive,
upper, n)`` for up to n keys in binary order and jumps over whole common
prefixes, so a page costs one query per common prefix plus one per batch of
artifacts — it grows with the page, never with the container.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

Row = TypeVar("Row")

# fetch(lower bound, lower inclusive?, upper bound exclusive or None, max rows) -> rows in order
Fetch = Callable[[bytes, bool, "bytes | None", int], Iterable[Row]]


def successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix``."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def list_page(
    fetch: Fetch[Row],
    key_of: Callable[[Row], bytes],
    prefix: bytes,
    delimiter: bytes,
    after: bytes | None,
    limit: int,
) -> tuple[list[Row], list[bytes], bool, bytes | None]:
    """Return (rows, common prefixes, truncated, last key or prefix of the page)."""
    upper = successor(prefix) if prefix else None
    if after is not None and after >= prefix:
        lower, inclusive = after, False
    else:
        lower, inclusive = prefix, True
    rows: list[Row] = []
    prefixes: list[bytes] = []
    last: bytes | None = None
    count = 0
    if limit <= 0:
        # S3 answers an empty, untruncated page to max-keys=0, whatever the container holds.
        return rows, prefixes, False, None
    if not delimiter:
        # Nothing rolls up: the page is the next limit rows, and one more says it is truncated.
        rows = list(fetch(lower, inclusive, upper, limit + 1))
        truncated = len(rows) > limit
        del rows[limit:]
        return rows, prefixes, truncated, key_of(rows[-1]) if rows else None
    while True:
        wanted = limit + 1 - count
        # fetch may return a lazy cursor: after a jump the rest is never read,
        # so a page of 1000 common prefixes reads about 1000 rows, not 500,000.
        batch = fetch(lower, inclusive, upper, wanted)
        jumped = False
        seen = 0
        for row in batch:
            seen += 1
            key = key_of(row)
            rolled = None
            if delimiter:
                at = key.find(delimiter, len(prefix))
                if at >= 0:
                    rolled = key[: at + len(delimiter)]
            if rolled is not None and after is not None and rolled <= after:
                # The marker sits inside this common prefix: it was already returned.
                lower, inclusive, jumped = _past(rolled), True, True
                break
            if count == limit:
                return rows, prefixes, True, last
            if rolled is not None:
                prefixes.append(rolled)
                count += 1
                last = rolled
                lower, inclusive, jumped = _past(rolled), True, True
                break
            rows.append(row)
            count += 1
            last = key
            lower, inclusive = key, False
        if not jumped and seen < wanted:
            return rows, prefixes, False, last


def _past(rolled: bytes) -> bytes:
    # A rolled-up prefix ends in the delimiter, which is never all 0xff in UTF-8.
    nxt = successor(rolled)
    assert nxt is not None
    return nxt
