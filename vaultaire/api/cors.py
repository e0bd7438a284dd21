"""CORS rules as S3 has them: parsed and validated from XML or config, matched, rendered.

Pure functions and values, no I/O: which rule allows a request and which
``Access-Control-*`` headers that rule gives. Matching follows S3: the first
rule whose AllowedOrigin (at most one ``*``, case-sensitive), AllowedMethod
(exact, upper case) and, for a preflight, every requested header (at most one
``*``, case-insensitive) match wins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from attrs import frozen

from vaultaire.api import xmlparse
from vaultaire.api.errors import S3Error
from vaultaire.api.xmlout import Element, element

METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")
MAX_RULES = 100
MAX_ID_LENGTH = 255
SETTING = "cors"  # the container setting's name in the catalog

# An HTTP header name (RFC 9110 token); '*' is allowed in AllowedHeader only.
_TOKEN = re.compile(r"^[!#$%&'+\-.^_`|~0-9A-Za-z]+$")
_ALLOWED_HEADER = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# An origin pattern ends up compared, never echoed; still, no spaces or control characters.
_ORIGIN = re.compile(r"^[\x21-\x7e]+$")

PREFLIGHT_VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"


@frozen
class Rule:
    """One CORSRule."""

    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    max_age: int | None = None
    id: str | None = None

    def origin_match(self, origin: str) -> str | None:
        """The AllowedOrigin pattern ``origin`` matches, if any."""
        for pattern in self.origins:
            if wildcard_match(pattern, origin):
                return pattern
        return None

    def allows_headers(self, requested: Iterable[str]) -> bool:
        allowed = [h.lower() for h in self.headers]
        return all(any(wildcard_match(a, h.lower()) for a in allowed) for h in requested)


@frozen
class Grant:
    """What a matching rule lets a response say."""

    rule: Rule
    allow_origin: str  # the request's Origin, or "*" when the rule allows any origin


def wildcard_match(pattern: str, value: str) -> bool:
    """``pattern`` with at most one ``*`` (any run of characters, empty included)."""
    star = pattern.find("*")
    if star < 0:
        return pattern == value
    head, tail = pattern[:star], pattern[star + 1 :]
    return len(value) >= len(head) + len(tail) and value.startswith(head) and value.endswith(tail)


def find(rules: Sequence[Rule], origin: str, method: str, requested_headers: Sequence[str] = ()) -> Grant | None:
    """The first rule allowing this origin, method and requested headers."""
    for rule in rules:
        pattern = rule.origin_match(origin)
        if pattern is None or method not in rule.methods or not rule.allows_headers(requested_headers):
            continue
        return Grant(rule, "*" if pattern == "*" else origin)
    return None


def response_headers(grant: Grant, requested_headers: Sequence[str] | None = None) -> dict[str, str]:
    """The Access-Control-* headers for a grant; ``requested_headers`` only for a preflight."""
    rule = grant.rule
    out = {
        "Access-Control-Allow-Origin": grant.allow_origin,
        "Access-Control-Allow-Methods": ", ".join(rule.methods),
    }
    if grant.allow_origin != "*":
        # A wildcard origin cannot be combined with credentials (Fetch standard); S3 does the same.
        out["Access-Control-Allow-Credentials"] = "true"
    if requested_headers:
        out["Access-Control-Allow-Headers"] = ", ".join(h.lower() for h in requested_headers)
    if rule.expose:
        out["Access-Control-Expose-Headers"] = ", ".join(rule.expose)
    if rule.max_age is not None:
        out["Access-Control-Max-Age"] = str(rule.max_age)
    return out


def requested_headers(value: str | None) -> list[str]:
    """Access-Control-Request-Headers as a list; a malformed one is S3's 400 BadRequest."""
    if value is None or not value.strip():
        return []
    names = [part.strip() for part in value.split(",")]
    for name in names:
        if not _TOKEN.match(name):
            raise S3Error("BadRequest", f'Access-Control-Request-Headers "{name}" contains invalid character.')
    return names


# -- validation, shared by PutBucketCors and the config file


def check(rule: Rule) -> None:
    """S3's InvalidRequest checks on one rule (structure is checked by the parser)."""
    for method in rule.methods:
        if method not in METHODS:
            raise S3Error(
                "InvalidRequest", f"Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            )
    for origin in rule.origins:
        if not _ORIGIN.match(origin):
            raise S3Error("InvalidRequest", f'AllowedOrigin "{origin}" contains invalid character.')
        if origin.count("*") > 1:
            raise S3Error("InvalidRequest", f'AllowedOrigin "{origin}" can not have more than one wildcard.')
    for header in rule.headers:
        if not _ALLOWED_HEADER.match(header):
            raise S3Error("InvalidRequest", f'AllowedHeader "{header}" contains invalid character.')
        if header.count("*") > 1:
            raise S3Error("InvalidRequest", f'AllowedHeader "{header}" can not have more than one wildcard.')
    for header in rule.expose:
        if "*" in header:
            raise S3Error(
                "InvalidRequest",
                f'ExposeHeader "{header}" contains wildcard. We currently do not support wildcard for ExposeHeader.',
            )
        if not _TOKEN.match(header):
            raise S3Error("InvalidRequest", f'ExposeHeader "{header}" contains invalid character.')
    if rule.max_age is not None and rule.max_age < 0:
        raise S3Error("InvalidRequest", "MaxAgeSeconds must not be negative.")
    if rule.id is not None and len(rule.id) > MAX_ID_LENGTH:
        raise S3Error("InvalidRequest", f"The ID of a CORSRule can be at most {MAX_ID_LENGTH} characters long.")


def _check_all(rules: Sequence[Rule]) -> tuple[Rule, ...]:
    if not rules or len(rules) > MAX_RULES:
        raise S3Error("MalformedXML", f"A CORS configuration has between 1 and {MAX_RULES} CORSRule elements.")
    for rule in rules:
        check(rule)
    return tuple(rules)


# -- XML (PutBucketCors, GetBucketCors)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


_LIST_FIELDS = {
    "AllowedOrigin": "origins",
    "AllowedMethod": "methods",
    "AllowedHeader": "headers",
    "ExposeHeader": "expose",
}


def parse_xml(body: bytes) -> tuple[Rule, ...]:
    """A PutBucketCors body, validated as S3 validates it."""
    root = xmlparse.parse(body)
    if _local(root.tag) != "CORSConfiguration":
        raise S3Error("MalformedXML")
    rules = []
    for node in root:
        if _local(node.tag) != "CORSRule":
            raise S3Error("MalformedXML", f"Unexpected element {_local(node.tag)} in CORSConfiguration.")
        rules.append(_parse_rule(node))
    return _check_all(rules)


def _parse_rule(node: Any) -> Rule:
    lists: dict[str, list[str]] = {field: [] for field in _LIST_FIELDS.values()}
    max_age: int | None = None
    rule_id: str | None = None
    for child in node:
        name = _local(child.tag)
        text = (child.text or "").strip()
        if name in _LIST_FIELDS:
            if not text:
                raise S3Error("MalformedXML", f"{name} must not be empty.")
            lists[_LIST_FIELDS[name]].append(text)
        elif name == "MaxAgeSeconds" and max_age is None:
            if not re.fullmatch(r"-?[0-9]{1,10}", text):
                raise S3Error("MalformedXML", "MaxAgeSeconds must be an integer.")
            max_age = int(text)
        elif name == "ID" and rule_id is None:
            rule_id = text
        else:
            raise S3Error("MalformedXML", f"Unexpected element {name} in CORSRule.")
    if not lists["origins"] or not lists["methods"]:
        raise S3Error("MalformedXML", "Each CORSRule needs at least one AllowedOrigin and one AllowedMethod.")
    return Rule(
        origins=tuple(lists["origins"]),
        methods=tuple(lists["methods"]),
        headers=tuple(lists["headers"]),
        expose=tuple(lists["expose"]),
        max_age=max_age,
        id=rule_id,
    )


def to_xml(rules: Sequence[Rule]) -> Element:
    """The GetBucketCors document, elements in the order S3 sends them."""
    out = []
    for rule in rules:
        children = [element("ID", rule.id)] if rule.id is not None else []
        children += [element("AllowedHeader", h) for h in rule.headers]
        children += [element("AllowedMethod", m) for m in rule.methods]
        children += [element("AllowedOrigin", o) for o in rule.origins]
        children += [element("ExposeHeader", h) for h in rule.expose]
        if rule.max_age is not None:
            children.append(element("MaxAgeSeconds", rule.max_age))
        out.append(element("CORSRule", *children))
    return element("CORSConfiguration", *out, xmlns=True)


# -- the stored form: JSON, parsed once per distinct document


def dumps(rules: Sequence[Rule]) -> str:
    return json.dumps(
        [
            {
                "origins": list(r.origins),
                "methods": list(r.methods),
                "headers": list(r.headers),
                "expose": list(r.expose),
                "max_age": r.max_age,
                "id": r.id,
            }
            for r in rules
        ],
        separators=(",", ":"),
    )


@lru_cache(maxsize=256)
def loads(document: str) -> tuple[Rule, ...]:
    """Rules from their stored form; cached, as the same few documents are read on every CORS request."""
    return tuple(
        Rule(
            origins=tuple(r["origins"]),
            methods=tuple(r["methods"]),
            headers=tuple(r["headers"]),
            expose=tuple(r["expose"]),
            max_age=r["max_age"],
            id=r["id"],
        )
        for r in json.loads(document)
    )


# -- the server-wide default from the config file

_CONFIG_KEYS = {
    "allowed_origins": "origins",
    "allowed_methods": "methods",
    "allowed_headers": "headers",
    "expose_headers": "expose",
    "max_age_seconds": "max_age",
    "id": "id",
}


def from_config(tables: Sequence[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """``[[cors.rules]]`` tables as rules; ValueError with a one-line reason if one is wrong."""
    rules = []
    for n, table in enumerate(tables, 1):
        where = f"[[cors.rules]] number {n}"
        if not isinstance(table, Mapping):
            raise ValueError(f"{where} must be a table")
        unknown = sorted(set(table) - set(_CONFIG_KEYS))
        if unknown:
            raise ValueError(f"{where} has unknown key {unknown[0]!r} (known: {', '.join(_CONFIG_KEYS)})")
        values: dict[str, Any] = {}
        for key, field in _CONFIG_KEYS.items():
            if key not in table:
                continue
            value = table[key]
            if field in ("origins", "methods", "headers", "expose"):
                if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                    raise ValueError(f"{where}: {key} must be a list of non-empty strings")
                values[field] = tuple(value)
            elif field == "max_age":
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError(f"{where}: {key} must be an integer")
                values[field] = value
            else:
                if not isinstance(value, str):
                    raise ValueError(f"{where}: {key} must be a string")
                values[field] = value
        if not values.get("origins") or not values.get("methods"):
            raise ValueError(f"{where} needs allowed_origins and allowed_methods")
        rule = Rule(**values)
        try:
            check(rule)
        except S3Error as e:
            raise ValueError(f"{where}: {e.message}") from None
        rules.append(rule)
    if len(rules) > MAX_RULES:
        raise ValueError(f"[cors] holds at most {MAX_RULES} rules")
    return tuple(rules)
