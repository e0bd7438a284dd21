"""The operator's metrics history (vaultaire/ops/history.py), driven by a controllable clock:
samples of the registry /metrics renders, rates between them, percentiles from the duration
histogram, a ring that never grows past its length, counters restarted from zero."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from vaultaire.ops.history import BUCKETS, MAX_SAMPLES, MetricsHistory, quantile
from vaultaire.ops.metrics import Metrics


def traffic(m: Metrics, n: int, status: int = 200, duration: float = 0.003, klass: str = "b") -> None:
    for _ in range(n):
        m.observe("GetObject", status, duration, 10, 1000)
        m.observe_tenant("acme", klass, 10, 1000)


def test_rates_between_samples_taken_on_the_clock() -> None:
    metrics, clock = Metrics(), Clock()
    history = MetricsHistory(metrics.registry, clock.seconds, period=10)
    history.start(clock)  # the first sample at once
    assert len(history.samples) == 1 and history.rates(0) == []
    traffic(metrics, 50)  # 3 ms each
    traffic(metrics, 20, status=404, klass="a")
    traffic(metrics, 5, status=503, duration=2.0)
    clock.advance(10)
    assert len(history.samples) == 2
    (r,) = history.rates(0)
    assert r.at == 10 and r.seconds == 10
    assert r.per_second["requests"] == pytest.approx(7.5)
    assert r.per_second["class_a"] == pytest.approx(2.0) and r.per_second["class_b"] == pytest.approx(5.5)
    assert r.per_second["errors_4xx"] == pytest.approx(2.0) and r.per_second["errors_5xx"] == pytest.approx(0.5)
    assert r.per_second["bytes_in"] == pytest.approx(75) and r.per_second["bytes_out"] == pytest.approx(7500)
    # 70 of 75 took 3 ms (bucket 2.5-5 ms), 5 took 2 s (bucket 1-2.5 s): p50 in the first, p99 the second.
    assert r.p50 is not None and 0.0025 < r.p50 <= 0.005
    assert r.p99 is not None and 1.0 < r.p99 <= 2.5
    # A quiet interval: zero rates, and no percentile at all rather than an invented one.
    clock.advance(10)
    quiet = history.rates(0)[-1]
    assert quiet.per_second["requests"] == 0 and quiet.p50 is None and quiet.p99 is None
    # Only the samples after ``since``.
    assert [r.at for r in history.rates(5)] == [20]
    history.stop()
    clock.advance(100)
    assert len(history.samples) == 3


def test_the_ring_is_bounded() -> None:
    metrics, clock = Metrics(), Clock()
    history = MetricsHistory(metrics.registry, clock.seconds, period=10, span=60)
    history.start(clock)
    for _ in range(500):
        traffic(metrics, 1)
        clock.advance(10)
    assert len(history.samples) == 7 and history.span == 60
    assert history.samples[0][0] == 5000 - 60
    rates = history.rates(0)
    assert len(rates) == 6 and all(r.per_second["requests"] == pytest.approx(0.1) for r in rates)
    # However short the period, no more than MAX_SAMPLES: the span shrinks instead.
    tiny = MetricsHistory(metrics.registry, clock.seconds, period=0.001)
    assert tiny.samples.maxlen == MAX_SAMPLES and tiny.span == pytest.approx((MAX_SAMPLES - 1) * 0.001)


def test_many_samples_merge_into_the_points_a_chart_has() -> None:
    metrics, clock = Metrics(), Clock()
    history = MetricsHistory(metrics.registry, clock.seconds, period=1)
    history.start(clock)
    for i in range(100):
        traffic(metrics, i % 2 * 4)  # 0, 4, 0, 4...: 2 per second on average
        clock.advance(1)
    rates = history.rates(0, points=10)
    assert len(rates) == 10 and [r.seconds for r in rates] == [10] * 10
    assert all(r.per_second["requests"] == pytest.approx(2.0) for r in rates)


def test_a_counter_that_goes_down_was_restarted() -> None:
    """A worker replaced (or the registry of a restarted process): its counters start again
    from zero; the increase is the new value, never a negative rate."""
    before, after, clock = Metrics(), Metrics(), Clock()
    history = MetricsHistory(before.registry, clock.seconds, period=10)
    traffic(before, 100)
    history.start(clock)
    history.source = after.registry
    traffic(after, 30)
    clock.advance(10)
    (r,) = history.rates(0)
    assert r.per_second["requests"] == pytest.approx(3.0)


def test_a_clock_that_went_back_starts_the_history_again() -> None:
    metrics, now = Metrics(), [1000.0]
    history = MetricsHistory(metrics.registry, lambda: now[0], period=10)
    history.sample()
    now[0] = 1010.0
    history.sample()
    now[0] = 500.0
    history.sample()
    assert [at for at, _ in history.samples] == [500.0] and history.rates(0) == []


def test_quantile_interpolates_within_its_bucket() -> None:
    counts = [0.0] * len(BUCKETS)
    # 100 requests: all between 10 ms and 25 ms.
    first = BUCKETS.index(0.025)
    for i in range(first, len(BUCKETS)):
        counts[i] = 100.0
    assert quantile(0.5, counts) == pytest.approx(0.0175)
    assert quantile(0.99, counts) == pytest.approx(0.01 + 0.015 * 0.99)
    assert quantile(0.5, [0.0] * len(BUCKETS)) is None
    # Past the last finite bound: that bound, as Prometheus answers.
    slow = [0.0] * (len(BUCKETS) - 1) + [10.0]
    assert quantile(0.5, slow) == BUCKETS[-2]
