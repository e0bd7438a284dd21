"""S3 configuration documents as the console reads, edits and writes them back.

Built with ElementTree (which escapes what it writes) and read with defusedxml; a document
read from the server is edited in place (one rule removed, one added) so the parts the
console's forms do not know are written back untouched.
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from typing import Any

from defusedxml.ElementTree import fromstring

S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


def element(name: str, text: str | None = None, *children: ET.Element | None) -> ET.Element:
    node = ET.Element(name)
    if text is not None:
        node.text = text
    node.extend(c for c in children if c is not None)
    return node


def document(root: ET.Element) -> bytes:
    root.set("xmlns", S3_XMLNS)
    written: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>' + written


def plain(body: bytes) -> ET.Element:
    """A document from the server with its namespace dropped, ready to edit and send back."""
    root: ET.Element = fromstring(body)
    for node in root.iter():
        if isinstance(node.tag, str) and "}" in node.tag:
            node.tag = node.tag.split("}", 1)[1]
    return root


def pretty(body: bytes) -> str:
    """A server document as text to edit (indented, no namespace prefixes), or as it came."""
    try:
        root = plain(body)
    except ET.ParseError:
        return body.decode("utf-8", "replace")
    ET.indent(root)
    root.set("xmlns", S3_XMLNS)
    return ET.tostring(root, encoding="unicode")


def text(node: Any, path: str) -> str:
    return str(node.findtext(path) or "")


def content_md5(body: bytes) -> str:
    """S3 requires Content-MD5 (or a checksum) on lifecycle, CORS, lock and tagging bodies."""
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def tag_set(pairs: list[tuple[str, str]]) -> bytes:
    return document(
        element("Tagging", None, element("TagSet", None, *(_tag(k, v) for k, v in pairs))),
    )


def _tag(key: str, value: str) -> ET.Element:
    return element("Tag", None, element("Key", key), element("Value", value))


def tags_of(body: bytes) -> list[tuple[str, str]]:
    root = plain(body)
    return [(text(t, "Key"), text(t, "Value")) for t in root.findall("TagSet/Tag")]


# -- lifecycle


def lifecycle_rule(rule_id: str, prefix: str, expire_days: int, noncurrent_days: int, abort_days: int) -> ET.Element:
    rule = element("Rule", None, element("ID", rule_id), element("Filter", None, element("Prefix", prefix)))
    rule.append(element("Status", "Enabled"))
    if expire_days:
        rule.append(element("Expiration", None, element("Days", str(expire_days))))
    if noncurrent_days:
        rule.append(element("NoncurrentVersionExpiration", None, element("NoncurrentDays", str(noncurrent_days))))
    if abort_days:
        rule.append(element("AbortIncompleteMultipartUpload", None, element("DaysAfterInitiation", str(abort_days))))
    return rule


def rule_summary(rule: ET.Element) -> tuple[str, str, str, str]:
    """ID, status, what it applies to, and what it does, as a person reads them."""
    scope = []
    prefix = rule.findtext("Filter/Prefix") or rule.findtext("Filter/And/Prefix") or rule.findtext("Prefix")
    if prefix:
        scope.append(f"keys starting {prefix!r}")
    for t in [*rule.findall("Filter/Tag"), *rule.findall("Filter/And/Tag")]:
        scope.append(f"tag {text(t, 'Key')}={text(t, 'Value')}")
    for name in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
        size = rule.findtext(f"Filter/{name}") or rule.findtext(f"Filter/And/{name}")
        if size:
            scope.append(f"{name} {size}")
    actions = []
    for node in rule:
        if node.tag in ("ID", "Filter", "Prefix", "Status"):
            continue
        details = ", ".join(f"{c.tag} {c.text}" for c in node if c.text and c.text.strip())
        actions.append(f"{node.tag} ({details})" if details else node.tag)
    return text(rule, "ID"), text(rule, "Status"), "; ".join(scope) or "every object", "; ".join(actions)


# -- CORS, public access block, encryption, Object Lock

PUBLIC_ACCESS_SWITCHES = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def public_access_block(on: set[str]) -> bytes:
    return document(
        element(
            "PublicAccessBlockConfiguration",
            None,
            *(element(name, "true" if name in on else "false") for name in PUBLIC_ACCESS_SWITCHES),
        )
    )


def encryption(algorithm: str, kms_key: str) -> bytes:
    default = element("ApplyServerSideEncryptionByDefault", None, element("SSEAlgorithm", algorithm))
    if kms_key:
        default.append(element("KMSMasterKeyID", kms_key))
    return document(element("ServerSideEncryptionConfiguration", None, element("Rule", None, default)))


def object_lock(mode: str, unit: str, period: int) -> bytes:
    root = element("ObjectLockConfiguration", None, element("ObjectLockEnabled", "Enabled"))
    if mode:
        root.append(
            element("Rule", None, element("DefaultRetention", None, element("Mode", mode), element(unit, str(period))))
        )
    return document(root)


def retention(mode: str, until: str) -> bytes:
    return document(element("Retention", None, element("Mode", mode), element("RetainUntilDate", until)))


def legal_hold(on: bool) -> bytes:
    return document(element("LegalHold", None, element("Status", "ON" if on else "OFF")))
