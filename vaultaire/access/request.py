"""What an authorization decision is about: who asks (Principal), to do what, to which resource.

Values only, shared by the policy, ACL and decision code so that each can be tested alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import field, frozen


@frozen
class Principal:
    """The caller: a tenant's user (root when ``user`` is ""), or nobody (``anonymous``)."""

    tenant_id: str  # "" when anonymous
    user: str  # "" means the tenant's root user
    user_id: str
    anonymous: bool = False

    @property
    def is_root(self) -> bool:
        return not self.anonymous and not self.user

    @property
    def arn(self) -> str:
        """The ARN policies name this principal by (AWS's IAM forms; "*" for anonymous callers)."""
        if self.anonymous:
            return "*"
        if not self.user:
            return f"arn:aws:iam::{self.tenant_id}:root"
        return f"arn:aws:iam::{self.tenant_id}:user/{self.user}"


ANONYMOUS = Principal(tenant_id="", user="", user_id="", anonymous=True)


class Context(dict[str, tuple[str, ...]]):
    """Condition keys already in their canonical form (lower-case names, tuples of values): taken as
    they are, so the request path builds them once (vaultaire/api/condition_keys.py)."""


def _frozen_context(value: Mapping[str, tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
    if type(value) is Context:
        return value
    # Condition key names are case-insensitive in AWS; one lower-cased spelling makes lookups plain.
    return {name.lower(): tuple(values) for name, values in value.items()}


@frozen
class AccessRequest:
    """One request to authorize: ``principal`` wants ``action`` on ``bucket`` (and ``key``)."""

    principal: Principal
    action: str  # the S3 action, "s3:GetObject"
    bucket: str
    key: str | None
    bucket_owner: str  # the owning tenant's id
    object_owner: str = ""  # the object's writer's tenant id; "" means the bucket owner
    # Condition keys, lower-cased names ("aws:sourceip", "s3:prefix"...), each with its values.
    context: Mapping[str, tuple[str, ...]] = field(factory=dict, converter=_frozen_context, hash=False)

    @property
    def resource(self) -> str:
        """The resource's ARN: the bucket's, or the object's when there is a key."""
        if self.key is None:
            return f"arn:aws:s3:::{self.bucket}"
        return f"arn:aws:s3:::{self.bucket}/{self.key}"

    @property
    def cross_tenant(self) -> bool:
        """True when the caller is not of the bucket owner's tenant (anonymous callers included)."""
        return self.principal.anonymous or self.principal.tenant_id != self.bucket_owner
