"""The decision (access/decide.py): AWS's evaluation logic over real policies and ACLs, and the
property that no combination of documents lets tenant B read tenant A's object without A's grant."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultaire.access.acl import ALL_USERS, AUTHENTICATED_USERS, BLOCK_ALL, BLOCK_NONE, Acl, Grant, PublicAccessBlock
from vaultaire.access.decide import decide
from vaultaire.access.policy import Policy, parse_policy
from vaultaire.access.request import ANONYMOUS, AccessRequest, Principal

A, B, C = "tenant-a", "tenant-b", "tenant-c"
A_ROOT = Principal(A, "", A)
A_USER = Principal(A, "alice", "AIDAALICE")
B_ROOT = Principal(B, "", B)
B_USER = Principal(B, "bob", "AIDABOB")


def bucket_policy(*statements: dict[str, Any]) -> Policy:
    return parse_policy(
        json.dumps({"Version": "2012-10-17", "Statement": list(statements)}), resource_policy=True, bucket="photos"
    )


def identity_policy(*statements: dict[str, Any]) -> Policy:
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}), resource_policy=False)


def stmt(effect: str, action: str | list[str], principal: Any = None, sid: str = "", **extra: Any) -> dict[str, Any]:
    # A bucket policy's statements (with a Principal) name the bucket's resources; an identity policy's, any.
    everything = "*" if principal is None else ["arn:aws:s3:::photos", "arn:aws:s3:::photos/*"]
    out: dict[str, Any] = {"Effect": effect, "Action": action, "Resource": extra.pop("Resource", everything)}
    if sid:
        out["Sid"] = sid
    if principal is not None:
        out["Principal"] = principal
    out.update(extra)
    return out


def get(principal: Principal, action: str = "s3:GetObject", object_owner: str = "") -> AccessRequest:
    return AccessRequest(principal, action, "photos", "cat.jpg", A, object_owner, {"aws:sourceip": ("10.0.0.1",)})


ALLOW_ALL_IDENTITY = identity_policy(stmt("Allow", "s3:*"))


def test_root_may_all_in_its_tenant_unless_explicitly_denied() -> None:
    assert decide(get(A_ROOT), None, None, None, None, None, True).allowed
    deny = bucket_policy(stmt("Deny", "s3:GetObject", "*", sid="NoReads"))
    decision = decide(get(A_ROOT), None, deny, None, None, None, True)
    assert not decision.allowed and decision.reason == "explicit deny: bucket policy statement NoReads"


def test_a_user_needs_an_allow_from_its_policy_or_the_bucket_policy() -> None:
    assert decide(get(A_USER), None, None, None, None, None, False).reason == "no allow"
    assert decide(get(A_USER), ALLOW_ALL_IDENTITY, None, None, None, None, False).allowed
    by_bucket = bucket_policy(stmt("Allow", "s3:GetObject", {"AWS": f"arn:aws:iam::{A}:user/alice"}, sid="Alice"))
    decision = decide(get(A_USER), None, by_bucket, None, None, None, False)
    assert decision.allowed and "Alice" in decision.reason
    deny = identity_policy(stmt("Allow", "s3:*"), stmt("Deny", "s3:GetObject", sid="NotThat"))
    decision = decide(get(A_USER), deny, by_bucket, None, None, None, False)
    assert not decision.allowed and decision.reason == "explicit deny: identity policy statement NotThat"


def test_the_owners_own_acl_grant_is_its_root_users_not_every_users() -> None:
    private = Acl(A, (Grant(A, "FULL_CONTROL"),))
    assert not decide(get(A_USER), None, None, private, private, None, False).allowed
    public = Acl(A, (Grant(A, "FULL_CONTROL"), Grant(ALL_USERS, "READ")))
    assert decide(get(A_USER), None, None, None, public, None, False).allowed


def test_across_tenants_both_sides_must_allow() -> None:
    grant_b = bucket_policy(stmt("Allow", "s3:GetObject", {"AWS": f"arn:aws:iam::{B}:root"}))
    assert not decide(get(B_ROOT), None, None, None, None, None, True).allowed
    assert decide(get(B_ROOT), None, grant_b, None, None, None, True).allowed
    # B's user: B's identity policy must allow too.
    assert not decide(get(B_USER), None, grant_b, None, None, None, False).allowed
    assert decide(get(B_USER), ALLOW_ALL_IDENTITY, grant_b, None, None, None, False).allowed
    # B's identity policy alone grants nothing in A's bucket.
    assert not decide(get(B_USER), ALLOW_ALL_IDENTITY, None, None, None, None, False).allowed


def test_public_access_block() -> None:
    public_acl = Acl(A, (Grant(A, "FULL_CONTROL"), Grant(ALL_USERS, "READ")))
    assert decide(get(ANONYMOUS), None, None, None, public_acl, BLOCK_NONE, False).allowed
    ignore = PublicAccessBlock(ignore_public_acls=True)
    assert not decide(get(ANONYMOUS), None, None, None, public_acl, ignore, False).allowed
    public_policy = bucket_policy(stmt("Allow", "s3:GetObject", "*"))
    assert decide(get(ANONYMOUS), None, public_policy, None, None, BLOCK_NONE, False).allowed
    restrict = PublicAccessBlock(restrict_public_buckets=True)
    assert not decide(get(ANONYMOUS), None, public_policy, None, None, restrict, False).allowed
    assert not decide(get(B_ROOT), None, public_policy, None, None, restrict, True).allowed
    assert decide(get(A_USER), None, public_policy, None, None, restrict, False).allowed  # its own tenant
    # A policy pinned to fixed addresses is not public: RestrictPublicBuckets leaves it alone.
    pinned = bucket_policy(stmt("Allow", "s3:GetObject", "*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))
    assert decide(get(ANONYMOUS), None, pinned, None, None, BLOCK_ALL, False).allowed


# -- the property: B never reads A's object unless A granted it

# A's bucket policy statements: (statement, grants B a read?)
_OTHERS_STATEMENTS = [
    (stmt("Allow", "s3:GetObject", {"AWS": f"arn:aws:iam::{A}:user/alice"}), False),
    (stmt("Allow", "s3:*", {"AWS": f"arn:aws:iam::{C}:root"}), False),
    (stmt("Allow", ["s3:PutObject", "s3:ListBucket"], {"AWS": f"arn:aws:iam::{B}:root"}), False),
    (stmt("Allow", "s3:GetObject", "*", Condition={"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}), False),
    (stmt("Allow", "s3:GetObject", "*", Condition={"StringEquals": {"aws:PrincipalAccount": C}}), False),
    (stmt("Deny", "s3:*", "*"), False),
    (stmt("Allow", "s3:GetObject", "*", Resource="arn:aws:s3:::photos/public/*"), False),
    (stmt("Allow", "s3:GetObject", {"AWS": f"arn:aws:iam::{B}:root"}), True),
    (stmt("Allow", "s3:Get*", {"AWS": f"arn:aws:iam::{B}:user/bob"}), True),
    (stmt("Allow", "s3:*", "*"), True),
    (stmt("Allow", "s3:GetObject", {"AWS": "*"}, Condition={"StringEquals": {"aws:PrincipalAccount": B}}), True),
]
# A's ACL grants: (grant, grants B a read?)
_GRANTS = [
    (Grant(A, "FULL_CONTROL"), False),
    (Grant(C, "READ"), False),
    (Grant(B, "READ_ACP"), False),
    (Grant(B, "WRITE_ACP"), False),
    (Grant(B, "READ"), True),
    (Grant(B, "FULL_CONTROL"), True),
    (Grant(ALL_USERS, "READ"), True),
    (Grant(AUTHENTICATED_USERS, "READ"), True),
]
# Anything B's own identity policy may say: it can never grant what A did not.
_B_POLICIES = [
    None,
    ALLOW_ALL_IDENTITY,
    identity_policy(stmt("Allow", "s3:GetObject", Resource="arn:aws:s3:::photos/*")),
    identity_policy(stmt("Allow", "*", Resource="*")),
]


@settings(max_examples=600, deadline=None)
@given(
    statements=st.lists(st.sampled_from(range(len(_OTHERS_STATEMENTS))), max_size=4),
    bucket_grants=st.lists(st.sampled_from(range(len(_GRANTS))), max_size=3),
    object_grants=st.lists(st.sampled_from(range(len(_GRANTS))), max_size=3),
    b_policy=st.sampled_from(range(len(_B_POLICIES))),
    caller=st.sampled_from([B_ROOT, B_USER, ANONYMOUS]),
    block=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    acls_on=st.booleans(),
    action=st.sampled_from(["s3:GetObject", "s3:GetObjectVersion"]),
)
def test_no_combination_lets_b_read_a_without_as_grant(
    statements: list[int],
    bucket_grants: list[int],
    object_grants: list[int],
    b_policy: int,
    caller: Principal,
    block: tuple[bool, bool, bool, bool],
    acls_on: bool,
    action: str,
) -> None:
    policy = bucket_policy(*[_OTHERS_STATEMENTS[i][0] for i in statements]) if statements else None
    bucket_acl = Acl(A, tuple(_GRANTS[i][0] for i in bucket_grants)) if acls_on else None
    object_acl = Acl(A, tuple(_GRANTS[i][0] for i in object_grants)) if acls_on else None
    identity = _B_POLICIES[b_policy] if caller is B_USER else None
    decision = decide(
        get(caller, action), identity, policy, bucket_acl, object_acl, PublicAccessBlock(*block), caller is B_ROOT
    )
    granted = any(_OTHERS_STATEMENTS[i][1] for i in statements) or (
        acls_on and any(_GRANTS[i][1] for i in object_grants)
    )
    if decision.allowed:
        assert granted, decision.reason
        assert caller is not B_USER or identity is not None  # and B's side allowed it too


@pytest.mark.parametrize("caller", [B_ROOT, ANONYMOUS])
def test_the_grant_the_property_relies_on_does_open_the_object(caller: Principal) -> None:
    """The property above is not vacuous: each kind of grant it counts does let B read."""
    everyone = bucket_policy(stmt("Allow", "s3:*", "*"))
    assert decide(get(caller), None, everyone, None, None, BLOCK_NONE, caller is B_ROOT).allowed
    public = Acl(A, (Grant(ALL_USERS, "READ"),))
    assert decide(get(caller), None, None, None, public, BLOCK_NONE, caller is B_ROOT).allowed


def test_every_operation_has_its_action() -> None:
    """An operation missing from access/actions.py is checked as s3:<Operation> (root and s3:* only)."""
    from vaultaire.access.actions import ACTIONS, UNCHECKED
    from vaultaire.api.operations import OPERATIONS

    missing = {name for name in OPERATIONS.values() if name not in ACTIONS and name not in UNCHECKED}
    missing |= {name for name in ("ListObjectsV2", "CopyObject", "UploadPartCopy") if name not in ACTIONS}
    assert not missing
