"""Reading S3 request XML safely: size-capped, no DTDs, no entities."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from vaultaire.api.errors import S3Error


def parse(body: bytes) -> ET.Element:
    # A DOCTYPE is the door to entity expansion and external fetches; S3 XML never needs one.
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise S3Error("MalformedXML", "The XML you provided must not declare a DTD or entities.")
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        raise S3Error(
            "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema."
        ) from None


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
