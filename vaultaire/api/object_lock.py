"""Object Lock operations: the bucket's configuration, each version's retention and legal hold,
and the lock a new version is written with.

A bucket has Object Lock when its container setting ``object-lock`` exists
(``vaultaire.objectlock.SETTING``); creating it so, or adding it later to a
versioned bucket, also fixes its versioning at Enabled for good. The rules
themselves (what may be deleted or changed) live in ``vaultaire/objectlock.py``;
this module reads the wire and asks them, inside the catalog transaction that
makes the change, so a check and its write can never be separated.

Who may bypass GOVERNANCE: as on S3, a caller holding ``s3:BypassGovernanceRetention``
on the key (the bucket owner's root user; others by policy) whose request says
``x-amz-bypass-governance-retention: true``. Without the permission the header
bypasses nothing, and GOVERNANCE holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from attrs import evolve

from vaultaire.access.actions import ActionRow
from vaultaire.api import object_lock_documents as documents
from vaultaire.api.call import OperationBase, S3Call
from vaultaire.api.errors import S3Error
from vaultaire.api.incoming import content_md5
from vaultaire.api.versioning import requested_version
from vaultaire.engine.versioning import SETTING as VERSIONING_SETTING
from vaultaire.errors import DeleteMarkerAddressed
from vaultaire.model import Artifact, Container, ContainerAccess, Retention
from vaultaire.objectlock import (
    SETTING,
    LockConfiguration,
    LockRequest,
    configuration,
    delete_guard,
    may_change_retention,
)

if TYPE_CHECKING:
    from vaultaire.access.decide import Decision

ENABLED = "Enabled"


BYPASS_ACTION = "s3:BypassGovernanceRetention"


class ObjectLockOperations(OperationBase):
    """Needs from its host: engine, clock, _container, _xml, _small_body, _check_body_integrity,
    and the authorization step's ``_decision`` (authorize.py) for the bypass permission."""

    clock: Callable[[], float]

    if TYPE_CHECKING:

        async def _decision(
            self, call: S3Call, row: ActionRow, access: ContainerAccess | None, bucket: str, key: str | None
        ) -> Decision: ...

    async def lock_configuration(self, call: S3Call, container: Container) -> LockConfiguration | None:
        """The bucket's Object Lock configuration, None when it has none."""
        return configuration(await self.engine.container_setting(call.ctx, container, SETTING))

    # -- CreateBucket with x-amz-bucket-object-lock-enabled

    @staticmethod
    def lock_asked_at_creation(headers: Mapping[str, str]) -> bool:
        return headers.get("x-amz-bucket-object-lock-enabled", "").strip().lower() == "true"

    async def may_create_locked(self, call: S3Call) -> None:
        """S3: a bucket created with Object Lock also takes s3:PutBucketObjectLockConfiguration and
        s3:PutBucketVersioning (a root user has them; a user by its policy)."""
        for action in ("s3:PutBucketObjectLockConfiguration", "s3:PutBucketVersioning"):
            row = ActionRow(action, "bucket")
            if not (await self._decision(call, row, None, call.target.bucket or "", None)).allowed:
                raise S3Error("AccessDenied")

    def lock_settings_at_creation(self) -> dict[str, str]:
        """The settings of a bucket created with Object Lock: versioning on and the lock (no
        default retention), written with the bucket in its creating transaction."""
        return {VERSIONING_SETTING: ENABLED, SETTING: LockConfiguration().to_setting()}

    # -- Get/PutObjectLockConfiguration

    async def get_object_lock_configuration(self, call: S3Call) -> bytes:
        container = await self._container(call)
        config = await self.lock_configuration(call, container)
        if config is None:
            raise S3Error(
                "ObjectLockConfigurationNotFoundError",
                "Object Lock configuration does not exist for this bucket",
                BucketName=container.name,
            )
        return self._xml(call, documents.render_configuration(config))

    async def put_object_lock_configuration(self, call: S3Call) -> bytes:
        container = await self._container(call)
        body = await self._small_body(call)
        self._check_body_integrity(call, body)
        config = documents.parse_configuration(body)
        if await self.lock_configuration(call, container) is None:
            # S3 enables Object Lock on an existing bucket only if its versioning is Enabled.
            if await self.engine.versioning(call.ctx, container) != ENABLED:
                raise S3Error(
                    "InvalidBucketState",
                    "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration",
                )
        await self.engine.put_container_setting(call.ctx, container, SETTING, config.to_setting())
        call.set_header("Content-Length", "0")
        return b""

    # -- one version's retention and legal hold

    async def _locked_container(self, call: S3Call) -> Container:
        container = await self._container(call)
        if await self.lock_configuration(call, container) is None:
            raise S3Error("InvalidRequest", documents.NOT_ENABLED)
        return container

    def _lock_version_id(self, call: S3Call) -> str | None:
        return requested_version(call)  # checked: a malformed id is 400 InvalidArgument

    async def _lock_version(self, call: S3Call, container: Container) -> Artifact:
        """The data version ``?versionId=`` names (the current one without it).

        A delete marker has no lock to read or change: S3 answers 405 for one named by id."""
        assert call.target.key is not None
        try:
            return await self.engine.artifact(call.ctx, container, call.target.key, self._lock_version_id(call))
        except DeleteMarkerAddressed:
            raise S3Error("MethodNotAllowed", ResourceType="DeleteMarker") from None

    async def get_object_retention(self, call: S3Call) -> bytes:
        container = await self._locked_container(call)
        version = await self._lock_version(call, container)
        if version.retention is None:
            raise S3Error("NoSuchObjectLockConfiguration")
        return self._xml(call, documents.render_retention(version.retention))

    async def put_object_retention(self, call: S3Call) -> bytes:
        assert call.target.key is not None
        container = await self._container(call)
        body = await self._small_body(call)
        self._check_body_integrity(call, body)
        now = self.clock()
        new = documents.parse_retention(body, now)
        if await self.lock_configuration(call, container) is None:
            raise S3Error("InvalidRequest", documents.NOT_ENABLED)
        await self._lock_version(call, container)  # NoSuchKey, NoSuchVersion or a marker's 405 first
        bypass = documents.bypass(call.headers) is True and await self._may_bypass(call, call.target.key)

        def change(version: Artifact) -> Artifact:
            # Inside the catalog's transaction: what is checked is what is replaced.
            may_change_retention(version.retention, new, bypass, self.clock())
            return evolve(version, retention=new)

        await self.engine.amend(call.ctx, container, call.target.key, self._lock_version_id(call), change)
        call.set_header("Content-Length", "0")
        return b""

    async def get_object_legal_hold(self, call: S3Call) -> bytes:
        container = await self._locked_container(call)
        version = await self._lock_version(call, container)
        if version.legal_hold is None:  # never set on this version: S3's 404, not an OFF it never stored
            raise S3Error("NoSuchObjectLockConfiguration")
        return self._xml(call, documents.render_legal_hold(version.legal_hold))

    async def put_object_legal_hold(self, call: S3Call) -> bytes:
        assert call.target.key is not None
        container = await self._container(call)
        body = await self._small_body(call)
        self._check_body_integrity(call, body)
        on = documents.parse_legal_hold(body)
        if await self.lock_configuration(call, container) is None:
            raise S3Error("InvalidRequest", documents.NOT_ENABLED)
        await self._lock_version(call, container)

        def change(version: Artifact) -> Artifact:
            return evolve(version, legal_hold=on)  # anyone who may write may place or lift a hold

        await self.engine.amend(call.ctx, container, call.target.key, self._lock_version_id(call), change)
        call.set_header("Content-Length", "0")
        return b""

    # -- the lock a new version is written with (PUT, POST Object, copy, multipart)

    def lock_requested(self, fields: Mapping[str, str]) -> tuple[Retention | None, bool | None]:
        """Validate a write's lock headers (or form fields) before anything else is looked at."""
        return documents.requested(fields, self.clock())

    async def lock_for_write(
        self,
        call: S3Call,
        container: Container,
        asked: tuple[Retention | None, bool | None],
        integrity: bool | None = None,
        key: str | None = None,
    ) -> LockRequest | None:
        """What the new version is locked with: its own lock, else the bucket's default.

        ``integrity`` says whether the body comes with a Content-MD5 or an x-amz-checksum-*
        (None: the write has no body of its own to protect, a copy); S3 refuses a locked
        upload without one. ``key`` is the new version's (the request's own when None).
        """
        retention, hold = asked
        config = await self.lock_configuration(call, container)
        if config is None:
            if retention is not None or hold is not None:
                raise S3Error("InvalidRequest", documents.NOT_ENABLED_WRITE)
            return None
        # S3: a write's own lock takes the permissions PutObjectRetention and PutObjectLegalHold take.
        if retention is not None and not await self._may(call, "s3:PutObjectRetention", key):
            raise S3Error("AccessDenied")
        if hold is not None and not await self._may(call, "s3:PutObjectLegalHold", key):
            raise S3Error("AccessDenied")
        lock = LockRequest(retention, hold, None if retention is not None else config.default)
        said = lock.asks() or hold is not None  # an explicit OFF hold is kept: GetObjectLegalHold tells it
        if integrity is False and said:
            raise S3Error("InvalidRequest", documents.INTEGRITY_NEEDED)
        return lock if said else None

    @staticmethod
    def body_has_integrity(headers: Mapping[str, str], algorithm: str | None) -> bool:
        return algorithm is not None or content_md5(headers) is not None

    async def lock_headers(self, call: S3Call, artifact: Artifact) -> None:
        """GET and HEAD tell a version's lock, as S3 does: its retention to a caller who may
        s3:GetObjectRetention, its legal hold to one who may s3:GetObjectLegalHold (the owner's
        root user may both; a version with no lock costs no decision)."""
        if artifact.retention is not None and await self._may(call, "s3:GetObjectRetention"):
            call.set_header(documents.MODE, artifact.retention.mode)
            call.set_header(documents.UNTIL, documents.format_date(artifact.retention.until))
        if artifact.legal_hold is not None and await self._may(call, "s3:GetObjectLegalHold"):
            call.set_header(documents.LEGAL_HOLD, "ON" if artifact.legal_hold else "OFF")

    async def delete_guard(
        self, call: S3Call, container: Container, versions: bool = True, key: str | None = None
    ) -> Callable[[Artifact], None] | None:
        """The guard a DELETE of one version (or each of DeleteObjects) hands to
        ``engine.delete_version``: a locked version is refused (403 AccessDenied) inside the
        delete's transaction. None on a bucket without Object Lock, where no version can be
        locked; a bypass header there is 400.

        ``versions`` False (deletes of keys only, which add markers or remove what no lock can
        hold) skips the setting's read unless the bypass header asks to be checked. ``key`` is
        the key whose version goes (the request's own when None), for the bypass permission."""
        asked = documents.bypass(call.headers)
        if not versions and asked is None:
            return None
        if await self.lock_configuration(call, container) is None:
            if asked is not None:
                raise S3Error("InvalidArgument", documents.BYPASS_NOT_APPLICABLE, ArgumentName=documents.BYPASS)
            return None
        bypass = asked is True and versions and await self._may_bypass(call, key or call.target.key or "")
        return delete_guard(bypass, self.clock)

    async def _may_bypass(self, call: S3Call, key: str) -> bool:
        """Whether the caller holds s3:BypassGovernanceRetention on the key (the bucket owner's root
        user does). Without it the header bypasses nothing, as on S3: GOVERNANCE then holds."""
        return await self._may(call, BYPASS_ACTION, key)

    async def _may(self, call: S3Call, action: str, key: str | None = None) -> bool:
        """Whether the caller may ``action`` on ``key`` (the request's own key when None)."""
        row = ActionRow(action, "object")
        target = key if key is not None else call.target.key
        decision = await self._decision(call, row, call.access, call.target.bucket or "", target)
        return decision.allowed
