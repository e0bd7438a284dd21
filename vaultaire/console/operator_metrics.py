"""The operator's view of the processes serving S3: each worker's state, and the numbers the
ops site's /metrics shows, as charts over the last hours (vaultaire/ops/history.py samples
them; nothing here is counted separately, so the charts and a Prometheus scrape agree)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from twisted.web.iweb import IRequest

from vaultaire.console import pages
from vaultaire.console.line_chart import Line, line_chart
from vaultaire.console.pages import size_text, tags, url
from vaultaire.console.routes import app, arg
from vaultaire.console.sessions import Session
from vaultaire.ops.history import MetricsHistory, Rates
from vaultaire.ops.workers import WorkerStatus, WorkerStatuses

# The spans the metrics page offers, in seconds, by their query value.
WINDOWS = {"15m": 900.0, "1h": 3600.0, "6h": 21600.0}
DEFAULT_WINDOW = "1h"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 7200:
        return f"{s // 60} min {s % 60} s"
    if s < 172800:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def rate_text(value: float) -> str:
    return f"{value:.3g}/s" if value < 100 else f"{value:.0f}/s"


def bytes_rate_text(value: float) -> str:
    return size_text(int(value)) + "/s"


def latency_text(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms" if seconds < 1 else f"{seconds:.2f} s"


def _worker_row(w: WorkerStatus) -> list[Any]:
    state = w.state + (f" in {w.restart_in:.1f} s" if w.restart_in is not None else "")
    return [
        str(w.index) if w.index is not None else "the daemon",
        str(w.pid) if w.pid is not None else "—",
        tags.span(class_=f"state {w.state.split()[0]}")(state),
        duration_text(w.uptime),
        duration_text(w.last_heartbeat) + (" ago" if w.last_heartbeat is not None else ""),
        str(w.restarts),
        str(w.requests) if w.requests is not None else ("0" if w.pid is not None else "—"),
        f"{w.cpu_seconds:.1f} s" if w.cpu_seconds is not None else "—",
        size_text(w.resident_bytes) if w.resident_bytes is not None else "—",
    ]


def _series(rates: Sequence[Rates], value: Callable[[Rates], float | None]) -> list[tuple[float, float | None]]:
    return [(r.at, value(r)) for r in rates]


class OperatorMetricsPages:
    if TYPE_CHECKING:
        history: MetricsHistory | None
        workers: WorkerStatuses | None

        async def html(
            self, request: IRequest, title: str, session: Session | None, *body: Any, status: int = 200
        ) -> bytes: ...

        def operator_session(self, request: IRequest, posted: bool = False) -> Session: ...

    def _statuses(self) -> list[WorkerStatus]:
        return self.workers() if self.workers is not None else []

    def _whose(self, statuses: list[WorkerStatus]) -> str:
        if any(w.index is not None for w in statuses):
            return (
                f"Summed over the {len(statuses)} worker processes of the supervisor (pid {os.getpid()}), "
                "counting those that exited since it started, plus the supervisor's own sweeps: "
                "the numbers the ops site's /metrics shows."
            )
        return f"Of this daemon's one process (pid {os.getpid()}): the numbers the ops site's /metrics shows."

    @app.route("/ops/workers", methods=["GET"])
    async def workers_page(self, request: IRequest) -> bytes:
        session = self.operator_session(request)
        statuses = self._statuses()
        if any(w.index is not None for w in statuses):
            serving = sum(1 for w in statuses if w.state == "serving")
            about = (
                f"The supervisor (pid {os.getpid()}, which also serves this console and the ops site) "
                f"runs {len(statuses)} S3 worker processes on one port; {serving} serving now. "
                "It restarts a worker that dies, and replaces one whose event loop stops ticking."
            )
        else:
            about = (
                f"This daemon serves S3 in one process (pid {os.getpid()}), with this console and the ops site; "
                "start it with --workers N to spread S3 over N processes."
            )
        return await self.html(
            request,
            "Workers",
            session,
            tags.p(about),
            pages.table(
                [
                    "Worker",
                    "PID",
                    "State",
                    "Up for",
                    "Last heartbeat",
                    "Restarts",
                    "Requests served",
                    "CPU",
                    "Memory (RSS)",
                ],
                [_worker_row(w) for w in statuses],
                id="workers",
            ),
            tags.p(
                "Requests served: S3 requests the process finished, as its own metrics count them; "
                "a restarted worker starts again at 0."
            ),
        )

    @app.route("/ops/metrics", methods=["GET"])
    async def metrics_page(self, request: IRequest) -> bytes:
        session = self.operator_session(request)
        chosen = arg(request, "window") or DEFAULT_WINDOW
        error, status = "", 200
        if chosen not in WINDOWS:
            error, status = f"No window {chosen!r}: one of {', '.join(WINDOWS)}.", 400
            chosen = DEFAULT_WINDOW
        choices = tags.p(id="windows")(
            "Last: ",
            [
                [tags.strong(name) if name == chosen else tags.a(href=url("/ops/metrics", window=name))(name), " "]
                for name in WINDOWS
            ],
        )
        history = self.history
        if history is None:
            return await self.html(
                request,
                "Metrics",
                session,
                pages.message("error", error),
                tags.p("This console samples no metrics."),
                status=status,
            )
        end = history.clock()
        start = end - WINDOWS[chosen]
        if history.samples:  # the charts begin where the samples do (a daemon started just now)
            start = max(start, min(history.samples[0][0], end - 60))
        rates = history.rates(start)
        note: Any = ""
        if not rates:
            note = tags.p(class_="notice info", id="no-samples")(
                f"No two samples yet in this window: the charts fill in from the daemon's start, "
                f"a sample every {history.period:g} seconds."
            )
        charts = [
            line_chart(
                "S3 requests per second",
                [
                    Line("all", _series(rates, lambda r: r.per_second["requests"])),
                    Line("class A (PUT, COPY, POST, LIST)", _series(rates, lambda r: r.per_second["class_a"])),
                    Line("class B (GET, HEAD)", _series(rates, lambda r: r.per_second["class_b"])),
                ],
                start,
                end,
                rate_text,
                "chart-requests",
            ),
            line_chart(
                "Errors per second",
                [
                    Line("5xx (the server's)", _series(rates, lambda r: r.per_second["errors_5xx"])),
                    Line("4xx (the clients')", _series(rates, lambda r: r.per_second["errors_4xx"])),
                ],
                start,
                end,
                rate_text,
                "chart-errors",
            ),
            line_chart(
                "Bytes per second",
                [
                    Line("in (request bodies)", _series(rates, lambda r: r.per_second["bytes_in"])),
                    Line("out (response bodies)", _series(rates, lambda r: r.per_second["bytes_out"])),
                ],
                start,
                end,
                bytes_rate_text,
                "chart-bytes",
            ),
            line_chart(
                "Request duration (every operation)",
                [Line("p50", _series(rates, lambda r: r.p50)), Line("p99", _series(rates, lambda r: r.p99))],
                start,
                end,
                latency_text,
                "chart-latency",
            ),
            line_chart(
                "Requests in flight, and connections dropped by a limit per second",
                [
                    Line("in flight", _series(rates, lambda r: r.in_flight)),
                    Line("dropped", _series(rates, lambda r: r.per_second["dropped"])),
                ],
                start,
                end,
                lambda v: f"{v:.3g}",
                "chart-in-flight",
            ),
        ]
        return await self.html(
            request,
            "Metrics",
            session,
            pages.message("error", error),
            tags.p(id="whose")(self._whose(self._statuses())),
            tags.p(
                f"A sample every {history.period:g} seconds, the last {duration_text(history.span)} kept; "
                "each point is the rate since the one before it (latency: percentiles of the requests "
                "that finished in between, from the duration histogram's buckets). Times in UTC."
            ),
            choices,
            note,
            *charts,
            status=status,
        )
