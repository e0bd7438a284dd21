"""POST Object policies: the signed document that says what a browser form may upload."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any

from attrs import frozen

from vaultaire.api.errors import S3Error

# Form fields that need no condition in the policy (x-amz-checksum-* neither: they are verified).
EXEMPT = frozenset({"policy", "x-amz-signature", "signature", "awsaccesskeyid", "file"})
EXEMPT_PREFIXES = ("x-ignore-", "x-amz-checksum-")

# S3's form: 2013-08-01T12:00:00Z or 2013-08-01T12:00:00.000Z, in UTC.
_EXPIRATION = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z")
MAX_LENGTH = 2**63 - 1  # content-length-range bounds: integers, as S3 reads them


@frozen
class SizeRange:
    minimum: int = 0
    maximum: int | None = None


def _denied(reason: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {reason}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python's json would accept them


def decode(policy_b64: str) -> dict[str, Any]:
    try:
        document = json.loads(base64.b64decode(policy_b64, validate=True), parse_constant=_no_constant)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from None
    if (
        not isinstance(document, dict)
        or "expiration" not in document
        or not isinstance(document.get("conditions"), list)
    ):
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: it needs an expiration and a list of conditions.")
    return document


def _length(value: Any) -> int:
    """A content-length-range bound: an integer (or a string of digits) from 0 to 2^63-1."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LENGTH:
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: content-length-range needs two integers.")
    return value


def check(document: dict[str, Any], fields: dict[str, str], now: float) -> SizeRange:
    """Every condition must hold and every field must be named by one; returns the size range."""
    expiration = document["expiration"]
    try:
        if not isinstance(expiration, str) or not _EXPIRATION.fullmatch(expiration):
            raise ValueError(expiration)
        expires = datetime.fromisoformat(expiration.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid 'expiration' value.") from None
    if now > expires:
        raise _denied("Policy expired.")
    covered: set[str] = set()
    size = SizeRange()
    for condition in document["conditions"]:
        if isinstance(condition, list) and len(condition) == 3 and isinstance(condition[0], str):
            # Operators are case-insensitive in S3's policies, as field names are.
            condition = [condition[0].lower(), *condition[1:]]
        if isinstance(condition, dict) and len(condition) == 1:
            ((name, expected),) = condition.items()
            name = name.lower().lstrip("$")
            covered.add(name)
            if fields.get(name) != str(expected):
                raise _denied(f'Policy Condition failed: ["eq", "${name}", "{expected}"]')
        elif isinstance(condition, list) and len(condition) == 3 and condition[0] == "content-length-range":
            size = SizeRange(_length(condition[1]), _length(condition[2]))
        elif isinstance(condition, list) and len(condition) == 3 and condition[0] in ("eq", "starts-with"):
            operator, name, expected = condition
            if not isinstance(name, str) or not name.startswith("$"):
                raise S3Error("InvalidPolicyDocument", f"Invalid Policy: condition {condition!r}.")
            name = name[1:].lower()
            covered.add(name)
            value = fields.get(name, "")
            holds = value == expected if operator == "eq" else value.startswith(str(expected))
            if name == "content-type" and operator == "starts-with" and not holds:
                # S3 applies starts-with to each of a comma-separated Content-Type list
                holds = all(v.strip().startswith(str(expected)) for v in value.split(","))
            if not holds:
                raise _denied(f'Policy Condition failed: ["{operator}", "${name}", "{expected}"]')
        else:
            raise S3Error("InvalidPolicyDocument", f"Invalid Policy: condition {condition!r} is not understood.")
    extra = sorted(n for n in fields if n not in covered and n not in EXEMPT and not n.startswith(EXEMPT_PREFIXES))
    if extra:
        raise _denied(f"Extra input fields: {', '.join(extra)}")
    return size
