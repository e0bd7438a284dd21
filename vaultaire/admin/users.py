"""`user create|policy|list|show|delete`: a tenant's users and their identity policies (issue 14).

A user's key may do only what its identity policy allows (and what bucket policies grant it);
the tenant's root user (keys made by `key create TENANT`) may do everything in the tenant.
Policies are checked when set, so a stored one always parses; the daemon sees a change on the
next request.
"""

from __future__ import annotations

import argparse
import sys
import time

from vaultaire.access.policy import MalformedPolicy, parse_policy
from vaultaire.admin.context import AdminContext, AdminError
from vaultaire.bootstrap import generate_keys
from vaultaire.model import User


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def user_json(user: User, tenant_name: str, keys: list[str] | None = None) -> dict[str, object]:
    doc: dict[str, object] = {
        "user": user.name,
        "tenant": tenant_name,
        "id": user.id,
        "arn": f"arn:aws:iam::{user.tenant_id}:user/{user.name}",
        "created": _iso(user.created),
        "policy": user.policy,
    }
    if keys is not None:
        doc["access_keys"] = keys
    return doc


def read_policy(source: str) -> str:
    """The policy text of FILE ("-": standard input), checked as S3 checks an identity policy."""
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as f:
                text = f.read()
    except OSError as e:
        raise AdminError(f"cannot read the policy {source!r}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise AdminError(f"the policy {source!r} is not UTF-8 text") from None
    try:
        parse_policy(text, resource_policy=False)
    except MalformedPolicy as e:
        raise AdminError(f"MalformedPolicy: {e.message}") from None
    return text


def _check_name(name: str) -> str:
    # IAM's user names: letters, digits and +=,.@_- , up to 64; so they fit an ARN and a policy variable.
    if not name or len(name) > 64 or not all(c.isalnum() and c.isascii() or c in "+=,.@_-" for c in name):
        raise AdminError(f"invalid user name {name!r}: up to 64 of A-Z a-z 0-9 + = , . @ _ -")
    return name


async def create(args: argparse.Namespace, ctx: AdminContext) -> int:
    catalog = await ctx.catalog()
    tenant = await catalog.tenant(args.tenant)
    policy = read_policy(args.policy) if args.policy else None
    user = await catalog.create_user(tenant.id, _check_name(args.user), policy)
    access, secret = generate_keys()
    await catalog.add_credential(tenant.id, access, secret, user.name)
    doc = user_json(user, tenant.name)
    doc.update({"access_key": access, "secret_key": secret})
    ctx.emit(
        doc,
        text=f"user {user.name} of {tenant.name} created\naccess key: {access}\nsecret key: {secret}\n"
        "(the secret is not shown again)",
    )
    return 0


async def set_policy(args: argparse.Namespace, ctx: AdminContext) -> int:
    catalog = await ctx.catalog()
    tenant = await catalog.tenant(args.tenant)
    user = await catalog.set_user_policy(tenant.id, args.user, read_policy(args.file))
    ctx.emit(user_json(user, tenant.name), text=f"policy of user {user.name} of {tenant.name} set")
    return 0


async def list_users(args: argparse.Namespace, ctx: AdminContext) -> int:
    catalog = await ctx.catalog()
    tenant = await catalog.tenant(args.tenant)
    users = await catalog.users(tenant.id)
    docs = [user_json(u, tenant.name) for u in users]
    table = [["USER", "ID", "POLICY", "CREATED"]] + [
        [u.name, u.id, "yes" if u.policy else "-", _iso(u.created)] for u in users
    ]
    ctx.emit(docs, table=table)
    return 0


async def show(args: argparse.Namespace, ctx: AdminContext) -> int:
    catalog = await ctx.catalog()
    tenant = await catalog.tenant(args.tenant)
    user = await catalog.user(tenant.id, args.user)
    doc = user_json(user, tenant.name, await catalog.user_keys(tenant.id, user.name))
    rows = [[k, ", ".join(v) or "-" if isinstance(v, list) else "-" if v is None else v] for k, v in doc.items()]
    ctx.emit(doc, table=rows)
    return 0


async def delete(args: argparse.Namespace, ctx: AdminContext) -> int:
    catalog = await ctx.catalog()
    tenant = await catalog.tenant(args.tenant)
    user = await catalog.delete_user(tenant.id, args.user)
    ctx.emit(user_json(user, tenant.name), text=f"user {user.name} of {tenant.name} deleted, with its keys")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    user = sub.add_parser("user", help="create, list, show or delete a tenant's users; set their policies")
    actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("create", help="a new user and its first key (the secret is printed once)", parents=[common])
    p.add_argument("tenant", metavar="TENANT")
    p.add_argument("user", metavar="USER")
    p.add_argument("--policy", metavar="FILE", help="its identity policy (JSON; '-' reads standard input)")
    p.set_defaults(run=create)
    p = actions.add_parser("policy", help="set or replace a user's identity policy", parents=[common])
    p.add_argument("tenant", metavar="TENANT")
    p.add_argument("user", metavar="USER")
    p.add_argument("file", metavar="FILE", help="the policy (JSON); '-' reads standard input")
    p.set_defaults(run=set_policy)
    p = actions.add_parser("list", help="a tenant's users", parents=[common])
    p.add_argument("tenant", metavar="TENANT")
    p.set_defaults(run=list_users)
    for name, run, help_text in (
        ("show", show, "a user, its policy and its access keys"),
        ("delete", delete, "delete a user and its keys: their requests fail from now on"),
    ):
        p = actions.add_parser(name, help=help_text, parents=[common])
        p.add_argument("tenant", metavar="TENANT")
        p.add_argument("user", metavar="USER")
        p.set_defaults(run=run)
