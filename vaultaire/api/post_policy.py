"""POST Object policies: the signed document that says what a browser form may upload."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from attrs import frozen

from vaultaire.api.errors import S3Error

# Form fields that need no condition in the policy.
EXEMPT = frozenset({"policy", "x-amz-signature", "signature", "awsaccesskeyid", "file"})


@frozen
class SizeRange:
    minimum: int = 0
    maximum: int | None = None


def _denied(reason: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {reason}")


def decode(policy_b64: str) -> dict[str, Any]:
    try:
        document = json.loads(base64.b64decode(policy_b64, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from None
    if (
        not isinstance(document, dict)
        or "expiration" not in document
        or not isinstance(document.get("conditions", []), list)
    ):
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: it needs an expiration and a list of conditions.")
    return document


def check(document: dict[str, Any], fields: dict[str, str], now: float) -> SizeRange:
    """Every condition must hold and every field must be named by one; returns the size range."""
    try:
        expires = datetime.fromisoformat(str(document["expiration"]).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid 'expiration' value.") from None
    if now > expires:
        raise _denied("Policy expired.")
    covered: set[str] = set()
    size = SizeRange()
    for condition in document.get("conditions", []):
        if isinstance(condition, dict) and len(condition) == 1:
            ((name, expected),) = condition.items()
            name = name.lower().lstrip("$")
            covered.add(name)
            if fields.get(name) != str(expected):
                raise _denied(f'Policy Condition failed: ["eq", "${name}", "{expected}"]')
        elif isinstance(condition, list) and len(condition) == 3 and condition[0] == "content-length-range":
            try:
                size = SizeRange(int(condition[1]), int(condition[2]))
            except (TypeError, ValueError):
                raise S3Error("InvalidPolicyDocument", "Invalid Policy: bad content-length-range.") from None
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
    extra = sorted(n for n in fields if n not in covered and n not in EXEMPT and not n.startswith("x-ignore-"))
    if extra:
        raise _denied(f"Extra input fields: {', '.join(extra)}")
    return size
