"""The catalog contract. SQLite implements it; a PostgreSQL one can for several gateways.

A second implementation is written from this module alone; ``tests/test_catalog_contract.py``
checks the SQLite one against it, and mypy checks every caller uses only what is here.

Guarantees every implementation gives:

* **Deferreds, never blocking.** Every method returns a Deferred at once; the blocking
  work (I/O, locks, fsync) runs off the reactor thread. Errors arrive as failures of that
  Deferred, never as a synchronous raise.
* **One write, one transaction.** Each method that changes something is atomic: either
  all of its effects are committed or none (a refused write changes nothing), and it is
  durable before its Deferred fires. Reads see every commit that fired before they were
  called, from any process sharing the catalog.
* **Domain errors only.** Refusals are the ``vaultaire.errors`` types named in each
  method's docstring; anything else is a failure of the store itself.
* **Bytes are accounted in the transaction that changes them.** Every change to what a
  container stores (artifacts and the parts of unfinished uploads) updates its tenant's
  stored totals and metered byte-seconds in the same transaction, and is refused with
  ``QuotaExceeded`` there if it would take the tenant past its quota, however many
  writers race.
* **No blob is lost track of.** A blob a change stops referencing (replaced, deleted,
  aborted, moved) is queued as garbage ``(placement, locator)`` in that same transaction;
  the engine frees it later and only then forgets it.
* **Keys are compared as UTF-8 bytes** (S3's listing order), containers by id.

The contract is split by concern, so each part can be read (and implemented) on its own;
:class:`Catalog` is all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from twisted.internet.defer import Deferred

from vaultaire.model import (
    Artifact,
    Container,
    ContainerAccess,
    Credential,
    KmsKey,
    ListedPage,
    ListingPage,
    Part,
    StoredTotals,
    Tenant,
    Upload,
    UsageRow,
    User,
    VersionChange,
    VersionsPage,
    WriteCondition,
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


class Artifacts(Protocol):
    """The namespace: every (container, key) holds versions, newest first.

    A version is data or a delete marker (``Artifact.delete_marker``). The container
    setting ``versioning`` (absent: never enabled, ``Enabled``, ``Suspended``) decides,
    in each write's own transaction, what a put or delete does to the versions: an
    unversioned or suspended container writes the ``null`` version, replacing the one
    there was and keeping the others; an enabled one adds a version with a fresh id.
    Version ids are opaque, unique within the key, and sort newest first. Every data
    version counts in the stored totals and the quota (noncurrent ones too); delete
    markers store nothing. A version's blobs are queued as garbage only when that
    version is removed for good.
    """

    def artifact(self, container_id: int, key: str, version_id: str | None = None) -> Deferred[Artifact | None]:
        """The version so named, or the current one when ``version_id`` is None; None if there is
        none. May be a delete marker (``delete_marker``): callers wanting bytes check it.
        ``is_latest`` says whether it is the current version. The current version of a key
        that has one as data is a point read, fast: every GET's path."""

    def put_artifact(self, artifact: Artifact, condition: WriteCondition | None = None) -> Deferred[VersionChange]:
        """Make ``artifact`` the key's current version in one transaction.

        Returns ``written``: the version as stored (its ``version_id`` chosen here: a new
        id when versioning is Enabled, else ``null``), and ``removed``: the version it
        replaced for good (the ``null`` version of an unversioned or suspended container),
        None when none (with versioning Enabled the former current version stays, noncurrent).

        ``condition`` is checked inside the same transaction against the current version (a
        delete marker counts as no version: PreconditionFailed, NoSuchArtifact), so two
        conditional writers can never both win. The stored totals grow by the size (less the
        removed version's) and one object: QuotaExceeded refuses the write.

        The removed version's locators are queued as garbage in the same transaction, so a
        crash before they are freed leaks nothing for good.
        """

    def delete_artifact(self, container_id: int, key: str) -> Deferred[VersionChange]:
        """Delete the key (S3's DELETE without a version id).

        Never versioned: the current version is removed (``removed``; its locators queued as
        garbage, its bytes and object taken off the totals). Enabled: a delete marker with a
        new id becomes the current version (``written``), every version stays. Suspended: a
        ``null`` delete marker (``written``) replaces the ``null`` version (``removed``, if
        there was one). Nothing to delete: both None.
        """

    def delete_version(
        self, container_id: int, key: str, version_id: str, guard: Callable[[Artifact], None] | None = None
    ) -> Deferred[VersionChange]:
        """Remove one version for good (a data version or a delete marker): ``removed``, None if
        the key has no such version. ``guard`` runs inside the transaction on the version
        (``is_latest`` set) before anything changes; what it raises (an Object Lock refusal)
        aborts the delete and reaches the caller. Removing the current version makes the
        next newest current (removing a delete marker that was current restores the version
        below it). A data version's locators are queued as garbage, its bytes and object
        taken off the totals.
        """

    def amend_artifact(
        self, container_id: int, key: str, version_id: str | None, change: Callable[[Artifact], Artifact]
    ) -> Deferred[Artifact]:
        """Replace one version's attributes (tags, retention, legal hold, ACL) in one transaction.

        ``version_id`` None means the current version. ``change`` runs inside the transaction
        on the stored version and returns the new one (only its attributes may differ: never
        its bytes, size or id); an exception it raises (a lock refusal) aborts the change and
        reaches the caller. NoSuchArtifact if there is no such version (NoSuchVersion, its subclass,
        for a version id the key does not have) or it is a delete marker.
        """

    def list_artifacts(
        self, container_id: int, prefix: str, delimiter: str, after: str | None, limit: int
    ) -> Deferred[ListingPage]:
        """A page of current data versions (keys whose current version is a delete marker are
        not listed), in UTF-8 binary key order, keys strictly greater than ``after``.

        Only keys starting with ``prefix``; with a ``delimiter`` (empty: none), keys that
        contain it after the prefix roll up into one common prefix each. Artifacts and
        prefixes together are at most ``limit``; ``next_marker`` is the page's last key or
        prefix, to continue after when ``truncated``. Its cost grows with the page, not the
        container (nor the number of versions).
        """

    # -- ListObjects' lean page (issue 18: listing at the speed of the machine)

    def list_listed(
        self, container_id: int, prefix: str, delimiter: str, after: str | None, limit: int
    ) -> Deferred[ListedPage]:
        """The page ``list_artifacts`` gives, with only what ListObjects shows of each version."""

    def list_versions(
        self,
        container_id: int,
        prefix: str,
        delimiter: str,
        key_marker: str | None,
        version_id_marker: str | None,
        limit: int,
    ) -> Deferred[VersionsPage]:
        """A page of S3's ListObjectVersions: every version and delete marker, by key in UTF-8
        binary order, newest first within a key, ``is_latest`` set on each key's current one.

        ``prefix`` and ``delimiter`` as in ``list_artifacts`` (a common prefix stands for all
        the versions below it). With ``key_marker`` alone, only keys greater than it; with
        ``version_id_marker`` too, first the versions of ``key_marker`` older than that one.
        Versions and prefixes together are at most ``limit``; when ``truncated``, the next
        markers are the page's last key (or prefix) and version id (None after a prefix).
        """


class Uploads(Protocol):
    """Multipart uploads in progress and their parts (each part its own blob)."""

    def create_upload(self, upload: Upload) -> Deferred[None]:
        """Record a new upload under its (unique, caller-chosen) id."""

    def upload(self, container_id: int, upload_id: str) -> Deferred[Upload]:
        """Raises NoSuchUpload, also for an id that belongs to another container."""

    def put_part(self, container_id: int, part: Part) -> Deferred[Part | None]:
        """Record a part, replacing one of the same number; returns the replaced part (its
        blob queued as garbage). The part's bytes count in the stored totals
        (QuotaExceeded). Raises NoSuchUpload if the upload is gone (completed or aborted
        meanwhile), and then the caller owns the part's blob."""

    def parts(self, container_id: int, upload_id: str, after: int, limit: int) -> Deferred[tuple[Upload, list[Part]]]:
        """The upload and up to ``limit`` of its parts numbered above ``after``, in order.
        Raises NoSuchUpload."""

    def complete_upload(
        self,
        container_id: int,
        upload_id: str,
        chosen: list[tuple[int, str]],
        min_part_size: int,
        modified: float,
        condition: WriteCondition | None,
        checksum_of: Callable[[Upload, list[Part]], tuple[str, str] | None] = lambda upload, parts: None,
    ) -> Deferred[tuple[Artifact, Artifact | None, list[Part], list[tuple[str, str]]]]:
        """Turn an upload into a manifest artifact in one transaction; no byte moves.

        ``chosen`` is (part number, MD5 hex) in the client's order. Returns (new artifact,
        replaced artifact, the chosen parts, the (placement, locator) of the parts uploaded
        but not chosen). The upload and its part rows go; the unchosen parts are queued as
        garbage with the replaced artifact's blobs.
        ``checksum_of`` derives the artifact's checksum from the chosen parts (it may
        raise to refuse the completion); it runs inside the transaction, so it must not
        block or call back into the catalog.

        Raises NoSuchUpload, InvalidPartOrder (numbers not ascending), InvalidPart (a part
        missing or of another MD5), EntityTooSmall (a part but the last under
        ``min_part_size``), PreconditionFailed (``condition``, checked in the transaction),
        MigrationInProgress (chosen parts on different placements), QuotaExceeded.
        """

    def abort_upload(self, container_id: int, upload_id: str) -> Deferred[list[tuple[str, str]]]:
        """Drop the upload: its parts queued as garbage, and returned as (placement, locator),
        and taken off the totals. Raises NoSuchUpload."""

    def list_uploads(
        self, container_id: int, prefix: str, delimiter: str, key_marker: str | None, id_marker: str | None, limit: int
    ) -> Deferred[tuple[list[Upload], list[str], bool]]:
        """Uploads in (key, created, id) order after the markers, ``prefix`` and
        ``delimiter`` as in ``list_artifacts``: (uploads, common prefixes, truncated), at
        most ``limit`` of both together. With only ``key_marker``, uploads of keys greater
        than it; with both, the ones after that upload of that key too."""

    def stale_uploads(self, created_before: float, limit: int) -> Deferred[list[Upload]]:
        """Up to ``limit`` uploads of any container created before the time, oldest first."""


class Garbage(Protocol):
    """Blobs no row references any more, waiting to be freed on their placement."""

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
        """Up to ``limit`` (placement, locator) pairs whose blobs are no longer referenced,
        queued at or before ``queued_before``, on ``placements`` when given; oldest first.
        Reading does not remove them: only ``forget_garbage`` does, once the blob is freed."""

    def queue_garbage(self, placement: str, locators: list[str]) -> Deferred[None]:
        """Queue blobs that no row references (a failed write's leftovers) for the sweep;
        settles their intents. A locator already queued stays queued once."""

    def forget_garbage(self, locators: list[str]) -> Deferred[None]:
        """The blobs are deleted: forget their garbage rows and intents (unknown locators
        are ignored)."""


class Migrations(Protocol):
    """Moving a container's blobs to another placement while it serves."""

    def begin_migration(self, container_id: int, target: str) -> Deferred[str]:
        """Point the container's new writes at ``target``; returns the placement it had.

        In the same transaction, every artifact and part that does not yet say
        where its blobs are gets the old placement written down, so that after
        the switch nothing is read from the wrong driver. Raises NoSuchContainer.
        """

    def misplaced_artifacts(
        self, container_id: int, target: str, after: str | None, limit: int
    ) -> Deferred[list[Artifact]]:
        """Up to ``limit`` current data versions whose blobs are not on ``target``, in key order
        after ``after``."""

    def misplaced_versions(
        self, container_id: int, target: str, after: tuple[str, str] | None, limit: int
    ) -> Deferred[list[Artifact]]:
        """Up to ``limit`` noncurrent data versions whose blobs are not on ``target``, in
        (key, version id) order after ``after``: with ``misplaced_artifacts``, every version."""

    def move_artifact(self, old: Artifact, moved: Artifact) -> Deferred[bool]:
        """Swap in ``moved``'s blobs (the same version's bytes copied elsewhere: its locator or
        parts, placement and storage class; nothing else of it is read) if the version
        ``old.version_id`` of the key, current or not, still holds exactly ``old``'s blobs,
        keeping the version's other attributes as they are now (tags, lock, ACL changed during
        the copy); the old blobs are queued as garbage. False, changing nothing, if its bytes
        changed or it went meanwhile (the caller then frees its copies)."""

    def misplaced_parts(self, container_id: int, target: str, limit: int) -> Deferred[list[Part]]:
        """Up to ``limit`` parts of the container's unfinished uploads whose blobs are not on ``target``."""

    def move_part(self, container_id: int, old: Part, moved: Part) -> Deferred[bool]:
        """Like ``move_artifact``, for a part of an unfinished upload."""


class Accounting(Protocol):
    """What tenants store now, and metered usage by hour for the bill."""

    def tenant_totals(self, tenant_id: str) -> Deferred[StoredTotals]:
        """Bytes and objects the tenant stores now (unfinished parts' bytes included). A
        point read on the upload path."""

    def all_tenant_totals(self) -> Deferred[dict[str, StoredTotals]]:
        """Tenant id to totals, for every tenant that has a container."""

    def check_quota(self, tenant_id: str, more_bytes: int, more_objects: int) -> Deferred[None]:
        """Raises QuotaExceeded if the tenant cannot take that much more now. Advisory: the
        commit that stores it checks again, atomically."""

    def add_traffic(self, rows: list[UsageRow]) -> Deferred[None]:
        """Add each row's bytes in/out and request counts to its (tenant, container, hour)
        row; its ``byte_seconds`` are ignored (storage is integrated by the catalog)."""

    def rollup_usage(self) -> Deferred[int]:
        """Integrate every non-empty container's stored bytes up to now into the hourly
        rows; returns how many containers were brought up to date."""

    def usage(self, tenant_id: str, first_hour: int, end_hour: int) -> Deferred[list[UsageRow]]:
        """Hourly rows of ``first_hour <= hour < end_hour``, by hour then container,
        brought up to date first so the current hour's storage is counted."""


class LifecycleScans(Protocol):
    """What the lifecycle runner (vaultaire/lifecycle/runner.py) needs beyond the rest."""

    def containers_with_setting(self, name: str, after_id: int, limit: int) -> Deferred[list[tuple[Container, str]]]:
        """Up to ``limit`` containers of every tenant with setting ``name``, by id above
        ``after_id``, each with the setting's value."""

    def expire_current(
        self, container_id: int, key: str, guard: Callable[[Artifact | None, Artifact | None], None]
    ) -> Deferred[VersionChange]:
        """``delete_artifact`` (S3's DELETE without a version id), after ``guard`` has seen, in
        the same transaction, the key's current data version (None: none, or a delete marker)
        and the version the delete would remove for good (None: nothing); what it raises
        aborts the delete and reaches the caller."""


# -- encryption at rest: SSE-KMS keys and re-sealing (catalog/sqlite_keys.py)


class EncryptionKeys(Protocol):
    def kms_keys(self) -> Deferred[list[KmsKey]]:
        """Every KMS key, by name."""

    def kms_key(self, id_or_name: str) -> Deferred[KmsKey | None]:
        """The key with this id (or else this name), or None."""

    def create_kms_key(self, key: KmsKey) -> Deferred[None]:
        """Add a key; ``KmsKeyExists`` if its name is taken."""

    def set_kms_key_enabled(self, id_or_name: str, enabled: bool) -> Deferred[KmsKey]:
        """Enable or disable a key; ``NoSuchKmsKey`` if there is none."""

    def reseal(
        self,
        data_key: Callable[[str, str], str | None],
        material: Callable[[str, str], str | None],
        secret: Callable[[str, str], str | None],
    ) -> Deferred[dict[str, int]]:
        """Replace each stored wrapped secret by what its function returns for it (None: keep):
        ``data_key(mode, token)`` for every blob's data key, ``material(key id, sealed)`` for
        every KMS key, ``secret(access key, sealed)`` for every secret key; counts per kind."""


# -- cached point reads (catalog/cached.py): one number tells a process when to forget them


class Generations(Protocol):
    def generation(self) -> Deferred[int]:
        """A number that changes in the very transaction of every change to tenants, access keys,
        users, containers or container settings (whatever process makes it), and only then moves:
        a process keeps its answers to ``credential``, ``user``, ``containers_named``, ``container``,
        ``container_named``, ``setting`` and ``settings_by_name`` while it stays the same. Changes to
        artifacts, versions, uploads and usage need not move it. Read once per request: a point read, fast."""


# -- small blobs kept in the catalog (catalog/inline.py, catalog/sqlite_inline.py)


class InlineBlobs(Protocol):
    def put_inline_artifact(
        self, artifact: Artifact, data: bytes, condition: WriteCondition | None = None
    ) -> Deferred[VersionChange]:
        """``put_artifact`` of an artifact whose locator is inline (``catalog.inline``), with
        its stored bytes ``data``, in the same transaction: durable together, or not at all.
        A later change that stops referencing the locator drops its bytes in its own
        transaction (never queued as garbage)."""

    def inline_data(self, locator: str) -> Deferred[bytes | None]:
        """The stored bytes of an inline locator; None once no version references it."""


# -- many gateways, one deployment (issue 17): leases for the work done once per deployment


class Leases(Protocol):
    """Named leases with an expiry, so one gateway of many does a job (catalog/sqlite_leases.py).

    The catalog's own clock (the database server's, for a shared one) decides expiry, so
    gateways with skewed clocks still agree on who holds a lease."""

    def take_lease(self, name: str, holder: str, seconds: float, renew: bool = True) -> Deferred[bool]:
        """In one statement: ``holder`` holds ``name`` for ``seconds`` from now if it was free
        (never taken, released, or expired) or, with ``renew``, already ``holder``'s; True when
        ``holder`` holds it now. Exactly one of several racing takers gets a free lease."""

    def release_lease(self, name: str, holder: str) -> Deferred[None]:
        """Free ``name`` if ``holder`` holds it (a clean stop: others need not wait for the expiry)."""

    def lease_holder(self, name: str) -> Deferred[tuple[str, float] | None]:
        """(holder, seconds left) of an unexpired lease, else None."""


class Catalog(
    Lifecycle,
    Leases,
    Tenants,
    Users,
    Containers,
    Artifacts,
    Uploads,
    Garbage,
    Migrations,
    Accounting,
    LifecycleScans,
    EncryptionKeys,
    Generations,
    InlineBlobs,
    Protocol,
):
    """The whole contract: every method the engine, the services and the admin tool call."""
