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


class Metrics:
    """Request metrics; a private registry by default so tests never share state."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry: CollectorRegistry = registry if registry is not None else CollectorRegistry()
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
        self.driver_up = Gauge(
            "vaultaire_driver_up",
            "1 when the driver (or placement) answered its last health probe ok, else 0.",
            ["driver"],
            registry=self.registry,
        )
        self.driver_latency = Gauge(
            "vaultaire_driver_latency_seconds",
            "How long the driver's last health probe took.",
            ["driver"],
            registry=self.registry,
        )
        self.driver_errors = Gauge(
            "vaultaire_driver_errors",
            "Failed requests to the driver's store since start (as the driver counts them).",
            ["driver"],
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
            self.requests.labels(operation=operation, status=str(status)).inc()
            self.duration.labels(operation=operation).observe(max(0.0, duration))
            # labels() first so every operation has byte series, even at zero;
            # counters reject negative increments, so bogus sizes are skipped.
            received = self.bytes_in.labels(operation=operation)
            sent = self.bytes_out.labels(operation=operation)
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
        except Exception:
            _log.failure("recording driver metrics failed")

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
