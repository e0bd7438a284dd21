"""A LifecycleConfiguration rendered as S3 renders it (GetBucketLifecycleConfiguration's answer), and
kept as the container setting: its minimum-size choice on the first line, then that XML, read back
through ``rules.parse``."""

from __future__ import annotations

import datetime

from vaultaire.api.xmlout import Element, element, xml_document
from vaultaire.lifecycle.rules import Configuration, Filter, Rule, parse


def _iso_date(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _filter_xml(rule_filter: Filter) -> Element:
    if rule_filter.form == "legacy":
        return element("Prefix", rule_filter.prefix)
    inner: list[Element] = []
    if rule_filter.form == "prefix":
        inner.append(element("Prefix", rule_filter.prefix))
    elif rule_filter.form == "tag":
        key, value = rule_filter.tags[0]
        inner.append(element("Tag", element("Key", key), element("Value", value)))
    elif rule_filter.form == "gt":
        inner.append(element("ObjectSizeGreaterThan", rule_filter.size_greater_than))
    elif rule_filter.form == "lt":
        inner.append(element("ObjectSizeLessThan", rule_filter.size_less_than))
    elif rule_filter.form == "and":
        parts: list[Element] = []
        if rule_filter.prefix:
            parts.append(element("Prefix", rule_filter.prefix))
        parts += [element("Tag", element("Key", k), element("Value", v)) for k, v in rule_filter.tags]
        if rule_filter.size_greater_than is not None:
            parts.append(element("ObjectSizeGreaterThan", rule_filter.size_greater_than))
        if rule_filter.size_less_than is not None:
            parts.append(element("ObjectSizeLessThan", rule_filter.size_less_than))
        inner.append(element("And", *parts))
    return Element("Filter", tuple(inner), None, "")


def _rule_xml(rule: Rule) -> Element:
    parts: list[Element] = []
    if rule.expiration_days is not None:
        parts.append(element("Expiration", element("Days", rule.expiration_days)))
    elif rule.expiration_date is not None:
        parts.append(element("Expiration", element("Date", _iso_date(rule.expiration_date))))
    elif rule.expired_object_delete_marker is not None:
        parts.append(element("Expiration", element("ExpiredObjectDeleteMarker", rule.expired_object_delete_marker)))
    parts += [
        element("ID", rule.id),
        _filter_xml(rule.filter),
        element("Status", "Enabled" if rule.enabled else "Disabled"),
    ]
    for t in rule.transitions:
        when = element("Days", t.days) if t.days is not None else element("Date", _iso_date(t.date or 0.0))
        parts.append(element("Transition", when, element("StorageClass", t.storage_class)))
    for nt in rule.noncurrent_transitions:
        inner = [element("NoncurrentDays", nt.days), element("StorageClass", nt.storage_class)]
        if nt.newer is not None:
            inner.append(element("NewerNoncurrentVersions", nt.newer))
        parts.append(element("NoncurrentVersionTransition", *inner))
    if rule.has_noncurrent_expiration:
        inner = []
        if rule.noncurrent_days is not None:
            inner.append(element("NoncurrentDays", rule.noncurrent_days))
        if rule.newer_noncurrent is not None:
            inner.append(element("NewerNoncurrentVersions", rule.newer_noncurrent))
        parts.append(element("NoncurrentVersionExpiration", *inner))
    if rule.abort_days is not None:
        parts.append(element("AbortIncompleteMultipartUpload", element("DaysAfterInitiation", rule.abort_days)))
    return element("Rule", *parts)


def document(configuration: Configuration) -> Element:
    return element("LifecycleConfiguration", *(_rule_xml(rule) for rule in configuration.rules), xmlns=True)


def render(configuration: Configuration) -> bytes:
    return xml_document(document(configuration))


def load(stored: str) -> Configuration:
    """The configuration as the setting keeps it (written by ``store``)."""
    min_size, _, document = stored.partition("\n")
    return parse(document.encode("utf-8"), None, min_size)


def store(configuration: Configuration) -> str:
    return configuration.min_size + "\n" + render(configuration).decode("utf-8")
