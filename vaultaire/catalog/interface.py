"""The catalog contract. SQLite implements it; a PostgreSQL one can for several gateways."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from twisted.internet.defer import Deferred

from vaultaire.model import Artifact, Container, Credential, ListingPage, Tenant, WriteCondition


class Catalog(Protocol):
    """Every call returns a Deferred and does its blocking work off the reactor."""

    def start(self) -> Deferred[None]: ...

    def stop(self) -> Deferred[None]: ...

    def probe(self) -> Deferred[dict[str, object]]:
        """Health: {"status": "ok" | "degraded" (serving, refusing writes) | "error", ...}; never raises."""

    def ensure_tenant(self, name: str) -> Deferred[Tenant]: ...

    def add_credential(self, tenant_id: str, access_key: str, secret_key: str) -> Deferred[Credential]: ...

    def credential(self, access_key: str) -> Deferred[tuple[Credential, Tenant] | None]: ...

    def count_credentials(self) -> Deferred[int]: ...

    def create_container(self, tenant_id: str, name: str, placement: str) -> Deferred[Container]:
        """Raises ContainerExists if the tenant already has one of that name."""

    def container(self, tenant_id: str, name: str) -> Deferred[Container | None]: ...

    def containers(
        self, tenant_id: str, prefix: str = "", after: str | None = None, limit: int | None = None
    ) -> Deferred[list[Container]]:
        """The tenant's containers in name order: those starting with ``prefix``, after ``after``."""

    def delete_container(self, container: Container) -> Deferred[None]:
        """Raises ContainerNotEmpty while any artifact remains."""

    def setting(self, container: Container, name: str) -> Deferred[str | None]:
        """A per-container setting (an opaque document), or None when unset."""

    def put_setting(self, container: Container, name: str, value: str) -> Deferred[None]:
        """Set or replace; raises NoSuchContainer if the container is gone."""

    def delete_setting(self, container: Container, name: str) -> Deferred[bool]:
        """True if there was one to delete."""

    def settings_by_name(self, tenant_id: str | None, container: str, name: str) -> Deferred[list[str | None]]:
        """For every container so named (the tenant's, or every tenant's when None), in
        creation order, its setting or None: one read for the hot path."""

    def artifact(self, container_id: int, key: str) -> Deferred[Artifact | None]: ...

    def put_artifact(self, artifact: Artifact, condition: WriteCondition | None = None) -> Deferred[Artifact | None]:
        """Insert or replace in one transaction; returns the replaced artifact.

        ``condition`` is checked inside the same transaction (PreconditionFailed),
        so two conditional writers can never both win.

        The replaced artifact's locator is queued as garbage in the same
        transaction, so a crash before it is freed leaks nothing for good.
        """

    def delete_artifact(self, container_id: int, key: str) -> Deferred[Artifact | None]:
        """Remove the key (its locator queued as garbage); returns what was removed."""

    def list_artifacts(
        self, container_id: int, prefix: str, delimiter: str, after: str | None, limit: int
    ) -> Deferred[ListingPage]:
        """A page in UTF-8 binary key order, keys strictly greater than ``after``."""

    # Every blob on a driver is, for the catalog, exactly one of: intended (a live or dead
    # writer's, recorded before its first byte), referenced (an artifact or part), or garbage.
    # The transaction that commits a reference to a blob (put_artifact, put_part, move_*)
    # settles its intent; one that drops a reference queues the blob as garbage.

    def intend_blobs(self, placement: str, locators: list[str]) -> Deferred[None]:
        """Durably record that this process is about to write these blobs."""

    def reclaim_abandoned(self) -> Deferred[list[tuple[str, str]]]:
        """Move the intents of writers that are gone to the garbage; returns their
        (placement, locator). Never takes the intent of a writer still alive."""

    def garbage(
        self, limit: int, queued_before: float = float("inf"), placements: Iterable[str] | None = None
    ) -> Deferred[list[tuple[str, str]]]:
        """(placement, locator) pairs whose blobs are no longer referenced, queued at or
        before ``queued_before``, on ``placements`` when given; oldest first."""

    def queue_garbage(self, placement: str, locators: list[str]) -> Deferred[None]:
        """Queue blobs that no row references (a failed write's leftovers) for the sweep;
        settles their intents."""

    def forget_garbage(self, locators: list[str]) -> Deferred[None]:
        """The blobs are deleted: forget their garbage rows and intents."""
