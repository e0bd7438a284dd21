"""Tags of artifacts and containers: S3's limits and its query-string header form, no I/O.

Pure functions on ``(key, value)`` tuples, so the S3 layer (the ``?tagging``
operations, ``x-amz-tagging``), access policies (``s3:RequestObjectTag/``) and
lifecycle filters all read tags one way. A refusal is :class:`InvalidTags`, which
carries the S3 error code and message S3 answers with; the S3 layer renders it.

S3's rules (its user guide, "Categorizing your storage using tags"): at most 10
tags on an object and 50 on a bucket, unique keys, a key of 1 to 128 and a value
of 0 to 256 characters counted in UTF-16 code units ("Amazon S3 object tags are
internally represented in UTF-16"), made of Unicode letters, numbers and white
space and ``_ . : / = + - @`` only, and no key in the reserved ``aws:`` prefix.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote, unquote_to_bytes

Tags = tuple[tuple[str, str], ...]

MAX_OBJECT_TAGS = 10
MAX_BUCKET_TAGS = 50
MAX_KEY = 128
MAX_VALUE = 256
_SYMBOLS = frozenset("_.:/=+-@")
_HEADER = "x-amz-tagging"
_BAD_HEADER = (
    "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without "
    "tag name duplicates."
)


class InvalidTags(ValueError):
    """Tags S3 would refuse: ``code`` and ``message`` are S3's, ``extra`` its additional error fields."""

    def __init__(self, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


def _allowed(text: str) -> bool:
    # AWS's pattern [\p{L}\p{Z}\p{N}_.:/=+\-@]: letters, separators (spaces), numbers, the symbols.
    return all(c in _SYMBOLS or unicodedata.category(c)[0] in "LZN" for c in text)


def _length(text: str) -> int:
    """Characters as S3 counts them: UTF-16 code units (a character outside the BMP counts twice)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def validate(tags: Tags, *, bucket: bool = False) -> Tags:
    """``tags`` unchanged if S3 would store them on an object (or, with ``bucket``, a bucket).

    Each tag is checked in order, then the count, as S3 does (a set of 60 bad tags is
    refused for its first bad tag, not for its size).
    """
    seen: set[str] = set()
    for key, value in tags:
        if key in seen:
            raise InvalidTags("InvalidTag", "Cannot provide multiple Tags with the same key", TagKey=key)
        seen.add(key)
        if key.startswith("aws:"):
            if bucket:
                raise InvalidTags("InvalidTag", "System tags cannot be added/updated by requester")
            raise InvalidTags("InvalidTag", "Your TagKey cannot be prefixed with aws:", TagKey=key)
        if not key or not _allowed(key):
            raise InvalidTags("InvalidTag", "The TagKey you have provided is invalid", TagKey=key)
        if _length(key) > MAX_KEY:
            raise InvalidTags("InvalidTag", f"The TagKey you have provided is too long, max {MAX_KEY}", TagKey=key)
        if not _allowed(value):
            raise InvalidTags("InvalidTag", "The TagValue you have provided is invalid", TagKey=key, TagValue=value)
        if _length(value) > MAX_VALUE:
            raise InvalidTags("InvalidTag", f"The TagValue you have provided is too long, max {MAX_VALUE}", TagKey=key)
    if bucket and len(tags) > MAX_BUCKET_TAGS:
        raise InvalidTags("BadRequest", f"Bucket tag count cannot be greater than {MAX_BUCKET_TAGS}")
    if not bucket and len(tags) > MAX_OBJECT_TAGS:
        raise InvalidTags("BadRequest", f"Object tags cannot be greater than {MAX_OBJECT_TAGS}")
    return tags


def _unquote(text: str, header: str) -> str:
    # The form encoding HTML forms and urlencode() write: '+' is a space, then percent-escapes.
    try:
        return unquote_to_bytes(text.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidTags("InvalidArgument", _BAD_HEADER, ArgumentName=_HEADER, ArgumentValue=header) from None


def parse_header(header: str) -> Tags:
    """The tags of an ``x-amz-tagging`` header (``k1=v1&k2=v2``, URL-encoded), validated for an object.

    A pair without ``=`` is a key with the empty value (``a&b=1``); an empty header is no tags.
    A pair holding a second, unencoded ``=``, a key given twice, or escapes that are not UTF-8
    are InvalidArgument, as S3 answers; the tags themselves are then checked like any others.
    """
    tags: list[tuple[str, str]] = []
    seen: set[str] = set()
    for pair in header.strip().split("&"):
        if not pair:
            continue
        if pair.count("=") > 1:
            raise InvalidTags("InvalidArgument", _BAD_HEADER, ArgumentName=_HEADER, ArgumentValue=header)
        raw_key, _, raw_value = pair.partition("=")
        key, value = _unquote(raw_key, header), _unquote(raw_value, header)
        if key in seen:
            raise InvalidTags("InvalidArgument", _BAD_HEADER, ArgumentName=_HEADER, ArgumentValue=header)
        seen.add(key)
        tags.append((key, value))
    return validate(tuple(tags))


def to_header(tags: Tags) -> str:
    """The ``x-amz-tagging`` form of ``tags`` (what :func:`parse_header` reads back)."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in tags)


def as_dict(tags: Tags) -> dict[str, str]:
    """Key to value, for filters and conditions (keys are unique in any stored tag set)."""
    return dict(tags)
