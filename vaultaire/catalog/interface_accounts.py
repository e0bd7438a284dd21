"""The catalog contract, its accounts part: start and stop, tenants, users, containers.

Part of the contract interface.py describes (its guarantees hold here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from twisted.internet.defer import Deferred

from vaultaire.model import (
    Container,
    ContainerAccess,
    Credential,
    Tenant,
    User,
)


class Lifecycle(Protocol):
    def start(self) -> Deferred[None]:
        """Open the store, creating or upgrading its schema before firing."""

    def stop(self) -> Deferred[None]:
        """Release connections and threads once queued work is done; no call may follow."""

    def probe(self) -> Deferred[dict[str, object]]:
        """Health: {"status": "ok" | "degraded" (serving, refusing writes) | "error", ...}; never raises."""


class Tenants(Protocol):
    """Accounts, by their unique name, and the access keys that act for them."""

    def ensure_tenant(self, name: str) -> Deferred[Tenant]:
        """The tenant so named, created active if missing; two concurrent calls get one tenant."""

    def create_tenant(self, name: str) -> Deferred[Tenant]:
        """A new active tenant; raises TenantExists if the name is taken."""

    def tenant(self, name: str) -> Deferred[Tenant]:
        """The tenant so named; raises NoSuchTenant."""

    def tenants(self) -> Deferred[list[Tenant]]:
        """Every tenant, by name."""

    def oldest_tenant_names(self, limit: int) -> Deferred[list[str]]:
        """The names of the ``limit`` oldest tenants (by creation, then name): a stable set
        every process computes alike."""

    def set_tenant_status(self, name: str, status: str) -> Deferred[Tenant]:
        """Set the status (``active``, ``suspended``...); returns the tenant as now stored.
        Raises NoSuchTenant."""

    def set_quota(self, name: str, max_bytes: int | None, max_objects: int | None) -> Deferred[Tenant]:
        """Replace both limits (None: unlimited); returns the tenant as now stored. Raises
        NoSuchTenant. Existing data over a new limit stays; only growth is refused."""

    def delete_tenant(self, name: str) -> Deferred[Tenant]:
        """Remove a tenant and its access keys in one transaction; returns what was removed.
        Its metered usage stays, for the bill. Raises NoSuchTenant, or TenantNotEmpty while
        it owns a container."""

    def add_credential(self, tenant_id: str, access_key: str, secret_key: str, user: str = "") -> Deferred[Credential]:
        """Store an access key for the tenant's ``user`` ("": its root user), replacing any key with
        that access key id (secret and owner). The secret is stored sealed, never in plain text.
        Raises NoSuchUser for a user the tenant does not have."""

    def credentials(self, tenant_id: str | None) -> Deferred[list[tuple[str, str, float]]]:
        """(access key, tenant name, created) for one tenant's keys or every key when None,
        by tenant name then creation. Never a secret."""

    def revoke_credential(self, access_key: str) -> Deferred[bool]:
        """Delete the access key; False if there was none."""

    def credential(self, access_key: str) -> Deferred[tuple[Credential, Tenant] | None]:
        """The key with its secret unsealed (and its user), and its tenant; None for an unknown key.
        On every request's path: a point read, fast."""

    def count_credentials(self) -> Deferred[int]:
        """How many access keys exist, of every tenant."""


# -- access control (issue 14): users, identity policies, containers by name with their documents


class Users(Protocol):
    """A tenant's users (besides its root user, ""), each with an optional identity policy."""

    def create_user(self, tenant_id: str, name: str, policy: str | None) -> Deferred[User]:
        """A new user with a new unique id; raises NoSuchTenant, or UserExists for a taken name."""

    def user(self, tenant_id: str, name: str) -> Deferred[User]:
        """The user (its policy text included); raises NoSuchUser. On a user's every request: a point read."""

    def users(self, tenant_id: str) -> Deferred[list[User]]:
        """The tenant's users, by name."""

    def set_user_policy(self, tenant_id: str, name: str, policy: str | None) -> Deferred[User]:
        """Set, replace or (None) remove the identity policy; raises NoSuchUser."""

    def delete_user(self, tenant_id: str, name: str) -> Deferred[User]:
        """The user and its access keys, in one transaction; raises NoSuchUser."""

    def user_keys(self, tenant_id: str, name: str) -> Deferred[list[str]]:
        """The access keys acting for the user ("": the root user), oldest first."""

    def containers_named(self, name: str) -> Deferred[list[ContainerAccess]]:
        """Every container so named, whatever its tenant (several only in data written before names
        were unique), by creation, each with its owner and its access documents. On every request's
        path: a point read, fast."""


class Containers(Protocol):
    """Containers of a tenant, and small opaque per-container documents (CORS...)."""

    def create_container(
        self, tenant_id: str, name: str, placement: str, settings: Mapping[str, str] | None = None
    ) -> Deferred[Container]:
        """A new, empty container with its totals at zero, and its initial ``settings`` (as
        ``put_setting`` stores them) written in the same transaction. Raises ContainerExists if
        the tenant already has one of that name, ContainerNameTaken if another tenant has (names
        are unique across tenants; checked in the same transaction)."""

    def container(self, tenant_id: str, name: str) -> Deferred[Container | None]:
        """The tenant's container of that name, or None. On every request's path: a point read, fast."""

    def containers(
        self, tenant_id: str, prefix: str = "", after: str | None = None, limit: int | None = None
    ) -> Deferred[list[Container]]:
        """The tenant's containers in name order: those starting with ``prefix``, after ``after``,
        at most ``limit`` (None: all)."""

    def delete_container(self, container: Container) -> Deferred[None]:
        """In one transaction: the container, its settings, its unfinished uploads (their
        parts queued as garbage) and its stored totals (billed up to now). Raises
        ContainerNotEmpty while any artifact remains, and then changes nothing."""

    def setting(self, container: Container, name: str) -> Deferred[str | None]:
        """A per-container setting (an opaque document), or None when unset."""

    def put_setting(self, container: Container, name: str, value: str) -> Deferred[None]:
        """Set or replace; raises NoSuchContainer if the container is gone (checked in the
        same transaction: a setting never outlives its container)."""

    def delete_setting(self, container: Container, name: str) -> Deferred[bool]:
        """True if there was one to delete."""

    def settings_by_name(self, tenant_id: str | None, container: str, name: str) -> Deferred[list[str | None]]:
        """For every container so named (the tenant's, or every tenant's when None), in
        creation order, its setting or None: one read for the hot path. Without a tenant, a
        name several tenants hold gives nothing (see ``container_named``)."""

    # Names across tenants. A name means one container in the deployment; data directories
    # written before that may hold a name under several tenants, each still serving its own.

    def container_named(self, name: str) -> Deferred[Container | None]:
        """The container of that name, whatever its tenant: None when no container has it,
        or when several tenants hold it (then it resolves only for them, by tenant). On the
        path of every request for another tenant's (or an anonymous) request: a point read."""

    def name_conflicts(self) -> Deferred[list[tuple[str, list[str]]]]:
        """Names several tenants hold: (name, their tenants' names in order of creation)."""

    def rename_container(self, tenant_id: str, old: str, new: str) -> Deferred[Container]:
        """Rename the tenant's container ``old`` to ``new`` in one transaction, no byte moved
        (its id, blobs, uploads and settings stay; stored bytes are billed under the old name
        up to now). Raises NoSuchContainer, ContainerExists (the tenant has ``new``) or
        ContainerNameTaken (another tenant has it)."""
