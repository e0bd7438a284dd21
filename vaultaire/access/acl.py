"""S3 access control lists, object ownership and the public access block: values and pure rules.

An ACL is an owner and up to 100 grants, each a grantee (a tenant's canonical id, or
one of S3's group URIs) and a permission. What each permission allows is S3's table
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/acl-overview.html#permissions):
on a bucket READ lists it, WRITE creates, overwrites and deletes its objects,
READ_ACP/WRITE_ACP read and write its ACL; on an object READ reads it, WRITE means
nothing, READ_ACP/WRITE_ACP read and write its ACL; FULL_CONTROL is all of them.

Nothing here does I/O or knows HTTP: the S3 layer parses headers and XML into these
values and stores ``Acl.dumps()`` (a container setting "acl", ``Artifact.acl``).
Refusals are ``AclError`` carrying S3's error code, rendered by the S3 layer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache

from attrs import frozen

from vaultaire.access.request import Principal

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
GROUPS = frozenset({ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY})
# Grants to these make a resource public (S3's definition for Block Public Access).
PUBLIC_GROUPS = frozenset({ALL_USERS, AUTHENTICATED_USERS})

PERMISSIONS = ("FULL_CONTROL", "WRITE", "WRITE_ACP", "READ", "READ_ACP")
MAX_GRANTS = 100  # S3's limit per ACL

# Object ownership (container setting "ownership").
BUCKET_OWNER_ENFORCED = "BucketOwnerEnforced"
BUCKET_OWNER_PREFERRED = "BucketOwnerPreferred"
OBJECT_WRITER = "ObjectWriter"
OWNERSHIPS = (BUCKET_OWNER_ENFORCED, BUCKET_OWNER_PREFERRED, OBJECT_WRITER)

# What each permission allows, per level. The owner of an ACL may always read and write it.
_BUCKET_ACTIONS: dict[str, frozenset[str]] = {
    "READ": frozenset({"s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"}),
    # S3 gives an upload's initiator the right to abort it and list its parts; uploads do not
    # record their initiator here, so whoever may write objects may do both.
    "WRITE": frozenset({"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}),
    "READ_ACP": frozenset({"s3:GetBucketAcl"}),
    "WRITE_ACP": frozenset({"s3:PutBucketAcl"}),
}
_OBJECT_ACTIONS: dict[str, frozenset[str]] = {
    "READ": frozenset({"s3:GetObject", "s3:GetObjectVersion"}),
    "WRITE": frozenset(),
    "READ_ACP": frozenset({"s3:GetObjectAcl", "s3:GetObjectVersionAcl"}),
    "WRITE_ACP": frozenset({"s3:PutObjectAcl", "s3:PutObjectVersionAcl"}),
}
for _table in (_BUCKET_ACTIONS, _OBJECT_ACTIONS):
    _table["FULL_CONTROL"] = frozenset().union(*_table.values())
_OWNER_ACTIONS = {
    True: _BUCKET_ACTIONS["READ_ACP"] | _BUCKET_ACTIONS["WRITE_ACP"],
    False: _OBJECT_ACTIONS["READ_ACP"] | _OBJECT_ACTIONS["WRITE_ACP"],
}

CANNED = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
)

# x-amz-grant-* header -> the permission it grants
GRANT_HEADERS = {
    "x-amz-grant-read": "READ",
    "x-amz-grant-write": "WRITE",
    "x-amz-grant-read-acp": "READ_ACP",
    "x-amz-grant-write-acp": "WRITE_ACP",
    "x-amz-grant-full-control": "FULL_CONTROL",
}


class AclError(Exception):
    """A refused ACL: ``code`` is S3's error code, ``extra`` its additional XML fields."""

    def __init__(self, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


@frozen
class Grant:
    """``grantee`` is a tenant's canonical id, or a group URI (``is_group``)."""

    grantee: str
    permission: str

    @property
    def is_group(self) -> bool:
        return self.grantee in GROUPS

    def matches(self, principal: Principal) -> bool:
        if self.grantee == ALL_USERS:
            return True
        if principal.anonymous:
            return False
        if self.grantee == AUTHENTICATED_USERS:
            return True
        return not self.is_group and self.grantee == principal.tenant_id


@frozen
class Acl:
    """An owner (a tenant id) and its grants, in the order given."""

    owner: str
    grants: tuple[Grant, ...]

    def allows(self, principal: Principal, action: str, *, is_bucket: bool, ignore_public: bool = False) -> bool:
        """Whether a grant of this ACL (a bucket's with ``is_bucket``) allows ``action``.

        With ``ignore_public`` (Block Public Access's IgnorePublicAcls) grants to AllUsers
        and AuthenticatedUsers count for nothing.
        """
        if not principal.anonymous and principal.tenant_id == self.owner and action in _OWNER_ACTIONS[is_bucket]:
            return True
        table = _BUCKET_ACTIONS if is_bucket else _OBJECT_ACTIONS
        for grant in self.grants:
            if ignore_public and grant.grantee in PUBLIC_GROUPS:
                continue
            if action in table[grant.permission] and grant.matches(principal):
                return True
        # S3: WRITE granted to the bucket owner on its bucket also deletes any version.
        if is_bucket and action == "s3:DeleteObjectVersion":
            return any(
                g.grantee == self.owner == principal.tenant_id and g.permission in ("WRITE", "FULL_CONTROL")
                for g in self.grants
            )
        return False

    def is_public(self) -> bool:
        """True when anyone, or any authenticated caller of any tenant, is granted something."""
        return any(grant.grantee in PUBLIC_GROUPS for grant in self.grants)

    def is_private_to(self, owner: str) -> bool:
        """True when this ACL grants nothing to anyone but ``owner`` (what BucketOwnerEnforced allows)."""
        return self.owner == owner and all(g.grantee == owner for g in self.grants)

    def canonical_ids(self) -> frozenset[str]:
        """The tenants it names (the S3 layer checks that they exist)."""
        return frozenset(g.grantee for g in self.grants if not g.is_group)

    def dumps(self) -> str:
        return json.dumps({"owner": self.owner, "grants": [[g.grantee, g.permission] for g in self.grants]})


def private(owner: str) -> Acl:
    """The ACL every bucket and object has unless told otherwise."""
    return Acl(owner, (Grant(owner, "FULL_CONTROL"),))


def loads(text: str, default_owner: str) -> Acl:
    """The ACL stored as ``text``; "" is ``default_owner``'s private ACL."""
    if not text:
        return private(default_owner)
    return _loads(text)


@lru_cache(maxsize=4096)
def _loads(text: str) -> Acl:
    # Stored documents are few and read on every request that consults them: parsed once.
    document = json.loads(text)
    return Acl(document["owner"], tuple(Grant(grantee, permission) for grantee, permission in document["grants"]))


def stored(acl: Acl, default_owner: str) -> str:
    """What to store for ``acl``: "" when it is ``default_owner``'s private default (the common case)."""
    return "" if acl == private(default_owner) else acl.dumps()


def canned(name: str, owner: str, bucket_owner: str, *, for_bucket: bool = False) -> Acl:
    """The ACL an ``x-amz-acl`` value names, for a resource of ``owner`` in a bucket of ``bucket_owner``."""
    mine = Grant(owner, "FULL_CONTROL")
    name = name.strip()
    grants: tuple[Grant, ...]
    if name == "private":
        grants = (mine,)
    elif name == "public-read":
        grants = (mine, Grant(ALL_USERS, "READ"))
    elif name == "public-read-write":
        grants = (mine, Grant(ALL_USERS, "READ"), Grant(ALL_USERS, "WRITE"))
    elif name == "authenticated-read":
        grants = (mine, Grant(AUTHENTICATED_USERS, "READ"))
    elif name in ("bucket-owner-read", "bucket-owner-full-control"):
        # S3 ignores both on a bucket (its owner is the bucket owner): the owner's full control.
        permission = "READ" if name == "bucket-owner-read" else "FULL_CONTROL"
        grants = (mine,) if bucket_owner == owner else (mine, Grant(bucket_owner, permission))
    elif name == "log-delivery-write" and for_bucket:
        grants = (mine, Grant(LOG_DELIVERY, "WRITE"), Grant(LOG_DELIVERY, "READ_ACP"))
    elif name == "aws-exec-read":
        raise AclError("NotImplemented", "The canned ACL aws-exec-read (for Amazon EC2) is not implemented.")
    else:
        raise AclError("InvalidArgument", "", ArgumentName="x-amz-acl", ArgumentValue=name)
    return Acl(owner, grants)


def from_grant_headers(headers: Mapping[str, str], owner: str) -> Acl | None:
    """The ACL the ``x-amz-grant-*`` headers (lower-case names) give, or None when there are none.

    Each header lists grantees as ``id="…"``, ``uri="…"`` or ``emailAddress="…"``,
    separated by commas. The ACL is exactly these grants: the owner keeps only the
    right to read and write it unless a header grants it more, as on S3.
    """
    if not any(name.startswith("x-amz-grant-") for name in headers):
        return None
    unknown = sorted(n for n in headers if n.startswith("x-amz-grant-") and n not in GRANT_HEADERS)
    if unknown:
        raise AclError("InvalidArgument", f"Unknown grant header {unknown[0]}.", ArgumentName=unknown[0])
    grants: list[Grant] = []
    for name, permission in GRANT_HEADERS.items():
        value = headers.get(name)
        if value is not None:
            grants += [grant_for(kind, grantee, permission, name) for kind, grantee in _grantees(name, value)]
    return make(owner, grants)


def make(owner: str, grants: list[Grant]) -> Acl:
    """An ACL of these grants (repeats dropped), refused past S3's 100 grants."""
    unique = tuple(dict.fromkeys(grants))
    if len(unique) > MAX_GRANTS:
        raise AclError("InvalidArgument", f"An ACL holds at most {MAX_GRANTS} grants.")
    return Acl(owner, unique)


def grant_for(kind: str, grantee: str, permission: str, where: str) -> Grant:
    """A grant to a grantee named by ``kind`` ("id", "uri", "emailAddress"), or S3's refusal."""
    if permission not in PERMISSIONS:
        raise AclError("MalformedACLError", f"{permission!r} is not an ACL permission.")
    if kind == "emailaddress":
        raise AclError(
            "UnresolvableGrantByEmailAddress",
            "The e-mail address you provided does not match any account on record: "
            "Vaultaire grants to tenants by canonical id (as ListBuckets' Owner shows it), not by e-mail.",
            EmailAddress=grantee,
        )
    if kind == "id":
        if not grantee or any(c.isspace() or c in "\"'," for c in grantee):
            raise AclError("InvalidArgument", "Invalid id", ArgumentName="CanonicalUser/ID", ArgumentValue=grantee)
        return Grant(grantee, permission)
    if kind == "uri":
        if grantee not in GROUPS:
            raise AclError("InvalidArgument", "Invalid group uri", ArgumentName="Group/URI", ArgumentValue=grantee)
        return Grant(grantee, permission)
    raise AclError("InvalidArgument", f"Unknown grantee type in {where}.", ArgumentName=where)


def _grantees(name: str, value: str) -> list[tuple[str, str]]:
    """``id="a", uri=b`` -> [("id", "a"), ("uri", "b")]; kinds lower-cased."""
    out: list[tuple[str, str]] = []
    rest = value
    while True:
        kind, eq, rest = rest.partition("=")
        kind = kind.strip().lower()
        rest = rest.lstrip()
        if not eq or not kind:
            raise _unrecognized(name)
        if rest.startswith('"'):
            grantee, quote, rest = rest[1:].partition('"')
            if not quote:
                raise _unrecognized(name)
            after, comma, rest = rest.partition(",")
            if after.strip():
                raise _unrecognized(name)
        else:
            grantee, comma, rest = rest.partition(",")
        out.append((kind, grantee.strip()))
        if not comma:
            return out


def _unrecognized(name: str) -> AclError:
    return AclError("InvalidArgument", f"Argument format not recognized in {name}.", ArgumentName=name)


def owner_of_new_object(ownership: str, writer: str, bucket_owner: str, canned_name: str | None) -> str:
    """Who owns an object written by ``writer`` (a tenant id; "" when anonymous).

    BucketOwnerEnforced: the bucket owner, always. BucketOwnerPreferred: the bucket owner
    when the writer gives it full control with ``bucket-owner-full-control``.
    ObjectWriter (and no ownership controls): the writer. An anonymous writer's object is
    the bucket owner's, so that nobody ends up owning bytes its bucket owner cannot read.
    """
    if not writer or ownership == BUCKET_OWNER_ENFORCED:
        return bucket_owner
    if ownership == BUCKET_OWNER_PREFERRED and canned_name == "bucket-owner-full-control":
        return bucket_owner
    return writer


@frozen
class PublicAccessBlock:
    """S3's four switches (https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html).

    block_public_acls: PUTs of public ACLs are refused. ignore_public_acls: public grants
    allow nothing. block_public_policy: PutBucketPolicy of a public policy is refused.
    restrict_public_buckets: a public bucket policy allows only its own tenant.
    """

    block_public_acls: bool = False
    ignore_public_acls: bool = False
    block_public_policy: bool = False
    restrict_public_buckets: bool = False

    def dumps(self) -> str:
        return json.dumps(
            [self.block_public_acls, self.ignore_public_acls, self.block_public_policy, self.restrict_public_buckets]
        )

    @staticmethod
    def loads(text: str) -> PublicAccessBlock:
        a, b, c, d = json.loads(text)
        return PublicAccessBlock(bool(a), bool(b), bool(c), bool(d))

    def union(self, other: PublicAccessBlock) -> PublicAccessBlock:
        """Each switch on where either has it on (a bucket's and the deployment's)."""
        return PublicAccessBlock(
            self.block_public_acls or other.block_public_acls,
            self.ignore_public_acls or other.ignore_public_acls,
            self.block_public_policy or other.block_public_policy,
            self.restrict_public_buckets or other.restrict_public_buckets,
        )


# As on S3 since April 2023, a new bucket blocks all public access until its owner says otherwise.
BLOCK_ALL = PublicAccessBlock(True, True, True, True)
BLOCK_NONE = PublicAccessBlock()
