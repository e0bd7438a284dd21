"""A request's query string as form pairs, parsed once however many steps of the request read it.

Addressing, the hoisting of a presigned URL's ``x-amz-*`` parameters and the check for
unsigned headers each read the same query with ``urllib.parse.parse_qsl`` (``+`` is a space);
a small cache keyed by the raw query serves the later reads of one request. SigV4's
canonical form decodes differently (``+`` stays a plus) and keeps its own parse.
"""

from __future__ import annotations

import functools
from urllib.parse import unquote

__all__ = ["form_pairs"]

Pairs = tuple[tuple[str, str], ...]


@functools.lru_cache(maxsize=128)
def _pairs(raw_query: str, strict: bool) -> Pairs:
    """``parse_qsl(raw_query, keep_blank_values=True, errors=...)``, decoding only the components
    that need it (a presigned URL's are mostly plain): urllib's per-component calls were most of it."""
    errors = "strict" if strict else "replace"
    out = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = unquote(name.replace("+", " "), errors=errors)
        if "%" in value or "+" in value:
            value = unquote(value.replace("+", " "), errors=errors)
        out.append((name, value))
    return tuple(out)


def form_pairs(raw_query: str, *, strict: bool = False) -> Pairs:
    """``parse_qsl(raw_query, keep_blank_values=True)`` as a tuple; with ``strict``, bytes that
    are not UTF-8 raise ``UnicodeDecodeError`` instead of becoming U+FFFD."""
    try:
        # Where the strict parse succeeds the lenient one is the same: one cache entry serves both.
        return _pairs(raw_query, True)
    except (UnicodeDecodeError, ValueError):
        if strict:
            raise
        return _pairs(raw_query, False)
