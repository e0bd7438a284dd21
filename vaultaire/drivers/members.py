"""What the composite drivers (mirror, failover) share: probing their members' health."""

from __future__ import annotations

from collections.abc import Sequence

from vaultaire.drivers.interface import Driver


async def probe_members(members: Sequence[Driver]) -> dict[str, object]:
    """Each member's health status by name; a probe that raises counts as "error"."""
    statuses: dict[str, object] = {}
    for member in members:
        try:
            statuses[member.name] = (await member.health()).get("status")
        except Exception:
            statuses[member.name] = "error"
    return statuses


def overall_status(up: int, total: int) -> str:
    return "ok" if up == total else ("degraded" if up else "error")
