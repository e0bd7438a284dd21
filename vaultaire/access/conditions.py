"""A statement's Condition block: the keys we know, the operators, and their evaluation.

Semantics follow AWS's IAM reference (condition operators, single- and
multivalued keys): operators in a block AND together, keys within an operator
AND together, values of one key OR together. A key absent from the request
makes a positive operator false and a negated one (``StringNotEquals``,
``NotIpAddress``...) true; ``...IfExists`` makes any operator true on an absent
key; ``Null`` tests presence. ``ForAnyValue:`` is true when some request value
matches; ``ForAllValues:`` when every one does (and on an absent key). Without
a set operator, a key holding several values matches when any of them does
(a negated operator: when none does).

Every key a policy may name is in ``KEYS``. A key AWS defines that this server
does not put in a request (``aws:SourceVpce``, ``aws:PrincipalOrgID``...) is
refused with ``UnsupportedPolicy`` rather than accepted and never true, which
would silently disarm a Deny.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from attrs import frozen

from vaultaire.access.patterns import Lookup, MalformedPolicy, Matcher, Template, UnsupportedPolicy, template


@frozen
class Key:
    """A condition key: its type and where its value comes from (for whoever builds the request context)."""

    kind: str  # string, numeric, date, bool, ip, arn
    source: str  # principal (derived by the policy code), clock, request (the context), object (stored)
    multi: bool = False  # a multivalued key (a set of values), for ForAnyValue/ForAllValues
    actions: frozenset[str] | None = None  # the lower-case S3 actions it applies to; None: any


_LIST = frozenset({"s3:listbucket", "s3:listbucketversions"})
_ACL_WRITES = frozenset(
    {"s3:putobject", "s3:putobjectacl", "s3:putobjectversionacl", "s3:putbucketacl", "s3:createbucket"}
)
_VERSIONED = frozenset(
    {
        "s3:getobjectversion",
        "s3:getobjectversionacl",
        "s3:getobjectversiontagging",
        "s3:getobjectversionattributes",
        "s3:deleteobjectversion",
        "s3:deleteobjectversiontagging",
        "s3:putobjectversionacl",
        "s3:putobjectversiontagging",
    }
)

# Every condition key this server evaluates, lower-case (AWS's key names are case-insensitive).
KEYS: dict[str, Key] = {
    # Who asks: derived from the request's principal by the policy code itself.
    "aws:username": Key("string", "principal"),
    "aws:userid": Key("string", "principal"),
    "aws:principalaccount": Key("string", "principal"),
    "aws:principalarn": Key("arn", "principal"),
    "aws:principaltype": Key("string", "principal"),
    # When: from the request context, else the clock.
    "aws:currenttime": Key("date", "clock"),
    "aws:epochtime": Key("date", "clock"),
    # The request: put in AccessRequest.context by the authorization step.
    "aws:sourceip": Key("ip", "request"),
    "aws:securetransport": Key("bool", "request"),
    "aws:useragent": Key("string", "request"),
    "aws:referer": Key("string", "request"),
    "s3:authtype": Key("string", "request"),  # REST-HEADER, REST-QUERY-STRING, POST
    "s3:signatureversion": Key("string", "request"),  # AWS (V2) or AWS4-HMAC-SHA256
    "s3:prefix": Key("string", "request", actions=_LIST),
    "s3:delimiter": Key("string", "request", actions=_LIST),
    "s3:max-keys": Key("numeric", "request", actions=_LIST),
    "s3:versionid": Key("string", "request", actions=_VERSIONED),
    "s3:x-amz-acl": Key("string", "request", actions=_ACL_WRITES),
    "s3:x-amz-grant-read": Key("string", "request", actions=_ACL_WRITES),
    "s3:x-amz-grant-write": Key("string", "request", actions=_ACL_WRITES),
    "s3:x-amz-grant-read-acp": Key("string", "request", actions=_ACL_WRITES),
    "s3:x-amz-grant-write-acp": Key("string", "request", actions=_ACL_WRITES),
    "s3:x-amz-grant-full-control": Key("string", "request", actions=_ACL_WRITES),
    "s3:x-amz-content-sha256": Key("string", "request"),
    "s3:x-amz-copy-source": Key("string", "request"),
    "s3:x-amz-metadata-directive": Key("string", "request"),
    "s3:x-amz-server-side-encryption": Key("string", "request"),
    "s3:x-amz-server-side-encryption-customer-algorithm": Key("string", "request"),
    "s3:x-amz-storage-class": Key("string", "request"),
    "s3:x-amz-object-ownership": Key("string", "request", actions=frozenset({"s3:createbucket"})),
    "s3:object-lock-mode": Key("string", "request"),
    "s3:object-lock-retain-until-date": Key("date", "request"),
    "s3:object-lock-legal-hold": Key("string", "request"),
    "s3:requestobjecttagkeys": Key("string", "request", multi=True),
}
# Keys with a name after the slash (a tag key, case-sensitive in S3, lower-cased in the context).
PREFIX_KEYS: dict[str, Key] = {
    "s3:requestobjecttag/": Key("string", "request"),
    "s3:existingobjecttag/": Key("string", "object"),
}

# Keys AWS defines that nothing here gives a value to: refused with 501, never silently false.
# (A key moves to KEYS once api/condition_keys.py puts it in the request context.)
KNOWN_UNSUPPORTED = frozenset(
    """aws:sourcevpc aws:sourcevpce aws:vpcsourceip aws:principalorgid aws:principalorgpaths
    aws:principalisawsservice aws:principalservicename aws:principalservicenameslist aws:sourcearn
    aws:sourceaccount aws:sourceowner aws:sourceorgid aws:sourceorgpaths aws:multifactorauthpresent
    aws:multifactorauthage aws:tokenissuetime aws:viaawsservice aws:calledvia aws:calledviafirst
    aws:calledvialast aws:federatedprovider aws:requestedregion aws:tagkeys aws:resourceaccount
    aws:resourceorgid aws:resourceorgpaths aws:sourceidentity aws:ec2instancesourcevpc
    aws:ec2instancesourceprivateipv4 aws:assumedroot aws:isMcpServiceAction s3:tlsversion
    s3:x-amz-server-side-encryption-aws-kms-key-id s3:x-amz-website-redirect-location
    s3:objectcreationoperation s3:resourceaccount s3:accesspointnetworkorigin s3:dataaccesspointaccount
    s3:dataaccesspointarn s3:accessgrantsinstancearn s3:if-match s3:if-none-match
    s3:x-amz-checksum-algorithm s3:signatureage s3:locationconstraint
    s3:object-lock-remaining-retention-days""".lower().split()
)
KNOWN_UNSUPPORTED_PREFIXES = ("aws:principaltag/", "aws:requesttag/", "aws:resourcetag/", "s3:bucket")


@lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # Parsing an address costs more than the rest of a condition; a client's address repeats.
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def check_key(name: str) -> str:
    """The key's canonical (lower-case) name; MalformedPolicy or UnsupportedPolicy if we cannot give it."""
    key = name.lower()
    if key in KEYS:
        return key
    for prefix in PREFIX_KEYS:
        if key.startswith(prefix) and len(key) > len(prefix):
            return key
    if key in KNOWN_UNSUPPORTED or key.startswith(KNOWN_UNSUPPORTED_PREFIXES):
        raise UnsupportedPolicy(f"The condition key {name} is not supported by this server")
    raise MalformedPolicy(f"Policy has an invalid condition key: {name}")


def key_info(key: str) -> Key:
    found = KEYS.get(key)
    if found is not None:
        return found
    for prefix, info in PREFIX_KEYS.items():
        if key.startswith(prefix):
            return info
    raise KeyError(key)


# -- operators: family, negated

_OPERATORS: dict[str, tuple[str, bool]] = {
    "StringEquals": ("string", False),
    "StringNotEquals": ("string", True),
    "StringEqualsIgnoreCase": ("istring", False),
    "StringNotEqualsIgnoreCase": ("istring", True),
    "StringLike": ("like", False),
    "StringNotLike": ("like", True),
    "NumericEquals": ("numeric=", False),
    "NumericNotEquals": ("numeric=", True),
    "NumericLessThan": ("numeric<", False),
    "NumericLessThanEquals": ("numeric<=", False),
    "NumericGreaterThan": ("numeric>", False),
    "NumericGreaterThanEquals": ("numeric>=", False),
    "DateEquals": ("date=", False),
    "DateNotEquals": ("date=", True),
    "DateLessThan": ("date<", False),
    "DateLessThanEquals": ("date<=", False),
    "DateGreaterThan": ("date>", False),
    "DateGreaterThanEquals": ("date>=", False),
    "Bool": ("bool", False),
    "BinaryEquals": ("binary", False),
    "IpAddress": ("ip", False),
    "NotIpAddress": ("ip", True),
    "ArnEquals": ("arn", False),
    "ArnLike": ("arn", False),
    "ArnNotEquals": ("arn", True),
    "ArnNotLike": ("arn", True),
    "Null": ("null", False),
}
OPERATORS = tuple(_OPERATORS)

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

# One value matcher: (request value, lookup) -> does it match any of the statement's values?
ValueTest = Callable[[str, Lookup], bool]
Check = Callable[[Lookup], bool]


@frozen
class Operator:
    name: str  # as written
    family: str
    negated: bool
    if_exists: bool
    qualifier: str  # "", "ForAnyValue" or "ForAllValues"


def parse_operator(name: str) -> Operator:
    qualifier = ""
    base = name
    for prefix in ("ForAnyValue:", "ForAllValues:"):
        if name.startswith(prefix):
            qualifier = prefix[:-1]
            base = name[len(prefix) :]
    if_exists = base.endswith("IfExists") and base != "IfExists"
    if if_exists:
        base = base[: -len("IfExists")]
    found = _OPERATORS.get(base)
    if found is None or (if_exists and base == "Null"):
        raise MalformedPolicy(f"Invalid Condition type : {name}")
    return Operator(name, found[0], found[1], if_exists, qualifier)


@lru_cache(maxsize=1024)
def number(text: str) -> float | None:
    text = text.strip()
    if not _NUMBER.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


@lru_cache(maxsize=1024)  # a request's aws:CurrentTime is the same string for a whole second
def timestamp(text: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 date (UTC unless it says otherwise) or of an epoch number."""
    text = text.strip()
    if _NUMBER.match(text):
        value = float(text)
        return value if math.isfinite(value) else None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _strings(operator: str, key: str, raw: Any) -> list[str]:
    """A key's values: one JSON scalar or a non-empty list of them, as text (true -> "true")."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise MalformedPolicy(f"Condition {operator} for key {key} has no value")
    out = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, int | float) and not isinstance(item, bool):
            if isinstance(item, float) and not math.isfinite(item):
                raise MalformedPolicy(f"Condition {operator} for key {key} has an invalid value")
            out.append(str(item))
        elif isinstance(item, str):
            out.append(item)
        else:
            raise MalformedPolicy(f"Condition {operator} for key {key} must have a string or a list of strings")
    return out


def _arn_parts(text: str) -> list[str]:
    return text.split(":", 5)


def _value_test(op: Operator, key: str, values: list[str], variables: bool) -> ValueTest:
    """Compile the statement's values for one key into one test of a request value."""
    family = op.family

    def tmpl(text: str) -> Template:
        return template(text, variables=variables, check_key=check_key)

    if family in ("string", "istring"):
        fold = family == "istring"
        templates = [tmpl(v) for v in values]
        # A fixed template may still hold ${*}: its rendering is its value.
        fixed = frozenset(
            (s.casefold() if fold else s)
            for s in (t.render(None, wildcards=False) for t in templates if t.is_fixed)
            if s is not None
        )
        variable = tuple(t for t in templates if not t.is_fixed)

        def string_test(value: str, lookup: Lookup) -> bool:
            probe = value.casefold() if fold else value
            if probe in fixed:
                return True
            for item in variable:
                rendered = item.render(lookup, wildcards=False)
                if rendered is not None and (rendered.casefold() if fold else rendered) == probe:
                    return True
            return False

        return string_test
    if family == "like":
        matcher = Matcher([tmpl(v) for v in values])
        return lambda value, lookup: matcher.matches(value, lookup)
    if family.startswith("numeric") or family.startswith("date"):
        is_date = family.startswith("date")
        compare = _COMPARE[family[4:] if is_date else family[7:]]
        parse = timestamp if is_date else number
        bounds = []
        for text in values:
            parsed = parse(text)
            if parsed is None:
                kind = "date" if is_date else "number"
                raise MalformedPolicy(f"Condition {op.name} for key {key} has an invalid {kind}: {text}")
            bounds.append(parsed)

        def compare_test(value: str, lookup: Lookup) -> bool:
            got = parse(value)
            return got is not None and any(compare(got, bound) for bound in bounds)

        return compare_test
    if family == "bool":
        wanted = set()
        for text in values:
            if text.lower() not in ("true", "false"):
                raise MalformedPolicy(f"Condition {op.name} for key {key} must be true or false")
            wanted.add(text.lower())
        return lambda value, lookup: value.lower() in wanted
    if family == "binary":
        blobs = set()
        for text in values:
            try:
                blobs.add(base64.b64decode(text, validate=True))
            except (binascii.Error, ValueError):
                raise MalformedPolicy(f"Condition {op.name} for key {key} must be base64") from None
        return lambda value, lookup: value.encode("utf-8", "surrogateescape") in blobs
    if family == "ip":
        networks = []
        for text in values:
            try:
                networks.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise MalformedPolicy("Invalid IP address in Conditions") from None

        def ip_test(value: str, lookup: Lookup) -> bool:
            address = _address(value)
            if address is None:
                return False
            return any(address.version == net.version and address in net for net in networks)

        return ip_test
    if family == "arn":
        # Each of an ARN's six colon-separated parts is matched alone: a wildcard never spans a colon.
        patterns = []
        for text in values:
            parts = _arn_parts(text)
            if len(parts) != 6 and text != "*":
                raise MalformedPolicy(f"Condition {op.name} for key {key} has an invalid ARN: {text}")
            patterns.append([Matcher([tmpl(p)]) for p in parts] if text != "*" else None)

        def arn_test(value: str, lookup: Lookup) -> bool:
            got = _arn_parts(value)
            for pattern in patterns:
                if pattern is None:
                    return True
                if len(got) == 6 and all(m.matches(g, lookup) for m, g in zip(pattern, got, strict=True)):
                    return True
            return False

        return arn_test
    raise AssertionError(family)  # pragma: no cover - every family is handled above


def _check(op: Operator, key: str, test: ValueTest) -> Check:
    negated = op.negated

    def one(value: str, lookup: Lookup) -> bool:
        return test(value, lookup) != negated

    if op.qualifier == "ForAllValues":

        def for_all(lookup: Lookup) -> bool:
            values = lookup(key)
            return not values or all(one(v, lookup) for v in values)

        return for_all
    if op.qualifier == "ForAnyValue":

        def for_any(lookup: Lookup) -> bool:
            values = lookup(key)
            if not values:
                return op.if_exists
            return any(one(v, lookup) for v in values)

        return for_any

    def single(lookup: Lookup) -> bool:
        values = lookup(key)
        if not values:
            return op.if_exists or negated
        matched = any(test(v, lookup) for v in values)
        return matched != negated

    return single


def _null_check(key: str, op: Operator, values: list[str]) -> Check:
    wanted = set()
    for text in values:
        if text.lower() not in ("true", "false"):
            raise MalformedPolicy(f"Condition Null for key {key} must be true or false")
        wanted.add(text.lower() == "true")

    def null(lookup: Lookup) -> bool:
        return (not lookup(key)) in wanted

    return null


@frozen
class Conditions:
    """A compiled Condition block: every check must hold."""

    checks: tuple[Check, ...]
    keys: frozenset[str]  # the lower-case keys it reads (variables in its values included)
    # (key, operator, values) of positive, exact, present-only tests: what is_public() reads
    pins: tuple[tuple[str, Operator, tuple[str, ...]], ...]

    def holds(self, lookup: Lookup) -> bool:
        return all(check(lookup) for check in self.checks)


EMPTY = Conditions((), frozenset(), ())


def compile_block(raw: Any, *, variables: bool, actions: Iterable[str] | None) -> Conditions:
    """Validate and compile a statement's Condition; ``actions``: its concrete lower-case actions, if any."""
    if raw is None:
        return EMPTY
    if not isinstance(raw, Mapping):
        raise MalformedPolicy("Condition must be an object mapping operators to keys and values")
    concrete = [a for a in (actions or ()) if "*" not in a and "?" not in a]
    checks: list[Check] = []
    keys: set[str] = set()
    pins = []
    for op_name, body in raw.items():
        op = parse_operator(op_name)
        if not isinstance(body, Mapping) or not body:
            raise MalformedPolicy(f"Condition {op_name} must map condition keys to values")
        for key_name, raw_values in body.items():
            key = check_key(key_name)
            info = key_info(key)
            if info.actions is not None and any(a not in info.actions for a in concrete):
                raise MalformedPolicy("Conditions do not apply to combination of actions and resources in statement")
            values = _strings(op_name, key_name, raw_values)
            if key == "aws:sourceip" and op.family not in ("ip", "null"):
                # AWS reads aws:SourceIp as an address whatever the operator.
                for value in values:
                    try:
                        ipaddress.ip_network(value.strip(), strict=False)
                    except ValueError:
                        raise MalformedPolicy("Invalid IP address in Conditions") from None
            keys.add(key)
            if op.family == "null":
                checks.append(_null_check(key, op, values))
                continue
            test = _value_test(op, key, values, variables)
            for value in values:
                if variables:
                    keys.update(template(value, variables=True, check_key=check_key).variables)
            checks.append(_check(op, key, test))
            if not op.negated and not op.if_exists and op.qualifier != "ForAllValues":
                pins.append((key, op, tuple(values)))
    return Conditions(tuple(checks), frozenset(keys), tuple(pins))
