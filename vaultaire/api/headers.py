"""Request headers that become stored attributes or conditions, parsed in one place."""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.utils import parsedate_to_datetime

from vaultaire.api.errors import S3Error
from vaultaire.engine.conditions import ReadConditions
from vaultaire.model import WriteCondition

# Standard headers kept with the content and returned on GET and HEAD.
STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")

STORAGE_CLASSES = frozenset(
    """STANDARD REDUCED_REDUNDANCY STANDARD_IA ONEZONE_IA INTELLIGENT_TIERING GLACIER DEEP_ARCHIVE
    GLACIER_IR OUTPOSTS SNOW EXPRESS_ONEZONE""".split()
)

METADATA_PREFIX = "x-amz-meta-"
MAX_METADATA_BYTES = 2048
# An HTTP field name (RFC 9110 token): anything else could not be sent back on GET.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters would break the response line they are sent back in.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# GET query parameter -> the response header it overrides (signed requests only, as in S3).
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def stored_headers(headers: dict[str, str]) -> tuple[tuple[str, str], ...]:
    kept = []
    for name in STORED_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        if name == "content-encoding":
            # aws-chunked describes the transfer, not the content: S3 drops it, and keeps
            # any other value exactly as sent ("deflate, gzip" stays so).
            tokens = [t.strip() for t in value.split(",")]
            if "aws-chunked" in tokens:
                value = ",".join(t for t in tokens if t and t != "aws-chunked")
            if not value:
                continue
        kept.append((name, value))
    return tuple(kept)


def user_metadata(fields: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The x-amz-meta-* pairs among ``fields`` (lower-case names), checked as S3 checks them.

    Every write path (PUT, copy with REPLACE, multipart create, POST form fields)
    goes through here: a name that is not an HTTP token, or a value with control
    characters, is refused before anything is stored, since every later GET of the
    object would have to send it back as a header.
    """
    meta = []
    for name, value in fields:
        if not name.startswith(METADATA_PREFIX):
            continue
        short = name[len(METADATA_PREFIX) :]
        if not _TOKEN.fullmatch(short):
            raise S3Error(
                "InvalidArgument",
                "User metadata names must be valid HTTP header names.",
                ArgumentName=name,
                ArgumentValue=value,
            )
        if _CONTROL.search(value):
            raise S3Error(
                "InvalidArgument",
                "User metadata values must not contain control characters.",
                ArgumentName=name,
                ArgumentValue=_CONTROL.sub("?", value),
            )
        meta.append((short, value))
    meta.sort()
    size = sum(len(k.encode()) + len(v.encode()) for k, v in meta)
    if size > MAX_METADATA_BYTES:
        raise S3Error(
            "MetadataTooLarge",
            f"Your metadata headers are {size} bytes; at most {MAX_METADATA_BYTES} are allowed.",
            MaxSizeAllowed=str(MAX_METADATA_BYTES),
        )
    return tuple(meta)


def storage_class(headers: dict[str, str]) -> str:
    value = headers.get("x-amz-storage-class", "STANDARD")
    if value not in STORAGE_CLASSES:
        raise S3Error("InvalidStorageClass", StorageClassRequested=value)
    return value


def _date(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: a huge zone offset
        return None  # S3 ignores a date it cannot read


def read_conditions(headers: dict[str, str], prefix: str = "") -> ReadConditions:
    """``prefix`` is "" for GET/HEAD and "x-amz-copy-source-" for a copy's source."""
    return ReadConditions(
        if_match=headers.get(prefix + "if-match"),
        if_none_match=headers.get(prefix + "if-none-match"),
        if_modified_since=_date(headers.get(prefix + "if-modified-since")),
        if_unmodified_since=_date(headers.get(prefix + "if-unmodified-since")),
    )


def write_condition(headers: dict[str, str]) -> WriteCondition | None:
    none_match = headers.get("if-none-match")
    match = headers.get("if-match")
    if none_match is not None and none_match.strip() != "*":
        raise S3Error("NotImplemented", "If-None-Match on a write supports only '*'.")
    if none_match is None and match is None:
        return None
    etag = match.strip().strip('"') if match is not None else None
    if etag == "*":  # If-Match: * asks only that the key exists
        return WriteCondition(must_not_exist=none_match is not None, must_exist=True)
    return WriteCondition(must_not_exist=none_match is not None, etag_must_be=etag)
