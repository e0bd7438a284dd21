"""A bucket's LifecycleConfiguration: parsed and validated as S3 validates it (rendered back by
``documents``).

The configuration is kept as the container setting ``lifecycle``, in the XML ``documents``
renders (so it reads back with the same parser, without the placement check: a placement
removed from the configuration later makes its transitions wait, it does not lose the rules).

Errors are S3's: MalformedXML for anything the schema refuses (an unknown element, Days and
Date together, a Status other than Enabled/Disabled), InvalidArgument and InvalidRequest with
S3's messages for values it refuses, InvalidStorageClass for a StorageClass that names no
placement of this deployment.
"""

from __future__ import annotations

import datetime
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Collection

from attrs import frozen

from vaultaire.api import xmlparse
from vaultaire.api.errors import S3Error

SETTING = "lifecycle"
MAX_RULES = 1000
MAX_ID_LENGTH = 255
# x-amz-transition-default-minimum-object-size: S3's default since 2024 keeps objects under
# 128 KiB where they are unless a rule's own size filter says otherwise.
MIN_SIZE_128K = "all_storage_classes_128K"
MIN_SIZE_VARIES = "varies_by_storage_class"
MIN_SIZES = (MIN_SIZE_128K, MIN_SIZE_VARIES)
SMALL_OBJECT = 128 * 1024
DAY = 86400


@frozen
class Filter:
    """Which versions a rule applies to. ``form`` remembers how it was written, to render it back."""

    form: str = "empty"  # "legacy" (a top-level Prefix), "empty", "prefix", "tag", "gt", "lt", "and"
    prefix: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    size_greater_than: int | None = None
    size_less_than: int | None = None

    def matches(self, key: str, size: int, tags: Collection[tuple[str, str]]) -> bool:
        if not key.startswith(self.prefix):
            return False
        if self.size_greater_than is not None and not size > self.size_greater_than:
            return False
        if self.size_less_than is not None and not size < self.size_less_than:
            return False
        return all(tag in tags for tag in self.tags)

    @property
    def sized(self) -> bool:
        return self.size_greater_than is not None or self.size_less_than is not None


@frozen
class Transition:
    storage_class: str  # a placement of this deployment
    days: int | None = None
    date: float | None = None  # epoch seconds, at midnight UTC


@frozen
class NoncurrentTransition:
    storage_class: str
    days: int
    newer: int | None = None  # NewerNoncurrentVersions


@frozen
class Rule:
    id: str
    enabled: bool
    filter: Filter
    expiration_days: int | None = None
    expiration_date: float | None = None
    expired_object_delete_marker: bool | None = None  # None: not given
    noncurrent_days: int | None = None
    newer_noncurrent: int | None = None
    has_noncurrent_expiration: bool = False
    abort_days: int | None = None
    transitions: tuple[Transition, ...] = ()
    noncurrent_transitions: tuple[NoncurrentTransition, ...] = ()


@frozen
class Configuration:
    rules: tuple[Rule, ...]
    min_size: str = MIN_SIZE_128K  # x-amz-transition-default-minimum-object-size

    @property
    def enabled(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.enabled)

    def placements(self) -> set[str]:
        """Every placement a transition of the configuration names."""
        named: set[str] = set()
        for rule in self.rules:
            named.update(t.storage_class for t in rule.transitions)
            named.update(t.storage_class for t in rule.noncurrent_transitions)
        return named


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _malformed(why: str | None = None) -> S3Error:
    return S3Error("MalformedXML", why) if why else S3Error("MalformedXML")


def _invalid(message: str, name: str | None = None, value: str | None = None) -> S3Error:
    extra = {}
    if name is not None:
        extra = {"ArgumentName": name, "ArgumentValue": value or ""}
    return S3Error("InvalidArgument", message, **extra)


def _children(
    node: ET.Element, allowed: Collection[str], repeatable: Collection[str] = ()
) -> dict[str, list[ET.Element]]:
    """The children by local name; an unknown or repeated one is MalformedXML, as S3's schema says."""
    found: dict[str, list[ET.Element]] = {}
    for child in node:
        name = _local(child.tag)
        if name not in allowed:
            raise _malformed()
        found.setdefault(name, []).append(child)
        if len(found[name]) > 1 and name not in repeatable:
            raise _malformed()
    if (node.text or "").strip():
        raise _malformed()
    return found


def _one(found: dict[str, list[ET.Element]], name: str) -> ET.Element | None:
    nodes = found.get(name)
    return nodes[0] if nodes else None


def _text(node: ET.Element) -> str:
    if len(node):
        raise _malformed()
    return node.text or ""


def _integer(node: ET.Element) -> int:
    """An xsd:int: anything else does not validate against the schema."""
    text = _text(node).strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,10}", text):
        raise _malformed()
    value = int(text)
    if not -(2**31) <= value < 2**31:
        raise _malformed()
    return value


def _long(node: ET.Element) -> int:
    text = _text(node).strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,19}", text):
        raise _malformed()
    return int(text)


def _positive(node: ET.Element, field: str, action: str) -> int:
    value = _integer(node)
    if value <= 0:
        raise _invalid(f"'{field}' for {action} action must be a positive integer", field, str(value))
    return value


def _date(node: ET.Element) -> float:
    """An ISO 8601 date (a bare date is midnight UTC); S3 takes only midnight GMT."""
    text = _text(node).strip()
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            moment = datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)
        else:
            moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid("'Date' must be in ISO 8601 format", "Date", text) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    stamp = moment.timestamp()
    if stamp % DAY:
        raise _invalid("'Date' must be at midnight GMT", "Date", text)
    return stamp


def _boolean(node: ET.Element) -> bool:
    text = _text(node).strip()
    if text not in ("true", "false"):
        raise _malformed()
    return text == "true"


def _tag(node: ET.Element) -> tuple[str, str]:
    found = _children(node, ("Key", "Value"))
    key, value = _one(found, "Key"), _one(found, "Value")
    if key is None or value is None:
        raise _malformed()
    return _text(key), _text(value)


def _filter(node: ET.Element) -> Filter:
    found = _children(node, ("Prefix", "Tag", "And", "ObjectSizeGreaterThan", "ObjectSizeLessThan"))
    if len(found) > 1:
        raise _malformed("A Filter holds one of Prefix, Tag, ObjectSizeGreaterThan, ObjectSizeLessThan or And.")
    if not found:
        return Filter("empty")
    if (prefix := _one(found, "Prefix")) is not None:
        return Filter("prefix", prefix=_text(prefix))
    if (tag := _one(found, "Tag")) is not None:
        return Filter("tag", tags=(_tag(tag),))
    if (gt := _one(found, "ObjectSizeGreaterThan")) is not None:
        return Filter("gt", size_greater_than=_size(gt))
    if (lt := _one(found, "ObjectSizeLessThan")) is not None:
        return Filter("lt", size_less_than=_size(lt))
    and_node = _one(found, "And")
    assert and_node is not None
    parts = _children(and_node, ("Prefix", "Tag", "ObjectSizeGreaterThan", "ObjectSizeLessThan"), repeatable=("Tag",))
    if not parts:
        raise _malformed("An And in a Filter needs what to combine.")
    tags = tuple(_tag(t) for t in parts.get("Tag", []))
    if len({key for key, _ in tags}) != len(tags):
        raise S3Error("InvalidRequest", "Duplicate Tag Keys are not allowed.")
    prefix_node = _one(parts, "Prefix")
    gt_node, lt_node = _one(parts, "ObjectSizeGreaterThan"), _one(parts, "ObjectSizeLessThan")
    result = Filter(
        "and",
        prefix=_text(prefix_node) if prefix_node is not None else "",
        tags=tags,
        size_greater_than=_size(gt_node) if gt_node is not None else None,
        size_less_than=_size(lt_node) if lt_node is not None else None,
    )
    if result.size_greater_than is not None and result.size_less_than is not None:
        if result.size_greater_than >= result.size_less_than:
            raise _invalid(
                "ObjectSizeGreaterThan must be less than ObjectSizeLessThan",
                "ObjectSizeGreaterThan",
                str(result.size_greater_than),
            )
    return result


def _size(node: ET.Element) -> int:
    value = _long(node)
    if value < 0:
        raise _invalid(f"'{_local(node.tag)}' should be a non-negative integer", _local(node.tag), str(value))
    return value


def _storage_class(node: ET.Element | None, placements: Collection[str] | None) -> str:
    if node is None:
        raise _malformed()
    name = _text(node).strip()
    if placements is not None and name not in placements:
        raise S3Error("InvalidStorageClass", StorageClassRequested=name)
    return name


def _transition(node: ET.Element, placements: Collection[str] | None) -> Transition:
    found = _children(node, ("Days", "Date", "StorageClass"))
    days, date = _one(found, "Days"), _one(found, "Date")
    if (days is None) == (date is None):
        raise _malformed()
    klass = _storage_class(_one(found, "StorageClass"), placements)
    if days is not None:
        value = _integer(days)
        if value < 0:
            raise _invalid("'Days' for Transition action must be a nonnegative integer", "Days", str(value))
        return Transition(klass, days=value)
    assert date is not None
    return Transition(klass, date=_date(date))


def _noncurrent_transition(node: ET.Element, placements: Collection[str] | None) -> NoncurrentTransition:
    found = _children(node, ("NoncurrentDays", "StorageClass", "NewerNoncurrentVersions"))
    days = _one(found, "NoncurrentDays")
    if days is None:
        raise _malformed()
    value = _integer(days)
    if value < 0:
        raise _invalid(
            "'NoncurrentDays' for NoncurrentVersionTransition action must be a nonnegative integer",
            "NoncurrentDays",
            str(value),
        )
    newer = _one(found, "NewerNoncurrentVersions")
    return NoncurrentTransition(
        _storage_class(_one(found, "StorageClass"), placements),
        value,
        _newer(newer) if newer is not None else None,
    )


def _newer(node: ET.Element) -> int:
    value = _integer(node)
    if value <= 0:
        raise _invalid("'NewerNoncurrentVersions' must be a positive integer", "NewerNoncurrentVersions", str(value))
    return value


_RULE_FIELDS = (
    "ID",
    "Prefix",
    "Filter",
    "Status",
    "Expiration",
    "Transition",
    "NoncurrentVersionTransition",
    "NoncurrentVersionExpiration",
    "AbortIncompleteMultipartUpload",
)


def _rule(node: ET.Element, placements: Collection[str] | None) -> Rule:
    found = _children(node, _RULE_FIELDS, repeatable=("Transition", "NoncurrentVersionTransition"))
    status = _one(found, "Status")
    if status is None or _text(status) not in ("Enabled", "Disabled"):
        raise _malformed()
    id_node = _one(found, "ID")
    rule_id = _text(id_node) if id_node is not None else ""
    if len(rule_id) > MAX_ID_LENGTH:
        raise _invalid(f"ID length should not exceed allowed limit of {MAX_ID_LENGTH}", "ID", rule_id)
    if not rule_id:
        rule_id = uuid.uuid4().hex  # S3 names a rule given none
    prefix, filter_node = _one(found, "Prefix"), _one(found, "Filter")
    if prefix is not None and filter_node is not None:
        raise _malformed()
    if filter_node is not None:
        rule_filter = _filter(filter_node)
    elif prefix is not None:
        rule_filter = Filter("legacy", prefix=_text(prefix))
    else:
        raise _malformed("A rule needs a Filter (or the older Prefix).")
    fields: dict[str, object] = {}
    if (expiration := _one(found, "Expiration")) is not None:
        fields.update(_expiration(expiration, rule_filter))
    if (noncurrent := _one(found, "NoncurrentVersionExpiration")) is not None:
        parts = _children(noncurrent, ("NoncurrentDays", "NewerNoncurrentVersions"))
        if not parts:
            raise _malformed()
        days, newer = _one(parts, "NoncurrentDays"), _one(parts, "NewerNoncurrentVersions")
        fields["has_noncurrent_expiration"] = True
        if days is not None:
            fields["noncurrent_days"] = _positive(days, "NoncurrentDays", "NoncurrentVersionExpiration")
        if newer is not None:
            fields["newer_noncurrent"] = _newer(newer)
    if (abort := _one(found, "AbortIncompleteMultipartUpload")) is not None:
        parts = _children(abort, ("DaysAfterInitiation",))
        days = _one(parts, "DaysAfterInitiation")
        if days is None:
            raise _malformed()
        fields["abort_days"] = _positive(days, "DaysAfterInitiation", "AbortIncompleteMultipartUpload")
        _unfiltered(rule_filter, "AbortIncompleteMultipartUpload")
    transitions = tuple(_transition(t, placements) for t in found.get("Transition", []))
    noncurrent_transitions = tuple(
        _noncurrent_transition(t, placements) for t in found.get("NoncurrentVersionTransition", [])
    )
    rule = Rule(
        rule_id,
        _text(status) == "Enabled",
        rule_filter,
        transitions=transitions,
        noncurrent_transitions=noncurrent_transitions,
        **fields,  # type: ignore[arg-type]  # fields holds only the optional Rule fields parsed above
    )
    _check_actions(rule)
    return rule


def _unfiltered(rule_filter: Filter, action: str) -> None:
    """Actions on what has no tags or size (an upload, a delete marker) take no such filter."""
    if rule_filter.tags:
        raise S3Error("InvalidRequest", f"{action} cannot be specified with Tags.")
    if rule_filter.sized:
        raise S3Error("InvalidRequest", f"{action} cannot be specified with Object Size.")


def _expiration(node: ET.Element, rule_filter: Filter) -> dict[str, object]:
    parts = _children(node, ("Days", "Date", "ExpiredObjectDeleteMarker"))
    days, date, marker = _one(parts, "Days"), _one(parts, "Date"), _one(parts, "ExpiredObjectDeleteMarker")
    if marker is not None and (days is not None or date is not None):
        raise _malformed(
            "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy."
        )
    if days is not None and date is not None:
        raise _malformed()
    if days is not None:
        return {"expiration_days": _positive(days, "Days", "Expiration")}
    if date is not None:
        return {"expiration_date": _date(date)}
    if marker is None:
        raise _malformed()
    _unfiltered(rule_filter, "ExpiredObjectDeleteMarker")
    return {"expired_object_delete_marker": _boolean(marker)}


def _check_actions(rule: Rule) -> None:
    """Checks across a rule's actions, as S3 makes them."""
    acts = (
        rule.expiration_days is not None
        or rule.expiration_date is not None
        or rule.expired_object_delete_marker is not None
        or rule.has_noncurrent_expiration
        or rule.abort_days is not None
        or rule.transitions
        or rule.noncurrent_transitions
    )
    if not acts:
        raise S3Error("InvalidRequest", "At least one action needs to be specified in a rule")
    by_days = [t for t in rule.transitions if t.days is not None]
    if by_days and len(by_days) != len(rule.transitions):
        raise S3Error("InvalidRequest", "Found mixed 'Date' and 'Days' based Transition actions in lifecycle rule")
    classes = [t.storage_class for t in rule.transitions]
    if len(set(classes)) != len(classes):
        raise _invalid("'StorageClass' must be different for 'Transition' actions in same 'Rule'")
    classes = [t.storage_class for t in rule.noncurrent_transitions]
    if len(set(classes)) != len(classes):
        raise _invalid("'StorageClass' must be different for 'NoncurrentVersionTransition' actions in same 'Rule'")
    if rule.expiration_days is not None and by_days:
        latest = max(t.days or 0 for t in by_days)
        if rule.expiration_days <= latest:
            raise _invalid(
                f"'Days' in the Expiration action for filter '{rule.filter.prefix}' must be greater than "
                f"'Days' in the Transition action"
            )
    if rule.expiration_date is not None and rule.transitions and not by_days:
        if rule.expiration_date <= max(t.date or 0.0 for t in rule.transitions):
            raise _invalid(
                f"'Date' in the Expiration action for filter '{rule.filter.prefix}' must be later than "
                f"'Date' in the Transition action"
            )
    if rule.noncurrent_days is not None and rule.noncurrent_transitions:
        if rule.noncurrent_days <= max(t.days for t in rule.noncurrent_transitions):
            raise _invalid(
                f"'NoncurrentDays' in the NoncurrentVersionExpiration action for filter "
                f"'{rule.filter.prefix}' must be greater than 'NoncurrentDays' in the "
                f"NoncurrentVersionTransition action"
            )


def parse(body: bytes, placements: Collection[str] | None, min_size: str | None = None) -> Configuration:
    """A LifecycleConfiguration document, validated; ``placements`` None skips the StorageClass check."""
    root = xmlparse.parse(body)
    if _local(root.tag) != "LifecycleConfiguration":
        raise _malformed()
    found = _children(root, ("Rule",), repeatable=("Rule",))
    nodes = found.get("Rule", [])
    if not nodes:
        raise _malformed()
    if len(nodes) > MAX_RULES:
        raise _malformed(f"A lifecycle configuration holds at most {MAX_RULES} rules.")
    rules = tuple(_rule(node, placements) for node in nodes)
    ids = [rule.id for rule in rules]
    if len(set(ids)) != len(ids):
        raise _invalid("Rule ID must be unique. Found same ID for more than one rule")
    if min_size is not None and min_size not in MIN_SIZES:
        raise _invalid(
            "Invalid value for x-amz-transition-default-minimum-object-size",
            "x-amz-transition-default-minimum-object-size",
            min_size,
        )
    return Configuration(rules, min_size or MIN_SIZE_128K)
