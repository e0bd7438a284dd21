"""The supervisor's /metrics: the workers' series summed, and what it knows of the workers themselves.

Split from vaultaire/supervisor.py: the collectors read the supervisor's state and own nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from vaultaire.ops.workers import proc_stat

if TYPE_CHECKING:
    from vaultaire.supervisor import Supervisor


class WorkersCollector:
    """Per-worker CPU and memory, and the supervisor's restart count."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        sup = self._supervisor
        running = GaugeMetricFamily("vaultaire_workers_running", "Worker processes currently running.")
        running.add_metric([], len(sup.workers))
        yield running
        wanted = GaugeMetricFamily("vaultaire_workers_wanted", "Worker processes configured.")
        wanted.add_metric([], sup.count)
        yield wanted
        restarts = CounterMetricFamily("vaultaire_worker_restarts", "Workers restarted after they died.")
        restarts.add_metric([], sup.restarts)
        yield restarts
        hung = CounterMetricFamily(
            "vaultaire_worker_hung_kills", "Workers killed and replaced because their event loop stopped ticking."
        )
        hung.add_metric([], sup.hung_kills)
        yield hung
        cpu = CounterMetricFamily("vaultaire_worker_cpu_seconds", "CPU time of each worker.", labels=["worker"])
        rss = GaugeMetricFamily("vaultaire_worker_resident_memory_bytes", "RSS of each worker.", labels=["worker"])
        for worker in list(sup.workers.values()):
            stat = proc_stat(worker.pid) if worker.pid else None
            if stat is not None:
                cpu.add_metric([str(worker.index)], stat[0])
                rss.add_metric([str(worker.index)], stat[1])
        yield cpu
        yield rss


class AggregatedMetrics:
    """The ops site's /metrics: all workers' series summed, plus the supervisor's own."""

    def __init__(self, directory: str, supervisor: Supervisor) -> None:
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=directory)
        self.registry.register(supervisor.stored_metrics.stored)
        # Lifecycle rules run in the supervisor alone: its own counters.
        self.registry.register(supervisor.lifecycle_metrics.actions)
        self.registry.register(supervisor.lifecycle_metrics.runs)
        self.registry.register(supervisor.jobs.runs)
        ProcessCollector(registry=self.registry)
        self.registry.register(WorkersCollector(supervisor))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
