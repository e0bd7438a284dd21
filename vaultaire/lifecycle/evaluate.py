"""Which lifecycle action is due for one version (or one upload) at one moment: pure functions.

Time is S3's: an action due ``Days`` after an event is due at the first day boundary at or
after event + Days (S3 rounds up to the next midnight UTC). A "day" is ``day_seconds`` long,
86400 unless the deployment shortens it for tests ([lifecycle] day_seconds); boundaries are
multiples of it since the epoch, so with 86400 they are midnights UTC. Dates in rules are
absolute and never scaled.
"""

from __future__ import annotations

import math

from attrs import frozen

from vaultaire.lifecycle.rules import MIN_SIZE_128K, SMALL_OBJECT, Configuration, Rule
from vaultaire.model import Artifact, Upload

# The one Object Lock rule (re-exported as evaluate.locked): lifecycle never removes a locked version.
from vaultaire.objectlock import locked as locked

DAY = 86400.0

# The kinds of action, also the "action" label of the metric and the event's operation suffix.
EXPIRE = "expire"  # the current version: deleted (unversioned) or hidden by a delete marker
REMOVE_MARKER = "remove-delete-marker"  # a delete marker that is a key's only version
EXPIRE_NONCURRENT = "expire-noncurrent"  # a noncurrent version (or delete marker) deleted for good
TRANSITION = "transition"  # the current version's blobs moved to a placement
NONCURRENT_TRANSITION = "noncurrent-transition"
ABORT_UPLOAD = "abort-upload"
KINDS = (EXPIRE, REMOVE_MARKER, EXPIRE_NONCURRENT, TRANSITION, NONCURRENT_TRANSITION, ABORT_UPLOAD)


@frozen
class Version:
    """What the rules look at in one version of a key."""

    key: str
    size: int
    modified: float
    tags: tuple[tuple[str, str], ...] = ()
    is_latest: bool = True
    delete_marker: bool = False
    placement: str = ""
    # A noncurrent version: when it stopped being current (its successor's time), and how
    # many noncurrent versions of the key are newer than it.
    noncurrent_since: float | None = None
    newer_noncurrent: int = 0
    # A current delete marker with no other version of its key behind it.
    only_version: bool = False

    @classmethod
    def of(
        cls,
        artifact: Artifact,
        noncurrent_since: float | None = None,
        newer_noncurrent: int = 0,
        only_version: bool = False,
    ) -> Version:
        return cls(
            key=artifact.key,
            size=artifact.size,
            modified=artifact.modified,
            tags=artifact.tags,
            is_latest=artifact.is_latest,
            delete_marker=artifact.delete_marker,
            placement=artifact.placement,
            noncurrent_since=noncurrent_since,
            newer_noncurrent=newer_noncurrent,
            only_version=only_version,
        )


@frozen
class Action:
    kind: str
    rule_id: str
    placement: str = ""  # a transition's target
    due: float = 0.0  # since when it is due


def after_days(start: float, days: int, day_seconds: float = DAY) -> float:
    """The first day boundary at or after ``start`` + ``days`` days."""
    return math.ceil((start + days * day_seconds) / day_seconds) * day_seconds


def _applies(rule: Rule, version: Version) -> bool:
    if version.delete_marker:
        # A delete marker has no tags or size: only prefix filters select it.
        return not rule.filter.tags and not rule.filter.sized and version.key.startswith(rule.filter.prefix)
    return rule.filter.matches(version.key, version.size, version.tags)


def expiration(configuration: Configuration, version: Version, day_seconds: float = DAY) -> tuple[float, str] | None:
    """(when, rule id) the current version expires by the earliest Expiration rule; the
    ``x-amz-expiration`` header says it."""
    best: tuple[float, str] | None = None
    if not version.is_latest or version.delete_marker:
        return None
    for rule in configuration.enabled:
        if not _applies(rule, version):
            continue
        if rule.expiration_days is not None:
            when = after_days(version.modified, rule.expiration_days, day_seconds)
        elif rule.expiration_date is not None:
            when = rule.expiration_date
        else:
            continue
        if best is None or when < best[0]:
            best = (when, rule.id)
    return best


def due(configuration: Configuration, version: Version, now: float, day_seconds: float = DAY) -> Action | None:
    """The action to take on the version now, or None. Expiration wins over transition."""
    if version.is_latest:
        if version.delete_marker:
            return _marker(configuration, version, now, day_seconds)
        expires = expiration(configuration, version, day_seconds)
        if expires is not None and expires[0] <= now:
            return Action(EXPIRE, expires[1], due=expires[0])
        return _transition(configuration, version, now, day_seconds)
    return _noncurrent(configuration, version, now, day_seconds)


def _marker(configuration: Configuration, version: Version, now: float, day_seconds: float) -> Action | None:
    if not version.only_version:
        return None
    for rule in configuration.enabled:
        if not _applies(rule, version):
            continue
        if rule.expired_object_delete_marker:
            return Action(REMOVE_MARKER, rule.id, due=version.modified)
        # S3: an Expiration in Days also removes expired delete markers old enough for it.
        if rule.expiration_days is not None:
            when = after_days(version.modified, rule.expiration_days, day_seconds)
            if when <= now:
                return Action(REMOVE_MARKER, rule.id, due=when)
    return None


def _small(configuration: Configuration, rule: Rule, version: Version) -> bool:
    """S3's default minimum for transitions, unless the rule's own filter sets sizes."""
    return configuration.min_size == MIN_SIZE_128K and not rule.filter.sized and version.size < SMALL_OBJECT


def _transition(configuration: Configuration, version: Version, now: float, day_seconds: float) -> Action | None:
    best: Action | None = None
    for rule in configuration.enabled:
        if not rule.transitions or not _applies(rule, version) or _small(configuration, rule, version):
            continue
        for t in rule.transitions:
            when = after_days(version.modified, t.days, day_seconds) if t.days is not None else (t.date or 0.0)
            # The latest transition due is where the version belongs now.
            if when <= now and (best is None or when > best.due):
                best = Action(TRANSITION, rule.id, t.storage_class, when)
    if best is None or best.placement == version.placement:
        return None
    return best


def _noncurrent(configuration: Configuration, version: Version, now: float, day_seconds: float) -> Action | None:
    since = version.noncurrent_since if version.noncurrent_since is not None else version.modified
    move: Action | None = None
    for rule in configuration.enabled:
        if not _applies(rule, version):
            continue
        if rule.has_noncurrent_expiration:
            when = after_days(since, rule.noncurrent_days or 0, day_seconds)
            kept = rule.newer_noncurrent is not None and version.newer_noncurrent < rule.newer_noncurrent
            if when <= now and not kept:
                return Action(EXPIRE_NONCURRENT, rule.id, due=when)
        if version.delete_marker or _small(configuration, rule, version):
            continue
        for t in rule.noncurrent_transitions:
            when = after_days(since, t.days, day_seconds)
            kept = t.newer is not None and version.newer_noncurrent < t.newer
            if when <= now and not kept and (move is None or when > move.due):
                move = Action(NONCURRENT_TRANSITION, rule.id, t.storage_class, when)
    if move is None or move.placement == version.placement:
        return None
    return move


def abort_due(configuration: Configuration, upload: Upload, now: float, day_seconds: float = DAY) -> Action | None:
    """AbortIncompleteMultipartUpload: the upload is aborted once it is old enough."""
    for rule in configuration.enabled:
        if rule.abort_days is None or not upload.key.startswith(rule.filter.prefix):
            continue
        when = after_days(upload.created, rule.abort_days, day_seconds)
        if when <= now:
            return Action(ABORT_UPLOAD, rule.id, due=when)
    return None


def common_prefix(configuration: Configuration) -> str:
    """The longest prefix every enabled rule's filter starts with: where a run needs to look."""
    prefixes = [rule.filter.prefix for rule in configuration.enabled]
    if not prefixes:
        return ""
    first, last = min(prefixes), max(prefixes)
    n = 0
    while n < len(first) and n < len(last) and first[n] == last[n]:
        n += 1
    return first[:n]
