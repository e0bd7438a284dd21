"""Work done once per deployment, however many gateways share its catalog (issue 17).

Lifecycle, usage rollup, upload expiry and the garbage sweep must run once
across all gateways, not once per gateway. Every gateway ticks each job's
timer; a tick runs the job only if it takes the job's lease in the catalog
(``Leases``), and the lease is taken for the job's whole period: so the job
runs once per period whichever gateway ticks first, and when the gateway
that ran it is killed (kill -9, a lost host), another runs it once the
period is over, a check interval later at most. A run that outlasts its
period keeps renewing its lease, so no second gateway starts beside it.

The stored-bytes gauges are a standing duty instead: one gateway (the holder
of a short lease it renews on every tick) exports them, the others export
none, so a sum over gateways counts each byte once.

Holders are named ``host:pid:random``. A catalog in the data directory
serves one box alone: its holder is the fixed name ``this-box``, and the
leases an earlier run of that box left are freed at start, so a restarted
daemon sweeps at once, as before leases.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.logger import Logger

from vaultaire.catalog.interface import Leases
from vaultaire.ops.failures import log_periodic_failure

log = Logger()

# How often a gateway looks whether a job's lease is free; the bound, beyond a job's period,
# on how late another gateway runs it when the one that ran it last is dead.
CHECK_SECONDS = 10.0
# The gauges' holder renews on every refresh; a dead one's lease ends this many refreshes later.
GAUGE_LEASE_REFRESHES = 3
BOX_HOLDER = "this-box"


def new_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DeploymentJobs:
    """Wraps periodic work in leases: ``job(...)`` and ``duty(...)`` give (tick seconds, tick)."""

    def __init__(
        self,
        catalog: Leases,
        registry: CollectorRegistry,
        shared: bool,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self._catalog = catalog
        self.shared = shared
        self.holder = new_holder() if shared else BOX_HOLDER
        self._check = check_seconds
        self._runs: dict[str, Deferred[None]] = {}  # job name -> its run in progress
        self._names: list[str] = []
        self.runs = Counter(
            "vaultaire_deployment_job_runs",
            "Runs of once-per-deployment jobs done by this gateway, by job"
            " (summed over gateways: one per period per job).",
            ["job"],
            registry=registry,
        )

    def job(
        self, name: str, period: float, work: Callable[[], Deferred[Any]]
    ) -> tuple[float, Callable[[], Deferred[None]]]:
        """``work`` runs once per ``period`` across the gateways, checked every ``check_seconds``."""
        lease = f"job:{name}"
        self._names.append(lease)

        async def tick() -> None:
            if name in self._runs:
                # Still at it: keep the lease so no other gateway starts a second run beside this one.
                await self._catalog.take_lease(lease, self.holder, period, renew=True)
                return
            if not await self._catalog.take_lease(lease, self.holder, period, renew=False):
                return
            self.runs.labels(job=name).inc()
            # Not awaited: the timer must keep ticking (and renewing) while a long run goes on;
            # a timer's call that waited for the run would let the lease lapse under it.
            run = ensureDeferred(self._run(work))
            self._runs[name] = run

            def ended(_: object) -> None:
                self._runs.pop(name, None)

            run.addBoth(ended)

        return min(period, self._check), self._guarded(name, tick)

    def duty(
        self, name: str, period: float, work: Callable[[], Awaitable[None]], resign: Callable[[], None]
    ) -> tuple[float, Callable[[], Deferred[None]]]:
        """``work`` every ``period`` on one gateway at a time; ``resign`` when this one stops being it."""
        lease = f"duty:{name}"
        self._names.append(lease)
        seconds = period * GAUGE_LEASE_REFRESHES
        held = False

        async def tick() -> None:
            nonlocal held
            if await self._catalog.take_lease(lease, self.holder, seconds, renew=True):
                held = True
                await work()
            elif held:
                held = False
                resign()

        return period, self._guarded(name, tick)

    async def _run(self, work: Callable[[], Deferred[Any]]) -> None:
        await work()

    def idle(self) -> Deferred[Any]:
        """Fires once the runs in progress have ended (a stopping gateway waits for them)."""
        return DeferredList(list(self._runs.values()), consumeErrors=True)

    def _guarded(self, name: str, tick: Callable[[], Awaitable[None]]) -> Callable[[], Deferred[None]]:
        async def run() -> None:
            await tick()

        return lambda: ensureDeferred(run()).addErrback(
            lambda f: log_periodic_failure(log, f, "once-per-deployment work {name!r} failed", name=name)
        )

    def forget_box_leases(self) -> Deferred[None]:
        """At start of a box with its own catalog: what an earlier run held is free again."""

        async def free() -> None:
            if not self.shared:
                for lease in self._names:
                    await self._catalog.release_lease(lease, BOX_HOLDER)

        return ensureDeferred(free())

    def release_duties(self) -> Deferred[None]:
        """At a clean stop: the standing duties pass to another gateway at once (jobs keep their
        lease: it says the job ran this period)."""

        async def free() -> None:
            for lease in self._names:
                if lease.startswith("duty:"):
                    await self._catalog.release_lease(lease, self.holder)

        return ensureDeferred(free())
