"""`bucket rename TENANT OLD NEW`: a catalog operation, no byte copied.

Bucket names are unique across the deployment; a data directory from before
that may hold one name under several tenants (the daemon logs each such name at
start). Renaming all but one ends the conflict. The container keeps its id, and
so its blobs, uploads, settings and usage history: only its name changes, seen
by the running daemon at its next request.
"""

from __future__ import annotations

import argparse

from vaultaire.admin.context import AdminContext, AdminError
from vaultaire.errors import ContainerExists, ContainerNameTaken, NoSuchContainer
from vaultaire.names import valid_bucket_name


async def rename(args: argparse.Namespace, ctx: AdminContext) -> int:
    if not valid_bucket_name(args.new):
        raise AdminError(
            f"{args.new!r} is not a valid bucket name (3 to 63 lower-case letters, digits, '.' and '-', "
            "starting and ending with a letter or digit)"
        )
    catalog = await ctx.catalog()
    tenant = await catalog.tenant(args.tenant)
    try:
        container = await catalog.rename_container(tenant.id, args.old, args.new)
    except NoSuchContainer:
        raise AdminError(f"tenant {tenant.name!r} has no bucket named {args.old!r}") from None
    except ContainerExists:
        raise AdminError(f"tenant {tenant.name!r} already has a bucket named {args.new!r}") from None
    except ContainerNameTaken:
        raise AdminError(f"the bucket name {args.new!r} is taken by another tenant") from None
    ctx.emit(
        {"tenant": tenant.name, "old": args.old, "new": container.name, "id": container.id},
        text=f"bucket {args.old} of tenant {tenant.name} is now {container.name}",
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    bucket = sub.add_parser("bucket", help="rename a tenant's bucket")
    actions = bucket.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("rename", help="give a tenant's bucket another name; no byte is copied", parents=[common])
    p.add_argument("tenant", metavar="TENANT")
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")
    p.set_defaults(run=rename)
