"""What the web console reads that no S3 call answers: each bucket's stored bytes and objects."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from twisted.internet.defer import Deferred

from vaultaire.model import StoredTotals

T = TypeVar("T")


class ConsoleStatements:
    if TYPE_CHECKING:

        def _read(self, work: Callable[[sqlite3.Connection], T]) -> Deferred[T]: ...

    def container_totals(self, tenant_id: str) -> Deferred[dict[str, StoredTotals]]:
        """A tenant's containers by name: the bytes and artifacts each holds now."""

        def work(db: sqlite3.Connection) -> dict[str, StoredTotals]:
            rows = db.execute(
                "SELECT c.name, s.bytes, s.objects FROM stored s JOIN containers c ON c.id = s.container_id"
                " WHERE c.tenant_id = ?",
                (tenant_id,),
            )
            return {r[0]: StoredTotals(bytes=r[1], objects=r[2]) for r in rows}

        return self._read(work)
