"""Small blobs kept in the catalog itself: the locator scheme every backend shares.

A small artifact's bytes (at most the engine's ``inline_max`` of them, sealed when the
artifact is encrypted) can live in the catalog instead of a driver: written in the same
transaction as the row that references them, so a PUT costs one group-committed
transaction and no fsync of its own. The artifact keeps its placement (the one that
admitted it); its locator says where the bytes are: ``inline:<16 hex>``, the hex being
the id of its row in the ``inline_blobs`` table. A driver never sees such a locator.

Ids are random 63-bit integers chosen by the engine with the rest of the artifact, never
reused in practice, so a reader that found a locator just before an overwrite dropped
its row finds no row (and reads the newer version), never another artifact's bytes.

The rows are dropped in the transaction that stops referencing them (an overwrite, a
delete, a migration's swap): never queued as garbage, so no sweep is needed for them.
"""

from __future__ import annotations

import secrets

PREFIX = "inline:"


def is_inline(locator: str) -> bool:
    return locator.startswith(PREFIX)


def new_locator() -> str:
    # Positive and below 2**63: a signed 64-bit id in SQLite and PostgreSQL alike.
    return f"{PREFIX}{secrets.randbits(63):016x}"


def row_id(locator: str) -> int:
    """The ``inline_blobs`` id a locator names; ValueError for any other locator."""
    if not is_inline(locator):
        raise ValueError(f"{locator!r} is not an inline locator")
    return int(locator[len(PREFIX) :], 16)
