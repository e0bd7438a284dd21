"""The values every layer passes around: frozen attrs classes, no behaviour of note.

They live on the ground floor so that no lower layer ever imports a higher one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from attrs import define, field, frozen


@frozen
class Tenant:
    """A customer: a namespace of containers, reached through its access keys."""

    id: str
    name: str
    status: str = "active"  # "active" or "suspended"
    created: float = 0.0
    # Quota: None means unlimited. Stored bytes count artifacts and uploaded parts.
    max_bytes: int | None = None
    max_objects: int | None = None


@frozen
class Credential:
    """An access key pair; each belongs to exactly one tenant."""

    access_key: str
    secret_key: str
    tenant_id: str
    created: float = 0.0
    user: str = ""  # the user of the tenant it acts for; "" is the tenant's root user


@frozen
class Container:
    """What S3 calls a bucket: a tenant's named set of artifacts."""

    id: int
    tenant_id: str
    name: str
    created: float
    placement: str = "local"


@frozen
class Sealing:
    """How an artifact's (or upload's) blobs are encrypted at rest; None on a model field: plaintext."""

    mode: str  # "AES256" (SSE-S3), "SSE-C" or "aws:kms" (SSE-KMS)
    keys: tuple[str, ...] = ()  # each blob's wrapped data key, in blob order (a manifest's: per part)
    key_proof: str = ""  # SSE-C: a MAC of the customer key (the key itself is never stored)
    key_md5: str = ""  # SSE-C: base64 MD5 of the customer key, echoed to clients as S3 does
    kms_key: str = ""  # SSE-KMS: the ARN of the key that wraps the data keys
    context: str = ""  # SSE-KMS: the encryption context (canonical JSON), bound to every data key
    bucket_key: bool = False  # SSE-KMS: the request asked for an S3 Bucket Key (echoed as S3 does)


@frozen
class KmsKey:
    """A named key of Vaultaire's own KMS (SSE-KMS): it wraps data keys, the master key seals it."""

    id: str  # a UUID, as AWS KMS key ids are
    name: str  # its alias, without "alias/"
    material: str  # the 32-byte key, sealed by the master key (never stored plain)
    enabled: bool
    created: float
    tenant_id: str = ""  # "": any tenant may use it; else only this tenant


@frozen
class Retention:
    """Object Lock retention of one version: nobody deletes it, or shortens this, before ``until``."""

    mode: str  # "GOVERNANCE" or "COMPLIANCE"
    until: float  # epoch seconds, compared with the server's clock


@frozen
class Artifact:
    """What S3 calls an object: a key in a container and where its bytes live."""

    container_id: int
    key: str
    locator: str
    size: int
    md5: str  # hex digest of the content; the S3 ETag is it in quotes
    modified: float
    content_type: str = "binary/octet-stream"
    metadata: tuple[tuple[str, str], ...] = ()  # user metadata (x-amz-meta-*), sorted
    # Standard headers stored with the content (Content-Encoding, Cache-Control...), lower-case names.
    headers: tuple[tuple[str, str], ...] = ()
    storage_class: str = "STANDARD"
    # A multipart artifact is a manifest: its parts' blobs in order, (locator, size) each;
    # ``locator`` is then empty and ``md5`` is S3's "<md5 of the part md5s>-<count>".
    parts: tuple[tuple[str, int], ...] = ()
    # (algorithm, base64 value) of an x-amz-checksum-* verified at upload, returned on request
    checksum: tuple[str, str] | None = None
    # The placement holding its blobs: the container's when written, another during a migration.
    # Empty in catalogs older than migrations, meaning the container's.
    placement: str = ""
    # The multipart upload that made it, so a retried CompleteMultipartUpload can be answered again.
    upload_id: str = ""
    sealing: Sealing | None = None  # encrypted at rest (and how), or None
    # Versioning: "null" is S3's id of the version an unversioned or suspended container writes.
    version_id: str = "null"
    delete_marker: bool = False  # a version that says "deleted": no bytes, no locator
    is_latest: bool = True  # the current version of its key (set by the catalog when it reads)
    tags: tuple[tuple[str, str], ...] = ()  # object tags, in the order they were given
    retention: Retention | None = None  # Object Lock retention, or None
    # Object Lock legal hold: no delete while on, whatever the retention; None = never set (S3 answers 404).
    legal_hold: bool | None = None
    acl: str = ""  # the access module's serialized ACL of this version; "" is the owner's default

    @property
    def etag(self) -> str:
        return f'"{self.md5}"'

    @property
    def locators(self) -> tuple[str, ...]:
        """Every blob this artifact owns."""
        return tuple(loc for loc, _size in self.parts) if self.parts else (self.locator,)


# -- versioning (issue 13): what a versioned write or delete did, and a page of versions


@frozen
class VersionChange:
    """What one put or delete did to a key's versions.

    ``written``: the version it added (a data version, or a delete marker), None if none.
    ``removed``: the version it took away for good (its blobs, if any, queued as garbage
    in the same transaction), None if none: an unversioned or suspended write replacing
    the ``null`` version, or the delete of one version.
    """

    written: Artifact | None = None
    removed: Artifact | None = None


@frozen
class VersionsPage:
    """One page of ListObjectVersions: versions by key, newest first within a key."""

    versions: tuple[Artifact, ...]  # data versions and delete markers, ``is_latest`` set
    prefixes: tuple[str, ...]
    truncated: bool
    next_key_marker: str | None  # the page's last key or common prefix
    next_version_id_marker: str | None  # the page's last version's id (None after a common prefix)


@frozen
class Upload:
    """A multipart upload in progress: where it will land and what it will carry."""

    id: str
    container_id: int
    key: str
    created: float
    content_type: str = "binary/octet-stream"
    metadata: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    storage_class: str = "STANDARD"
    checksum_algorithm: str | None = None
    checksum_type: str | None = None  # "COMPOSITE" or "FULL_OBJECT" when an algorithm is set
    sealing: Sealing | None = None  # how its parts are encrypted (keys empty: each part has its own)
    # Given at CreateMultipartUpload, carried to the artifact CompleteMultipartUpload makes:
    tags: tuple[tuple[str, str], ...] = ()
    retention: Retention | None = None
    legal_hold: bool | None = None
    acl: str = ""


@frozen
class Part:
    """One uploaded part, its own blob until the upload completes or is aborted."""

    upload_id: str
    number: int
    locator: str
    size: int
    md5: str
    modified: float
    checksum: str | None = None  # base64, of the upload's checksum algorithm
    placement: str = ""  # where its blob is; empty in catalogs older than migrations: the container's
    sealed_key: str = ""  # its blob's wrapped data key when the upload is encrypted


@frozen
class StoredTotals:
    """What a tenant (or container) holds right now: the quota's and the bill's input."""

    bytes: int = 0
    objects: int = 0


@frozen
class UsageRow:
    """Metered usage of one container in one UTC hour (``hour`` = epoch seconds // 3600)."""

    tenant_id: str
    container: str
    hour: int
    byte_seconds: int = 0  # stored bytes integrated over time
    bytes_in: int = 0
    bytes_out: int = 0
    class_a: int = 0  # PUT, COPY, POST, LIST
    class_b: int = 0  # GET, HEAD


@frozen
class WriteCondition:
    """A conditional write: create only (If-None-Match: *) or compare-and-swap (If-Match)."""

    must_not_exist: bool = False
    etag_must_be: str | None = None  # the md5 hex the current artifact must have
    must_exist: bool = False  # If-Match: any ETag at all, "*"; also implied by etag_must_be


@frozen
class ByteRange:
    """An inclusive byte range already resolved against an artifact's size."""

    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class ListedArtifact(NamedTuple):
    """What ListObjects shows of a current version: no more is read for it (a page of a
    thousand costs a thousand tuples, not a thousand decoded documents)."""

    key: str
    size: int
    md5: str
    modified: float
    storage_class: str

    @property
    def etag(self) -> str:
        return f'"{self.md5}"'


@frozen
class ListedPage:
    """A page of ListObjects: the listed fields of current versions, and common prefixes."""

    artifacts: tuple[ListedArtifact, ...]
    prefixes: tuple[str, ...]
    truncated: bool
    next_marker: str | None  # the last key or prefix of the page, to continue after


@frozen
class ListingPage:
    """One page of a listing: artifacts and rolled-up common prefixes in key order."""

    artifacts: tuple[Artifact, ...]
    prefixes: tuple[str, ...]
    truncated: bool
    next_marker: str | None  # the last key or prefix of the page, to continue after


@define
class RequestContext:
    """What every call made for one request carries down through engine and driver.

    ``cancel()`` is called when the client goes away; work in progress registers
    cleanups with ``on_cancel`` so that nothing is left behind for a dead request.
    """

    request_id: str
    tenant: Tenant | None = None
    cancelled: bool = False
    _cancel_hooks: list[Callable[[], object]] = field(factory=list)

    @property
    def tenant_id(self) -> str:
        """The tenant's id, or "" before the request is authenticated (or for an anonymous one)."""
        return self.tenant.id if self.tenant is not None else ""

    def on_cancel(self, hook: Callable[[], object]) -> None:
        if self.cancelled:
            hook()
        else:
            self._cancel_hooks.append(hook)

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        hooks, self._cancel_hooks = self._cancel_hooks, []
        for hook in hooks:
            hook()


# -- access control (issue 14)


@frozen
class User:
    """A user of a tenant (not its root): may do only what its identity policy allows."""

    tenant_id: str
    name: str
    id: str  # stable and unique (aws:userid); a user deleted and created again gets a new one
    policy: str | None = None  # the identity policy's JSON text; None: none, nothing is allowed
    created: float = 0.0


@frozen
class ContainerAccess:
    """A container found by name, its owner, and the documents its access is decided by."""

    container: Container
    owner: Tenant
    # Container settings that decide access ("policy", "acl", "public-access-block", "ownership").
    documents: tuple[tuple[str, str], ...] = ()

    def document(self, name: str) -> str | None:
        for key, value in self.documents:
            if key == name:
                return value
        return None
