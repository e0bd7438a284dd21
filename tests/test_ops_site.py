"""Tests for vaultaire.ops.site and vaultaire.ops.metrics, driven in memory."""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Callable, Mapping

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from treq.testing import StubTreq

from vaultaire.ops.metrics import Metrics
from vaultaire.ops.site import health_document, ops_resource

STARTED = 1_000.0


def _client(
    metrics: Metrics | None = None,
    health: Callable[[], Mapping[str, object]] | None = None,
    now: float = STARTED + 12.5,
) -> StubTreq:
    resource = ops_resource(
        metrics if metrics is not None else Metrics(),
        version="1.2.3",
        started=STARTED,
        health=health,
        clock=lambda: now,
    )
    return StubTreq(resource)


async def _get(client: StubTreq, path: str, method: str = "GET") -> tuple[int, dict[bytes, list[bytes]], bytes]:
    # StubTreq builds its verbs dynamically, so mypy cannot see request().
    request = client.request  # type: ignore[attr-defined]
    response = await request(method, "http://ops.test" + path)
    body = await response.content()
    headers = dict(response.headers.getAllRawHeaders())
    return response.code, headers, body


@pytest_twisted.ensureDeferred
async def test_health_ok() -> None:
    code, headers, body = await _get(_client(), "/health")
    assert code == 200
    assert headers[b"Content-Type"] == [b"application/json"]
    assert headers[b"Cache-Control"] == [b"no-store"]
    assert json.loads(body) == {
        "status": "ok",
        "version": "1.2.3",
        "uptime_seconds": 12.5,
    }


@pytest_twisted.ensureDeferred
async def test_health_extra_fields() -> None:
    def health() -> Mapping[str, object]:
        return {"drivers": {"local": "ok"}, "version": "spoofed"}

    code, _, body = await _get(_client(health=health), "/health")
    assert code == 200
    doc = json.loads(body)
    assert doc["drivers"] == {"local": "ok"}
    assert doc["version"] == "1.2.3"  # the process's own fields win
    assert doc["status"] == "ok"


@pytest_twisted.ensureDeferred
async def test_failing_is_503() -> None:
    code, _, body = await _get(_client(health=lambda: {"status": "failing", "catalog": "down"}), "/health")
    assert code == 503
    doc = json.loads(body)
    assert doc["status"] == "failing"
    assert doc["catalog"] == "down"
    assert doc["version"] == "1.2.3"


@pytest_twisted.ensureDeferred
async def test_degraded_but_serving_is_200() -> None:
    # A mirror member down, a disk below its write reserve: the node still serves, keep it in rotation.
    code, _, body = await _get(_client(health=lambda: {"status": "degraded"}), "/health")
    assert code == 200
    assert json.loads(body)["status"] == "degraded"


@pytest_twisted.ensureDeferred
async def test_starting_is_503() -> None:
    code, _, _ = await _get(_client(health=lambda: {"status": "starting"}), "/health")
    assert code == 503


@pytest_twisted.ensureDeferred
async def test_health_check_raising_is_503() -> None:
    def health() -> Mapping[str, object]:
        raise RuntimeError("catalog unreachable")

    code, _, body = await _get(_client(health=health), "/health")
    assert code == 503
    doc = json.loads(body)
    assert doc["status"] == "failing"
    assert "catalog unreachable" in doc["error"]
    assert doc["uptime_seconds"] == 12.5


def test_health_document_shared_helper() -> None:
    code, body = health_document("9.9", 10.0, None, lambda: 15.25)
    assert code == 200
    assert json.loads(body) == {
        "status": "ok",
        "version": "9.9",
        "uptime_seconds": 5.25,
    }
    code, _ = health_document("9.9", 10.0, lambda: {"status": "draining"}, lambda: 11.0)
    assert code == 503


@pytest_twisted.ensureDeferred
async def test_version() -> None:
    code, headers, body = await _get(_client(), "/version")
    assert code == 200
    assert body == b"1.2.3\n"
    assert headers[b"Content-Type"][0].startswith(b"text/plain")


@pytest_twisted.ensureDeferred
async def test_head_has_no_body() -> None:
    code, _, body = await _get(_client(), "/health", method="HEAD")
    assert code == 200
    assert body == b""


@pytest_twisted.ensureDeferred
async def test_metrics_after_observe() -> None:
    metrics = Metrics()
    metrics.observe("PutObject", 200, 0.0042, 1024, 0)
    metrics.observe("PutObject", 200, 0.5, 10, 0)
    metrics.observe("GetObject", 404, 0.0002, 0, 300)
    metrics.in_flight.inc()
    code, headers, body = await _get(_client(metrics), "/metrics")
    assert code == 200
    assert headers[b"Content-Type"][0].startswith(b"text/plain; version=")
    text = body.decode()
    assert 'vaultaire_requests_total{operation="PutObject",status="200"} 2.0' in text
    assert 'vaultaire_requests_total{operation="GetObject",status="404"} 1.0' in text
    assert "# TYPE vaultaire_request_duration_seconds histogram" in text
    assert 'vaultaire_request_duration_seconds_bucket{le="0.005",operation="PutObject"} 1.0' in text
    assert 'vaultaire_request_duration_seconds_bucket{le="0.0001",operation="GetObject"} 0.0' in text
    assert 'vaultaire_request_duration_seconds_count{operation="PutObject"} 2.0' in text
    assert 'vaultaire_bytes_received_total{operation="PutObject"} 1034.0' in text
    assert 'vaultaire_bytes_sent_total{operation="GetObject"} 300.0' in text
    assert "vaultaire_requests_in_flight 1.0" in text


def test_metrics_registries_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a.observe("ListBuckets", 200, 0.01, 0, 10)
    assert b"ListBuckets" not in b.render()[0]
    assert b"ListBuckets" in a.render()[0]


def test_observe_never_raises() -> None:
    metrics = Metrics()
    metrics.observe("PutObject", 500, -1.0, -5, -7)
    metrics.observe(None, 200, "soon", 0, 0)  # type: ignore[arg-type]
    body = metrics.render()[0].decode()
    assert 'vaultaire_requests_total{operation="PutObject",status="500"} 1.0' in body


def _sample(text: str, name: str) -> float:
    """The value of the unlabelled sample ``name`` in a Prometheus text exposition."""
    values = [float(line.split()[1]) for line in text.splitlines() if line.split(" ", 1)[0] == name]
    assert len(values) == 1, f"{name}: {values} in\n{text}"
    return values[0]


def _vm_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def test_process_metrics_present() -> None:
    # The daemon runs on Linux (systemd units, /proc): RSS, fds and CPU must be there, and true.
    before = _vm_rss_bytes()
    text = Metrics().render()[0].decode()
    after = _vm_rss_bytes()
    assert "python_info{" in text
    rss = _sample(text, "process_resident_memory_bytes")
    assert 0.8 * min(before, after) <= rss <= 1.2 * max(before, after), (rss, before, after)
    assert _sample(text, "process_open_fds") == pytest.approx(len(os.listdir("/proc/self/fd")), abs=5)
    assert _sample(text, "process_max_fds") == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert _sample(text, "process_cpu_seconds_total") > 0


@pytest_twisted.ensureDeferred
async def test_unknown_path_is_404() -> None:
    client = _client()
    for path in ("/", "/nope", "/health/extra", "/metricsx"):
        code, headers, body = await _get(client, path)
        assert code == 404, path
        assert headers[b"Content-Type"][0].startswith(b"text/plain")
        assert body == b"Not Found\n"


@pytest_twisted.ensureDeferred
async def test_other_methods_are_405() -> None:
    client = _client()
    for method in ("POST", "PUT", "DELETE"):
        for path in ("/health", "/version", "/metrics"):
            code, headers, _ = await _get(client, path, method=method)
            assert code == 405, (method, path)
            assert headers[b"Allow"] == [b"GET, HEAD"]


@pytest_twisted.ensureDeferred
async def test_trailing_slash_accepted() -> None:
    code, _, body = await _get(_client(), "/version/")
    assert (code, body) == (200, b"1.2.3\n")
