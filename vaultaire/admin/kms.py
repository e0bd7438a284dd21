"""`kms create|list|disable|enable NAME`: the keys SSE-KMS requests name.

A key is Vaultaire's own (its material sealed by the master key, kept in the
catalog); the daemon sees a change at the next request that uses the key. A
disabled key makes its objects unreadable (S3's KMS.DisabledException) until
it is enabled again; nothing is ever re-encrypted.
"""

from __future__ import annotations

import argparse
import time

from vaultaire.admin.context import AdminContext, AdminError
from vaultaire.encryption.kms import LocalKeySource, arn
from vaultaire.errors import KmsKeyExists, NoSuchKmsKey
from vaultaire.model import KmsKey


def key_json(key: KmsKey, region: str) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "arn": arn(region, key.id),
        "enabled": key.enabled,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(key.created)),
        "tenant": key.tenant_id or None,
    }


async def create(args: argparse.Namespace, ctx: AdminContext) -> int:
    catalog = await ctx.catalog()
    tenant_id = ""
    if args.tenant:
        tenant_id = (await catalog.tenant(args.tenant)).id
    source = LocalKeySource(catalog, ctx.keyring(), ctx.settings.region)
    try:
        key = await source.create(args.name, tenant_id)
    except ValueError as e:
        raise AdminError(str(e)) from None
    except KmsKeyExists:
        raise AdminError(f"a KMS key named {args.name!r} exists already") from None
    document = key_json(key, ctx.settings.region)
    ctx.emit(document, text=f"KMS key {key.name}: {document['arn']}")
    return 0


async def list_keys(args: argparse.Namespace, ctx: AdminContext) -> int:
    keys = await (await ctx.catalog()).kms_keys()
    documents = [key_json(k, ctx.settings.region) for k in keys]
    table = [["NAME", "ID", "STATE", "TENANT"]] + [
        [k.name, k.id, "enabled" if k.enabled else "disabled", k.tenant_id or "-"] for k in keys
    ]
    ctx.emit(documents, table=table if keys else None, text="" if keys else "no KMS keys")
    return 0


async def _set_enabled(args: argparse.Namespace, ctx: AdminContext, enabled: bool) -> int:
    try:
        key = await (await ctx.catalog()).set_kms_key_enabled(args.name, enabled)
    except NoSuchKmsKey:
        raise AdminError(f"no KMS key named {args.name!r}") from None
    ctx.emit(key_json(key, ctx.settings.region), text=f"KMS key {key.name}: {'enabled' if enabled else 'disabled'}")
    return 0


async def disable(args: argparse.Namespace, ctx: AdminContext) -> int:
    return await _set_enabled(args, ctx, False)


async def enable(args: argparse.Namespace, ctx: AdminContext) -> int:
    return await _set_enabled(args, ctx, True)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    kms = sub.add_parser("kms", help="SSE-KMS keys: create, list, disable, enable")
    actions = kms.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "create", help="make a new key (requests name it by NAME, alias/NAME, id or ARN)", parents=[common]
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--tenant", default="", help="only this tenant may encrypt with it (default: any tenant)")
    p.set_defaults(run=create)
    p = actions.add_parser("list", help="every key and its state", parents=[common])
    p.set_defaults(run=list_keys)
    p = actions.add_parser("disable", help="refuse the key: its objects are unreadable until enabled", parents=[common])
    p.add_argument("name", metavar="NAME", help="its name or id")
    p.set_defaults(run=disable)
    p = actions.add_parser("enable", help="allow a disabled key again", parents=[common])
    p.add_argument("name", metavar="NAME", help="its name or id")
    p.set_defaults(run=enable)
