"""Object Lock on the wire: its XML documents and headers, read and validated as S3 does.

Every fault gets the code and message S3 answers (recorded against S3 by
LocalStack, s3-tests and the issue trackers of other S3 servers): an unknown
mode or element is MalformedXML, a period out of range InvalidArgument naming
the field, a header missing its pair InvalidArgument naming the missing one.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime

from vaultaire.api import xmlparse
from vaultaire.api.call import iso
from vaultaire.api.errors import S3Error
from vaultaire.api.xmlout import Element, element
from vaultaire.model import Retention
from vaultaire.objectlock import MAX_DAYS, MAX_YEARS, MODES, DefaultRetention, LockConfiguration

MODE = "x-amz-object-lock-mode"
UNTIL = "x-amz-object-lock-retain-until-date"
LEGAL_HOLD = "x-amz-object-lock-legal-hold"
BYPASS = "x-amz-bypass-governance-retention"
LOCK_HEADERS = (MODE, UNTIL, LEGAL_HOLD)

NOT_ENABLED = "Bucket is missing Object Lock Configuration"
NOT_ENABLED_WRITE = "Bucket is missing ObjectLockConfiguration"
INTEGRITY_NEEDED = (
    "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters"
)
BYPASS_NOT_APPLICABLE = "x-amz-bypass-governance-retention is only applicable to Object Lock enabled buckets."


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(node: ET.Element, allowed: set[str]) -> dict[str, ET.Element]:
    """The node's children by local name: each allowed name at most once, nothing else."""
    found: dict[str, ET.Element] = {}
    for child in node:
        name = _local(child.tag)
        if name not in allowed or name in found:
            raise S3Error("MalformedXML")
        found[name] = child
    return found


def _text(node: ET.Element) -> str:
    return (node.text or "").strip()


def _root(body: bytes, name: str) -> ET.Element:
    if not body.strip():
        raise S3Error("MalformedXML")
    root = xmlparse.parse(body)
    if _local(root.tag) != name:
        raise S3Error("MalformedXML")
    return root


# -- the bucket's configuration


def _period(node: ET.Element, name: str, maximum: int) -> int:
    raw = _text(node)
    try:
        value = int(raw)
    except ValueError:
        raise S3Error("MalformedXML") from None
    if value <= 0:
        raise S3Error(
            "InvalidArgument",
            "Default retention period must be a positive integer value.",
            ArgumentName=name,
            ArgumentValue=raw,
        )
    if value > maximum:
        raise S3Error("InvalidArgument", "Default retention period too large.", ArgumentName=name, ArgumentValue=raw)
    return value


def parse_configuration(body: bytes) -> LockConfiguration:
    """An ObjectLockConfiguration document: ObjectLockEnabled, and maybe one default retention."""
    root = _root(body, "ObjectLockConfiguration")
    fields = _children(root, {"ObjectLockEnabled", "Rule"})
    if "ObjectLockEnabled" not in fields or _text(fields["ObjectLockEnabled"]) != "Enabled":
        raise S3Error("MalformedXML")
    if "Rule" not in fields:
        return LockConfiguration()
    rule = _children(fields["Rule"], {"DefaultRetention"})
    if "DefaultRetention" not in rule:
        raise S3Error("MalformedXML")
    default = _children(rule["DefaultRetention"], {"Mode", "Days", "Years"})
    if "Mode" not in default or _text(default["Mode"]) not in MODES:
        raise S3Error("MalformedXML")
    if ("Days" in default) == ("Years" in default):
        raise S3Error("MalformedXML")  # S3: a period, Days or Years, never both
    mode = _text(default["Mode"])
    if "Days" in default:
        return LockConfiguration(DefaultRetention(mode, days=_period(default["Days"], "Days", MAX_DAYS)))
    return LockConfiguration(DefaultRetention(mode, years=_period(default["Years"], "Years", MAX_YEARS)))


def render_configuration(config: LockConfiguration) -> Element:
    parts = [element("ObjectLockEnabled", "Enabled")]
    if config.default is not None:
        period = (
            element("Days", config.default.days)
            if config.default.days is not None
            else element("Years", config.default.years)
        )
        parts.append(element("Rule", element("DefaultRetention", element("Mode", config.default.mode), period)))
    return element("ObjectLockConfiguration", *parts, xmlns=True)


# -- one version's retention and legal hold


def parse_date(raw: str) -> float | None:
    """An ISO 8601 timestamp as epoch seconds (UTC when it names no zone), None if it is not one."""
    text = raw.strip()
    if not text or len(text) > 64:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    value = moment.timestamp()
    return value if math.isfinite(value) else None


def format_date(ts: float) -> str:
    return iso(ts)


def parse_retention(body: bytes, now: float) -> Retention | None:
    """A Retention document; an empty one (no mode, no date) asks to remove the retention."""
    root = _root(body, "Retention")
    fields = _children(root, {"Mode", "RetainUntilDate"})
    if not fields:
        return None
    if "Mode" not in fields or "RetainUntilDate" not in fields:
        raise S3Error("MalformedXML")
    mode = _text(fields["Mode"])
    if mode not in MODES:
        raise S3Error("MalformedXML")
    raw = _text(fields["RetainUntilDate"])
    until = parse_date(raw)
    if until is None:
        raise S3Error("MalformedXML")
    if until <= now:
        raise S3Error(
            "InvalidArgument",
            "The retain until date must be in the future!",
            ArgumentName="RetainUntilDate",
            ArgumentValue=raw,
        )
    return Retention(mode, until)


def render_retention(retention: Retention) -> Element:
    return element(
        "Retention",
        element("Mode", retention.mode),
        element("RetainUntilDate", format_date(retention.until)),
        xmlns=True,
    )


def parse_legal_hold(body: bytes) -> bool:
    root = _root(body, "LegalHold")
    fields = _children(root, {"Status"})
    status = _text(fields["Status"]) if "Status" in fields else ""
    if status not in ("ON", "OFF"):
        raise S3Error("MalformedXML")
    return status == "ON"


def render_legal_hold(on: bool) -> Element:
    return element("LegalHold", element("Status", "ON" if on else "OFF"), xmlns=True)


# -- headers (and POST Object form fields, which mean the same)


def requested(headers: Mapping[str, str], now: float) -> tuple[Retention | None, bool | None]:
    """The retention and legal hold a write asks for (None: not asked), validated before anything else."""
    mode = headers.get(MODE)
    until_raw = headers.get(UNTIL)
    hold_raw = headers.get(LEGAL_HOLD)
    retention = None
    if mode is not None or until_raw is not None:
        if mode is None or until_raw is None:
            missing = MODE if mode is None else UNTIL
            raise S3Error(
                "InvalidArgument",
                f"{UNTIL} and {MODE} must both be supplied",
                ArgumentName=missing,
            )
        if mode.strip() not in MODES:
            raise S3Error("InvalidArgument", "Unknown wormMode directive.", ArgumentName=MODE, ArgumentValue=mode)
        until = parse_date(until_raw)
        if until is None:
            raise S3Error(
                "InvalidArgument",
                "The retain until date must be provided in ISO 8601 format",
                ArgumentName=UNTIL,
                ArgumentValue=until_raw,
            )
        if until <= now:
            raise S3Error(
                "InvalidArgument",
                "The retain until date must be in the future!",
                ArgumentName=UNTIL,
                ArgumentValue=until_raw,
            )
        retention = Retention(mode.strip(), until)
    hold = None
    if hold_raw is not None:
        if hold_raw.strip() not in ("ON", "OFF"):
            raise S3Error(
                "InvalidArgument",
                "Legal Hold must be either of 'ON' or 'OFF'",
                ArgumentName=LEGAL_HOLD,
                ArgumentValue=hold_raw,
            )
        hold = hold_raw.strip() == "ON"
    return retention, hold


def bypass(headers: Mapping[str, str]) -> bool | None:
    """``x-amz-bypass-governance-retention`` as sent: True, False, or None when absent."""
    raw = headers.get(BYPASS)
    if raw is None:
        return None
    return raw.strip().lower() == "true"
