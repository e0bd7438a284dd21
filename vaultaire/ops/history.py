"""The ops site's numbers over the last hours, for the console's operator charts.

Every ``period`` seconds the registry the ops site's /metrics renders (one process's
Metrics, or the supervisor's sum over its workers) is collected, and the few counters
the charts need are kept: requests by price class, client and server errors, bytes in
and out, the request-duration histogram's buckets, requests in flight. Samples live in
a ring of fixed length, so memory stays bounded however long the daemon runs, as running
totals that never go down (a restarted counter's value is added, as Prometheus' rate()
counts it); a chart's point is the increase between two samples over the seconds between.
"""

from __future__ import annotations

import bisect
import itertools
import math
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from attrs import frozen
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from vaultaire.ops.metrics import DURATION_BUCKETS

__all__ = ["MetricsHistory", "Rates", "SeriesSource"]

log = Logger()

SAMPLE_SECONDS = 10.0
SPAN_SECONDS = 6 * 3600.0
# However short the period, no more samples than this (an array of 28 doubles each, about
# 300 bytes: 1.3 MB at most); the span shrinks instead. 6 hours at 10 s is 2,161.
MAX_SAMPLES = 4320

# The kept counters, in their order in a sample's array; the duration buckets follow.
FIELDS = ("requests", "class_a", "class_b", "errors_4xx", "errors_5xx", "bytes_in", "bytes_out", "dropped")
GAUGES = frozenset({"in_flight"})
BUCKETS: tuple[float, ...] = (*DURATION_BUCKETS, math.inf)
_WIDTH = len(FIELDS) + 1 + len(BUCKETS)  # the counters, in_flight, then the buckets
_IN_FLIGHT = len(FIELDS)
_FIRST_BUCKET = _IN_FLIGHT + 1
_BUCKET_INDEX = {b: i for i, b in enumerate(BUCKETS)}


class SeriesSource(Protocol):
    """A prometheus_client registry (or anything with its collect())."""

    def collect(self) -> Iterable[Any]: ...


def read_sample(source: SeriesSource) -> array[float]:
    """The kept counters summed over their labels (operations, tenants, workers)."""
    values = array("d", bytes(8 * _WIDTH))
    for family in source.collect():
        for s in family.samples:
            name, labels, value = s.name, s.labels, float(s.value)
            if name == "vaultaire_requests_total":
                values[0] += value
                status = str(labels.get("status", ""))
                if status.startswith("4"):
                    values[3] += value
                elif status.startswith("5"):
                    values[4] += value
            elif name == "vaultaire_tenant_requests_total":
                klass = labels.get("class")
                if klass == "a":
                    values[1] += value
                elif klass == "b":
                    values[2] += value
            elif name == "vaultaire_bytes_received_total":
                values[5] += value
            elif name == "vaultaire_bytes_sent_total":
                values[6] += value
            elif name == "vaultaire_connections_dropped_total":
                values[7] += value
            elif name == "vaultaire_requests_in_flight":
                values[_IN_FLIGHT] += value
            elif name == "vaultaire_request_duration_seconds_bucket":
                i = _BUCKET_INDEX.get(float(labels.get("le", "nan")))
                if i is not None:
                    values[_FIRST_BUCKET + i] += value
    return values


@frozen
class Rates:
    """One point of the charts: the interval ending at ``at`` and what happened in it."""

    at: float
    seconds: float
    per_second: dict[str, float]  # each of FIELDS
    in_flight: float
    p50: float | None  # seconds; None when no request finished in the interval
    p99: float | None


def quantile(q: float, counts: Sequence[float]) -> float | None:
    """The q-quantile of a histogram's cumulative bucket counts (BUCKETS' upper bounds),
    interpolated linearly within its bucket, as Prometheus' histogram_quantile."""
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    below, lower = 0.0, 0.0
    for bound, count in zip(BUCKETS, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bound: say that bound, as Prometheus does
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        below, lower = count, bound
    return lower


class MetricsHistory:
    """A bounded ring of samples of ``source``, taken every ``period`` seconds of ``clock``."""

    def __init__(
        self,
        source: SeriesSource,
        clock: Callable[[], float],
        period: float = SAMPLE_SECONDS,
        span: float = SPAN_SECONDS,
    ) -> None:
        self.source = source
        self.clock = clock
        self.period = period
        self.samples: deque[tuple[float, array[float]]] = deque(maxlen=max(2, min(MAX_SAMPLES, int(span / period) + 1)))
        self._loop: LoopingCall | None = None
        self._last = array("d")  # the latest sample as read, before the running totals

    @property
    def span(self) -> float:
        """The seconds the ring covers when full."""
        return ((self.samples.maxlen or 2) - 1) * self.period

    def sample(self) -> None:
        try:
            now = self.clock()
            raw = read_sample(self.source)
        except Exception:
            log.failure("sampling the metrics for the console failed")
            return
        if self.samples and now <= self.samples[-1][0]:
            self.samples.clear()  # the clock went back: the old samples' rates would be nonsense
        if not self.samples:
            self.samples.append((now, raw))
            self._last = raw
            return
        # Kept as running totals that never go down, so a rate between any two samples is one
        # subtraction (a chart of 6 hours is drawn in milliseconds, not a second of event loop):
        # a counter that went down was restarted from zero (a process started), and its whole
        # value is new, as Prometheus' rate() counts it.
        kept = array("d", self.samples[-1][1])
        for j in range(_WIDTH):
            d = raw[j] - self._last[j]
            kept[j] += d if d >= 0 else raw[j]
        kept[_IN_FLIGHT] = raw[_IN_FLIGHT]  # a gauge: as it is
        self._last = raw
        self.samples.append((now, kept))

    def start(self, reactor: Any) -> None:
        """Sample now and every period on ``reactor`` (a task.Clock in tests)."""
        self._loop = LoopingCall(self.sample)
        self._loop.clock = reactor
        self._loop.start(self.period, now=True).addErrback(lambda f: log.failure("metrics sampler stopped", f))

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def rates(self, since: float, points: int = 360) -> list[Rates]:
        """Rates between the samples taken after ``since``, merged into at most ``points``
        intervals (a chart has no more pixels than that) by adding up their increases."""
        times = [s[0] for s in self.samples]
        kept = list(itertools.islice(self.samples, bisect.bisect_left(times, since), None))
        if len(kept) < 2:
            return []
        steps = len(kept) - 1
        group = max(1, math.ceil(steps / points))
        out: list[Rates] = []
        for start in range(0, steps, group):
            end = min(steps, start + group)
            before, after = kept[start][1], kept[end][1]
            increase = [a - b for a, b in zip(after, before, strict=True)]
            seconds = max(1e-9, kept[end][0] - kept[start][0])
            buckets = increase[_FIRST_BUCKET:]
            out.append(
                Rates(
                    at=kept[end][0],
                    seconds=seconds,
                    per_second={name: increase[i] / seconds for i, name in enumerate(FIELDS)},
                    in_flight=after[_IN_FLIGHT],
                    p50=quantile(0.5, buckets),
                    p99=quantile(0.99, buckets),
                )
            )
        return out
