"""Settings of where bytes go: ``[drivers.NAME]`` and ``[placements.NAME]`` checked, and what a
shared catalog (``[catalog] url``) asks of them. Part of the settings' validation (config.py)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from vaultaire.config_error import ConfigError
from vaultaire.remotes import split_remote

if TYPE_CHECKING:
    from vaultaire.config import Settings

# [drivers.NAME] settings by type: name -> (type, required)
_DRIVER_SETTINGS: dict[str, dict[str, tuple[type, bool]]] = {
    # shared: the root is one filesystem every gateway mounts (NFS...), so a shared catalog may use it.
    "local": {"root": (str, False), "shared": (bool, False)},
    "memory": {},
    "s3": {
        "endpoint": (str, True),
        "bucket": (str, True),
        "access_key": (str, True),
        "secret_key": (str, True),
        "region": (str, False),
        "prefix": (str, False),
        "tls_verify": (bool, False),
        "ca_file": (str, False),
        "single_put_max": (int, False),
        "part_size": (int, False),
        "timeout": (float, False),
        "retries": (int, False),
        "max_connections": (int, False),
    },
    "rclone": {
        "remote": (str, True),
        "rclone_config": (str, False),
        "rclone": (str, False),
        "args": (list, False),
        "timeout": (float, False),
        "retries": (int, False),
        "max_connections": (int, False),
    },
}
_POLICIES = ("mirror", "failover")


def _check_name(kind: str, name: str) -> None:
    if not name or not all(c.isalnum() or c in "-_" for c in name) or len(name) > 63:
        raise ConfigError(f"{kind} name {name!r} must be 1 to 63 letters, digits, '-' or '_'")


def _validate_rclone(where: str, table: dict[str, Any]) -> None:
    try:
        split_remote(table["remote"])
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    args = table.get("args", [])
    if not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{where}: 'args' must be a list of strings (more flags for rclone serve s3)")
    if any(a.split("=")[0] in ("--addr", "--auth-key", "--config") for a in args):
        raise ConfigError(f"{where}: 'args' must not set --addr, --auth-key or --config: Vaultaire sets them")
    if table.get("timeout", 1) <= 0 or table.get("retries", 0) < 0:
        raise ConfigError(f"{where}: 'timeout' must be positive and 'retries' not negative")


def check_shared_catalog(settings: Settings) -> None:
    """With a shared catalog, every gateway must reach every blob the catalog names: a driver
    that keeps bytes on one host (local disk, memory) would hand the others dangling
    references. A local driver on a filesystem all gateways mount says so with shared = true.
    Checked where blobs are placed (the daemon's start, ``vaultaire-admin migrate``), not by
    every tool that opens the catalog."""
    if not settings.catalog_url:
        return
    if not settings.master_key and not settings.master_key_file:
        # Each gateway would make its own DATA/master.key, and none could open the secrets another sealed.
        raise ConfigError(
            "with a shared catalog ([catalog] url) every gateway must use the same master key:"
            " set [security] master_key_file (the same key file on every gateway) or master_key"
        )
    for name, table in settings.drivers.items():
        kind = table.get("type") if isinstance(table, dict) else None
        if kind == "memory":
            raise ConfigError(
                f"[drivers.{name}] is a memory driver: with a shared catalog ([catalog] url) every gateway must"
                " reach every blob, and memory is this process's alone; use an s3 driver"
            )
        if kind == "local" and not table.get("shared", False):
            root = table.get("root") or "<data>/blobs"
            raise ConfigError(
                f"[drivers.{name}] keeps blobs on this host's disk ({root}): with a shared catalog ([catalog] url)"
                " every gateway must reach every blob. Place containers on an s3 driver (a SeaweedFS cluster,"
                f" any S3 store), or, if {root} is one network filesystem mounted by every gateway,"
                " set shared = true and an absolute root"
            )
        if kind == "local" and not os.path.isabs(str(table.get("root", ""))):
            raise ConfigError(
                f"[drivers.{name}]: a shared local driver needs an absolute root, the same mount on every gateway"
            )
    defined = set(settings.drivers) | set(settings.placements)
    if settings.default_placement not in defined:
        raise ConfigError(
            f"[placement] default = {settings.default_placement!r} names no driver of this file: with a shared"
            " catalog ([catalog] url) there is no implicit local driver (it would keep blobs on one host's disk);"
            " define [drivers.NAME] of type s3 and set [placement] default = NAME"
        )


def validate_backends(settings: Settings) -> None:
    """Drivers and placements: known types, required settings, names that resolve."""
    for name, table in settings.drivers.items():
        _check_name("driver", name)
        where = f"[drivers.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        kind = table.get("type")
        if kind not in _DRIVER_SETTINGS:
            raise ConfigError(f"{where} needs type = one of {', '.join(sorted(_DRIVER_SETTINGS))}, not {kind!r}")
        allowed = _DRIVER_SETTINGS[kind]
        for key, value in table.items():
            if key == "type":
                continue
            if key not in allowed:
                raise ConfigError(f"{where}: unknown setting {key!r} for a {kind} driver")
            expected = allowed[key][0]
            ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            if not ok:
                raise ConfigError(f"{where}: {key!r} must be {expected.__name__}, not {value!r}")
        for key, (_, required) in allowed.items():
            if required and not table.get(key):
                raise ConfigError(f"{where}: {key!r} is required for a {kind} driver")
        if kind == "s3" and not str(table["endpoint"]).startswith(("http://", "https://")):
            raise ConfigError(f"{where}: endpoint must start with http:// or https://")
        if kind == "rclone":
            _validate_rclone(where, table)
    # A "local" driver on <data>/blobs exists unless the file defines one (on one box: with a
    # shared catalog, check_shared_catalog refuses it where it would be used).
    drivers = set(settings.drivers) | {"local"}
    for name, table in settings.placements.items():
        _check_name("placement", name)
        where = f"[placements.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        if name in drivers:
            raise ConfigError(f"{where}: a driver is already called {name!r}; every driver is a placement itself")
        unknown = set(table) - {"policy", "drivers"}
        if unknown:
            raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r}")
        if table.get("policy") not in _POLICIES:
            raise ConfigError(f"{where} needs policy = one of {', '.join(_POLICIES)}")
        members = table.get("drivers")
        if not isinstance(members, list) or len(members) < 2 or len(set(members)) != len(members):
            raise ConfigError(f"{where} needs drivers = a list of two or more different driver names")
        for member in members:
            if member not in drivers:
                raise ConfigError(f"{where}: {member!r} is not a driver (define [drivers.{member}])")
    if settings.default_placement not in drivers | set(settings.placements):
        raise ConfigError(f"[placement] default = {settings.default_placement!r} names no driver or placement")
