"""`quota set TENANT --max-bytes N [--max-objects N]` (0 or 'none' lifts a limit)."""

from __future__ import annotations

import argparse

from vaultaire.admin.context import AdminContext
from vaultaire.admin.tenants import tenant_json

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def limit(text: str) -> int | None:
    """'none' -> no limit; '500', '10G' (10**9), '1Ti' (2**40)."""
    value = text.strip().lower()
    if value in ("none", "unlimited"):
        return None
    digits = value.rstrip("kmgtib")
    unit = value[len(digits) :].removesuffix("b")
    if not digits.isdigit() or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: give e.g. 5000000, 10G, 1Ti or none")
    return int(digits) * _UNITS[unit]


async def set_quota(args: argparse.Namespace, ctx: AdminContext) -> int:
    tenant = await (await ctx.catalog()).set_quota(args.tenant, args.max_bytes, args.max_objects)
    ctx.emit(
        tenant_json(tenant),
        text=f"tenant {tenant.name}: max bytes {tenant.max_bytes or 'unlimited'},"
        f" max objects {tenant.max_objects or 'unlimited'}",
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    quota = sub.add_parser("quota", help="set a tenant's quota")
    actions = quota.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "set", help="limit what a tenant may store; enforced from the next request", parents=[common]
    )
    p.add_argument("tenant", metavar="TENANT")
    p.add_argument("--max-bytes", type=limit, required=True, help="bytes (10G = 10**9, 1Ti = 2**40) or none")
    p.add_argument("--max-objects", type=limit, default=None, help="objects, or none (the default)")
    p.set_defaults(run=set_quota)
