"""`key create TENANT [--user USER]`, `key list [TENANT]`, `key revoke ACCESS_KEY`: secrets are shown once."""

from __future__ import annotations

import argparse
import time

from vaultaire.admin.context import AdminContext, AdminError
from vaultaire.bootstrap import generate_keys


async def create(args: argparse.Namespace, ctx: AdminContext) -> int:
    catalog = await ctx.catalog()
    tenant = await catalog.tenant(args.tenant)
    access, secret = generate_keys()
    user = args.user or ""  # absent: a key of the tenant's root user
    await catalog.add_credential(tenant.id, access, secret, user)
    ctx.emit(
        {"tenant": tenant.name, "user": user or None, "access_key": access, "secret_key": secret},
        text=f"access key: {access}\nsecret key: {secret}\n(the secret is not shown again)",
    )
    return 0


async def list_keys(args: argparse.Namespace, ctx: AdminContext) -> int:
    catalog = await ctx.catalog()
    tenant_id = (await catalog.tenant(args.tenant)).id if args.tenant else None
    rows = await catalog.credentials(tenant_id)
    docs = [
        {"access_key": key, "tenant": name, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))}
        for key, name, created in rows
    ]
    ctx.emit(
        docs, table=[["ACCESS_KEY", "TENANT", "CREATED"]] + [[d["access_key"], d["tenant"], d["created"]] for d in docs]
    )
    return 0


async def revoke(args: argparse.Namespace, ctx: AdminContext) -> int:
    if not await (await ctx.catalog()).revoke_credential(args.access_key):
        raise AdminError(f"no access key {args.access_key!r}")
    ctx.emit({"revoked": args.access_key}, text=f"access key {args.access_key} revoked")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    key = sub.add_parser("key", help="create, list or revoke access keys")
    actions = key.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("create", help="a new key pair for a tenant (the secret is printed once)", parents=[common])
    p.add_argument("tenant", metavar="TENANT")
    p.add_argument("--user", metavar="USER", help="the user it acts for (default: the tenant's root user)")
    p.set_defaults(run=create)
    p = actions.add_parser("list", help="access keys (never secrets), of one tenant or all", parents=[common])
    p.add_argument("tenant", metavar="TENANT", nargs="?")
    p.set_defaults(run=list_keys)
    p = actions.add_parser("revoke", help="delete an access key: its requests fail from now on", parents=[common])
    p.add_argument("access_key", metavar="ACCESS_KEY")
    p.set_defaults(run=revoke)
