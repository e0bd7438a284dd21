"""S3's rules for bucket names: pure, for the S3 layer (CreateBucket) and the admin tool (rename) alike."""

from __future__ import annotations

import re

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def valid_bucket_name(name: str) -> bool:
    """Whether S3 lets a new bucket take ``name`` (existing ones are only looked up, whatever their name)."""
    return not (
        not _BUCKET_NAME.match(name)
        or ".." in name
        or ".-" in name
        or "-." in name
        or _IP_ADDRESS.match(name)
        or name.startswith("xn--")
        or name.startswith("sthree-")
        or name.endswith("-s3alias")
        or name.endswith("--ol-s3")
    )
