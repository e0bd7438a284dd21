"""`usage --tenant T --month YYYY-MM`: stored GB-months, traffic, requests and the bill."""

from __future__ import annotations

import argparse
import time
from decimal import Decimal

from vaultaire.admin.context import AdminContext, AdminError
from vaultaire.billing import BadMonth, Bill, Usage, month_hours, monthly_bill


def _gb(n: int) -> str:
    return f"{n / 2**30:.3f}"


async def usage(args: argparse.Namespace, ctx: AdminContext) -> int:
    try:
        first, end = month_hours(args.month)
    except BadMonth as e:
        raise AdminError(str(e)) from None
    catalog = await ctx.catalog()
    tenant = await catalog.tenant(args.tenant)
    rows = await catalog.usage(tenant.id, first, end)
    price = Decimal(str(args.price if args.price is not None else ctx.settings.price_per_tb_month))
    bill = monthly_bill(tenant.name, args.month, rows, price)
    ctx.emit(bill.as_json(), table=_table(bill), text=_footer(bill))
    return 0


def _row(name: str, bill: Bill, u: Usage) -> list[object]:
    return [
        name,
        f"{float(bill.gb_months(u)):.6f}",
        _gb(u.bytes_in),
        _gb(u.bytes_out),
        u.class_a,
        u.class_b,
        f"${bill.amount(u)}",
    ]


def _table(bill: Bill) -> list[list[object]]:
    header: list[object] = ["CONTAINER", "GB-MONTHS", "IN_GB", "EGRESS_GB", "CLASS_A", "CLASS_B", "STORAGE_USD"]
    rows = [_row(name or "(no container)", bill, u) for name, u in sorted(bill.containers.items())]
    return [header, *rows, _row("TOTAL", bill, bill.total)]


def _footer(bill: Bill) -> str:
    return (
        f"tenant {bill.tenant}, {bill.month} ({bill.hours} hours), at ${bill.price_per_tb_month} per TB-month"
        f" (TB = 2**40 bytes): amount due ${bill.amount(bill.total)}"
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("usage", help="a tenant's usage and bill for a month", parents=[common])
    p.add_argument("--tenant", required=True)
    p.add_argument("--month", default=time.strftime("%Y-%m", time.gmtime()), help="YYYY-MM (UTC); default: this month")
    p.add_argument("--price", type=Decimal, default=None, help="USD per TB-month (default: the config's, 3.99)")
    p.set_defaults(run=usage)
