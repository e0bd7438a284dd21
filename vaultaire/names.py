"""S3's rules for bucket names: pure, for the S3 layer (CreateBucket) and the admin tool (rename) alike."""

from __future__ import annotations

import json
import re
from typing import Any

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


def policy_renamed(document: str, old: str, new: str) -> str:
    """A bucket policy with the resources that name bucket ``old`` naming ``new`` instead.

    A rename is the catalog's, not S3's (S3 buckets cannot be renamed): without this the bucket's
    own policy would go on naming the old bucket and stop matching its requests, or worse, start
    matching a bucket someone makes under the old name. Only exact bucket ARNs and their ``/``
    object paths are rewritten; patterns that could mean other buckets (``arn:aws:s3:::old*``) and
    text that is not valid JSON are left as they are.
    """
    try:
        policy = json.loads(document)
    except ValueError:
        return document
    if not isinstance(policy, dict) or not isinstance(policy.get("Statement"), (list, dict)):
        return document
    bucket, objects = f"arn:aws:s3:::{old}", f"arn:aws:s3:::{old}/"

    def rename(resource: Any) -> Any:
        if isinstance(resource, str):
            if resource == bucket:
                return f"arn:aws:s3:::{new}"
            if resource.startswith(objects):
                return f"arn:aws:s3:::{new}/" + resource[len(objects) :]
            return resource
        if isinstance(resource, list):
            return [rename(r) for r in resource]
        return resource

    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    for statement in statements:
        if isinstance(statement, dict):
            for field in ("Resource", "NotResource"):
                if field in statement:
                    statement[field] = rename(statement[field])
    return json.dumps(policy)
