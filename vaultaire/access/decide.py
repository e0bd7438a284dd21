"""The one authorization decision: AWS's policy evaluation logic over the documents that apply.

https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-auth-workflow-object-operation.html

* An explicit Deny in any policy wins, whoever asks (the tenant's root user too).
* Within the bucket owner's tenant: the root user may do everything; another user needs an Allow
  from its identity policy, or from the bucket policy, or from an ACL grant that names it (a grant
  to the tenant's own canonical id is the tenant's root's, not every user's, as on S3).
* Across tenants (anonymous callers included): both sides must agree. The caller's tenant must
  allow it (its root user: always; another user: its identity policy; anonymous: no such side),
  and the resource's owner must: an Allow in the bucket policy or an ACL grant.
* Public access block: ``IgnorePublicAcls`` makes grants to AllUsers/AuthenticatedUsers count for
  nothing; ``RestrictPublicBuckets`` makes a public bucket policy grant only the owner's tenant.

Pure: documents in, Decision out. The policy and ACL types are the ``policy`` and ``acl`` modules';
only what this module calls of them is named here, so each side is tested alone.
"""

from __future__ import annotations

from typing import Protocol

from attrs import frozen

from vaultaire.access.request import AccessRequest, Principal

# Object operations whose ACL is the object's own; every other object operation (writes,
# deletes, uploads) is granted by the bucket's ACL (WRITE), as S3 maps ACL permissions.
_OBJECT_ACL_ACTIONS = frozenset(
    {
        "s3:getobject",
        "s3:getobjectversion",
        "s3:getobjectacl",
        "s3:getobjectversionacl",
        "s3:putobjectacl",
        "s3:putobjectversionacl",
        "s3:getobjectattributes",
        "s3:getobjectversionattributes",
    }
)


class VerdictLike(Protocol):
    @property
    def effect(self) -> str | None: ...

    @property
    def statement(self) -> str: ...


class PolicyLike(Protocol):
    def evaluate(self, request: AccessRequest) -> VerdictLike: ...

    def denies(self, request: AccessRequest) -> VerdictLike: ...

    def is_public(self) -> bool: ...


class AclLike(Protocol):
    def allows(self, principal: Principal, action: str, *, is_bucket: bool, ignore_public: bool = False) -> bool: ...


class BlockLike(Protocol):
    @property
    def ignore_public_acls(self) -> bool: ...

    @property
    def restrict_public_buckets(self) -> bool: ...


# What the bucket owner's root user may always do, whatever the bucket policy says (as on S3).
_OWNER_ROOT_ALWAYS = frozenset({"s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"})


@frozen
class Decision:
    allowed: bool
    reason: str  # for the event log only, never for the client: which statement decided, or "no allow"


def decide(
    request: AccessRequest,
    identity: PolicyLike | None,
    bucket_policy: PolicyLike | None,
    bucket_acl: AclLike | None,
    object_acl: AclLike | None,
    block: BlockLike | None,
    is_root: bool,
) -> Decision:
    principal = request.principal
    if is_root and request.action in _OWNER_ROOT_ALWAYS and principal.tenant_id == request.bucket_owner:
        # S3: the bucket owner's root user may always read, replace or delete the bucket policy,
        # even one that denies it, so that no policy can lock the owner out for good.
        return Decision(True, "the owner's root user manages the bucket policy")
    owner = request.object_owner or request.bucket_owner
    same_tenant = not principal.anonymous and principal.tenant_id == owner
    if same_tenant and is_root:
        # Only an explicit deny can refuse the owner's root user: the Allow statements need no look.
        for label, policy in (("identity", identity), ("bucket", bucket_policy)):
            verdict = policy.denies(request) if policy is not None else None
            if verdict is not None and verdict.effect == "Deny":
                return Decision(False, f"explicit deny: {label} policy statement {verdict.statement}")
        return Decision(True, "the owner's root user")
    identity_verdict = identity.evaluate(request) if identity is not None and not principal.anonymous else None
    bucket_verdict = bucket_policy.evaluate(request) if bucket_policy is not None else None
    if identity_verdict is not None and identity_verdict.effect == "Deny":
        return Decision(False, f"explicit deny: identity policy statement {identity_verdict.statement}")
    if bucket_verdict is not None and bucket_verdict.effect == "Deny":
        return Decision(False, f"explicit deny: bucket policy statement {bucket_verdict.statement}")

    # The resource owner's side: its bucket policy (unless restricted) or an ACL grant.
    resource_allow = ""
    if bucket_verdict is not None and bucket_verdict.effect == "Allow" and request.object_owner in ("", owner):
        restricted = block is not None and block.restrict_public_buckets and bucket_policy is not None
        if not (restricted and not same_tenant and bucket_policy is not None and bucket_policy.is_public()):
            resource_allow = f"bucket policy statement {bucket_verdict.statement}"
    if not resource_allow:
        resource_allow = _acl_allow(request, bucket_acl, object_acl, block, same_tenant)

    identity_allow = ""
    if identity_verdict is not None and identity_verdict.effect == "Allow":
        identity_allow = f"identity policy statement {identity_verdict.statement}"

    if same_tenant:
        reason = identity_allow or resource_allow
        return Decision(True, f"allowed by {reason}") if reason else Decision(False, "no allow")
    # Across tenants both accounts must agree; a tenant's root speaks for its own side.
    caller_side = "anonymous" if principal.anonymous else "the caller's root user" if is_root else identity_allow
    if not caller_side:
        return Decision(False, "no allow in the caller's identity policy")
    if not resource_allow:
        return Decision(False, "no allow from the resource's owner")
    return Decision(True, f"allowed by {resource_allow} ({caller_side})")


def _acl_allow(
    request: AccessRequest,
    bucket_acl: AclLike | None,
    object_acl: AclLike | None,
    block: BlockLike | None,
    same_tenant: bool,
) -> str:
    on_object = request.key is not None and request.action.lower() in _OBJECT_ACL_ACTIONS
    acl = object_acl if on_object else bucket_acl
    if acl is None:
        return ""
    principal = request.principal
    if same_tenant:
        # A grant to the tenant's own id is its root's: its other users get from the ACL only what
        # the groups (AllUsers, AuthenticatedUsers) get, so it is asked as for a caller from nowhere.
        principal = _STRANGER
    ignore_public = block is not None and block.ignore_public_acls
    if acl.allows(principal, request.action, is_bucket=not on_object, ignore_public=ignore_public):
        return "the object's ACL" if on_object else "the bucket's ACL"
    return ""


# An authenticated caller of no tenant (a tenant id is never empty): matches group grants only.
_STRANGER = Principal(tenant_id="", user="", user_id="", anonymous=False)
