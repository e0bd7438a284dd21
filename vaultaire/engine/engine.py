"""Engine: containers and artifacts for a tenant, bytes placed on drivers.

The engine owns the order of a write — stream to a staged blob, verify the
digests, make the blob durable, commit the catalog, and only then free what
the commit replaced — so the S3 layer can never get it wrong. Its parts, mixed
into Engine: writes.py (PUT and copy), uploads.py (multipart), versioning.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from vaultaire.catalog import inline
from vaultaire.catalog.cached import CachedReads
from vaultaire.catalog.interface import Catalog
from vaultaire.drivers.interface import BlobReader, Driver
from vaultaire.encryption.keys import Keyring, Protection
from vaultaire.encryption.kms import KeySource, LocalKeySource
from vaultaire.engine.blobs import DEFAULT_FREE_GRACE, BlobKeeper
from vaultaire.engine.inline import InlineStore
from vaultaire.engine.manifest import ManifestReader
from vaultaire.engine.quota import QuotaGuard
from vaultaire.engine.sealed import Sealed
from vaultaire.engine.space import SpaceGuard
from vaultaire.engine.uploads import UploadsEngine
from vaultaire.engine.versioning import VersioningEngine
from vaultaire.errors import (
    DeleteMarkerAddressed,
    DriverError,
    DriverUnavailable,
    NoSuchArtifact,
    NoSuchContainer,
    NoSuchPlacement,
    NoSuchVersion,
)
from vaultaire.model import (
    Artifact,
    ByteRange,
    Container,
    ContainerAccess,
    Credential,
    ListedPage,
    ListingPage,
    RequestContext,
    StoredTotals,
    Tenant,
    UsageRow,
    User,
    VersionChange,
)

log = Logger()


class Engine(VersioningEngine, UploadsEngine):
    def __init__(
        self,
        catalog: Catalog,
        drivers: dict[str, Driver],
        reactor: Any,
        default_placement: str = "local",
        clock: Callable[[], float] = time.time,
        min_part_size: int = 5 * 2**20,
        space: SpaceGuard | None = None,
        free_grace: float = DEFAULT_FREE_GRACE,
        keyring: Keyring | None = None,
        kms: KeySource | None = None,
        inline_max: int = 0,
        reads: CachedReads | None = None,
    ) -> None:
        self.min_part_size = min_part_size
        # PUTs of at most this many bytes on a plain local placement keep them in the catalog,
        # durable with the row in one group commit (engine/inline.py); 0: never.
        self.inline_max = inline_max
        self.inline = InlineStore(catalog)
        # The request path's point reads, kept until the catalog's generation moves (refresh);
        # given when the key source shares them.
        self.reads = CachedReads(catalog) if reads is None else reads
        # Encryption at rest; without a keyring (tools that only move blobs) it is refused.
        # SSE-KMS keys are the catalog's own unless another key source is given.
        if kms is None and keyring is not None:
            kms = LocalKeySource(catalog, keyring, reads=self.reads)
        self.sealed = Sealed(keyring, reactor, kms)
        # Every blob dropped goes through the keeper: deleted, or queued for its sweep.
        self.blobs = BlobKeeper(catalog, drivers, clock, free_grace)
        if default_placement not in drivers:
            raise ValueError(f"default placement {default_placement!r} names no driver")
        self.catalog = catalog
        self.drivers = drivers
        self._reactor = reactor
        self._default = default_placement
        self._clock = clock
        self.quota = QuotaGuard(catalog)
        # Free disk space checked when a write starts (None: not checked, as for tests in memory).
        self.space = space
        if space is not None:
            self.blobs.under_pressure = space.short

    # -- life cycle

    async def start(self) -> None:
        await self.catalog.start()
        for name, driver in self.drivers.items():
            try:
                await driver.start()
            except DriverUnavailable as e:
                # An upstream that is down now may be back soon (a mirror serves without it);
                # health shows it down. One that answered and refused (no bucket) stops the start.
                log.warn("driver {name} is unavailable at start: {error}", name=name, error=str(e))

    async def stop(self) -> None:
        for driver in self.drivers.values():
            await driver.stop()
        await self.catalog.stop()

    async def health(self) -> dict[str, object]:
        """A pure probe of the catalog and every placement; changes nothing.

        "ok"; "degraded" while still serving (a mirror member down, a disk below
        its reserve: reads and deletes work, writes may be refused); "failing"
        when requests cannot be served (the catalog, or the default placement, errs).
        """
        report: dict[str, object] = {}
        statuses: list[object] = []
        for name, driver in self.drivers.items():
            try:
                h = await driver.health()
            except Exception as e:  # a health probe must report, not raise
                h = {"status": "error", "error": str(e)}
            report[name] = h
            statuses.append(h.get("status"))
        catalog = await self.catalog.probe()
        default = report.get(self._default)
        if catalog.get("status") == "error" or (isinstance(default, dict) and default.get("status") == "error"):
            status = "failing"
        elif catalog.get("status") != "ok" or any(s != "ok" for s in statuses):
            status = "degraded"
        else:
            status = "ok"
        return {"status": status, "catalog": catalog, "drivers": report}

    async def refresh(self) -> None:
        """At the start of every request: see every change to keys, users, tenants, containers
        and their settings committed before now, by any process (catalog/cached.py)."""
        await self.reads.refresh()

    # -- tenants and credentials

    async def credential(self, access_key: str) -> tuple[Credential, Tenant] | None:
        return await self.reads.credential(access_key)

    async def ensure_credential(self, tenant_name: str, access_key: str, secret_key: str) -> Tenant:
        tenant = await self.catalog.ensure_tenant(tenant_name)
        await self.catalog.add_credential(tenant.id, access_key, secret_key)
        return tenant

    async def user(self, tenant_id: str, name: str) -> User:
        """A user of the tenant with its identity policy; raises NoSuchUser."""
        return await self.reads.user(tenant_id, name)

    async def containers_named(self, name: str) -> list[ContainerAccess]:
        """Every container so named, of any tenant, with its owner and access documents."""
        return await self.reads.containers_named(name)

    async def has_credentials(self) -> bool:
        return bool(await self.catalog.count_credentials())

    # -- metering

    async def record_traffic(self, rows: list[UsageRow]) -> None:
        await self.catalog.add_traffic(rows)

    async def rollup_usage(self) -> int:
        """Bring every container's stored byte-hours up to now (the hourly rollup)."""
        return await self.catalog.rollup_usage()

    async def stored_by_tenant(self) -> tuple[list[Tenant], dict[str, StoredTotals]]:
        return await self.catalog.tenants(), await self.catalog.all_tenant_totals()

    # -- containers

    def _tenant(self, ctx: RequestContext) -> Tenant:
        if ctx.tenant is None:
            raise PermissionError("no tenant in the request context")
        return ctx.tenant

    async def list_containers(
        self, ctx: RequestContext, prefix: str = "", after: str | None = None, limit: int | None = None
    ) -> list[Container]:
        return await self.catalog.containers(self._tenant(ctx).id, prefix, after, limit)

    @property
    def default_placement(self) -> str:
        return self._default

    async def create_container(
        self,
        ctx: RequestContext,
        name: str,
        placement: str | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> Container:
        """A new container on ``placement`` (the configured default when None), created with
        its initial ``settings`` in one transaction."""
        chosen = placement or self._default
        if chosen not in self.drivers:
            raise NoSuchPlacement(chosen)
        return await self.catalog.create_container(self._tenant(ctx).id, name, chosen, settings)

    async def container(self, ctx: RequestContext, name: str) -> Container:
        found = await self.reads.container(self._tenant(ctx).id, name)
        if found is None:
            raise NoSuchContainer(name)
        return found

    async def container_named(self, name: str) -> Container | None:
        """The container of that name whatever its tenant (None: no such name, or one several
        tenants hold from before names were unique). For access across tenants and anonymous requests."""
        return await self.reads.container_named(name)

    async def name_conflicts(self) -> list[tuple[str, list[str]]]:
        """Names several tenants hold: (name, tenant names, oldest container first)."""
        return await self.catalog.name_conflicts()

    async def delete_container(self, ctx: RequestContext, name: str) -> None:
        await self.catalog.delete_container(await self.container(ctx, name))

    # -- per-container settings: opaque documents the S3 layer gives meaning to

    async def container_setting(self, ctx: RequestContext, container: Container, name: str) -> str | None:
        return await self.reads.setting(container, name)

    async def put_container_setting(self, ctx: RequestContext, container: Container, name: str, value: str) -> None:
        await self.catalog.put_setting(container, name, value)

    async def delete_container_setting(self, ctx: RequestContext, container: Container, name: str) -> bool:
        return await self.catalog.delete_setting(container, name)

    async def settings_by_name(self, tenant: Tenant | None, container: str, name: str) -> list[str | None]:
        """The setting of every container so named: the tenant's one, or, for an
        unauthenticated request (a CORS preflight), every tenant's."""
        return await self.reads.settings_by_name(None if tenant is None else tenant.id, container, name)

    # -- ACLs (issue 14): a version's attributes changed in place, grantees that must exist

    async def amend_artifact(
        self,
        ctx: RequestContext,
        container: Container,
        key: str,
        version_id: str | None,
        change: Callable[[Artifact], Artifact],
    ) -> Artifact:
        """Change one version's attributes (None: the current version) in one transaction."""
        return await self.catalog.amend_artifact(container.id, key, version_id, change)

    async def tenant_exists(self, tenant_id: str) -> bool:
        """Whether a tenant has this id (an ACL's grantee). Rare: only ACLs naming other tenants ask."""
        return any(tenant.id == tenant_id for tenant in await self.catalog.tenants())

    # -- artifacts

    async def artifact(
        self, ctx: RequestContext, container: Container, key: str, version_id: str | None = None
    ) -> Artifact:
        """The current version (or the one so named) as data: NoSuchArtifact (carrying the delete
        marker when one is current), NoSuchVersion, or DeleteMarkerAddressed for a marker's id."""
        found = await self.catalog.artifact(container.id, key, version_id)
        if found is None:
            raise NoSuchArtifact(key) if version_id is None else NoSuchVersion(version_id)
        if found.delete_marker:
            if version_id is None:
                raise NoSuchArtifact(key, marker=found)
            raise DeleteMarkerAddressed(key, marker=found)
        return found

    async def amend(
        self,
        ctx: RequestContext,
        container: Container,
        key: str,
        version_id: str | None,
        change: Callable[[Artifact], Artifact],
    ) -> Artifact:
        """Change one version's attributes (tags...) in one transaction; ``change`` may raise to refuse.
        ``version_id`` None: the current version. NoSuchArtifact if there is no such version."""
        return await self.catalog.amend_artifact(container.id, key, version_id, change)

    def _driver(self, container: Container) -> Driver:
        """Where the container's new blobs go."""
        return self.placement(container.placement)

    def placement(self, name: str) -> Driver:
        try:
            return self.drivers[name]
        except KeyError:
            raise DriverError(f"placement {name!r} names no configured driver") from None

    def source(self, placement: str, locator: str) -> Driver:
        """Where a blob is read from: the catalog for an inline one, else its placement's driver."""
        return self.inline if inline.is_inline(locator) else self.placement(placement)

    async def open(
        self,
        ctx: RequestContext,
        container: Container,
        key: str,
        resolve: Callable[[Artifact], ByteRange | None],
        offered: Protection | None = None,
        version_id: str | None = None,
    ) -> tuple[Artifact, ByteRange | None, BlobReader]:
        """Find the artifact (its current version, or ``version_id``), check ``offered`` may read
        it (SSE-C: before anything else about it is resolved), resolve the wanted range against it,
        open its blob.

        An overwrite may free the blob between the catalog read and the open;
        then the newer artifact is read instead, once.
        """
        for attempt in (1, 2):
            artifact = await self.artifact(ctx, container, key, version_id)
            self.sealed.check(artifact.sealing, offered)
            wanted = resolve(artifact)
            start, end = (wanted.start, wanted.end) if wanted else (0, artifact.size - 1)
            try:
                reader = await self._reader(container, artifact, start, end, offered)
            except DriverError:
                if attempt == 2:
                    raise
                continue
            return artifact, wanted, reader
        raise AssertionError("unreachable")

    async def _reader(
        self, container: Container, artifact: Artifact, start: int, end: int, offered: Protection | None = None
    ) -> BlobReader:
        # The artifact's own placement: during a migration it may not be the container's.
        # A manifest's parts are always on a driver; a single blob may be inline.
        driver = self.source(artifact.placement or container.placement, artifact.locator)
        sealing = artifact.sealing
        if sealing is None:
            if not artifact.parts:
                return await driver.open_reader(artifact.locator, start, end)
            return ManifestReader(driver, artifact.parts, start, end)
        if not artifact.parts:
            token = sealing.keys[0]
            return await self.sealed.open_reader(
                driver, sealing, token, artifact.locator, artifact.size, start, end, offered
            )
        blobs = {loc: (token, size) for (loc, size), token in zip(artifact.parts, sealing.keys, strict=True)}

        def open_part(locator: str, first: int, last: int) -> Deferred[BlobReader]:
            token, size = blobs[locator]
            opened = self.sealed.open_reader(driver, sealing, token, locator, size, first, last, offered)
            return Deferred.fromCoroutine(opened)

        return ManifestReader(driver, artifact.parts, start, end, open_part)

    async def delete(self, ctx: RequestContext, container: Container, key: str) -> VersionChange:
        """DELETE of the key: removes it, or adds a delete marker (``written``) when versioned."""
        change = await self.catalog.delete_artifact(container.id, key)
        if change.removed is not None:
            await self.blobs.release(change.removed, container)
        return change

    async def list_artifacts(
        self, ctx: RequestContext, container: Container, prefix: str, delimiter: str, after: str | None, limit: int
    ) -> ListingPage:
        return await self.catalog.list_artifacts(container.id, prefix, delimiter, after, limit)

    async def list_listed(
        self, ctx: RequestContext, container: Container, prefix: str, delimiter: str, after: str | None, limit: int
    ) -> ListedPage:
        """``list_artifacts`` with only what ListObjects shows of each version (its cost is the page's)."""
        return await self.catalog.list_listed(container.id, prefix, delimiter, after, limit)

    # -- freeing blobs the catalog no longer references (vaultaire/engine/blobs.py)

    @property
    def free_grace(self) -> float:
        return self.blobs.free_grace

    @free_grace.setter
    def free_grace(self, seconds: float) -> None:
        self.blobs.free_grace = seconds

    async def discard(self, placement: str, locators: list[str]) -> int:
        return await self.blobs.discard(placement, locators)

    async def release(self, replaced: Artifact, container: Container) -> None:
        await self.blobs.release(replaced, container)

    async def collect_garbage(self, batch: int = 1000) -> int:
        return await self.blobs.collect(batch)
