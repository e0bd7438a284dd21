"""The tenant's usage and bill this month: stored bytes, requests and bytes in/out per day,
as SVG bar charts drawn here (no chart library, no CDN), and the same numbers as CSV."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from attrs import define
from twisted.web.iweb import IRequest
from twisted.web.template import Tag

from vaultaire.billing import Bill, month_hours, monthly_bill
from vaultaire.console import pages
from vaultaire.console.pages import size_text, tags
from vaultaire.console.routes import app
from vaultaire.console.sessions import Session
from vaultaire.model import UsageRow

if TYPE_CHECKING:
    from vaultaire.engine import Engine


@define
class Day:
    date: str
    stored_bytes: float = 0.0  # the day's average
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


def days_of(month: str, rows: Sequence[UsageRow], now: float) -> list[Day]:
    """One Day per day of the month up to today (UTC)."""
    first, end = month_hours(month)
    last = min(end, int(now // 3600) + 1)
    days: list[Day] = []
    for start in range(first, last, 24):
        days.append(Day(datetime.fromtimestamp(start * 3600, UTC).strftime("%Y-%m-%d")))
    seconds = [0] * len(days)
    for row in rows:
        i = (row.hour - first) // 24
        if not 0 <= i < len(days):
            continue
        d = days[i]
        seconds[i] += row.byte_seconds
        d.requests += row.class_a + row.class_b
        d.bytes_in += row.bytes_in
        d.bytes_out += row.bytes_out
    for i, d in enumerate(days):
        # Today counts only the seconds gone by, so its average is not diluted by the future.
        elapsed = min(86400.0, max(1.0, now - (first + 24 * i) * 3600))
        d.stored_bytes = seconds[i] / elapsed
    return days


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], show: Callable[[float], str], id: str) -> Tag:
    width, height, left, bottom = 720, 180, 70, 30
    top = max(values) if values and max(values) > 0 else 1.0
    slot = (width - left - 10) / max(1, len(values))
    bars: list[Tag] = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = (height - bottom - 10) * value / top
        x = left + i * slot
        bars.append(
            tags.rect(
                x=f"{x + 1:.1f}",
                y=f"{height - bottom - h:.1f}",
                width=f"{max(1.0, slot - 2):.1f}",
                height=f"{h:.1f}",
                fill="#3b6fd4",
            )(tags.title(f"{label}: {show(value)}"))
        )
        if i % 7 == 0:
            bars.append(tags.text(x=f"{x:.1f}", y=str(height - 10))(label[5:]))
    axis = [
        tags.line(x1=str(left), y1=str(height - bottom), x2=str(width - 10), y2=str(height - bottom), stroke="#888"),
        tags.text(x="2", y="14")(show(top)),
        tags.text(x="2", y=str(height - bottom))("0"),
    ]
    return tags.figure(
        tags.figcaption(title),
        tags.svg(
            xmlns="http://www.w3.org/2000/svg",
            viewBox=f"0 0 {width} {height}",
            width=str(width),
            height=str(height),
            role="img",
            id=id,
        )(tags.title(title), *axis, *bars),
    )


class UsagePages:
    if TYPE_CHECKING:
        engine: Engine
        price_per_tb_month: float
        clock: Callable[[], float]

        async def html(
            self, request: IRequest, title: str, session: Session | None, *body: Any, status: int = 200
        ) -> bytes: ...

        def session(self, request: IRequest) -> Session: ...

    async def _month(self, request: IRequest) -> tuple[Session, str, list[UsageRow], Bill] | None:
        session = self.session(request)
        if session.user:
            return None
        now = self.clock()
        month = time.strftime("%Y-%m", time.gmtime(now))
        first, end = month_hours(month)
        rows = await self.engine.catalog.usage(session.tenant_id, first, end)
        bill = monthly_bill(session.tenant, month, rows, Decimal(str(self.price_per_tb_month)))
        return session, month, rows, bill

    @app.route("/usage", methods=["GET"])
    async def usage_page(self, request: IRequest) -> bytes:
        found = await self._month(request)
        if found is None:
            return await self.html(
                request,
                "Usage and bill",
                self.session(request),
                pages.message("error", "Only the account's root user sees its usage and bill; your keys are a user's."),
                status=403,
            )
        session, month, rows, bill = found
        now = await self.engine.catalog.tenant_totals(session.tenant_id)
        days = days_of(month, rows, self.clock())
        labels = [d.date for d in days]
        total = bill.total
        summary = pages.table(
            ["", ""],
            [
                ["Month", f"{month} (UTC, {bill.hours} hours)"],
                [
                    "Stored now",
                    f"{size_text(now.bytes)} in {now.objects} objects",
                ],
                ["Stored", f"{float(bill.gb_months(total)):.6f} GB-months"],
                ["Requests", f"{total.class_a} class A (PUT, COPY, POST, LIST), {total.class_b} class B (GET, HEAD)"],
                ["Data in / out", f"{size_text(total.bytes_in)} / {size_text(total.bytes_out)}"],
                ["Price", f"${bill.price_per_tb_month} per TB-month (TB = 2^40 bytes)"],
                ["Bill so far", tags.strong(id="bill")(f"${bill.amount(total)}")],
            ],
            id="summary",
        )
        charts = [
            bar_chart(
                "Stored bytes (daily average)",
                labels,
                [d.stored_bytes for d in days],
                lambda v: size_text(int(v)),
                "chart-stored",
            ),
            bar_chart(
                "Requests per day", labels, [float(d.requests) for d in days], lambda v: f"{int(v)}", "chart-requests"
            ),
            bar_chart(
                "Bytes in per day", labels, [float(d.bytes_in) for d in days], lambda v: size_text(int(v)), "chart-in"
            ),
            bar_chart(
                "Bytes out per day",
                labels,
                [float(d.bytes_out) for d in days],
                lambda v: size_text(int(v)),
                "chart-out",
            ),
        ]
        buckets = pages.table(
            ["Bucket", "GB-months", "In", "Out", "Requests", "Storage"],
            [
                [
                    name or "(no bucket)",
                    f"{float(bill.gb_months(u)):.6f}",
                    size_text(u.bytes_in),
                    size_text(u.bytes_out),
                    str(u.class_a + u.class_b),
                    f"${bill.amount(u)}",
                ]
                for name, u in sorted(bill.containers.items())
            ],
            id="per-bucket",
        )
        csv_link = tags.p(tags.a(href="/usage.csv", id="csv")("Download these days as CSV"))
        return await self.html(
            request, "Usage and bill", session, summary, csv_link, *charts, tags.h2("By bucket"), buckets
        )

    @app.route("/usage.csv", methods=["GET"])
    async def usage_csv(self, request: IRequest) -> bytes:
        found = await self._month(request)
        if found is None:
            request.setResponseCode(403)
            return b"only the account's root user sees its usage\n"
        _, month, rows, _ = found
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["date", "stored_bytes_average", "requests", "bytes_in", "bytes_out"])
        for d in days_of(month, rows, self.clock()):
            writer.writerow([d.date, int(d.stored_bytes), d.requests, d.bytes_in, d.bytes_out])
        request.setHeader(b"content-type", b"text/csv; charset=utf-8")
        request.setHeader(b"content-disposition", f'attachment; filename="usage-{month}.csv"'.encode())
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        return out.getvalue().encode()
