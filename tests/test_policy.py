"""The policy language (vaultaire/access/policy.py): AWS's documented examples, every operator, every
validation error, is_public(), and a fuzz test of the parser.

Pure tests, no server: bucket-policy API tests are in tests/test_bucket_policy.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address

from vaultaire.access.actions import ACTIONS
from vaultaire.access.conditions import KEYS, OPERATORS, PREFIX_KEYS
from vaultaire.access.policy import MalformedPolicy, Policy, UnsupportedPolicy, Verdict, parse_policy
from vaultaire.access.policy_actions import LEVELS
from vaultaire.access.request import ANONYMOUS, AccessRequest, Principal
from vaultaire.api.condition_keys import context_of

OWNER = "0123456789abcdef0123456789abcdef"  # a tenant id as the catalog makes them
OTHER = "fedcba9876543210fedcba9876543210"
BUCKET = "photos"

ROOT = Principal(OWNER, "", "")
ALICE = Principal(OWNER, "alice", "AIDAALICE")
BOB = Principal(OWNER, "bob", "AIDABOB")
STRANGER = Principal(OTHER, "", "")
STRANGER_USER = Principal(OTHER, "carol", "AIDACAROL")


def request(
    principal: Principal = ANONYMOUS,
    action: str = "s3:GetObject",
    key: str | None = "k",
    bucket: str = BUCKET,
    **context: Any,
) -> AccessRequest:
    """A request; context keyword names use __ for ':' and _ for '-' (aws__SourceIp, s3__max_keys)."""
    ctx: dict[str, tuple[str, ...]] = {}
    for name, value in context.items():
        key_name = name.replace("__", ":").replace("_", "-")
        ctx[key_name] = tuple(value) if isinstance(value, list | tuple) else (str(value),)
    return AccessRequest(principal, action, bucket, key, OWNER, context=ctx)


def bucket_policy(*statements: Mapping[str, Any], version: str = "2012-10-17") -> Policy:
    return parse_policy(
        json.dumps({"Version": version, "Statement": list(statements)}), resource_policy=True, bucket=BUCKET
    )


def identity_policy(*statements: Mapping[str, Any], version: str = "2012-10-17") -> Policy:
    return parse_policy(json.dumps({"Version": version, "Statement": list(statements)}), resource_policy=False)


def effect(policy: Policy, req: AccessRequest) -> str | None:
    return policy.evaluate(req).effect


# -- AWS's documented examples (Amazon S3 User Guide, "Examples of Amazon S3 bucket policies")


def test_public_read_bucket() -> None:
    policy = bucket_policy(
        {
            "Sid": "PublicReadGetObject",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject"],
            "Resource": [f"arn:aws:s3:::{BUCKET}/*"],
        }
    )
    assert policy.evaluate(request()) == Verdict("Allow", "PublicReadGetObject")
    assert effect(policy, request(STRANGER_USER, key="deep/a b/c.jpg")) == "Allow"
    assert effect(policy, request(action="s3:PutObject")) is None
    assert effect(policy, request(action="s3:ListBucket", key=None)) is None  # the bucket is not an object
    assert effect(policy, request(bucket="other")) is None
    assert policy.is_public()


def test_ip_restricted_bucket() -> None:
    # The guide's "Managing access based on specific IP addresses", IPv4 and IPv6.
    policy = bucket_policy(
        {
            "Sid": "IPAllow",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
            "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:DB8:1234:5678::/64"]}},
        }
    )
    assert policy.evaluate(request(ROOT, aws__SourceIp="203.0.113.9")) == Verdict("Deny", "IPAllow")
    assert effect(policy, request(ROOT, aws__SourceIp="192.0.2.77")) is None
    assert effect(policy, request(ROOT, aws__SourceIp="2001:db8:1234:5678::1")) is None
    assert effect(policy, request(ROOT, aws__SourceIp="2001:db8:1234:5679::1")) == "Deny"
    assert effect(policy, request(ROOT, action="s3:ListBucket", key=None, aws__SourceIp="10.0.0.1")) == "Deny"
    # A negated operator on an absent key is true: a request without a source address is denied.
    assert effect(policy, request(ROOT)) == "Deny"
    assert not policy.is_public()  # a Deny grants nothing


def test_ip_restricted_allow_is_not_public() -> None:
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/*",
        "Condition": {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}},
    }
    policy = bucket_policy(statement)
    assert effect(policy, request(aws__SourceIp="192.0.2.1")) == "Allow"
    assert effect(policy, request(aws__SourceIp="192.0.3.1")) is None
    assert effect(policy, request()) is None
    assert not policy.is_public()
    wide = dict(statement, Condition={"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "0.0.0.0/1"]}})
    assert bucket_policy(wide).is_public()


def test_deny_unencrypted_transport() -> None:
    policy = bucket_policy(
        {
            "Sid": "AllowSSLRequestsOnly",
            "Action": "s3:*",
            "Effect": "Deny",
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Principal": "*",
        }
    )
    assert effect(policy, request(ROOT, aws__SecureTransport="false")) == "Deny"
    assert effect(policy, request(ROOT, aws__SecureTransport="true")) is None
    assert effect(policy, request(ROOT, action="s3:PutBucketPolicy", key=None, aws__SecureTransport="false")) == "Deny"
    # JSON's false is the same condition.
    same = bucket_policy(
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": f"arn:aws:s3:::{BUCKET}/*",
            "Condition": {"Bool": {"aws:SecureTransport": False}},
        }
    )
    assert effect(same, request(ROOT, aws__SecureTransport="false")) == "Deny"


def test_per_user_home_prefix_identity_policy() -> None:
    # IAM User Guide: "Allows IAM users to access their own home directory in Amazon S3".
    policy = identity_policy(
        {
            "Sid": "AllowListingOfUserFolder",
            "Action": ["s3:ListBucket"],
            "Effect": "Allow",
            "Resource": [f"arn:aws:s3:::{BUCKET}"],
            "Condition": {"StringLike": {"s3:prefix": ["${aws:username}/*", "${aws:username}"]}},
        },
        {
            "Sid": "AllowAllS3ActionsInUserFolder",
            "Effect": "Allow",
            "Action": ["s3:*"],
            "Resource": [f"arn:aws:s3:::{BUCKET}/${{aws:username}}/*"],
        },
    )
    assert effect(policy, request(ALICE, "s3:ListBucket", None, s3__prefix="alice/")) == "Allow"
    assert effect(policy, request(ALICE, "s3:ListBucket", None, s3__prefix="alice")) == "Allow"
    assert effect(policy, request(ALICE, "s3:ListBucket", None, s3__prefix="bob/")) is None
    assert effect(policy, request(ALICE, "s3:ListBucket", None)) is None  # listing everything: not allowed
    assert policy.evaluate(request(ALICE, "s3:PutObject", "alice/notes.txt")) == Verdict(
        "Allow", "AllowAllS3ActionsInUserFolder"
    )
    assert effect(policy, request(ALICE, "s3:GetObject", "bob/notes.txt")) is None
    assert effect(policy, request(BOB, "s3:GetObject", "bob/notes.txt")) == "Allow"
    # The root user and anonymous callers have no aws:username: the statements match nothing.
    assert effect(policy, request(ROOT, "s3:GetObject", "/x")) is None
    assert effect(policy, request(ANONYMOUS, "s3:GetObject", "/x")) is None


def test_policy_variable_values_are_literal() -> None:
    policy = identity_policy(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/${{aws:username}}/*"}
    )
    star = Principal(OWNER, "a*", "AIDASTAR")
    assert effect(policy, request(star, key="a*/x")) == "Allow"
    assert effect(policy, request(star, key="abc/x")) is None  # the user's '*' is not a wildcard


def test_per_user_home_prefix_bucket_policy() -> None:
    policy = bucket_policy(
        {
            "Sid": "Home",
            "Effect": "Allow",
            "Principal": {"AWS": [f"arn:aws:iam::{OWNER}:user/alice", f"arn:aws:iam::{OWNER}:user/bob"]},
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{BUCKET}",
            "Condition": {"StringLike": {"s3:prefix": "home/${aws:username}/*"}},
        }
    )
    assert effect(policy, request(ALICE, "s3:ListBucket", None, s3__prefix="home/alice/2024/")) == "Allow"
    assert effect(policy, request(ALICE, "s3:ListBucket", None, s3__prefix="home/bob/")) is None
    assert effect(policy, request(Principal(OWNER, "mallory", "M"), "s3:ListBucket", None, s3__prefix="home/")) is None
    assert not policy.is_public()


def test_variables_are_text_in_version_2008() -> None:
    policy = bucket_policy(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/${{x}}"},
        version="2008-10-17",
    )
    assert effect(policy, request(key="${x}")) == "Allow"


def test_variable_default_and_specials() -> None:
    policy = identity_policy(
        {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{BUCKET}/${{aws:username, 'guest'}}/${{*}}${{?}}${{$}}",
        }
    )
    assert effect(policy, request(ALICE, key="alice/*?$")) == "Allow"
    assert effect(policy, request(ALICE, key="alice/xy$")) is None
    assert effect(policy, request(ROOT, key="guest/*?$")) == "Allow"


def test_not_principal_denies_everyone_else() -> None:
    # IAM reference, NotPrincipal with Deny: everyone but the named user (and its account) is denied.
    policy = bucket_policy(
        {
            "Sid": "OnlyAlice",
            "Effect": "Deny",
            "NotPrincipal": {"AWS": [f"arn:aws:iam::{OWNER}:user/alice"]},
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        }
    )
    assert effect(policy, request(ALICE)) is None
    assert effect(policy, request(BOB)) == "Deny"
    assert effect(policy, request(ROOT)) == "Deny"
    assert effect(policy, request(STRANGER)) == "Deny"
    assert effect(policy, request(ANONYMOUS)) == "Deny"
    whole_account = bucket_policy(
        {
            "Effect": "Deny",
            "NotPrincipal": {"AWS": OWNER},
            "Action": "s3:*",
            "Resource": f"arn:aws:s3:::{BUCKET}/*",
        }
    )
    assert effect(whole_account, request(BOB)) is None
    assert effect(whole_account, request(STRANGER_USER)) == "Deny"


def test_not_action() -> None:
    policy = bucket_policy(
        {
            "Sid": "AllButDelete",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"},
            "NotAction": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            "Resource": f"arn:aws:s3:::{BUCKET}/*",
        }
    )
    assert effect(policy, request(STRANGER_USER, "s3:PutObject")) == "Allow"
    assert effect(policy, request(STRANGER_USER, "s3:GetObject")) == "Allow"
    assert effect(policy, request(STRANGER_USER, "s3:DeleteObject")) is None
    assert effect(policy, request(STRANGER_USER, "s3:deleteobject")) is None  # action names ignore case


def test_not_resource() -> None:
    policy = identity_policy(
        {"Effect": "Deny", "Action": "s3:*", "NotResource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]}
    )
    assert effect(policy, request(ALICE)) is None
    assert effect(policy, request(ALICE, bucket="secrets")) == "Deny"


def test_explicit_deny_beats_allow_whatever_the_order() -> None:
    allow = {"Sid": "A", "Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": f"arn:aws:s3:::{BUCKET}/*"}
    deny = {
        "Sid": "D",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/private/*",
    }
    for policy in (bucket_policy(allow, deny), bucket_policy(deny, allow)):
        assert policy.evaluate(request(key="private/x")) == Verdict("Deny", "D")
        assert policy.evaluate(request(key="public/x")) == Verdict("Allow", "A")


def test_statement_label_is_its_index_without_sid() -> None:
    policy = bucket_policy(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"},
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"},
    )
    assert policy.evaluate(request()) == Verdict("Allow", "#1")


# -- principals


def test_account_principal_forms_are_one() -> None:
    for principal in (
        {"AWS": f"arn:aws:iam::{OTHER}:root"},
        {"AWS": OTHER},
        {"CanonicalUser": OTHER},
        {"AWS": [OTHER, f"arn:aws:iam::{OWNER}:user/nobody"]},
    ):
        policy = bucket_policy(
            {
                "Effect": "Allow",
                "Principal": principal,
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{BUCKET}/*",
            }
        )
        assert effect(policy, request(STRANGER)) == "Allow"
        assert effect(policy, request(STRANGER_USER)) == "Allow"  # its identity policy is asked too (decide.py)
        assert effect(policy, request(ALICE)) is None
        assert effect(policy, request(ANONYMOUS)) is None
        assert not policy.is_public()


def test_own_account_allow_delegates_deny_does_not() -> None:
    allow = bucket_policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": OWNER},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{BUCKET}/*",
        }
    )
    assert effect(allow, request(ROOT)) == "Allow"
    assert effect(allow, request(ALICE)) is None  # the account's users still need their identity policy
    deny = bucket_policy(
        {
            "Effect": "Deny",
            "Principal": {"AWS": OWNER},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{BUCKET}/*",
        }
    )
    assert effect(deny, request(ALICE)) == "Deny"
    assert effect(deny, request(ROOT)) == "Deny"


def test_user_principal_is_that_user_only() -> None:
    policy = bucket_policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{OTHER}:user/carol"},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{BUCKET}/*",
        }
    )
    assert effect(policy, request(STRANGER_USER)) == "Allow"
    assert effect(policy, request(STRANGER)) is None
    assert effect(policy, request(Principal(OWNER, "carol", "X"))) is None


def test_aws_star_is_everyone() -> None:
    policy = bucket_policy(
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}
    )
    assert effect(policy, request(ANONYMOUS)) == "Allow"
    assert policy.is_public()


def test_service_principals_match_nobody() -> None:
    policy = bucket_policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{BUCKET}/*",
        }
    )
    for who in (ANONYMOUS, ROOT, ALICE, STRANGER):
        assert effect(policy, request(who, "s3:PutObject")) is None


# -- actions and resources


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("s3:*", "s3:GetObject", True),
        ("*", "s3:PutBucketPolicy", True),
        ("s3:Get*", "s3:GetObjectVersion", True),
        ("s3:Get*", "s3:PutObject", False),
        ("S3:GETOBJECT", "s3:GetObject", True),
        ("s3:GetObject", "s3:GetObjectAcl", False),
        ("s3:*Object", "s3:DeleteObject", True),
        ("s3:?etObject", "s3:GetObject", True),
        ("s3:List*", "s3:ListBucket", True),
    ],
)
def test_action_wildcards(pattern: str, action: str, expected: bool) -> None:
    policy = identity_policy({"Effect": "Allow", "Action": pattern, "Resource": "*"})
    assert (effect(policy, request(ALICE, action)) == "Allow") is expected


def test_resource_wildcards_are_case_sensitive_and_span_slashes() -> None:
    policy = identity_policy(
        {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": [f"arn:aws:s3:::{BUCKET}/logs/*.gz", f"arn:aws:s3:::{BUCKET}/v?/x"],
        }
    )
    assert effect(policy, request(ALICE, key="logs/2024/01/a.gz")) == "Allow"
    assert effect(policy, request(ALICE, key="LOGS/a.gz")) is None
    assert effect(policy, request(ALICE, key="v1/x")) == "Allow"
    assert effect(policy, request(ALICE, key="v12/x")) is None
    assert effect(policy, request(ALICE, key="logs/a.gz\nx")) is None


def test_identity_policy_resource_star_and_other_buckets() -> None:
    policy = identity_policy({"Effect": "Allow", "Action": ["s3:ListAllMyBuckets", "s3:GetObject"], "Resource": "*"})
    assert effect(policy, request(ALICE, "s3:ListAllMyBuckets", None, bucket="")) == "Allow"
    assert effect(policy, request(ALICE, bucket="anything")) == "Allow"


def test_every_action_of_the_operation_table_is_known() -> None:
    """The decision step names actions from access/actions.py: each must be one a policy can name."""
    names = {row.action.lower() for row in ACTIONS.values()}
    names |= {row.versioned.lower() for row in ACTIONS.values() if row.versioned}
    assert names <= set(LEVELS), sorted(names - set(LEVELS))
    for row in ACTIONS.values():
        if row.level in ("bucket", "object"):
            assert LEVELS[row.action.lower()] == row.level, row


def test_every_key_a_policy_may_name_is_put_in_the_request_context() -> None:
    """A key accepted but never given a value would make a Deny on it silently never apply."""
    headers = {name: "v" for name in ("x-amz-acl", "x-amz-content-sha256", "x-amz-copy-source")}
    headers |= {k.removeprefix("s3:"): "v" for k, info in KEYS.items() if k.startswith("s3:x-amz-")}
    headers["x-amz-tagging"] = "a=1&b=2"
    headers |= {"user-agent": "aws-cli/2", "referer": "https://www.example.com/"}
    headers |= {f"x-amz-object-lock-{name}": "v" for name in ("mode", "retain-until-date", "legal-hold")}
    query = {"prefix": "p", "delimiter": "/", "max-keys": "5", "versionId": "v1"}
    call = SimpleNamespace(
        request=SimpleNamespace(getClientAddress=lambda: IPv4Address("TCP", "192.0.2.1", 5), isSecure=lambda: False),
        identity=SimpleNamespace(signature_version="AWS4-HMAC-SHA256", auth_type="REST-HEADER"),
        headers=headers,
        target=SimpleNamespace(query=query),
    )
    context = context_of(call, ALICE, "AIDAALICE", now=1e9, existing_tags=[("Project", "x")])  # type: ignore[arg-type]
    for key, info in KEYS.items():
        if info.source in ("request", "clock"):
            assert key in context, key
    for prefix in PREFIX_KEYS:
        assert any(name.startswith(prefix) for name in context), prefix


# -- condition operators: (operator, key, policy values, request values or None, expected)

OPERATOR_CASES: list[tuple[str, str, Any, Any, bool]] = [
    ("StringEquals", "s3:prefix", "home/", "home/", True),
    ("StringEquals", "s3:prefix", "home/", "Home/", False),
    ("StringEquals", "s3:prefix", ["a", "b"], "b", True),
    ("StringEquals", "s3:prefix", "a", None, False),
    ("StringNotEquals", "s3:prefix", ["a", "b"], "c", True),
    ("StringNotEquals", "s3:prefix", ["a", "b"], "a", False),
    ("StringNotEquals", "s3:prefix", "a", None, True),
    ("StringEqualsIgnoreCase", "s3:prefix", "HOME/", "home/", True),
    ("StringEqualsIgnoreCase", "s3:prefix", "HOME/", "hom/", False),
    ("StringNotEqualsIgnoreCase", "s3:prefix", "HOME/", "home/", False),
    ("StringNotEqualsIgnoreCase", "s3:prefix", "HOME/", "away/", True),
    ("StringLike", "s3:prefix", "home/*", "home/a/b", True),
    ("StringLike", "s3:prefix", "home/?", "home/ab", False),
    ("StringLike", "s3:prefix", "home/*", None, False),
    ("StringNotLike", "s3:prefix", "home/*", "away/", True),
    ("StringNotLike", "s3:prefix", "home/*", "home/x", False),
    ("StringNotLike", "s3:prefix", "home/*", None, True),
    ("StringEqualsIfExists", "s3:prefix", "a", None, True),
    ("StringEqualsIfExists", "s3:prefix", "a", "b", False),
    ("StringLikeIfExists", "s3:prefix", "a*", "ab", True),
    ("NumericEquals", "s3:max-keys", "10", "10", True),
    ("NumericEquals", "s3:max-keys", 10, "10.0", True),
    ("NumericEquals", "s3:max-keys", "10", "11", False),
    ("NumericNotEquals", "s3:max-keys", "10", "11", True),
    ("NumericNotEquals", "s3:max-keys", "10", None, True),
    ("NumericLessThan", "s3:max-keys", "10", "9", True),
    ("NumericLessThan", "s3:max-keys", "10", "10", False),
    ("NumericLessThanEquals", "s3:max-keys", "10", "10", True),
    ("NumericGreaterThan", "s3:max-keys", "10", "11", True),
    ("NumericGreaterThan", "s3:max-keys", "10", "10", False),
    ("NumericGreaterThanEquals", "s3:max-keys", "10", "10", True),
    ("NumericGreaterThanEquals", "s3:max-keys", "10", "abc", False),
    ("NumericLessThanIfExists", "s3:max-keys", "10", None, True),
    ("DateEquals", "aws:CurrentTime", "2030-01-01T00:00:00Z", "2030-01-01T00:00:00Z", True),
    ("DateNotEquals", "aws:CurrentTime", "2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z", True),
    ("DateLessThan", "aws:CurrentTime", "2030-01-01T00:00:00Z", "2029-12-31T23:59:59Z", True),
    ("DateLessThan", "aws:CurrentTime", "2030-01-01", "2030-01-01T00:00:01Z", False),
    ("DateLessThanEquals", "aws:CurrentTime", "2030-01-01T00:00:00Z", "2030-01-01T00:00:00+00:00", True),
    ("DateGreaterThan", "aws:CurrentTime", "2030-01-01T00:00:00Z", "2030-01-01T01:00:00+02:00", False),
    ("DateGreaterThan", "aws:CurrentTime", "2030-01-01T00:00:00Z", "2030-06-01T00:00:00Z", True),
    ("DateGreaterThanEquals", "aws:EpochTime", "1893456000", "1893456000", True),
    ("DateGreaterThanEquals", "aws:EpochTime", "2030-01-01T00:00:00Z", "1893455999", False),
    ("Bool", "aws:SecureTransport", "true", "true", True),
    ("Bool", "aws:SecureTransport", "true", "false", False),
    ("Bool", "aws:SecureTransport", True, "TRUE", True),
    ("Bool", "aws:SecureTransport", "false", None, False),
    ("BoolIfExists", "aws:SecureTransport", "false", None, True),
    ("BinaryEquals", "s3:prefix", "aG9tZS8=", "home/", True),
    ("BinaryEquals", "s3:prefix", "aG9tZS8=", "home", False),
    ("IpAddress", "aws:SourceIp", "203.0.113.0/24", "203.0.113.200", True),
    ("IpAddress", "aws:SourceIp", "203.0.113.0/24", "203.0.114.1", False),
    ("IpAddress", "aws:SourceIp", "203.0.113.7", "203.0.113.7", True),
    ("IpAddress", "aws:SourceIp", "2001:db8::/32", "2001:db8:ffff::1", True),
    ("IpAddress", "aws:SourceIp", "2001:db8::/32", "203.0.113.7", False),
    ("IpAddress", "aws:SourceIp", "2001:db8::/32", "not-an-ip", False),
    ("NotIpAddress", "aws:SourceIp", "203.0.113.0/24", "198.51.100.1", True),
    ("NotIpAddress", "aws:SourceIp", "203.0.113.0/24", "203.0.113.1", False),
    ("ArnEquals", "aws:PrincipalArn", f"arn:aws:iam::{OWNER}:user/alice", "ALICE", True),
    ("ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:user/*", "ALICE", True),
    ("ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:root", "ALICE", False),
    ("ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:user/b*", "ALICE", False),
    ("ArnLike", "aws:PrincipalArn", "arn:*:iam::*:*", "ALICE", True),  # '*' spans '/' but never ':'
    ("ArnNotEquals", "aws:PrincipalArn", f"arn:aws:iam::{OWNER}:user/alice", "ALICE", False),
    ("ArnNotLike", "aws:PrincipalArn", "arn:aws:iam::*:root", "ALICE", True),
    ("Null", "s3:x-amz-server-side-encryption", "true", None, True),
    ("Null", "s3:x-amz-server-side-encryption", "true", "AES256", False),
    ("Null", "s3:x-amz-server-side-encryption", False, "AES256", True),
    ("ForAnyValue:StringEquals", "s3:RequestObjectTagKeys", ["a", "b"], ["x", "b"], True),
    ("ForAnyValue:StringEquals", "s3:RequestObjectTagKeys", ["a", "b"], ["x", "y"], False),
    ("ForAnyValue:StringEquals", "s3:RequestObjectTagKeys", ["a", "b"], None, False),
    ("ForAllValues:StringEquals", "s3:RequestObjectTagKeys", ["a", "b"], ["a", "b"], True),
    ("ForAllValues:StringEquals", "s3:RequestObjectTagKeys", ["a", "b"], ["a", "c"], False),
    ("ForAllValues:StringEquals", "s3:RequestObjectTagKeys", ["a", "b"], None, True),
    ("ForAllValues:StringNotEquals", "s3:RequestObjectTagKeys", ["a"], ["b", "c"], True),
    ("ForAllValues:StringNotEquals", "s3:RequestObjectTagKeys", ["a"], ["a", "c"], False),
    ("ForAnyValue:StringNotEquals", "s3:RequestObjectTagKeys", ["a"], ["a", "c"], True),
    ("ForAnyValue:StringLike", "s3:RequestObjectTagKeys", ["env*"], ["x", "environment"], True),
    ("StringEquals", "s3:ExistingObjectTag/Project", "blue", "blue", True),
    ("StringEquals", "s3:RequestObjectTag/Project", "blue", "red", False),
    ("StringEquals", "aws:PrincipalAccount", OWNER, "ALICE", True),
    ("StringEquals", "aws:username", "alice", "ALICE", True),
    ("StringEquals", "aws:userid", "AIDAALICE", "ALICE", True),
    ("StringEquals", "aws:PrincipalType", "User", "ALICE", True),
    ("StringEquals", "s3:prefix", "${aws:username}/", "alice/", True),
    ("StringEquals", "s3:prefix", "${aws:username}/", "bob/", False),
]


@pytest.mark.parametrize(("operator", "key", "values", "present", "expected"), OPERATOR_CASES)
def test_operator(operator: str, key: str, values: Any, present: Any, expected: bool) -> None:
    action = "s3:ListBucket" if key.lower() in ("s3:prefix", "s3:max-keys") else "s3:PutObject"
    resource = f"arn:aws:s3:::{BUCKET}" if action == "s3:ListBucket" else f"arn:aws:s3:::{BUCKET}/*"
    policy = bucket_policy(
        {
            "Sid": "S",
            "Effect": "Allow",
            "Principal": "*",
            "Action": action,
            "Resource": resource,
            "Condition": {operator: {key: values}},
        }
    )
    context: dict[str, tuple[str, ...]] = {}
    if present is not None and present != "ALICE":  # "ALICE": the key comes from the principal itself
        context[key.lower()] = tuple(present) if isinstance(present, list) else (present,)
    req = AccessRequest(ALICE, action, BUCKET, None if action == "s3:ListBucket" else "k", OWNER, context=context)
    assert (effect(policy, req) == "Allow") is expected


def test_every_operator_is_tested() -> None:
    tested = {case[0].split(":")[-1].removesuffix("IfExists") for case in OPERATOR_CASES}
    assert set(OPERATORS) <= tested, set(OPERATORS) - tested


def test_several_keys_and_operators_all_must_hold() -> None:
    policy = bucket_policy(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{BUCKET}",
            "Condition": {
                "StringEquals": {"s3:prefix": "a/", "s3:delimiter": "/"},
                "NumericLessThanEquals": {"s3:max-keys": "100"},
            },
        }
    )
    ok = {"s3__prefix": "a/", "s3__delimiter": "/", "s3__max_keys": "10"}
    assert effect(policy, request(action="s3:ListBucket", key=None, **ok)) == "Allow"
    for name, wrong in (("s3__prefix", "b/"), ("s3__delimiter", "-"), ("s3__max_keys", "1000")):
        assert effect(policy, request(action="s3:ListBucket", key=None, **{**ok, name: wrong})) is None


def test_condition_key_names_ignore_case() -> None:
    policy = bucket_policy(
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": f"arn:aws:s3:::{BUCKET}/*",
            "Condition": {"Bool": {"AWS:SECURETRANSPORT": "false"}},
        }
    )
    assert effect(policy, request(aws__securetransport="false")) == "Deny"


def test_time_window_uses_the_clock_when_the_context_has_none() -> None:
    past = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/*",
        "Condition": {"DateLessThan": {"aws:CurrentTime": "2001-01-01T00:00:00Z"}},
    }
    assert effect(bucket_policy(past), request()) is None
    future = dict(past, Condition={"DateGreaterThan": {"aws:CurrentTime": "2001-01-01T00:00:00Z"}})
    assert effect(bucket_policy(future), request()) == "Allow"
    epoch = dict(past, Condition={"NumericGreaterThan": {"aws:EpochTime": "978307200"}})
    assert effect(bucket_policy(epoch), request()) == "Allow"


def test_principal_keys_cannot_come_from_the_context() -> None:
    policy = bucket_policy(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{BUCKET}/*",
            "Condition": {"StringEquals": {"aws:PrincipalAccount": OWNER}},
        }
    )
    forged = AccessRequest(ANONYMOUS, "s3:GetObject", BUCKET, "k", OWNER, context={"aws:principalaccount": (OWNER,)})
    assert effect(policy, forged) is None
    assert effect(policy, request(ALICE)) == "Allow"
    assert not policy.is_public()


def test_keys_name_every_key_read_resources_included() -> None:
    policy = identity_policy(
        {
            "Effect": "Deny",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{BUCKET}/${{s3:x-amz-storage-class}}/*",
            "Condition": {"StringLike": {"s3:prefix": "${aws:username}/*"}, "Bool": {"aws:SecureTransport": "false"}},
        }
    )
    assert policy.keys == {"s3:x-amz-storage-class", "s3:prefix", "aws:username", "aws:securetransport"}


def test_needs_object_tags() -> None:
    base = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}
    assert not bucket_policy(base).needs_object_tags
    tagged = dict(base, Condition={"StringEquals": {"s3:ExistingObjectTag/public": "yes"}})
    assert bucket_policy(tagged).needs_object_tags


# -- is_public


def _public(statement: Mapping[str, Any]) -> bool:
    return bucket_policy(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*", **statement}
    ).is_public()


@pytest.mark.parametrize(
    ("statement", "public"),
    [
        ({"Principal": "*"}, True),
        ({"Principal": {"AWS": "*"}}, True),
        ({"Principal": {"AWS": OTHER}}, False),
        ({"NotPrincipal": {"AWS": OTHER}}, True),
        ({"Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalAccount": OTHER}}}, False),
        ({"Principal": "*", "Condition": {"StringLike": {"aws:PrincipalAccount": "*"}}}, True),
        ({"Principal": "*", "Condition": {"StringEqualsIfExists": {"aws:PrincipalAccount": OTHER}}}, True),
        ({"Principal": "*", "Condition": {"StringNotEquals": {"aws:PrincipalAccount": OTHER}}}, True),
        ({"Principal": "*", "Condition": {"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{OTHER}:root"}}}, False),
        ({"Principal": "*", "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:root"}}}, True),
        ({"Principal": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}, False),
        ({"Principal": "*", "Condition": {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}}, True),
        ({"Principal": "*", "Condition": {"IpAddress": {"aws:SourceIp": "::/0"}}}, True),
        ({"Principal": "*", "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}, True),
        ({"Principal": "*", "Condition": {"StringEquals": {"aws:username": "alice"}}}, True),
        ({"Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalAccount": "${aws:username}"}}}, True),
        ({"Principal": "*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}, True),
    ],
)
def test_is_public(statement: Mapping[str, Any], public: bool) -> None:
    assert _public(statement) is public


def test_deny_to_everyone_is_not_public() -> None:
    assert not bucket_policy(
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}
    ).is_public()


# -- validation: S3's messages

GOOD: dict[str, Any] = {
    "Effect": "Allow",
    "Principal": "*",
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::photos/*",
}


def _doc(**statement: Any) -> str:
    body = {k: v for k, v in {**GOOD, **statement}.items() if v is not None}
    return json.dumps({"Version": "2012-10-17", "Statement": [body]})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "first byte must be '{'"),
        ("[]", "first byte must be '{'"),
        ('"x"', "first byte must be '{'"),
        ("{", "invalid Json"),
        ('{"Statement": [], }', "invalid Json"),
        ('{"Version": "2012-10-17", "Statement": NaN}', "invalid Json"),
        ("{" * 100000, "invalid Json"),
        ('{"Version": "2012-10-17"}', "Missing required field Statement"),
        ('{"Version": "2012-10-17", "Statement": []}', "Statement is empty"),
        ('{"Version": "2012-10-18", "Statement": {}}', "valid version string"),
        ('{"Version": "2012-10-17", "Statement": [1]}', "must be an object"),
        ('{"Version": "2012-10-17", "Statement": [], "Extra": 1}', "Unknown field Extra"),
        ('{"Version": "2012-10-17", "Version": "2012-10-17", "Statement": []}', "Duplicate field Version"),
        ('{"Id": 5, "Statement": {}}', "Id must be a string"),
        (_doc(Effect=None), "Missing required field Effect"),
        (_doc(Effect="allow"), "Invalid effect: allow"),
        (_doc(Principal=None), "Missing required field Principal"),
        (_doc(NotPrincipal="*"), "both Principal and NotPrincipal"),
        (_doc(Principal={"AWS": "arn:aws:iam::123:role/x"}), "Invalid principal in policy"),
        (_doc(Principal={"AWS": []}), "Invalid principal in policy"),
        (_doc(Principal={"Group": "x"}), "Invalid principal in policy"),
        (_doc(Principal="everyone"), "Invalid principal in policy"),
        (_doc(Principal={"CanonicalUser": "not an id"}), "Invalid principal in policy"),
        (_doc(Action=None), "Missing required field Action"),
        (_doc(NotAction="s3:PutObject"), "both Action and NotAction"),
        (_doc(Action="s3:GetObjects"), "Policy has invalid action: s3:GetObjects"),
        (_doc(Action="iam:CreateUser"), "Policy has invalid action"),
        (_doc(Action="s3:Nothing*"), "Policy has invalid action"),
        (_doc(Action=[]), "Policy has invalid action"),
        (_doc(Action=["s3:GetObject", 5]), "Policy has invalid action"),
        (_doc(Resource=None), "Missing required field Resource"),
        (_doc(NotResource="arn:aws:s3:::photos/*"), "both Resource and NotResource"),
        (_doc(Resource="*"), "Policy has invalid resource"),
        (_doc(Resource="arn:aws:s3:::other/*"), "Policy has invalid resource"),
        (_doc(Resource="arn:aws:iam::123:user/x"), "Policy has invalid resource"),
        (_doc(Resource="photos/*"), "Policy has invalid resource"),
        (_doc(Resource="arn:aws:s3:::photos"), "Action does not apply to any resource(s) in statement"),
        (_doc(Action="s3:ListBucket"), "Action does not apply to any resource(s) in statement"),
        (_doc(Action="s3:ListAllMyBuckets"), "Action does not apply to any resource(s) in statement"),
        (_doc(Action="s3:GetBucket*"), "Action does not apply to any resource(s) in statement"),
        (_doc(Condition={"StringEqual": {"s3:prefix": "a"}}), "Invalid Condition type : StringEqual"),
        (_doc(Condition={"stringequals": {"s3:prefix": "a"}}), "Invalid Condition type : stringequals"),
        (_doc(Condition={"NullIfExists": {"s3:prefix": "true"}}), "Invalid Condition type : NullIfExists"),
        (_doc(Condition={"StringEquals": {"s3:nothing": "a"}}), "Policy has an invalid condition key: s3:nothing"),
        (_doc(Condition={"StringEquals": {"s3:prefix": "a"}}), "Conditions do not apply to combination"),
        (_doc(Condition={"IpAddress": {"aws:SourceIp": "300.1.1.1"}}), "Invalid IP address in Conditions"),
        (_doc(Condition={"StringEquals": {"aws:SourceIp": "nope"}}), "Invalid IP address in Conditions"),
        (_doc(Condition={"NumericLessThan": {"aws:EpochTime": "ten"}}), "has an invalid number: ten"),
        (_doc(Condition={"DateLessThan": {"aws:CurrentTime": "tomorrow"}}), "has an invalid date: tomorrow"),
        (_doc(Condition={"Bool": {"aws:SecureTransport": "yes"}}), "must be true or false"),
        (_doc(Condition={"Null": {"aws:SecureTransport": "maybe"}}), "must be true or false"),
        (_doc(Condition={"BinaryEquals": {"s3:x-amz-content-sha256": "%%%"}}), "must be base64"),
        (_doc(Condition={"ArnLike": {"aws:PrincipalArn": "arn:aws"}}), "invalid ARN"),
        (_doc(Condition={"StringEquals": {"s3:x-amz-content-sha256": []}}), "has no value"),
        (_doc(Condition={"StringEquals": {"s3:x-amz-content-sha256": {"a": 1}}}), "string or a list of strings"),
        (_doc(Condition={"StringEquals": {"s3:x-amz-content-sha256": None}}), "string or a list of strings"),
        (_doc(Condition={"StringEquals": {}}), "must map condition keys to values"),
        (_doc(Condition=["StringEquals"]), "Condition must be an object"),
        (_doc(Condition={"StringEquals": {"s3:x-amz-content-sha256": "${nope}"}}), "invalid condition key: nope"),
        (_doc(Condition={"StringEquals": {"s3:x-amz-content-sha256": "${a,b}"}}), "Invalid policy variable"),
        (_doc(Sid=5), "Sid must be a string"),
        (_doc(Unknown=1), "Unknown field Unknown"),
    ],
)
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(MalformedPolicy) as caught:
        parse_policy(text, resource_policy=True, bucket=BUCKET)
    assert message in caught.value.message
    assert not isinstance(caught.value, UnsupportedPolicy)


def test_duplicate_sids() -> None:
    statement = dict(GOOD, Sid="same")
    text = json.dumps({"Version": "2012-10-17", "Statement": [statement, statement]})
    with pytest.raises(MalformedPolicy, match="must be unique"):
        parse_policy(text, resource_policy=True, bucket=BUCKET)


@pytest.mark.parametrize(
    "condition",
    [
        {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}},
        {"StringEquals": {"aws:PrincipalOrgID": "o-123"}},
        {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        {"StringEquals": {"aws:PrincipalTag/team": "x"}},
        {"StringEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "k"}},
    ],
)
def test_keys_we_cannot_give_are_refused_not_ignored(condition: Mapping[str, Any]) -> None:
    with pytest.raises(UnsupportedPolicy, match="not supported"):
        parse_policy(_doc(Condition=condition), resource_policy=True, bucket=BUCKET)


def test_identity_policies() -> None:
    with pytest.raises(MalformedPolicy, match="should not specify a principal"):
        parse_policy(_doc(), resource_policy=False)
    text = json.dumps({"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}})
    policy = parse_policy(text, resource_policy=False)
    assert policy.version == "2008-10-17"
    assert effect(policy, request(ALICE, "s3:DeleteBucket", None, bucket="any")) == "Allow"
    assert not policy.is_public()


def test_wildcard_bucket_resource_must_match_the_bucket() -> None:
    assert parse_policy(_doc(Resource="arn:aws:s3:::pho*/*"), resource_policy=True, bucket=BUCKET)
    ok = parse_policy(_doc(Action="s3:*", Resource="arn:aws:s3:::photo?*"), resource_policy=True, bucket=BUCKET)
    assert effect(ok, request(action="s3:ListBucket", key=None)) == "Allow"
    with pytest.raises(MalformedPolicy, match="invalid resource"):
        parse_policy(_doc(Resource="arn:aws:s3:::x*/*"), resource_policy=True, bucket=BUCKET)


def test_policy_keeps_its_text() -> None:
    text = _doc()
    assert parse_policy(text, resource_policy=True, bucket=BUCKET).text == text


# -- fuzz: any document parses to a Policy or raises MalformedPolicy, and a Policy evaluates

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(
        [
            "*",
            "s3:*",
            "s3:GetObject",
            "s3:List*",
            "Allow",
            "Deny",
            "arn:aws:s3:::photos",
            "arn:aws:s3:::photos/*",
            "arn:aws:s3:::photos/${aws:username}/*",
            f"arn:aws:iam::{OWNER}:root",
            f"arn:aws:iam::{OWNER}:user/alice",
            OWNER,
            "2012-10-17",
            "2008-10-17",
            "10.0.0.0/8",
            "::1",
            "${aws:username}",
            "${*}",
            "true",
            "2030-01-01T00:00:00Z",
        ]
    ),
)
_NAMES = st.sampled_from(
    ["Version", "Id", "Statement", "Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction"]
    + ["Resource", "NotResource", "Condition", "AWS", "CanonicalUser", "Service", "aws:SourceIp", "s3:prefix"]
    + ["aws:SecureTransport", "aws:CurrentTime", "s3:max-keys", "aws:username", "ForAllValues:StringLike"]
    + list(OPERATORS)
    + [o + "IfExists" for o in OPERATORS[:5]]
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_NAMES | st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=30,
)

_FUZZ_REQUESTS = [
    request(ANONYMOUS),
    request(ALICE, "s3:ListBucket", None, s3__prefix="alice/", aws__SourceIp="10.1.2.3", aws__SecureTransport="true"),
    request(STRANGER_USER, "s3:PutObject", "a/b", s3__max_keys="abc", aws__CurrentTime="garbage"),
]


def _survives(text: str, resource_policy: bool) -> None:
    try:
        policy = parse_policy(text, resource_policy=resource_policy, bucket=BUCKET if resource_policy else None)
    except MalformedPolicy as e:
        assert e.message
        return
    for req in _FUZZ_REQUESTS:
        verdict = policy.evaluate(req)
        assert verdict.effect in (None, "Allow", "Deny")
    policy.is_public()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=_JSON, resource_policy=st.booleans())
def test_fuzz_json_documents(document: Any, resource_policy: bool) -> None:
    _survives(json.dumps(document), resource_policy)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statement=st.dictionaries(_NAMES, _JSON, max_size=7), version=st.sampled_from(["2012-10-17", "2008-10-17"]))
def test_fuzz_statements(statement: dict[str, Any], version: str) -> None:
    base = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::photos/*"}
    _survives(json.dumps({"Version": version, "Statement": [{**base, **statement}]}), True)
    _survives(json.dumps({"Version": version, "Statement": [{**base, **statement}]}), False)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_fuzz_text(text: str) -> None:
    _survives(text, True)
    _survives("{" + text, True)


_CONDITION_KEYS = st.sampled_from(sorted(KEYS) + ["s3:ExistingObjectTag/a", "s3:RequestObjectTag/b", "nope:x"])
_OPERATOR_NAMES = st.sampled_from(list(OPERATORS)).flatmap(
    lambda op: st.sampled_from([op, op + "IfExists", "ForAnyValue:" + op, "ForAllValues:" + op])
)
_CONDITION_VALUES = st.one_of(
    _SCALARS, st.lists(_SCALARS, max_size=3), st.sampled_from(["10.0.0.0/33", "::/0", "2030-13-01", "1e999"])
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    condition=st.dictionaries(
        _OPERATOR_NAMES, st.dictionaries(_CONDITION_KEYS, _CONDITION_VALUES, min_size=1, max_size=3), max_size=3
    ),
    action=st.sampled_from(["s3:GetObject", "s3:ListBucket", "s3:*", "s3:PutObject"]),
)
def test_fuzz_conditions(condition: dict[str, Any], action: str) -> None:
    statement = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": action,
        "Resource": ["arn:aws:s3:::photos", "arn:aws:s3:::photos/*"],
        "Condition": condition,
    }
    _survives(json.dumps({"Version": "2012-10-17", "Statement": [statement]}), True)
