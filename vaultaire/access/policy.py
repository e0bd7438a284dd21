"""AWS's JSON policy language: bucket policies and users' identity policies, parsed once, evaluated cheaply.

``parse_policy`` validates a document as S3 does on PutBucketPolicy (the
messages are S3's where S3 has one) and compiles it: wildcards become
precompiled regexes, conditions become closures. ``Policy.evaluate`` answers
one request: a matching Deny wins over any Allow; no matching statement is
``Verdict(None)``, for the decision step (access/decide.py) to combine with the
other documents. Nothing here does I/O.

Principals name tenants (AWS's accounts) and their users:
``arn:aws:iam::TENANT_ID:root``, the bare ``TENANT_ID``, ``{"CanonicalUser":
TENANT_ID}`` (the Owner ID ListBuckets shows) for a whole tenant;
``arn:aws:iam::TENANT_ID:user/NAME`` for one user; ``"*"`` for everyone,
anonymous callers included. As on AWS, a bucket policy's Allow naming the
bucket owner's own account only delegates to that account: it admits the
tenant's root user, while its other users still need their identity policy.
Naming another account admits its users, whose own identity policy the
decision step then also asks.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from attrs import frozen

from vaultaire.access import policy_actions
from vaultaire.access.conditions import EMPTY, Conditions, check_key, compile_block
from vaultaire.access.patterns import (
    Lookup,
    MalformedPolicy,
    Matcher,
    Template,
    UnsupportedPolicy,
    has_wildcard,
    template,
    wildcard_regex,
)
from vaultaire.access.request import AccessRequest, Principal

__all__ = ["MalformedPolicy", "UnsupportedPolicy", "Policy", "Verdict", "parse_policy", "VERSIONS"]

VERSIONS = ("2012-10-17", "2008-10-17")
_TOP_FIELDS = frozenset({"Version", "Id", "Statement"})
_STATEMENT_FIELDS = frozenset(
    {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"}
)
_ACCOUNT = r"[0-9A-Za-z][0-9A-Za-z-]{0,63}"
_ACCOUNT_ONLY = re.compile(rf"^{_ACCOUNT}$")
_ROOT_ARN = re.compile(rf"^arn:aws:iam::({_ACCOUNT}):root$")
_USER_ARN = re.compile(rf"^arn:aws:iam::({_ACCOUNT}):user/([\w+=,.@-]{{1,64}})$")
_S3_ARN = "arn:aws:s3:::"
# Keys whose fixed values restrict a statement to known callers (S3's "The meaning of public").
_RESTRICTING = frozenset({"aws:sourceip", "aws:principalaccount", "aws:principalarn", "aws:userid"})
# aws:SourceIp ranges wider than these prefixes still reach much of the internet: public.
_MIN_PREFIX = {4: 8, 6: 32}
_MEMO_LIMIT = 4096


@frozen
class Verdict:
    """What one policy says of one request: "Allow", "Deny" or None (no statement matched)."""

    effect: str | None
    statement: str  # the deciding statement's Sid, or "#index" (from 0); "" when none matched


NO_MATCH = Verdict(None, "")


@frozen
class _Principals:
    everyone: bool
    accounts: frozenset[str] = frozenset()
    users: frozenset[tuple[str, str]] = frozenset()

    def names(self, principal: Principal, *, delegate_to: str | None) -> bool:
        """Whether this set names ``principal``; an account named is ``delegate_to`` only admits its root."""
        if self.everyone:
            return True
        if principal.anonymous:
            return False
        if (principal.tenant_id, principal.user) in self.users:
            return True
        if principal.tenant_id in self.accounts:
            return principal.tenant_id != delegate_to or not principal.user
        return False


@frozen
class _Statement:
    label: str
    allow: bool
    principals: _Principals | None  # None: an identity policy's statement (its principal is its owner)
    not_principal: bool
    actions: re.Pattern[str]
    not_action: bool
    resources: Matcher
    not_resource: bool
    conditions: Conditions
    keys: frozenset[str]  # every condition key it reads: its conditions', its resources' variables

    def admits(self, principal: Principal, bucket_owner: str) -> bool:
        """Whether the statement's Principal (NotPrincipal) covers this caller of this owner's bucket."""
        if self.principals is None:
            return True
        delegate = bucket_owner if self.allow and not self.not_principal else None
        return self.principals.names(principal, delegate_to=delegate) != self.not_principal

    def applies(self, resource: str, lookup: Lookup) -> bool:
        """For a caller it admits: whether the resource and the conditions match."""
        if self.resources.matches(resource, lookup) == self.not_resource:
            return False
        return not self.conditions.checks or self.conditions.holds(lookup)


class _Facts:
    """The request's condition keys: the principal's own (never taken from the context), then the context."""

    __slots__ = ("_request",)

    def __init__(self, request: AccessRequest) -> None:
        self._request = request

    def __call__(self, key: str) -> tuple[str, ...] | None:
        principal = self._request.principal
        if key.startswith("aws:") and key in _PRINCIPAL_KEYS:
            return _PRINCIPAL_KEYS[key](principal)
        values = self._request.context.get(key)
        if values is None and key in ("aws:currenttime", "aws:epochtime"):
            now = time.time()
            if key == "aws:epochtime":
                return (str(int(now)),)
            return (datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),)
        return values


def _userid(p: Principal) -> tuple[str, ...]:
    if p.anonymous:
        return ("anonymous",)
    return (p.user_id or p.tenant_id,) if p.user else (p.tenant_id,)


_PRINCIPAL_KEYS = {
    "aws:username": lambda p: (p.user,) if p.user and not p.anonymous else None,
    "aws:userid": _userid,
    "aws:principalaccount": lambda p: None if p.anonymous else (p.tenant_id,),
    "aws:principalarn": lambda p: None if p.anonymous else (p.arn,),
    "aws:principaltype": lambda p: ("Anonymous",) if p.anonymous else ("User",) if p.user else ("Account",),
}


class Policy:
    """A parsed, validated, compiled policy document."""

    def __init__(self, text: str, version: str, statements: tuple[_Statement, ...], public: bool) -> None:
        self.text = text
        self.version = version
        self._statements = statements
        self._public = public
        self._by_action: dict[str, tuple[_Statement, ...]] = {}
        self._by_caller: dict[tuple[str, str, str, bool, str], tuple[_Statement, ...]] = {}
        self._denies: dict[str, tuple[_Statement, ...]] = {}
        keys: set[str] = set()
        accounts: set[str] = set()
        users: set[tuple[str, str]] = set()
        for statement in statements:
            keys |= statement.keys
            if statement.principals is not None:
                accounts |= statement.principals.accounts
                users |= statement.principals.users
        self.keys = frozenset(keys)
        self._needs_object_tags = any(key.startswith("s3:existingobjecttag/") for key in self.keys)
        # The tenants and (tenant, user) pairs its principals name, for a check that they exist.
        self.accounts = frozenset(accounts)
        self.users = frozenset(users)

    def __len__(self) -> int:
        return len(self._statements)

    @property
    def needs_object_tags(self) -> bool:
        """Whether evaluating needs the object's stored tags (s3:ExistingObjectTag/<key> in the context)."""
        return self._needs_object_tags

    def evaluate(self, request: AccessRequest) -> Verdict:
        principal = request.principal
        # The statements whose action and principal cover this request depend on those alone:
        # remembered, so a request walks only its own few statements' resources and conditions.
        memo_key = (request.action, principal.tenant_id, principal.user, principal.anonymous, request.bucket_owner)
        statements = self._by_caller.get(memo_key)
        if statements is None:
            owner = request.bucket_owner
            statements = tuple(s for s in self._for_action(request.action) if s.admits(principal, owner))
            if len(self._by_caller) < _MEMO_LIMIT:
                self._by_caller[memo_key] = statements
        if not statements:
            return NO_MATCH
        resource = request.resource
        lookup = _Facts(request)
        allowed: _Statement | None = None
        for statement in statements:
            if statement.applies(resource, lookup):
                if not statement.allow:
                    return Verdict("Deny", statement.label)
                if allowed is None:
                    allowed = statement
        return Verdict("Allow", allowed.label) if allowed is not None else NO_MATCH

    def denies(self, request: AccessRequest) -> Verdict:
        """Only the Deny statements ("Deny" or no match): all the decision needs when nothing but an
        explicit deny can refuse the request (the owner's root user), at a fraction of the cost."""
        found = self._denies.get(request.action)
        if found is None:
            found = tuple(s for s in self._for_action(request.action) if not s.allow)
            if len(self._denies) < _MEMO_LIMIT:
                self._denies[request.action] = found
        if not found:
            return NO_MATCH
        lookup = _Facts(request)
        resource = request.resource
        for statement in found:
            if statement.admits(request.principal, request.bucket_owner) and statement.applies(resource, lookup):
                return Verdict("Deny", statement.label)
        return NO_MATCH

    def is_public(self) -> bool:
        """S3's PolicyStatus.IsPublic: an Allow to everyone that no fixed condition pins down."""
        return self._public

    def _for_action(self, action: str) -> tuple[_Statement, ...]:
        found = self._by_action.get(action)
        if found is None:
            found = tuple(s for s in self._statements if bool(s.actions.fullmatch(action)) != s.not_action)
            if len(self._by_action) < _MEMO_LIMIT:
                self._by_action[action] = found
        return found


def parse_policy(text: str, *, resource_policy: bool, bucket: str | None = None) -> Policy:
    """Validate and compile a policy; a bucket policy (``resource_policy``) must name ``bucket``'s resources.

    Raises MalformedPolicy (UnsupportedPolicy for valid AWS features this server cannot evaluate).
    """
    if not isinstance(text, str):
        raise MalformedPolicy("This policy contains invalid Json")
    if not text.lstrip().startswith("{"):
        raise MalformedPolicy("Policies must be valid JSON and the first byte must be '{'")
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except MalformedPolicy:
        raise
    except (ValueError, RecursionError):
        raise MalformedPolicy("This policy contains invalid Json") from None
    if not isinstance(document, dict):
        raise MalformedPolicy("Policies must be valid JSON and the first byte must be '{'")
    for name in document:
        if name not in _TOP_FIELDS:
            raise MalformedPolicy(f"Unknown field {name}")
    version = document.get("Version", "2008-10-17")
    if version not in VERSIONS:
        raise MalformedPolicy("The policy must contain a valid version string")
    if "Id" in document and not isinstance(document["Id"], str):
        raise MalformedPolicy("Id must be a string")
    if "Statement" not in document:
        raise MalformedPolicy("Missing required field Statement")
    raw = document["Statement"]
    raw_statements = raw if isinstance(raw, list) else [raw]
    if not raw_statements:
        raise MalformedPolicy("Could not parse the policy: Statement is empty!")
    sids: set[str] = set()
    statements = []
    public = False
    for index, item in enumerate(raw_statements):
        statement, item_public = _statement(item, index, version, resource_policy, bucket, sids)
        statements.append(statement)
        public = public or item_public
    return Policy(text, version, tuple(statements), public)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON parsers disagree on a repeated name (first or last wins?): a policy must not depend on which.
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise MalformedPolicy(f"Duplicate field {name}")
        out[name] = value
    return out


def _no_constant(name: str) -> Any:
    raise MalformedPolicy("This policy contains invalid Json")


def _statement(
    item: Any, index: int, version: str, resource_policy: bool, bucket: str | None, sids: set[str]
) -> tuple[_Statement, bool]:
    if not isinstance(item, dict):
        raise MalformedPolicy("Each Statement must be an object")
    for name in item:
        if name not in _STATEMENT_FIELDS:
            raise MalformedPolicy(f"Unknown field {name}")
    label = f"#{index}"
    if "Sid" in item:
        sid = item["Sid"]
        if not isinstance(sid, str):
            raise MalformedPolicy("Sid must be a string")
        if sid:
            if sid in sids:
                raise MalformedPolicy(f"Statement IDs (SID) in a single policy must be unique: {sid}")
            sids.add(sid)
            label = sid
    if "Effect" not in item:
        raise MalformedPolicy("Missing required field Effect")
    effect = item["Effect"]
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicy(f"Invalid effect: {effect}")
    variables = version == "2012-10-17"

    principals: _Principals | None = None
    not_principal = "NotPrincipal" in item
    if resource_policy:
        if ("Principal" in item) == not_principal:
            if not_principal:
                raise MalformedPolicy("A statement cannot have both Principal and NotPrincipal")
            raise MalformedPolicy("Missing required field Principal")
        principals = _principals(item["NotPrincipal" if not_principal else "Principal"])
    elif "Principal" in item or not_principal:
        raise MalformedPolicy("Policy document should not specify a principal")

    action_patterns, not_action = _pair(item, "Action", "NotAction", "action")
    for pattern in action_patterns:
        _check_action(pattern)
    actions = re.compile(
        "|".join(f"(?:{wildcard_regex(p).pattern})" for p in action_patterns), re.IGNORECASE | re.DOTALL
    )

    resource_texts, not_resource = _pair(item, "Resource", "NotResource", "resource")
    resources = [_resource(text, variables, resource_policy, bucket) for text in resource_texts]
    if resource_policy and not not_action and not not_resource and bucket is not None:
        _check_levels(action_patterns, resources, bucket)

    conditions = EMPTY
    if "Condition" in item:
        concrete = [p.lower() for p in action_patterns] if resource_policy and not not_action else None
        conditions = compile_block(item["Condition"], variables=variables, actions=concrete)

    statement = _Statement(
        label=label,
        allow=effect == "Allow",
        principals=principals,
        not_principal=not_principal,
        actions=actions,
        not_action=not_action,
        resources=Matcher(resources),
        not_resource=not_resource,
        conditions=conditions,
        keys=conditions.keys | {key for resource in resources for key in resource.variables},
    )
    public = (
        statement.allow
        and principals is not None
        # Principal "*", or NotPrincipal of anything but "*": everyone (but a few) is admitted.
        and principals.everyone != not_principal
        and not _pinned(conditions)
    )
    return statement, public


def _pair(item: Mapping[str, Any], positive: str, negative: str, what: str) -> tuple[list[str], bool]:
    """The strings of Action or NotAction (Resource or NotResource): exactly one must be there."""
    if (positive in item) == (negative in item):
        if positive in item:
            raise MalformedPolicy(f"A statement cannot have both {positive} and {negative}")
        raise MalformedPolicy(f"Missing required field {positive}")
    name = positive if positive in item else negative
    raw = item[name]
    values = raw if isinstance(raw, list) else [raw]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise MalformedPolicy(f"Policy has invalid {what}")
    return values, name == negative


def _check_action(pattern: str) -> frozenset[str]:
    service, _, name = pattern.partition(":")
    if pattern != "*" and (service.lower() != "s3" or not name):
        raise MalformedPolicy(f"Policy has invalid action: {pattern}")
    known = policy_actions.expand(pattern)
    if not known:
        raise MalformedPolicy(f"Policy has invalid action: {pattern}")
    return known


def _principals(raw: Any) -> _Principals:
    if raw == "*":
        return _Principals(everyone=True)
    if not isinstance(raw, dict) or not raw:
        raise MalformedPolicy("Invalid principal in policy")
    accounts: set[str] = set()
    users: set[tuple[str, str]] = set()
    everyone = False
    for kind, value in raw.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v for v in values):
            raise MalformedPolicy("Invalid principal in policy")
        if kind == "AWS":
            for text in values:
                if text == "*":
                    everyone = True
                elif match := _ROOT_ARN.match(text):
                    accounts.add(match.group(1))
                elif match := _USER_ARN.match(text):
                    users.add((match.group(1), match.group(2)))
                elif _ACCOUNT_ONLY.match(text):
                    accounts.add(text)
                else:
                    raise MalformedPolicy(f"Invalid principal in policy: {text}")
        elif kind == "CanonicalUser":
            for text in values:
                if not _ACCOUNT_ONLY.match(text):
                    raise MalformedPolicy(f"Invalid principal in policy: {text}")
                accounts.add(text)
        elif kind in ("Service", "Federated"):
            # No AWS service or federated identity ever calls this server: the name matches nobody.
            continue
        else:
            raise MalformedPolicy("Invalid principal in policy")
    return _Principals(everyone, frozenset(accounts), frozenset(users))


def _resource(text: str, variables: bool, resource_policy: bool, bucket: str | None) -> Template:
    if text == "*" and not resource_policy:
        return template(text, variables=False, check_key=check_key)
    if not text.startswith(_S3_ARN):
        raise MalformedPolicy("Policy has invalid resource")
    parsed = template(text, variables=variables, check_key=check_key)
    if resource_policy and bucket is not None:
        name = text[len(_S3_ARN) :].split("/", 1)[0]
        if "${" in name or not wildcard_regex(name).fullmatch(bucket):
            raise MalformedPolicy("Policy has invalid resource")
    return parsed


def _check_levels(actions: Iterable[str], resources: list[Template], bucket: str) -> None:
    """S3's "Action does not apply to any resource(s) in statement": each action needs a resource of its kind."""
    covered = set()
    for resource in resources:
        rest = resource.source[len(_S3_ARN) :]
        name, slash, _ = rest.partition("/")
        if not slash or name.endswith("*"):
            if wildcard_regex(name).fullmatch(bucket):
                covered.add("bucket")
        if slash or name.endswith("*"):
            covered.add("object")
    for pattern in actions:
        levels = policy_actions.levels(pattern)
        if not (levels & covered):
            raise MalformedPolicy("Action does not apply to any resource(s) in statement")
        if not has_wildcard(pattern) and not levels <= covered:
            raise MalformedPolicy("Action does not apply to any resource(s) in statement")


def _pinned(conditions: Conditions) -> bool:
    """Whether a condition restricts the statement to fixed callers (so it is not public)."""
    for key, op, values in conditions.pins:
        if key not in _RESTRICTING or any("${" in v for v in values):
            continue
        if op.family in ("like", "arn") and any(has_wildcard(v) for v in values):
            continue
        if op.family == "ip":
            networks = [ipaddress.ip_network(v.strip(), strict=False) for v in values]
            if all(n.prefixlen >= _MIN_PREFIX[n.version] for n in networks):
                return True
            continue
        if op.family in ("string", "istring", "like", "arn"):
            return True
    return False
