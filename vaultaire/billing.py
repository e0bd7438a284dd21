"""A tenant's month, from hourly usage rows to a bill.

Units are binary, as the S3 bill's are: a GB is 2**30 bytes, a TB 2**40, and
a GB-month is a GB stored for every hour of that month (so the month's length
matters). The amount is rounded half-up to the cent once, on the total.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from attrs import frozen

from vaultaire.model import UsageRow

GIB = 2**30
TIB = 2**40
DEFAULT_PRICE_PER_TB_MONTH = "3.99"


class BadMonth(ValueError):
    pass


def month_hours(month: str) -> tuple[int, int]:
    """The epoch hours [first, end) of a ``YYYY-MM`` month in UTC."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise BadMonth(f"month {month!r} is not YYYY-MM") from None
    days = calendar.monthrange(start.year, start.month)[1]
    first = int(start.timestamp()) // 3600
    return first, first + days * 24


@frozen
class Usage:
    """Sums over some rows: a container's month, or the tenant's."""

    byte_seconds: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    class_a: int = 0
    class_b: int = 0

    def plus(self, row: UsageRow) -> Usage:
        return Usage(
            self.byte_seconds + row.byte_seconds,
            self.bytes_in + row.bytes_in,
            self.bytes_out + row.bytes_out,
            self.class_a + row.class_a,
            self.class_b + row.class_b,
        )

    @property
    def byte_hours(self) -> Fraction:
        return Fraction(self.byte_seconds, 3600)


@frozen
class Bill:
    tenant: str
    month: str
    hours: int
    price_per_tb_month: Decimal
    total: Usage
    containers: dict[str, Usage]

    def tb_months(self, usage: Usage) -> Fraction:
        return usage.byte_hours / (TIB * self.hours)

    def gb_months(self, usage: Usage) -> Fraction:
        return usage.byte_hours / (GIB * self.hours)

    def amount(self, usage: Usage) -> Decimal:
        exact = self.tb_months(usage) * Fraction(self.price_per_tb_month)
        cents = (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(Decimal("0.01"), ROUND_HALF_UP)
        return cents

    def as_json(self) -> dict[str, object]:
        def usage_json(u: Usage) -> dict[str, object]:
            return {
                "stored_byte_hours": _number(u.byte_hours),
                "gb_months": round(float(self.gb_months(u)), 6),
                "bytes_in": u.bytes_in,
                "bytes_out": u.bytes_out,
                "requests_class_a": u.class_a,
                "requests_class_b": u.class_b,
                "amount_usd": str(self.amount(u)),
            }

        return {
            "tenant": self.tenant,
            "month": self.month,
            "hours_in_month": self.hours,
            "price_per_tb_month": str(self.price_per_tb_month),
            **usage_json(self.total),
            "containers": {name: usage_json(u) for name, u in sorted(self.containers.items())},
        }


def _number(value: Fraction) -> int | float:
    return value.numerator if value.denominator == 1 else float(value)


def monthly_bill(tenant: str, month: str, rows: Iterable[UsageRow], price_per_tb_month: Decimal) -> Bill:
    first, end = month_hours(month)
    total = Usage()
    containers: dict[str, Usage] = {}
    for row in rows:
        if not first <= row.hour < end:
            continue
        total = total.plus(row)
        containers[row.container] = containers.get(row.container, Usage()).plus(row)
    return Bill(tenant, month, end - first, price_per_tb_month, total, containers)
