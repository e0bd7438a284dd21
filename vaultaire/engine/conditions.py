"""Conditional reads (If-Match and friends) with S3's precedence, as a pure function.

If-Match decides alone when present (If-Unmodified-Since is then ignored);
If-None-Match likewise decides alone over If-Modified-Since. A failed match
is 412; a "not modified" is 304 for reads (412 for copy sources).
"""

from __future__ import annotations

import enum

from attrs import frozen

from vaultaire.model import Artifact


class Outcome(enum.Enum):
    PROCEED = "proceed"
    NOT_MODIFIED = "not-modified"
    FAILED = "failed"


@frozen
class ReadConditions:
    if_match: str | None = None  # raw header: '"etag"', 'etag', '"a", "b"' or '*'
    if_none_match: str | None = None
    if_modified_since: float | None = None  # epoch seconds; unparseable dates are dropped by the caller
    if_unmodified_since: float | None = None

    @property
    def empty(self) -> bool:
        return self == ReadConditions()


def _etags(header: str) -> list[str]:
    return [tag.strip().removeprefix("W/").strip('"') for tag in header.split(",") if tag.strip()]


def etag_matches(header: str, md5: str) -> bool:
    tags = _etags(header)
    return "*" in tags or md5 in tags


def evaluate(conditions: ReadConditions, artifact: Artifact) -> Outcome:
    # HTTP dates have whole seconds: compare the artifact's time truncated likewise.
    modified = int(artifact.modified)
    if conditions.if_match is not None:
        if not etag_matches(conditions.if_match, artifact.md5):
            return Outcome.FAILED
    elif conditions.if_unmodified_since is not None and modified > conditions.if_unmodified_since:
        return Outcome.FAILED
    if conditions.if_none_match is not None:
        if etag_matches(conditions.if_none_match, artifact.md5):
            return Outcome.NOT_MODIFIED
    elif conditions.if_modified_since is not None and modified <= conditions.if_modified_since:
        return Outcome.NOT_MODIFIED
    return Outcome.PROCEED
