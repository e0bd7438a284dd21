"""Versioning in the engine: a container's versioning state, and what only versions have.

Put, copy, complete and delete of a key live in engine.py and take versioning
into account through the catalog (which reads the state in each write's own
transaction). Here: the state itself, the delete of one version, and the
listing of versions. Object Lock's refusals plug in as the ``guard`` of
``delete_version``; lifecycle reads versions with ``list_versions``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from vaultaire.catalog.versions import ENABLED, SETTING, SUSPENDED, valid_version_id
from vaultaire.model import Artifact, Container, RequestContext, VersionChange, VersionsPage

if TYPE_CHECKING:
    from vaultaire.catalog.cached import CachedReads
    from vaultaire.catalog.interface import Catalog
    from vaultaire.engine.blobs import BlobKeeper

STATES = (ENABLED, SUSPENDED)
__all__ = ["SETTING", "STATES", "VersioningEngine", "valid_version_id"]


class VersioningEngine:
    """Mixed into Engine."""

    catalog: Catalog
    reads: CachedReads
    blobs: BlobKeeper

    async def versioning(self, ctx: RequestContext, container: Container) -> str | None:
        """``Enabled``, ``Suspended``, or None for a container that never had versioning on."""
        return await self.reads.setting(container, SETTING)

    async def set_versioning(self, ctx: RequestContext, container: Container, status: str) -> None:
        """Turn versioning on (``Enabled``) or pause it (``Suspended``); it never goes back to
        unversioned, as on S3."""
        if status not in STATES:
            raise ValueError(f"versioning state {status!r}")
        await self.catalog.put_setting(container, SETTING, status)

    async def delete_version(
        self,
        ctx: RequestContext,
        container: Container,
        key: str,
        version_id: str,
        guard: Callable[[Artifact], None] | None = None,
    ) -> VersionChange:
        """Remove one version for good (``removed``; None if the key has no such version).
        ``guard`` may refuse it by raising, inside the catalog transaction."""
        change = await self.catalog.delete_version(container.id, key, version_id, guard)
        if change.removed is not None:
            await self.blobs.release(change.removed, container)
        return change

    async def list_versions(
        self,
        ctx: RequestContext,
        container: Container,
        prefix: str,
        delimiter: str,
        key_marker: str | None,
        version_id_marker: str | None,
        limit: int,
    ) -> VersionsPage:
        return await self.catalog.list_versions(container.id, prefix, delimiter, key_marker, version_id_marker, limit)
