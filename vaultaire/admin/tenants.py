"""`tenant create|list|show|suspend|resume|delete NAME`."""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable

from vaultaire.admin.context import AdminContext
from vaultaire.model import StoredTotals, Tenant


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def tenant_json(tenant: Tenant, totals: StoredTotals | None = None) -> dict[str, object]:
    doc: dict[str, object] = {
        "name": tenant.name,
        "id": tenant.id,
        "status": tenant.status,
        "created": _iso(tenant.created),
        "max_bytes": tenant.max_bytes,
        "max_objects": tenant.max_objects,
    }
    if totals is not None:
        doc["stored_bytes"] = totals.bytes
        doc["stored_objects"] = totals.objects
    return doc


def _limit(value: int | None) -> str:
    return "-" if value is None else str(value)


async def create(args: argparse.Namespace, ctx: AdminContext) -> int:
    tenant = await (await ctx.catalog()).create_tenant(args.name)
    ctx.emit(tenant_json(tenant), text=f"tenant {tenant.name} created (id {tenant.id})")
    return 0


async def list_tenants(args: argparse.Namespace, ctx: AdminContext) -> int:
    catalog = await ctx.catalog()
    tenants = await catalog.tenants()
    totals = await catalog.all_tenant_totals()
    docs = [tenant_json(t, totals.get(t.id, StoredTotals())) for t in tenants]
    table = [["NAME", "STATUS", "STORED_BYTES", "OBJECTS", "MAX_BYTES", "MAX_OBJECTS"]] + [
        [d["name"], d["status"], d["stored_bytes"], d["stored_objects"], _limit(t.max_bytes), _limit(t.max_objects)]
        for d, t in zip(docs, tenants, strict=True)
    ]
    ctx.emit(docs, table=table)
    return 0


async def show(args: argparse.Namespace, ctx: AdminContext) -> int:
    catalog = await ctx.catalog()
    tenant = await catalog.tenant(args.name)
    doc = tenant_json(tenant, await catalog.tenant_totals(tenant.id))
    doc["access_keys"] = [key for key, _name, _created in await catalog.credentials(tenant.id)]
    ctx.emit(doc, table=[[k, v if not isinstance(v, list) else ", ".join(v) or "-"] for k, v in doc.items()])
    return 0


def _set_status(status: str) -> Callable[[argparse.Namespace, AdminContext], Awaitable[int]]:
    async def run(args: argparse.Namespace, ctx: AdminContext) -> int:
        tenant = await (await ctx.catalog()).set_tenant_status(args.name, status)
        ctx.emit(tenant_json(tenant), text=f"tenant {tenant.name} is {status}")
        return 0

    return run


async def delete(args: argparse.Namespace, ctx: AdminContext) -> int:
    tenant = await (await ctx.catalog()).delete_tenant(args.name)
    ctx.emit(tenant_json(tenant), text=f"tenant {tenant.name} deleted, with its keys")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    tenant = sub.add_parser("tenant", help="create, list, show, suspend, resume or delete tenants")
    actions = tenant.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, run, help_text in (
        ("create", create, "create a tenant (an empty namespace)"),
        ("show", show, "a tenant's status, quota, stored totals and access keys"),
        ("suspend", _set_status("suspended"), "refuse every request of the tenant (AccessDenied); data stays"),
        ("resume", _set_status("active"), "serve a suspended tenant again"),
        ("delete", delete, "delete a tenant that owns no container, and its keys"),
    ):
        p = actions.add_parser(name, help=help_text, parents=[common])
        p.add_argument("name", metavar="NAME")
        p.set_defaults(run=run)
    actions.add_parser("list", help="every tenant", parents=[common]).set_defaults(run=list_tenants)
