"""The `vaultaire-admin` entry point: options, subcommands, one-line errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from vaultaire.admin import buckets, keys, kms, master_key, migrate, quota, tenants, usage, users
from vaultaire.admin.context import AdminContext, AdminError
from vaultaire.config import ConfigError, build, load_file
from vaultaire.errors import NoSuchTenant, NoSuchUser, TenantExists, TenantNotEmpty, UserExists

COMMANDS = (tenants, users, keys, quota, usage, migrate, buckets, kms, master_key)


def parser() -> argparse.ArgumentParser:
    # --data/--config/--json are accepted before or after the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", "-d", default=argparse.SUPPRESS, help="the daemon's data directory")
    common.add_argument("--config", "-c", default=argparse.SUPPRESS, help="the daemon's TOML config file")
    common.add_argument(
        "--catalog",
        default=argparse.SUPPRESS,
        help="the shared catalog's URL (postgresql://... or sqlite:///PATH), as the gateways' [catalog] url",
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    top = argparse.ArgumentParser(
        prog="vaultaire-admin",
        description="Manage a Vaultaire data directory: safe while the daemon runs, which sees changes at once.",
        parents=[common],
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub, common)
    return top


def _fail(message: str) -> int:
    sys.stderr.write(f"vaultaire-admin: {message}\n")
    return 1


async def _run(reactor: Any, args: argparse.Namespace) -> int:
    try:
        file_values = load_file(args.config) if getattr(args, "config", None) else {}
        overrides = {"data": getattr(args, "data", None), "catalog_url": getattr(args, "catalog", None)}
        settings = build(file_values, overrides)
    except ConfigError as e:
        return _fail(str(e))
    ctx = AdminContext(settings, getattr(args, "json", False), reactor)
    try:
        code: int = await args.run(args, ctx)
        return code
    except (AdminError, ConfigError, TenantNotEmpty) as e:
        return _fail(str(e))
    except NoSuchTenant as e:
        return _fail(f"no tenant named {str(e)!r}")
    except TenantExists as e:
        return _fail(f"a tenant named {str(e)!r} exists already")
    except NoSuchUser as e:
        return _fail(f"no user named {str(e)!r} in that tenant")
    except UserExists as e:
        return _fail(f"a user named {str(e)!r} exists already in that tenant")
    finally:
        await ctx.close()


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if getattr(args, "config", None) is None and getattr(args, "data", None) is None:
        parser().error("give --data DIR (or --config FILE naming it)")

    def start(reactor: Any) -> Any:
        return ensureDeferred(_run(reactor, args)).addCallback(_exit_with)

    react(start)


def _exit_with(status: int) -> None:
    if status:
        raise SystemExit(status)
