"""Quota checks before and while bytes land.

Three lines of defence, cheapest first:

1. at header time, before ``100 Continue``: the declared size against what the
   tenant stores plus what this process's uploads in flight have reserved;
2. while streaming: a body of unknown size (a form upload, say) is refused as
   soon as it outgrows the budget it started with;
3. at commit, inside the catalog transaction (``catalog/accounting.py``): the
   one check that holds across processes and races; nothing over quota is
   ever committed.

What is guaranteed with several worker processes (``--workers``): the stored
bytes never exceed the quota (3 holds in one transaction of the one catalog).
Reservations (1, 2) are per process, so two workers can each admit an upload
that together do not fit: the one that commits second is refused with
QuotaExceeded after its body was sent, and its blob is dropped. The early
refusal is an optimisation that saves the client a useless upload, exact in
one process and best-effort across workers; tests/test_quota_workers.py
checks the guarantee under ``--workers 2``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from vaultaire.catalog.accounting import describe_bytes
from vaultaire.catalog.interface import Catalog
from vaultaire.errors import QuotaExceeded
from vaultaire.model import Tenant


async def nothing_replaced() -> int:
    """A ``replacing`` for a write that frees nothing (a new part, a new key)."""
    return 0


class QuotaGuard:
    """Bytes reserved by uploads in flight in this process, per tenant."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._reserved: dict[str, int] = {}

    async def reserve(
        self, tenant: Tenant | None, declared: int | None, replacing: Callable[[], Awaitable[int]]
    ) -> Reservation | None:
        """A reservation for one upload, or None when the tenant has no byte quota.

        ``replacing`` tells how many bytes the write will free (an overwritten
        artifact); asked only when there is a quota, as it costs a catalog read.
        """
        if tenant is None or tenant.max_bytes is None:
            return None
        totals = await self._catalog.tenant_totals(tenant.id)
        budget = tenant.max_bytes - totals.bytes - self._reserved.get(tenant.id, 0) + await replacing()
        reservation = Reservation(self, tenant, budget, totals.bytes)
        reservation.grow(declared or 0)
        return reservation

    def _adjust(self, tenant_id: str, delta: int) -> None:
        left = self._reserved.get(tenant_id, 0) + delta
        if left:
            self._reserved[tenant_id] = left
        else:
            self._reserved.pop(tenant_id, None)


class Reservation:
    def __init__(self, guard: QuotaGuard, tenant: Tenant, budget: int, stored: int) -> None:
        self._guard = guard
        self._tenant = tenant
        self._budget = budget
        self._stored = stored
        self.held = 0

    def grow(self, size: int) -> None:
        """The upload has (or will have) ``size`` bytes: hold them, or refuse."""
        if size <= self.held:
            return
        if size > self._budget:
            assert self._tenant.max_bytes is not None
            raise QuotaExceeded(
                f"Storing {describe_bytes(size)} would exceed the account's quota of"
                f" {describe_bytes(self._tenant.max_bytes)} ({describe_bytes(self._stored)} stored,"
                f" {describe_bytes(max(0, self._tenant.max_bytes - self._stored - self._budget))} being uploaded)."
            )
        self._guard._adjust(self._tenant.id, size - self.held)
        self.held = size

    def release(self) -> None:
        self._guard._adjust(self._tenant.id, -self.held)
        self.held = 0
