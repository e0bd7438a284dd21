"""Drivers and placements from the configuration's tables (already validated).

Every driver is a placement of its own name; a ``[placements.NAME]`` table
adds a policy (mirror, failover) over several drivers, itself a Driver, so
the engine sees exactly one Driver per placement name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from vaultaire.diskspace import AUTO_RESERVE
from vaultaire.drivers.interface import Driver
from vaultaire.drivers.local import LocalDriver
from vaultaire.drivers.memory import MemoryDriver
from vaultaire.drivers.s3 import S3Driver, S3DriverConfig


def build_driver(
    name: str,
    table: Mapping[str, Any],
    data_dir: str,
    reactor: Any,
    scrub_staging: bool = True,
    reserve: int = AUTO_RESERVE,
    rclone_role: str = "private",
) -> Driver:
    kind = table["type"]
    if kind == "local":
        root = table.get("root") or os.path.join(data_dir, "blobs")
        return LocalDriver(root, reactor, name=name, scrub_staging=scrub_staging, reserve=reserve)
    if kind == "memory":
        return MemoryDriver(name)
    if kind == "s3":
        settings = {k: v for k, v in table.items() if k != "type"}
        if "timeout" in settings:
            settings["timeout"] = float(settings["timeout"])
        return S3Driver(S3DriverConfig(**settings), reactor, name=name)
    if kind == "rclone":
        from vaultaire.drivers.rclone import RcloneDriver, RcloneDriverConfig

        settings = {k: v for k, v in table.items() if k != "type"}
        if "timeout" in settings:
            settings["timeout"] = float(settings["timeout"])
        run_dir = os.path.join(data_dir, "run", "rclone")
        return RcloneDriver(RcloneDriverConfig(**settings), reactor, name, run_dir, role=rclone_role)
    raise ValueError(f"unknown driver type {kind!r}")


def build_placements(
    drivers: Mapping[str, Mapping[str, Any]],
    placements: Mapping[str, Mapping[str, Any]],
    data_dir: str,
    reactor: Any,
    scrub_staging: bool = True,
    reserve: int = AUTO_RESERVE,
    rclone_role: str = "private",
    implicit_local: bool = True,
) -> dict[str, Driver]:
    """Placement name -> Driver, with the implicit "local" driver on ``<data_dir>/blobs``
    (unless ``implicit_local`` is off: gateways sharing a catalog share no local disk).

    ``scrub_staging`` is off in worker processes: only the supervisor may remove
    staged files, since a sibling worker may be writing one. ``rclone_role`` says
    who runs rclone for rclone drivers (see vaultaire.drivers.rclone): the
    supervisor of workers publishes one process per driver, its workers attach."""
    tables = {**({"local": {"type": "local"}} if implicit_local else {}), **drivers}
    built: dict[str, Driver] = {
        name: build_driver(name, table, data_dir, reactor, scrub_staging, reserve, rclone_role)
        for name, table in tables.items()
    }
    for name, table in placements.items():
        members = [built[m] for m in table["drivers"]]
        if table["policy"] == "mirror":
            from vaultaire.drivers.mirror import MirrorDriver

            built[name] = MirrorDriver(name, members, reactor)
        else:
            from vaultaire.drivers.failover import FailoverDriver

            built[name] = FailoverDriver(name, members, reactor, journal_dir=os.path.join(data_dir, "failover"))
    return built
