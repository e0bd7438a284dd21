"""The authorization step of the one path: after authentication, before the handler reads a byte.

It finds the container by name (whichever tenant owns it), builds the AccessRequest, and
asks ``access.decide`` with the documents that apply: the caller's identity policy, the
bucket's policy, ACLs and public access block. A denial is S3's bare AccessDenied; its
reason goes to the event log only.

Cost: a root user's request to its own bucket without a policy is decided from the one
point read that finds the container (which the handler then reuses); nothing is parsed.
Documents are read on every request (so an admin's change counts on the next one, in every
worker) and parsed once per distinct text.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger

from vaultaire.access import acl as acls
from vaultaire.access.actions import CHECKED_BY_HANDLER, SOURCE_ACTION, UNCHECKED, ActionRow, action_of
from vaultaire.access.decide import Decision, decide
from vaultaire.access.policy import MalformedPolicy, Policy, parse_policy
from vaultaire.access.request import ANONYMOUS, AccessRequest, Principal
from vaultaire.api import ownership, unsupported
from vaultaire.api.call import OperationBase, S3Call
from vaultaire.api.condition_keys import context_of
from vaultaire.api.errors import S3Error
from vaultaire.api.objects import copy_source_version
from vaultaire.api.public_access_block import stored_block
from vaultaire.errors import DeleteMarkerAddressed, NoSuchArtifact, NoSuchUser, NoSuchVersion
from vaultaire.model import Artifact, ContainerAccess

log = Logger()

_DENIED = "AccessDenied"


class PolicyCache:
    """Compiled policies by (text, kind, bucket): a stored document is parsed once per process.

    Keyed by the text itself, so a changed document is a new entry and needs no invalidation;
    bounded (emptied when full: stored documents are few, so that is rare).
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._entries: dict[tuple[str, bool, str | None], Policy | str] = {}

    def get(self, text: str, *, resource_policy: bool, bucket: str | None) -> Policy | str:
        """The policy, or (a stored document that no longer parses) the reason as text."""
        key = (text, resource_policy, bucket)
        found = self._entries.get(key)
        if found is not None:
            return found
        try:
            compiled: Policy | str = parse_policy(text, resource_policy=resource_policy, bucket=bucket)
        except MalformedPolicy as e:
            compiled = f"stored policy does not parse: {e}"
        except Exception as e:  # a stored document must never turn every request into a 500
            compiled = f"stored policy does not parse: {type(e).__name__}"
        if len(self._entries) >= self._size:
            self._entries.clear()  # documents are few; a deployment past this many starts over, rarely
        self._entries[key] = compiled
        return compiled


class AuthorizationStep(OperationBase):
    """The step itself, mixed into S3Api like the operation families."""

    policies: PolicyCache
    # The deployment's [access] public_buckets = false: every bucket blocks public access.
    public_buckets: bool = True
    clock: Callable[[], float]

    def principal_of(self, call: S3Call) -> Principal:
        identity = call.identity
        if identity is None:
            return ANONYMOUS
        tenant = identity.tenant
        # user_id is filled in with the user's record when one is read (non-root users only).
        return Principal(tenant.id, identity.user, tenant.id if not identity.user else "")

    async def authorize(self, call: S3Call) -> None:
        """Raise AccessDenied unless the call may do its operation; on success, point the request
        context at the bucket owner's tenant (whose container, quota and bill it is)."""
        operation = call.operation
        if operation in UNCHECKED:
            return
        row = _action_row(operation, call)
        bucket = call.target.bucket
        if row.level == "service" or bucket is None:
            unsupported.check_owner(call.headers, call.identity.tenant.id if call.identity else "")
            await self._check(call, row, None, None)
            return
        access = None if operation == "CreateBucket" else await self._resolve(call, bucket)
        call.access = access
        if access is not None and access.owner.status != "active":
            # A suspended tenant serves no one: not its grantees, not the public (its own keys never get here).
            call.denial = "the bucket owner's account is suspended"
            raise S3Error(_DENIED)
        owner = access.owner.id if access is not None else (call.identity.tenant.id if call.identity else "")
        unsupported.check_owner(call.headers, owner)
        if operation not in CHECKED_BY_HANDLER:
            await self._check(call, row, access, call.target.key)
        if operation in _COPIES and "x-amz-copy-source" in call.headers:
            source_bucket, source_key, version = copy_source_version(call.headers["x-amz-copy-source"])
            await self._check_source(call, source_bucket, source_key, version)
        if access is not None and call.ctx.tenant is not access.owner:
            call.ctx.tenant = access.owner

    async def authorize_key(self, call: S3Call, key: str, version: str | None = None) -> None:
        """For operations the front door cannot check alone (POST Object's form key, each key of
        DeleteObjects, with its version): the same decision for one key of the call's bucket."""
        if call.access is None and call.target.bucket is not None and call.identity is not None:
            call.access = await self._resolve(call, call.target.bucket)
        row = _action_row(call.operation, call, {"versionId": version} if version else None)
        await self._check(call, row, call.access, key)

    async def _resolve(self, call: S3Call, bucket: str) -> ContainerAccess | None:
        """The container this name means to this caller, or None when there is none to find.

        Names are unique across tenants, except in data written before they were: there the
        caller's own container of that name wins, and one held by several others means none.
        """
        found = await self.engine.containers_named(bucket)
        if not found:
            if call.identity is None:
                raise S3Error("NoSuchBucket", BucketName=bucket)
            return None
        if len(found) == 1:
            return found[0]
        mine = call.identity.tenant.id if call.identity is not None else None
        for candidate in found:
            if candidate.owner.id == mine:
                return candidate
        call.denial = f"the name {bucket!r} is held by several tenants (vaultaire-admin bucket rename)"
        raise S3Error(_DENIED)

    async def _check(self, call: S3Call, row: ActionRow, access: ContainerAccess | None, key: str | None) -> None:
        decision = await self._decision(call, row, access, call.target.bucket or "", key)
        if not decision.allowed:
            call.denial = decision.reason
            raise S3Error(_DENIED)

    async def _check_source(self, call: S3Call, bucket: str, key: str, version: str | None) -> None:
        access = await self._resolve(call, bucket)
        call.source_access = access
        if access is not None:
            unsupported.check_owner(call.headers, access.owner.id, "x-amz-source-expected-bucket-owner")
        action = SOURCE_ACTION.versioned if version and version != "null" else SOURCE_ACTION.action
        decision = await self._decision(call, ActionRow(action or SOURCE_ACTION.action, "object"), access, bucket, key)
        if not decision.allowed:
            call.denial = "copy source: " + decision.reason
            raise S3Error(_DENIED)

    async def _decision(
        self, call: S3Call, row: ActionRow, access: ContainerAccess | None, bucket: str, key: str | None
    ) -> Decision:
        principal = self.principal_of(call)
        is_root = call.identity is not None and not call.identity.user
        policy_text = access.document("policy") if access is not None else None
        own = access is None or (not principal.anonymous and access.owner.id == principal.tenant_id)
        if is_root and own and policy_text is None:
            return Decision(True, "the owner's root user")  # the hot path: nothing to read or parse
        if principal.anonymous and row.level == "service":
            return Decision(False, "anonymous callers list no buckets")
        identity_policy: Policy | None = None
        user_id = principal.user_id
        if call.identity is not None and call.identity.user:
            try:
                user = await self.engine.user(principal.tenant_id, principal.user)
            except NoSuchUser:
                return Decision(False, "the key's user is gone")
            user_id = user.id
            principal = Principal(principal.tenant_id, principal.user, user.id)
            if user.policy is not None:
                compiled = self.policies.get(user.policy, resource_policy=False, bucket=None)
                if isinstance(compiled, str):
                    log.warn(
                        "user {user} of tenant {tenant}: {why}", user=user.name, tenant=user.tenant_id, why=compiled
                    )
                    return Decision(False, f"identity policy: {compiled}")
                identity_policy = compiled
        bucket_policy: Policy | None = None
        if policy_text is not None:
            compiled = self.policies.get(policy_text, resource_policy=True, bucket=bucket)
            if isinstance(compiled, str):
                log.warn("bucket {bucket}: {why}", bucket=bucket, why=compiled)
                if not (is_root and own):
                    return Decision(False, f"bucket policy: {compiled}")
            else:
                bucket_policy = compiled
        bucket_owner = access.owner.id if access is not None else principal.tenant_id
        # The owner's root user is refused by an explicit deny only: ACLs and blocks say nothing of it.
        root_own = is_root and own
        acls_count = access is not None and not root_own and acls_enabled(access)
        artifact: Artifact | None = None
        wants_tags = any(p is not None and p.needs_object_tags for p in (identity_policy, bucket_policy))
        if access is not None and key is not None and row.level == "object" and (acls_count or wants_tags):
            if row.action in _READS_EXISTING:
                artifact = await self._peek(call, access, key)
        object_owner = ""
        object_acl = None
        if artifact is not None and acls_count and artifact.acl:
            object_acl = acls.loads(artifact.acl, bucket_owner)
            object_owner = "" if object_acl.owner == bucket_owner else object_acl.owner
        request = AccessRequest(
            principal,
            row.action,
            bucket,
            key if row.level == "object" else None,
            bucket_owner,
            object_owner,
            context_of(
                call,
                principal,
                user_id,
                now=self.clock(),
                existing_tags=artifact.tags if artifact is not None and wants_tags else None,
                wanted=_keys_of(identity_policy, bucket_policy),
            ),
        )
        bucket_acl = None
        block = None
        if access is not None and not root_own:
            text = access.document("acl")
            bucket_acl = acls.loads(text, bucket_owner) if acls_count and text else None
            block = self._block(access)
        return decide(request, identity_policy, bucket_policy, bucket_acl, object_acl, block, is_root)

    def _block(self, access: ContainerAccess) -> acls.PublicAccessBlock:
        """As ``PublicAccessBlockOperations._public_access_block``, from the documents already read."""
        own = stored_block(access.document("public-access-block"))
        return own if self.public_buckets else own.union(acls.BLOCK_ALL)

    async def _peek(self, call: S3Call, access: ContainerAccess, key: str) -> Artifact | None:
        """The object (the version the request names) whose ACL and tags may decide; None if absent."""
        version = call.target.query.get("versionId") or None
        try:
            return await self.engine.artifact(call.ctx, access.container, key, version)
        except (NoSuchArtifact, NoSuchVersion, DeleteMarkerAddressed):
            return None  # the handler answers what is missing, once allowed


def _keys_of(first: Policy | None, second: Policy | None) -> frozenset[str]:
    """The condition keys the policies in play name: the only ones worth computing."""
    if first is None:
        return second.keys if second is not None else frozenset()
    return first.keys if second is None else first.keys | second.keys


def acls_enabled(access: ContainerAccess) -> bool:
    """BucketOwnerEnforced (the default: no "ownership" setting) disables ACLs, as on S3."""
    return ownership.effective(access.document("ownership")) != acls.BUCKET_OWNER_ENFORCED


_COPIES = frozenset({"CopyObject", "UploadPartCopy"})
_unknown_logged: set[str] = set()


def _action_row(operation: str, call: S3Call, query: dict[str, str] | None = None) -> ActionRow:
    """The operation's row of access/actions.py; one missing (a bug) is checked as ``s3:<Operation>``,
    which only the root user and ``s3:*`` grants allow, rather than pass unchecked or fail with 500."""
    try:
        return action_of(operation, call.target.query if query is None else query)
    except KeyError:
        if operation not in _unknown_logged:
            _unknown_logged.add(operation)
            log.error("operation {operation} has no row in vaultaire/access/actions.py", operation=operation)
        return ActionRow(f"s3:{operation}", "object" if call.target.key is not None else "bucket")


# Object actions on an existing object, whose ACL and tags (s3:ExistingObjectTag/) may decide them.
_READS_EXISTING = frozenset(
    f"s3:{name}"
    for name in """GetObject GetObjectVersion GetObjectAcl GetObjectVersionAcl PutObjectAcl PutObjectVersionAcl
    GetObjectTagging GetObjectVersionTagging PutObjectTagging PutObjectVersionTagging DeleteObjectTagging
    DeleteObjectVersionTagging GetObjectAttributes GetObjectVersionAttributes GetObjectRetention
    PutObjectRetention GetObjectLegalHold PutObjectLegalHold""".split()
)
