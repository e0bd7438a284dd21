"""Reading S3 request XML safely: size-capped, depth-capped, no DTDs, no entities.

Parsing goes through defusedxml's expat parser, which refuses a DTD (and so
any entity declaration) whatever the document's encoding: a byte search for
``<!DOCTYPE`` misses a UTF-16 document, which then expanded its entities.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from vaultaire.api.errors import S3Error

# Callers cap request bodies (64 KiB to 2 MiB); this is the backstop.
MAX_XML_BYTES = 4 * 2**20
# S3's request documents nest four levels at most (Delete/Object/Key).
MAX_DEPTH = 32

_MALFORMED = "The XML you provided was not well-formed or did not validate against our published schema."


class _DepthLimited(ET.TreeBuilder):
    """A tree builder that refuses documents nested deeper than MAX_DEPTH."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0

    def start(self, tag: Any, attrs: Any) -> ET.Element:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise S3Error("MalformedXML", f"The XML you provided nests deeper than {MAX_DEPTH} levels.")
        return super().start(tag, attrs)

    def end(self, tag: Any) -> ET.Element:
        self._depth -= 1
        return super().end(tag)


def parse(body: bytes) -> ET.Element:
    if len(body) > MAX_XML_BYTES:
        raise S3Error("MalformedXML", "The XML you provided is too large.")
    parser = DefusedXMLParser(target=_DepthLimited(), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        parser.feed(body)
        return parser.close()
    except DefusedXmlException:
        raise S3Error("MalformedXML", "The XML you provided must not declare a DTD or entities.") from None
    except (ET.ParseError, ValueError, UnicodeError):
        raise S3Error("MalformedXML", _MALFORMED) from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def location_constraint(body: bytes) -> str:
    root = parse(body)
    if _local(root.tag) != "CreateBucketConfiguration":
        raise S3Error("MalformedXML")
    for child in root:
        if _local(child.tag) == "LocationConstraint":
            return (child.text or "").strip()
    return ""


def delete_request(body: bytes, max_keys: int) -> tuple[bool, list[tuple[str, str | None]]]:
    """(quiet, [(key, version id or None)]) from a DeleteObjects body."""
    root = parse(body)
    if _local(root.tag) != "Delete":
        raise S3Error("MalformedXML")
    quiet = False
    entries: list[tuple[str, str | None]] = []
    for child in root:
        name = _local(child.tag)
        if name == "Quiet":
            quiet = (child.text or "").strip().lower() == "true"
        elif name == "Object":
            key = version = None
            for part in child:
                if _local(part.tag) == "Key":
                    key = part.text or ""
                elif _local(part.tag) == "VersionId":
                    version = (part.text or "").strip()
            if key is None:
                raise S3Error("MalformedXML", "Each Object in a Delete request needs a Key.")
            entries.append((key, version))
    if not entries or len(entries) > max_keys:
        raise S3Error("MalformedXML", f"A Delete request names between 1 and {max_keys} objects.")
    return quiet, entries


def complete_request(body: bytes, max_parts: int) -> tuple[list[tuple[int, str]], dict[int, str]]:
    """([(part number, md5 hex)] in the order given, {part number: ChecksumXXX sent}) from a
    CompleteMultipartUpload body."""
    root = parse(body)
    if _local(root.tag) != "CompleteMultipartUpload":
        raise S3Error("MalformedXML")
    chosen: list[tuple[int, str]] = []
    sent: dict[int, str] = {}
    for part in root:
        if _local(part.tag) != "Part":
            continue
        number = etag = checksum = None
        for field in part:
            if _local(field.tag) == "PartNumber":
                number = (field.text or "").strip()
            elif _local(field.tag) == "ETag":
                etag = (field.text or "").strip().strip('"')
            elif _local(field.tag).startswith("Checksum"):
                checksum = (field.text or "").strip()
        if not number or not number.isdigit() or etag is None:
            raise S3Error("MalformedXML", "Each Part needs a PartNumber and an ETag.")
        chosen.append((int(number), etag))
        if checksum:
            sent[int(number)] = checksum
    if not chosen or len(chosen) > max_parts:
        raise S3Error("MalformedXML", f"A CompleteMultipartUpload request names between 1 and {max_parts} parts.")
    return chosen, sent
