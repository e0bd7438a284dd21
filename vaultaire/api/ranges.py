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
