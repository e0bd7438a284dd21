"""The catalog contract. SQLite implements it; a PostgreSQL one can for several gateways."""

from __future__ import annotations

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

    def containers(self, tenant_id: str) -> Deferred[list[Container]]: ...

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

    def garbage(self, limit: int) -> Deferred[list[tuple[str, str]]]:
        """(placement, locator) pairs whose blobs are no longer referenced."""

    def queue_garbage(self, placement: str, locators: list[str]) -> Deferred[None]:
        """Queue blobs that no row references (a failed write's leftovers) for the sweep."""

    def forget_garbage(self, locators: list[str]) -> Deferred[None]: ...
