"""The catalog contract, its objects part: artifacts and their versions, multipart uploads.

Part of the contract interface.py describes (its guarantees hold here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.defer import Deferred

from vaultaire.model import (
    Artifact,
    ListedPage,
    ListingPage,
    Part,
    Upload,
    VersionChange,
    VersionsPage,
    WriteCondition,
)


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

    def put_artifact(
        self, artifact: Artifact, condition: WriteCondition | None = None, *, intended: bool = False
    ) -> Deferred[VersionChange]:
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

    def put_part(self, container_id: int, part: Part, *, intended: bool = False) -> Deferred[Part | None]:
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
