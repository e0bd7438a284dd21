"""The operations HTTP surface: ``/health``, ``/version`` and ``/metrics``.

A single leaf ``twisted.web`` resource: no routing framework, because load
balancers and scrapers hit these paths often and they should stay cheap.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

__all__ = ["OpsResource", "health_document", "ops_resource"]

HealthCheck = Callable[[], Mapping[str, object]]


class MetricsSource(Protocol):
    """What /metrics renders: one process's Metrics, or the supervisor's sum of its workers'."""

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""


JSON_TYPE = b"application/json"
TEXT_TYPE = b"text/plain; charset=utf-8"
_ALLOWED = (b"GET", b"HEAD")
# Fields health() may not override: they describe this process, not a check.
_RESERVED = frozenset({"version", "uptime_seconds"})

_log = Logger()

# Health states in which the node still serves requests: a load balancer keeps it.
SERVING = frozenset({"ok", "degraded"})


def health_document(
    version: str,
    started: float,
    health: HealthCheck | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[int, bytes]:
    """The health JSON and its HTTP status, shared by the ops and S3 ports.

    ``health()`` may add fields. What a load balancer should act on is the
    HTTP status: 200 while the node serves ("ok", and "degraded": a mirror
    member down, a disk below its write reserve), 503 otherwise ("failing",
    "starting", or ``health()`` raising).
    """
    doc: dict[str, object] = {
        "status": "ok",
        "version": version,
        "uptime_seconds": round(max(0.0, clock() - started), 3),
    }
    try:
        extra = health() if health is not None else {}
        for name, value in extra.items():
            if name not in _RESERVED:
                doc[name] = value
    except Exception as e:
        doc["status"] = "failing"
        doc["error"] = f"{type(e).__name__}: {e}"
    code = 200 if doc["status"] in SERVING else 503
    body = json.dumps(doc, separators=(",", ":"), default=str).encode("utf-8") + b"\n"
    return code, body


class OpsResource(Resource):
    """Leaf resource answering the ops paths; everything else is 404."""

    isLeaf = True

    def __init__(
        self,
        metrics: MetricsSource,
        *,
        version: str,
        started: float,
        health: HealthCheck | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._metrics = metrics
        self._version = version
        self._started = started
        self._health = health
        self._clock = clock
        self._routes: dict[bytes, Callable[[Request], bytes]] = {
            b"health": self._render_health,
            b"version": self._render_version,
            b"metrics": self._render_metrics,
        }

    def render(self, request: Request) -> bytes:
        # postpath, not path, so this also works mounted below another resource.
        segments = [s for s in request.postpath or () if s]
        handler = self._routes.get(segments[0]) if len(segments) == 1 else None
        if handler is None:
            return _plain(request, 404, b"Not Found\n")
        if request.method not in _ALLOWED:
            request.setHeader(b"Allow", b", ".join(_ALLOWED))
            return _plain(request, 405, b"Method Not Allowed\n")
        # Probes and scrapes must always see fresh data.
        request.setHeader(b"Cache-Control", b"no-store")
        # For HEAD, twisted.web sends Content-Length and drops the body itself.
        return handler(request)

    def _render_health(self, request: Request) -> bytes:
        code, body = health_document(self._version, self._started, self._health, self._clock)
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", JSON_TYPE)
        return body

    def _render_version(self, request: Request) -> bytes:
        return _plain(request, 200, self._version.encode("utf-8") + b"\n")

    def _render_metrics(self, request: Request) -> bytes:
        try:
            body, content_type = self._metrics.render()
        except Exception:
            _log.failure("rendering metrics failed")
            return _plain(request, 500, b"Internal Server Error\n")
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        return body


def _plain(request: Request, code: int, body: bytes) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", TEXT_TYPE)
    return body


def ops_resource(
    metrics: MetricsSource,
    *,
    version: str,
    started: float,
    health: HealthCheck | None = None,
    clock: Callable[[], float] = time.time,
) -> IResource:
    """The root resource for the ops port."""
    return OpsResource(metrics, version=version, started=started, health=health, clock=clock)
