"""rclone remote strings, read the same way by the config's checks and the rclone driver."""

from __future__ import annotations

import re

# The last path element of a remote is the bucket rclone serves: S3's rule for bucket names.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def split_remote(remote: str) -> tuple[str, str]:
    """``"od:some/folder"`` -> (``"od:some"``, ``"folder"``): the root rclone serves, and the bucket.

    ValueError, with a message for a person, for a remote without a usable last path element.
    """
    name, colon, path = remote.rpartition(":") if ":" in remote else ("", "", remote)
    path = path.rstrip("/")
    parent, slash, last = path.rpartition("/")
    if not _BUCKET.match(last):
        raise ValueError(
            f"remote {remote!r} must end in a folder name of 3 to 63 lowercase letters, digits or '-'"
            " (say 'od:vaultaire'): it is the bucket rclone serves"
        )
    if slash and not parent:
        parent = "/"  # a local path "/x" is served from "/"
    return name + colon + parent, last
