"""`migrate CONTAINER PLACEMENT [--tenant T]`: move a container's blobs to another placement.

Safe while the daemon serves the container (reads and writes go on); run it
again after an interruption and it resumes where it stopped.
"""

from __future__ import annotations

import argparse
import os

from vaultaire.admin.context import AdminContext, AdminError
from vaultaire.config import check_shared_catalog
from vaultaire.drivers.build import build_placements
from vaultaire.engine import Engine
from vaultaire.engine.migrate import MigrationReport, migrate
from vaultaire.errors import DriverError, DriverUnavailable, NoSuchPlacement
from vaultaire.model import Container


async def _find(ctx: AdminContext, name: str, tenant_name: str | None) -> Container:
    catalog = await ctx.catalog()
    tenants = [await catalog.tenant(tenant_name)] if tenant_name else await catalog.tenants()
    found = [c for t in tenants for c in await catalog.containers(t.id) if c.name == name]
    if not found:
        raise AdminError(f"no container named {name!r}" + (f" for tenant {tenant_name!r}" if tenant_name else ""))
    if len(found) > 1:
        raise AdminError(f"several tenants have a container named {name!r}: give --tenant")
    return found[0]


def _report_json(report: MigrationReport) -> dict[str, object]:
    return {
        "container": report.container,
        "from": report.source,
        "to": report.target,
        "artifacts_moved": report.artifacts_moved,
        "parts_moved": report.parts_moved,
        "bytes_moved": report.bytes_moved,
        "skipped": report.skipped,
        "kept": report.kept,
        "passes": report.passes,
    }


async def run(args: argparse.Namespace, ctx: AdminContext) -> int:
    settings = ctx.settings
    catalog = await ctx.catalog()
    container = await _find(ctx, args.container, args.tenant)
    # The daemon owns staged files: this process must never scrub them.
    # It uses the daemon's rclone processes, if it runs: see vaultaire.drivers.rclone.
    check_shared_catalog(settings)
    drivers = build_placements(
        settings.drivers,
        settings.placements,
        os.path.abspath(settings.data),
        ctx.reactor,
        scrub_staging=False,
        rclone_role="shared",
        implicit_local=not settings.catalog_url,
    )
    if args.placement not in drivers:
        raise AdminError(f"no placement named {args.placement!r} (known: {', '.join(sorted(drivers))})")
    engine = Engine(catalog, drivers, ctx.reactor, default_placement=settings.default_placement)
    for driver in drivers.values():
        try:
            await driver.start()
        except DriverUnavailable as e:
            raise AdminError(f"driver {driver.name!r} is unavailable: {e}") from None
        except DriverError as e:  # cannot work at all: a missing rclone binary, an unknown remote
            raise AdminError(str(e)) from None
    try:
        report = await migrate(engine, container, args.placement)
    except NoSuchPlacement as e:
        raise AdminError(f"no placement named {str(e)!r}") from None
    except DriverError as e:
        raise AdminError(f"migration stopped (run it again to resume): {e}") from None
    finally:
        for driver in drivers.values():
            await driver.stop()
    ctx.emit(
        _report_json(report),
        text=f"container {report.container}: {report.source} -> {report.target}, {report.artifacts_moved} artifacts"
        f" and {report.parts_moved} parts moved ({report.bytes_moved} bytes), {report.skipped} changed by clients"
        f" meanwhile, {report.kept} left where a lifecycle transition put them",
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "migrate",
        help="move a container's blobs to another placement, while it stays in use; resumes if interrupted",
        parents=[common],
    )
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("placement", metavar="PLACEMENT", help="a driver or placement named in the config")
    p.add_argument("--tenant", default=None, help="the container's tenant (needed when several have the name)")
    p.set_defaults(run=run)
