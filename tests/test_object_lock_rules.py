"""Object Lock rules and documents, without a server: vaultaire/objectlock.py and
vaultaire/api/object_lock_documents.py, each refusal with S3's code and message."""

from __future__ import annotations

import pytest

from vaultaire.api import object_lock_documents as documents
from vaultaire.api.errors import S3Error, from_domain
from vaultaire.model import Artifact, Retention
from vaultaire.objectlock import (
    COMPLIANCE,
    DAY,
    GOVERNANCE,
    YEAR,
    DefaultRetention,
    LockConfiguration,
    LockRequest,
    ObjectLocked,
    configuration,
    delete_guard,
    locked,
    may_change_retention,
    may_delete,
)

NOW = 1_800_000_000.0


def version(retention: Retention | None = None, hold: bool = False, marker: bool = False) -> Artifact:
    return Artifact(
        container_id=1,
        key="k",
        locator="" if marker else "loc",
        size=0,
        md5="",
        modified=NOW - 10,
        retention=retention,
        legal_hold=hold,
        delete_marker=marker,
        version_id="v1",
    )


# -- deleting a version


@pytest.mark.parametrize("mode", [GOVERNANCE, COMPLIANCE])
def test_a_version_in_retention_is_not_deleted(mode: str) -> None:
    with pytest.raises(ObjectLocked):
        may_delete(version(Retention(mode, NOW + 1)), bypass=False, now=NOW)


def test_governance_gives_way_to_bypass_compliance_never() -> None:
    may_delete(version(Retention(GOVERNANCE, NOW + DAY)), bypass=True, now=NOW)
    with pytest.raises(ObjectLocked):
        may_delete(version(Retention(COMPLIANCE, NOW + DAY)), bypass=True, now=NOW)


def test_a_legal_hold_forbids_deletion_whatever_the_bypass_or_retention() -> None:
    for retention in (None, Retention(GOVERNANCE, NOW - 1), Retention(GOVERNANCE, NOW + DAY)):
        with pytest.raises(ObjectLocked):
            may_delete(version(retention, hold=True), bypass=True, now=NOW)


def test_an_expired_retention_protects_nothing() -> None:
    # The date itself is no longer protected: "until" means up to, not including.
    may_delete(version(Retention(COMPLIANCE, NOW)), bypass=False, now=NOW)
    may_delete(version(Retention(COMPLIANCE, NOW - 1)), bypass=False, now=NOW)
    may_delete(version(), bypass=False, now=NOW)


def test_delete_markers_are_never_locked() -> None:
    marker = version(Retention(COMPLIANCE, NOW + DAY), hold=True, marker=True)
    may_delete(marker, bypass=False, now=NOW)
    assert not locked(marker, NOW)


def test_locked_is_what_background_jobs_ask() -> None:
    assert locked(version(Retention(GOVERNANCE, NOW + 1)), NOW)  # no bypass for lifecycle
    assert locked(version(hold=True), NOW)
    assert not locked(version(Retention(COMPLIANCE, NOW - 1)), NOW)
    assert not locked(version(), NOW)


def test_the_refusal_is_s3s_access_denied() -> None:
    with pytest.raises(ObjectLocked) as refused:
        may_delete(version(hold=True), bypass=False, now=NOW)
    error = from_domain(refused.value, "b", "k")
    assert error is not None
    assert (error.code, error.status) == ("AccessDenied", 403)
    assert error.message == "Access Denied because object protected by object lock."


# -- changing a retention


@pytest.mark.parametrize("mode", [GOVERNANCE, COMPLIANCE])
def test_extending_or_restating_is_always_allowed(mode: str) -> None:
    old = Retention(mode, NOW + DAY)
    may_change_retention(old, Retention(mode, NOW + 2 * DAY), bypass=False, now=NOW)
    may_change_retention(old, Retention(mode, NOW + DAY), bypass=False, now=NOW)


def test_compliance_is_never_shortened_removed_or_changed() -> None:
    old = Retention(COMPLIANCE, NOW + DAY)
    for new in (Retention(COMPLIANCE, NOW + 10), None, Retention(GOVERNANCE, NOW + 2 * DAY)):
        for bypass in (False, True):
            with pytest.raises(ObjectLocked):
                may_change_retention(old, new, bypass=bypass, now=NOW)


def test_governance_is_loosened_only_with_bypass() -> None:
    old = Retention(GOVERNANCE, NOW + DAY)
    for new in (Retention(GOVERNANCE, NOW + 10), None, Retention(COMPLIANCE, NOW + 2 * DAY)):
        with pytest.raises(ObjectLocked):
            may_change_retention(old, new, bypass=False, now=NOW)
        may_change_retention(old, new, bypass=True, now=NOW)


def test_anything_replaces_an_expired_or_absent_retention() -> None:
    for old in (None, Retention(COMPLIANCE, NOW - 1)):
        may_change_retention(old, Retention(GOVERNANCE, NOW + 10), bypass=False, now=NOW)
        may_change_retention(old, None, bypass=False, now=NOW)


# -- default retention and the setting


def test_default_retention_counts_from_creation() -> None:
    assert DefaultRetention(GOVERNANCE, days=3).retention(NOW) == Retention(GOVERNANCE, NOW + 3 * DAY)
    assert DefaultRetention(COMPLIANCE, years=2).until(NOW) == NOW + 2 * YEAR


def test_a_requests_own_retention_wins_over_the_default() -> None:
    default = DefaultRetention(COMPLIANCE, days=1)
    own = Retention(GOVERNANCE, NOW + 5)
    assert LockRequest(own, False, None).retention_at(NOW) == own
    assert LockRequest(None, True, default).retention_at(NOW) == Retention(COMPLIANCE, NOW + DAY)
    assert not LockRequest().asks()
    assert LockRequest(legal_hold=True).asks()


@pytest.mark.parametrize(
    "config",
    [
        LockConfiguration(),
        LockConfiguration(DefaultRetention(GOVERNANCE, days=7)),
        LockConfiguration(DefaultRetention(COMPLIANCE, years=1)),
    ],
)
def test_configuration_survives_the_setting(config: LockConfiguration) -> None:
    assert configuration(config.to_setting()) == config
    assert configuration(None) is None


# -- documents


def lock_xml(inner: str) -> bytes:
    return f'<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</ObjectLockConfiguration>'.encode()


def test_configuration_documents_parse() -> None:
    assert (
        documents.parse_configuration(lock_xml("<ObjectLockEnabled>Enabled</ObjectLockEnabled>")) == LockConfiguration()
    )
    parsed = documents.parse_configuration(
        lock_xml(
            "<ObjectLockEnabled>Enabled</ObjectLockEnabled>"
            "<Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Years>3</Years></DefaultRetention></Rule>"
        )
    )
    assert parsed == LockConfiguration(DefaultRetention(COMPLIANCE, years=3))


@pytest.mark.parametrize(
    "inner",
    [
        "",
        "<ObjectLockEnabled>Disabled</ObjectLockEnabled>",
        "<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule>",
        "<ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule></Rule>",
        "<ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention></DefaultRetention></Rule>",
        "<ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode>"
        "</DefaultRetention></Rule>",
        "<ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Days>1</Days>"
        "</DefaultRetention></Rule>",
        "<ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>governance</Mode>"
        "<Days>1</Days></DefaultRetention></Rule>",
        "<ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode>"
        "<Days>1</Days><Years>1</Years></DefaultRetention></Rule>",
        "<ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode>"
        "<Days>one</Days></DefaultRetention></Rule>",
        "<ObjectLockEnabled>Enabled</ObjectLockEnabled><Other/>",
    ],
)
def test_malformed_configurations(inner: str) -> None:
    with pytest.raises(S3Error) as refused:
        documents.parse_configuration(lock_xml(inner))
    assert refused.value.code == "MalformedXML"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("Days", "0", "Default retention period must be a positive integer value."),
        ("Days", "-1", "Default retention period must be a positive integer value."),
        ("Years", "0", "Default retention period must be a positive integer value."),
        ("Days", "36501", "Default retention period too large."),
        ("Years", "101", "Default retention period too large."),
    ],
)
def test_periods_out_of_range(field: str, value: str, message: str) -> None:
    body = lock_xml(
        "<ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode>"
        f"<{field}>{value}</{field}></DefaultRetention></Rule>"
    )
    with pytest.raises(S3Error) as refused:
        documents.parse_configuration(body)
    assert (refused.value.code, refused.value.message) == ("InvalidArgument", message)
    assert refused.value.extra == {"ArgumentName": field, "ArgumentValue": value}


def test_the_configuration_renders_back() -> None:
    from vaultaire.api.xmlout import xml_document

    text = xml_document(documents.render_configuration(LockConfiguration(DefaultRetention(GOVERNANCE, days=2))))
    assert documents.parse_configuration(text) == LockConfiguration(DefaultRetention(GOVERNANCE, days=2))


def test_retention_documents() -> None:
    body = b"<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>2030-01-02T03:04:05Z</RetainUntilDate></Retention>"
    assert documents.parse_retention(body, NOW) == Retention(GOVERNANCE, 1893553445.0)
    assert documents.parse_retention(b"<Retention/>", NOW) is None  # removal
    for bad in (
        b"",
        b"<Retention><Mode>GOVERNANCE</Mode></Retention>",
        b"<Retention><Mode>SOFT</Mode><RetainUntilDate>2030-01-02T03:04:05Z</RetainUntilDate></Retention>",
        b"<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>soon</RetainUntilDate></Retention>",
        b"<LegalHold><Status>ON</Status></LegalHold>",
    ):
        with pytest.raises(S3Error) as refused:
            documents.parse_retention(bad, NOW)
        assert refused.value.code == "MalformedXML"
    past = b"<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>2020-01-01T00:00:00Z</RetainUntilDate></Retention>"
    with pytest.raises(S3Error) as refused:
        documents.parse_retention(past, NOW)
    assert (refused.value.code, refused.value.message) == (
        "InvalidArgument",
        "The retain until date must be in the future!",
    )


def test_legal_hold_documents() -> None:
    assert documents.parse_legal_hold(b"<LegalHold><Status>ON</Status></LegalHold>") is True
    assert documents.parse_legal_hold(b"<LegalHold><Status>OFF</Status></LegalHold>") is False
    for bad in (b"<LegalHold/>", b"<LegalHold><Status>on</Status></LegalHold>", b""):
        with pytest.raises(S3Error) as refused:
            documents.parse_legal_hold(bad)
        assert refused.value.code == "MalformedXML"


# -- headers


def test_headers_ask_for_a_lock() -> None:
    asked = documents.requested(
        {documents.MODE: "COMPLIANCE", documents.UNTIL: "2030-01-01T00:00:00.000Z", documents.LEGAL_HOLD: "ON"}, NOW
    )
    assert asked == (Retention(COMPLIANCE, 1893456000.0), True)
    assert documents.requested({}, NOW) == (None, None)
    assert documents.requested({documents.LEGAL_HOLD: "OFF"}, NOW) == (None, False)


@pytest.mark.parametrize(
    ("headers", "message", "argument"),
    [
        (
            {documents.MODE: "GOVERNANCE"},
            documents.UNTIL + " and " + documents.MODE + " must both be supplied",
            documents.UNTIL,
        ),
        (
            {documents.UNTIL: "2030-01-01T00:00:00Z"},
            documents.UNTIL + " and " + documents.MODE + " must both be supplied",
            documents.MODE,
        ),
        (
            {documents.MODE: "SOFT", documents.UNTIL: "2030-01-01T00:00:00Z"},
            "Unknown wormMode directive.",
            documents.MODE,
        ),
        (
            {documents.MODE: "GOVERNANCE", documents.UNTIL: "abc"},
            "The retain until date must be provided in ISO 8601 format",
            documents.UNTIL,
        ),
        (
            {documents.MODE: "GOVERNANCE", documents.UNTIL: "2020-01-01T00:00:00Z"},
            "The retain until date must be in the future!",
            documents.UNTIL,
        ),
        ({documents.LEGAL_HOLD: "wrong"}, "Legal Hold must be either of 'ON' or 'OFF'", documents.LEGAL_HOLD),
    ],
)
def test_bad_headers(headers: dict[str, str], message: str, argument: str) -> None:
    with pytest.raises(S3Error) as refused:
        documents.requested(headers, NOW)
    assert (refused.value.code, refused.value.message) == ("InvalidArgument", message)
    assert refused.value.extra["ArgumentName"] == argument


def test_dates_without_a_zone_are_utc_and_nonsense_is_not_a_date() -> None:
    assert documents.parse_date("2030-01-01T00:00:00") == documents.parse_date("2030-01-01T00:00:00Z")
    assert documents.parse_date("2030-01-01T01:00:00+01:00") == documents.parse_date("2030-01-01T00:00:00Z")
    for bad in ("", "tomorrow", "9" * 100, "2030-13-01T00:00:00Z"):
        assert documents.parse_date(bad) is None


def test_the_delete_guard_reads_the_clock_when_it_runs() -> None:
    clock = [NOW]
    guard = delete_guard(False, lambda: clock[0])
    held = version(Retention(GOVERNANCE, NOW + DAY))
    with pytest.raises(ObjectLocked):
        guard(held)
    clock[0] = NOW + DAY  # the date has come: the same guard now lets it go
    guard(held)
    delete_guard(True, lambda: NOW)(held)  # GOVERNANCE with bypass
