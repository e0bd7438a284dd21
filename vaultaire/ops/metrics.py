"""Prometheus metrics for the S3 front end, on a registry of their own."""

from __future__ import annotations

from collections.abc import Mapping
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
from twisted.logger import Logger

from vaultaire.model import StoredTotals

__all__ = ["DURATION_BUCKETS", "Metrics"]

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
    """The first ``limit`` tenants seen get a label of their own; the rest share one.

    A deployment with a million tenants must not make a million series.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._labelled: set[str] = set()

    def __call__(self, tenant: str) -> str:
        if tenant in self._labelled:
            return tenant
        if len(self._labelled) < self._limit:
            self._labelled.add(tenant)
            return tenant
        return OTHER_TENANTS


class Metrics:
    """Request metrics; a private registry by default so tests never share state."""

    def __init__(self, registry: CollectorRegistry | None = None, tenant_label_limit: int = 100) -> None:
        self.registry: CollectorRegistry = registry if registry is not None else CollectorRegistry()
        self.tenant_label = TenantLabels(tenant_label_limit)
        self._children: dict[tuple[str, int], tuple[Any, Any, Any, Any]] = {}
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
        self.tenant_stored_bytes = Gauge(
            "vaultaire_tenant_stored_bytes",
            "Bytes stored by tenant (artifacts and uploaded parts).",
            ["tenant"],
            registry=self.registry,
        )
        self.tenant_stored_objects = Gauge(
            "vaultaire_tenant_stored_objects", "Artifacts stored by tenant.", ["tenant"], registry=self.registry
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
        )
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

    def observe_tenant(self, tenant: str, klass: str | None, bytes_in: int, bytes_out: int) -> None:
        try:
            label = self.tenant_label(tenant)
            self.tenant_requests.labels(tenant=label, **{"class": klass or "none"}).inc()
            if bytes_in > 0:
                self.tenant_bytes_in.labels(tenant=label).inc(bytes_in)
            if bytes_out > 0:
                self.tenant_bytes_out.labels(tenant=label).inc(bytes_out)
        except Exception:
            _log.failure("recording tenant metrics failed")

    def set_tenant_stored(self, totals: Mapping[str, StoredTotals]) -> None:
        """Replace the stored gauges: tenants past the label limit are summed under one label."""
        summed: dict[str, list[int]] = {}
        for tenant, t in totals.items():
            both = summed.setdefault(self.tenant_label(tenant), [0, 0])
            both[0] += t.bytes
            both[1] += t.objects
        self.tenant_stored_bytes.clear()
        self.tenant_stored_objects.clear()
        for label, (stored, objects) in summed.items():
            self.tenant_stored_bytes.labels(tenant=label).set(stored)
            self.tenant_stored_objects.labels(tenant=label).set(objects)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
