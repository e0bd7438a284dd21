"""The catalog contract, what lies under the objects: blobs and garbage, placement migrations,
accounting, lifecycle scans, encryption keys, the generation, inline blobs, leases.

Part of the contract interface.py describes (its guarantees hold here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from twisted.internet.defer import Deferred

from vaultaire.model import (
    Artifact,
    Container,
    KmsKey,
    Part,
    StoredTotals,
    UsageRow,
    VersionChange,
    WriteCondition,
)


class Garbage(Protocol):
    """Blobs no row references any more, waiting to be freed on their placement."""

    # Every blob on a driver is, for the catalog, exactly one of: intended (a live or dead
    # writer's, recorded before its first byte), referenced (an artifact or part), or garbage.
    # The transaction that commits a reference to a blob (put_artifact, put_part, move_*)
    # settles its intent; one that drops a reference queues the blob as garbage. With
    # ``intended=True`` (the engine's writes: the blob is new, its intent recorded by this
    # process) the commit claims the intent and is refused with BlobWithdrawn if it is gone:
    # the intent is the blob's one token, consumed by that commit, by withdraw_intents (the
    # write failed) or by reclaim_abandoned (its writer died), so only one decides its fate.

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

    def withdraw_intents(self, placement: str, locators: list[str]) -> Deferred[list[str]]:
        """A write of these blobs failed: those whose intents are still recorded become
        garbage and are returned. One without its intent was referenced by the write's own
        commit (which happened though its caller saw a failure: the answer was lost), or
        was dropped already: it is left as it is. Never returns a referenced blob."""

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

    def move_artifact(self, old: Artifact, moved: Artifact, *, intended: bool = False) -> Deferred[bool]:
        """Swap in ``moved``'s blobs (the same version's bytes copied elsewhere: its locator or
        parts, placement and storage class; nothing else of it is read) if the version
        ``old.version_id`` of the key, current or not, still holds exactly ``old``'s blobs,
        keeping the version's other attributes as they are now (tags, lock, ACL changed during
        the copy); the old blobs are queued as garbage. False, changing nothing, if its bytes
        changed or it went meanwhile (the caller then frees its copies)."""

    def misplaced_parts(self, container_id: int, target: str, limit: int) -> Deferred[list[Part]]:
        """Up to ``limit`` parts of the container's unfinished uploads whose blobs are not on ``target``."""

    def move_part(self, container_id: int, old: Part, moved: Part, *, intended: bool = False) -> Deferred[bool]:
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
