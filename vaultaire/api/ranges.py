"""The Range header: parsed here, resolved against an artifact's size."""

from __future__ import annotations

import re

from vaultaire.api.errors import S3Error
from vaultaire.model import ByteRange

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def resolve_range(header: str | None, size: int) -> ByteRange | None:
    """None means the whole artifact (no header, or one S3 ignores)."""
    if not header:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if not m or (not m.group(1) and not m.group(2)):
        return None  # S3 ignores a Range it cannot parse, and so do multi-range headers
    first, last = m.group(1), m.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
        if start >= size:
            raise S3Error("InvalidRange", RangeRequested=header, ActualObjectSize=str(size))
        return ByteRange(start, end)
    suffix = int(last)
    if suffix == 0 or size == 0:
        raise S3Error("InvalidRange", RangeRequested=header, ActualObjectSize=str(size))
    return ByteRange(max(0, size - suffix), size - 1)


_COPY_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")


def resolve_copy_range(header: str, size: int) -> ByteRange:
    """x-amz-copy-source-range: exactly ``bytes=first-last``, wholly inside the source.

    Unlike a GET's Range, nothing is clamped: S3 refuses a range past the source's end.
    """
    m = _COPY_RANGE.match(header.strip())
    if not m or int(m.group(2)) < int(m.group(1)):
        raise S3Error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last.",
            ArgumentName="x-amz-copy-source-range",
            ArgumentValue=header,
        )
    first, last = int(m.group(1)), int(m.group(2))
    if last >= size:
        raise S3Error(
            "InvalidArgument",
            f"Range specified is not valid for source object of size: {size}",
            ArgumentName="x-amz-copy-source-range",
            ArgumentValue=header,
        )
    return ByteRange(first, last)
