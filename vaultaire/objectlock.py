"""Object Lock: the rules of WORM retention and legal hold, with no I/O.

One version is *locked* while its retention date is after now or its legal
hold is on. A locked version is never deleted, by anyone; its retention may be
extended by anyone who may write it, and shortened, removed or changed in
mode only in GOVERNANCE and only with ``x-amz-bypass-governance-retention``.
COMPLIANCE can never be loosened. These are S3's rules, as its user guide
states them and ceph's s3-tests check them.

"Now" is always the server's clock (a caller passes it in): a client's idea of
the time never unlocks anything.

This module sits on the ground floor beside ``model`` so that every layer that
may delete a version (the S3 layer, lifecycle, migration) asks the same
questions; the S3 layer maps :class:`ObjectLocked` to 403 AccessDenied.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from attrs import frozen

from vaultaire.errors import VaultaireError
from vaultaire.model import Artifact, Retention

GOVERNANCE = "GOVERNANCE"
COMPLIANCE = "COMPLIANCE"
MODES = (GOVERNANCE, COMPLIANCE)

# The container setting whose presence means "this bucket has Object Lock" (see COMMON brief).
SETTING = "object-lock"

DAY = 86400
# S3 counts a year of default retention as 365 days, and caps a period at 100 years.
YEAR = 365 * DAY
MAX_DAYS = 36500
MAX_YEARS = 100


class ObjectLocked(VaultaireError):
    """A delete or a retention change that the version's lock forbids (S3's 403 AccessDenied)."""


@frozen
class DefaultRetention:
    """A bucket's default: new versions that name no retention get ``mode`` until created + period."""

    mode: str
    days: int | None = None
    years: int | None = None

    def until(self, created: float) -> float:
        if self.days is not None:
            return created + self.days * DAY
        assert self.years is not None
        return created + self.years * YEAR

    def retention(self, created: float) -> Retention:
        return Retention(self.mode, self.until(created))


@frozen
class LockConfiguration:
    """A bucket's Object Lock configuration: enabled (always, once it exists) and an optional default."""

    default: DefaultRetention | None = None

    def to_setting(self) -> str:
        rule = None
        if self.default is not None:
            rule = {"mode": self.default.mode, "days": self.default.days, "years": self.default.years}
        return json.dumps({"enabled": True, "default": rule}, sort_keys=True)

    @classmethod
    def from_setting(cls, stored: str) -> LockConfiguration:
        document = json.loads(stored)
        rule = document.get("default")
        if rule is None:
            return cls()
        return cls(DefaultRetention(rule["mode"], rule.get("days"), rule.get("years")))


@frozen
class LockRequest:
    """What a new version is to be locked with: its own retention, else the bucket's default."""

    retention: Retention | None = None
    legal_hold: bool | None = None  # None: the request did not say
    default: DefaultRetention | None = None

    def retention_at(self, created: float) -> Retention | None:
        """The retention of a version created at ``created`` (the default counts from its creation)."""
        if self.retention is not None:
            return self.retention
        return None if self.default is None else self.default.retention(created)

    def asks(self) -> bool:
        """Whether the new version will carry any lock at all."""
        return self.retention is not None or bool(self.legal_hold) or self.default is not None


def configuration(stored: str | None) -> LockConfiguration | None:
    """The configuration a container setting holds, None when the bucket has no Object Lock."""
    return None if stored is None else LockConfiguration.from_setting(stored)


def in_force(retention: Retention | None, now: float) -> bool:
    """Whether a retention still protects its version at ``now`` (the date itself no longer does)."""
    return retention is not None and retention.until > now


def locked(version: Artifact, now: float) -> bool:
    """Whether anything at all protects this version from deletion right now.

    What lifecycle expiration and migration ask before they remove a version: a
    locked version is skipped, never deleted, with or without GOVERNANCE (no
    background job bypasses governance). Delete markers are never locked.
    """
    if version.delete_marker:
        return False
    return version.legal_hold or in_force(version.retention, now)


_PROTECTED = "Access Denied because object protected by object lock."


def may_delete(version: Artifact, bypass: bool, now: float) -> None:
    """Raise ObjectLocked unless ``version`` may be deleted now.

    A legal hold forbids it whatever the retention and the bypass; a retention in
    force forbids it, except GOVERNANCE with ``bypass``.
    """
    if version.delete_marker:
        return  # S3: delete markers are not WORM-protected
    if version.legal_hold:
        raise ObjectLocked(_PROTECTED)
    retention = version.retention
    if not in_force(retention, now):
        return
    assert retention is not None
    if retention.mode == GOVERNANCE and bypass:
        return
    raise ObjectLocked(_PROTECTED)


def delete_guard(bypass: bool, clock: Callable[[], float]) -> Callable[[Artifact], None]:
    """The ``guard`` to hand to the catalog's delete of one version: refuses a locked version
    inside the delete's own transaction, with the time read there. Lifecycle and migration
    pass ``bypass=False``: no background job ever removes a locked version."""

    def guard(version: Artifact) -> None:
        may_delete(version, bypass, clock())

    return guard


def may_change_retention(old: Retention | None, new: Retention | None, bypass: bool, now: float) -> None:
    """Raise ObjectLocked unless a version retained by ``old`` may be retained by ``new`` instead.

    ``new`` None removes the retention. Legal holds are independent of retention
    and do not enter here. A retention that has run out protects nothing: anything
    may replace it.
    """
    if not in_force(old, now):
        return
    assert old is not None
    extends = new is not None and new.mode == old.mode and new.until >= old.until
    if extends:
        return  # extending (or restating) is allowed in both modes, to anyone who may write
    if old.mode == GOVERNANCE and bypass:
        return  # shortening, removing or changing the mode of GOVERNANCE: with bypass only
    raise ObjectLocked(_PROTECTED)
