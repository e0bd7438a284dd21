"""Prometheus metrics for the S3 front end, on a registry of their own."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from twisted.logger import Logger

from vaultaire.model import StoredTotals

__all__ = ["DURATION_BUCKETS", "LifecycleMetrics", "Metrics"]

# From a cached HEAD (~100 µs) to a large multipart upload (~60 s).
DURATION_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05,
    0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
    10.0, 30.0, 60.0,
)  # fmt: skip

_log = Logger()


OTHER_TENANTS = "_other"


class TenantLabels:
    """The first ``limit`` tenants get a label of their own; the rest share one.

    A deployment with a million tenants must not make a million series. Which
    tenants are "first" is decided by the catalog (the oldest ``limit``, see
    ``allow``), so every worker process labels the same ones; until the first
    refresh, the first tenants seen are used.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._labelled: set[str] = set()
        self._decided = False

    def allow(self, names: Iterable[str]) -> None:
        self._labelled = set(list(names)[: self.limit])
        self._decided = True

    def __call__(self, tenant: str) -> str:
        if tenant in self._labelled:
            return tenant
        if not self._decided and len(self._labelled) < self.limit:
            self._labelled.add(tenant)
            return tenant
        return OTHER_TENANTS


class StoredCollector:
    """vaultaire_tenant_stored_bytes/objects from the catalog's totals, the label cap applied.

    A collector rather than Gauges: with several worker processes the
    supervisor alone reads the catalog and exports these once.
    """

    def __init__(self, label: TenantLabels) -> None:
        self._label = label
        self._summed: dict[str, tuple[int, int]] = {}

    def update(self, totals: Mapping[str, StoredTotals]) -> None:
        summed: dict[str, tuple[int, int]] = {}
        for tenant, t in totals.items():
            label = self._label(tenant)
            stored, objects = summed.get(label, (0, 0))
            summed[label] = (stored + t.bytes, objects + t.objects)
        self._summed = summed

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stored = GaugeMetricFamily(
            "vaultaire_tenant_stored_bytes", "Bytes stored by tenant (objects and uploaded parts).", labels=["tenant"]
        )
        objects = GaugeMetricFamily("vaultaire_tenant_stored_objects", "Objects stored by tenant.", labels=["tenant"])
        for label, (n_bytes, n_objects) in sorted(self._summed.items()):
            stored.add_metric([label], n_bytes)
            objects.add_metric([label], n_objects)
        yield stored
        yield objects


class Metrics:
    """Request metrics; a private registry by default so tests never share state."""

    def __init__(self, registry: CollectorRegistry | None = None, tenant_label_limit: int = 100) -> None:
        self.registry: CollectorRegistry = registry if registry is not None else CollectorRegistry()
        self.tenant_label = TenantLabels(tenant_label_limit)
        self._children: dict[tuple[str, int], tuple[Any, Any, Any, Any]] = {}
        self._tenant_children: dict[tuple[str, str | None], tuple[Any, Any, Any]] = {}
        self.tenant_requests = Counter(
            "vaultaire_tenant_requests",
            "S3 requests by tenant and price class (a: PUT, COPY, POST, LIST; b: GET, HEAD; none: DELETE...).",
            ["tenant", "class"],
            registry=self.registry,
        )
        self.tenant_bytes_in = Counter(
            "vaultaire_tenant_bytes_received",
            "Request body bytes received, by tenant.",
            ["tenant"],
            registry=self.registry,
        )
        self.tenant_bytes_out = Counter(
            "vaultaire_tenant_bytes_sent", "Response body bytes sent, by tenant.", ["tenant"], registry=self.registry
        )
        self.requests = Counter(
            "vaultaire_requests",
            "S3 requests handled, by operation and HTTP status.",
            ["operation", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "vaultaire_request_duration_seconds",
            "Time from request received to response finished.",
            ["operation"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.bytes_in = Counter(
            "vaultaire_bytes_received",
            "Request body bytes received.",
            ["operation"],
            registry=self.registry,
        )
        self.bytes_out = Counter(
            "vaultaire_bytes_sent",
            "Response body bytes sent.",
            ["operation"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "vaultaire_requests_in_flight",
            "S3 requests currently being handled.",
            registry=self.registry,
            # With several workers (prometheus multiprocess mode): the sum over live ones.
            multiprocess_mode="livesum",
        )
        self.connections_dropped = Counter(
            "vaultaire_connections_dropped",
            "S3 connections closed by a limit: head (request head too slow), body (body too slow),"
            " send (response not read), refused (over max_connections).",
            ["reason"],
            registry=self.registry,
        )
        self.driver_up = Gauge(
            "vaultaire_driver_up",
            "1 when the driver (or placement) answered its last health probe ok, else 0.",
            ["driver"],
            registry=self.registry,
            # With several workers: each probes; the latest probe is the answer.
            multiprocess_mode="mostrecent",
        )
        self.driver_latency = Gauge(
            "vaultaire_driver_latency_seconds",
            "How long the driver's last health probe took.",
            ["driver"],
            registry=self.registry,
            # With several workers: each probes; the latest probe is the answer.
            multiprocess_mode="mostrecent",
        )
        self.driver_errors = Gauge(
            "vaultaire_driver_errors",
            "Failed requests to the driver's store since start (as the driver counts them).",
            ["driver"],
            registry=self.registry,
            # With several workers: each probes; the latest probe is the answer.
            multiprocess_mode="mostrecent",
        )
        self.driver_free = Gauge(
            "vaultaire_driver_free_bytes",
            "Free bytes on a local driver's filesystem, as its last health probe saw them.",
            ["driver"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.driver_reserve = Gauge(
            "vaultaire_driver_reserve_bytes",
            "Free bytes kept on a local driver's filesystem: writes are refused (507) below it.",
            ["driver"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        # Stored totals come from the catalog, not from counting: read fresh, exported as is.
        self.stored = StoredCollector(self.tenant_label)
        self.registry.register(self.stored)
        # RSS, CPU, open fds and Python version, as the default registry would have.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def observe(
        self,
        operation: str,
        status: int,
        duration: float,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        """Record one finished request; never raises into the caller."""
        try:
            # labels() hashes and locks on every call: the children are looked up once.
            children = self._children.get((operation, status))
            if children is None:
                children = self._children[(operation, status)] = (
                    self.requests.labels(operation=operation, status=str(status)),
                    self.duration.labels(operation=operation),
                    # every operation gets byte series, even at zero
                    self.bytes_in.labels(operation=operation),
                    self.bytes_out.labels(operation=operation),
                )
            requests, durations, received, sent = children
            requests.inc()
            durations.observe(max(0.0, duration))
            # counters reject negative increments, so bogus sizes are skipped.
            if bytes_in > 0:
                received.inc(bytes_in)
            if bytes_out > 0:
                sent.inc(bytes_out)
        except Exception:
            _log.failure("recording metrics for {operation} failed", operation=operation)

    def observe_drivers(self, report: Mapping[str, Any]) -> None:
        """Driver gauges from a health report ({name: {"status", "latency_seconds", "errors"}})."""
        try:
            for name, health in report.items():
                if not isinstance(health, Mapping):
                    continue
                self.driver_up.labels(driver=name).set(1 if health.get("status") == "ok" else 0)
                latency = health.get("latency_seconds")
                if isinstance(latency, int | float):
                    self.driver_latency.labels(driver=name).set(latency)
                errors = health.get("errors")
                if isinstance(errors, int):
                    self.driver_errors.labels(driver=name).set(errors)
                free, reserve = health.get("free_bytes"), health.get("reserve_bytes")
                if isinstance(free, int) and isinstance(reserve, int):
                    self.driver_free.labels(driver=name).set(free)
                    self.driver_reserve.labels(driver=name).set(reserve)
        except Exception:
            _log.failure("recording driver metrics failed")

    def observe_tenant(self, tenant: str, klass: str | None, bytes_in: int, bytes_out: int) -> None:
        try:
            label = self.tenant_label(tenant)
            # As in observe: the children are looked up once (labels() hashes and locks); the
            # label cap bounds this to (limit + 1) x 3 entries.
            children = self._tenant_children.get((label, klass))
            if children is None:
                children = self._tenant_children[(label, klass)] = (
                    self.tenant_requests.labels(tenant=label, **{"class": klass or "none"}),
                    self.tenant_bytes_in.labels(tenant=label),
                    self.tenant_bytes_out.labels(tenant=label),
                )
            requests, received, sent = children
            requests.inc()
            if bytes_in > 0:
                received.inc(bytes_in)
            if bytes_out > 0:
                sent.inc(bytes_out)
        except Exception:
            _log.failure("recording tenant metrics failed")

    def set_tenant_stored(self, totals: Mapping[str, StoredTotals]) -> None:
        self.stored.update(totals)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class LifecycleMetrics:
    """Lifecycle actions (vaultaire/lifecycle/runner.py), counted where the rules run: the
    single daemon, or the supervisor (never a worker, whose series the supervisor sums)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.actions = Counter(
            "vaultaire_lifecycle_actions",
            "Lifecycle actions taken, by kind (expire, remove-delete-marker, expire-noncurrent,"
            " transition, noncurrent-transition, abort-upload).",
            ["action"],
            registry=registry,
        )
        self.runs = Counter(
            "vaultaire_lifecycle_runs", "Lifecycle passes over every configured container.", registry=registry
        )

    def observe(self, action: str) -> None:
        try:
            self.actions.labels(action=action).inc()
        except Exception:
            _log.failure("recording lifecycle metrics failed")
