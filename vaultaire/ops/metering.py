"""Per-tenant traffic for the bill and the metrics: requests by class, bytes in and out.

Counting in the catalog on every request would put a write on every GET, so
traffic is summed in memory per (tenant, container, hour) and written in one
transaction every few seconds (and at shutdown); a crash loses at most that
interval of request counts. Stored bytes are not counted here: the catalog
integrates them exactly in the transactions that change them.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from vaultaire.errors import InsufficientStorage
from vaultaire.model import Tenant, UsageRow
from vaultaire.ops.failures import log_periodic_failure
from vaultaire.ops.metrics import Metrics

log = Logger()

# S3's price classes: A are writes and listings, B are reads; DELETE is free.
_CLASS_A_METHODS = frozenset({"PUT", "POST"})
_CLASS_B_METHODS = frozenset({"GET", "HEAD"})


def request_class(method: str, operation: str) -> str | None:
    if method in _CLASS_A_METHODS or operation.startswith("List"):
        return "a"
    if method in _CLASS_B_METHODS:
        return "b"
    return None


class Meter:
    def __init__(
        self,
        sink: Callable[[list[UsageRow]], Deferred[None]],
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self._sink = sink
        self._metrics = metrics
        self._clock = clock
        # (tenant id, container, hour) -> [bytes in, bytes out, class a, class b]
        self._pending: dict[tuple[str, str, int], list[int]] = {}

    def record(
        self, tenant: Tenant, container: str | None, method: str, operation: str, sent: int, received: int
    ) -> None:
        klass = request_class(method, operation)
        self._metrics.observe_tenant(tenant.name, klass, received, sent)
        key = (tenant.id, container or "", int(self._clock()) // 3600)
        counts = self._pending.get(key)
        if counts is None:
            counts = self._pending[key] = [0, 0, 0, 0]
        counts[0] += received
        counts[1] += sent
        if klass == "a":
            counts[2] += 1
        elif klass == "b":
            counts[3] += 1

    def flush(self) -> Deferred[None]:
        """Write what was counted; on failure the counts are put back for the next flush."""
        pending, self._pending = self._pending, {}
        rows = [UsageRow(t, c, h, 0, *counts) for (t, c, h), counts in pending.items()]
        d = self._sink(rows) if rows else succeed(None)

        def failed(failure: Failure) -> None:
            if failure.check(InsufficientStorage):
                # Expected while the disk is full: one line, not a traceback every flush.
                log.warn("metered usage kept for the next flush: {why}", why=failure.getErrorMessage())
            else:
                log_periodic_failure(log, failure, "writing metered usage failed; it is kept for the next flush")
            for key, counts in pending.items():
                mine = self._pending.setdefault(key, [0, 0, 0, 0])
                for i, n in enumerate(counts):
                    mine[i] += n

        return d.addErrback(failed)
