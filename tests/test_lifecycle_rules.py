"""Lifecycle configurations validated as S3 validates them, and what is due when (a fake clock)."""

from __future__ import annotations

import pytest

from vaultaire.api.errors import S3Error
from vaultaire.lifecycle import documents, evaluate, rules
from vaultaire.lifecycle.evaluate import Version
from vaultaire.model import Artifact, Retention, Upload

PLACEMENTS = ("local", "cold")
DAY = 86400.0


def doc(*rule_xml: str) -> bytes:
    inner = "".join(f"<Rule>{r}</Rule>" for r in rule_xml)
    return f'<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</LifecycleConfiguration>'.encode()


def refused(body: bytes, code: str, message: str | None = None, placements=PLACEMENTS) -> None:
    with pytest.raises(S3Error) as caught:
        rules.parse(body, placements)
    assert caught.value.code == code, caught.value.message
    if message is not None:
        assert caught.value.message == message


EXPIRE_1 = (
    "<ID>a</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>"
)


def test_a_full_configuration_parses_and_renders_back_the_same():
    body = doc(
        EXPIRE_1,
        "<ID>b</ID><Filter><And><Prefix>p/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag>"
        "<ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></And></Filter><Status>Disabled</Status>"
        "<Transition><Days>30</Days><StorageClass>cold</StorageClass></Transition>"
        "<NoncurrentVersionTransition><NoncurrentDays>5</NoncurrentDays><StorageClass>cold</StorageClass>"
        "</NoncurrentVersionTransition>"
        "<NoncurrentVersionExpiration><NoncurrentDays>10</NoncurrentDays><NewerNoncurrentVersions>3"
        "</NewerNoncurrentVersions></NoncurrentVersionExpiration>",
        "<ID>c</ID><Prefix>old/</Prefix><Status>Enabled</Status>"
        "<AbortIncompleteMultipartUpload><DaysAfterInitiation>7</DaysAfterInitiation></AbortIncompleteMultipartUpload>"
        "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>",
        "<ID>d</ID><Filter></Filter><Status>Enabled</Status><Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration>",
    )
    parsed = rules.parse(body, PLACEMENTS)
    assert [r.id for r in parsed.rules] == ["a", "b", "c", "d"]
    b = parsed.rules[1]
    assert b.filter.tags == (("k", "v"),) and b.filter.size_greater_than == 10 and not b.enabled
    assert b.newer_noncurrent == 3 and b.noncurrent_days == 10
    assert parsed.rules[2].filter.form == "legacy" and parsed.rules[2].abort_days == 7
    assert documents.load(documents.store(parsed)) == parsed


def test_a_rule_without_id_gets_one():
    parsed = rules.parse(doc("<Filter/><Status>Enabled</Status><Expiration><Days>3</Days></Expiration>"), PLACEMENTS)
    assert len(parsed.rules[0].id) > 0


@pytest.mark.parametrize(
    "body, code, message",
    [
        (b"<LifecycleConfiguration/>", "MalformedXML", None),
        (b"<NotLifecycle/>", "MalformedXML", None),
        (b"<LifecycleConfiguration><Rule>", "MalformedXML", None),
        (doc("<ID>x</ID><Filter/><Status>On</Status><Expiration><Days>1</Days></Expiration>"), "MalformedXML", None),
        (doc("<ID>x</ID><Filter/><Expiration><Days>1</Days></Expiration>"), "MalformedXML", None),
        (doc("<ID>x</ID><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>"), "MalformedXML", None),
        (
            doc("<ID>x</ID><Prefix/><Filter/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>"),
            "MalformedXML",
            None,
        ),
        (
            doc(
                "<ID>x</ID><Filter/><Status>Enabled</Status><Expiration><Days>1</Days><Date>2030-01-01</Date></Expiration>"
            ),
            "MalformedXML",
            None,
        ),
        (
            doc(
                "<ID>x</ID><Filter/><Status>Enabled</Status><Expiration><Days>1</Days>"
                "<ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>"
            ),
            "MalformedXML",
            None,
        ),
        (
            doc("<ID>x</ID><Filter/><Status>Enabled</Status><Expiration><Days>x</Days></Expiration>"),
            "MalformedXML",
            None,
        ),
        (doc("<ID>x</ID><Filter/><Status>Enabled</Status><Bogus/>"), "MalformedXML", None),
        (
            doc(
                "<ID>x</ID><Filter><And></And></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>"
            ),
            "MalformedXML",
            None,
        ),
        (
            doc(
                "<ID>x</ID><Filter><Prefix>a</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>"
            ),
            "MalformedXML",
            None,
        ),
        (
            doc("<ID>x</ID><Filter/><Status>Enabled</Status><Expiration><Days>0</Days></Expiration>"),
            "InvalidArgument",
            "'Days' for Expiration action must be a positive integer",
        ),
        (
            doc(
                "<ID>x</ID><Filter/><Status>Enabled</Status><Expiration><Date>2030-01-01T12:00:00Z</Date></Expiration>"
            ),
            "InvalidArgument",
            "'Date' must be at midnight GMT",
        ),
        (
            doc(f"<ID>{'i' * 256}</ID><Filter/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>"),
            "InvalidArgument",
            "ID length should not exceed allowed limit of 255",
        ),
        (doc(EXPIRE_1, EXPIRE_1), "InvalidArgument", "Rule ID must be unique. Found same ID for more than one rule"),
        (
            doc("<ID>x</ID><Filter/><Status>Enabled</Status>"),
            "InvalidRequest",
            "At least one action needs to be specified in a rule",
        ),
        (
            doc(
                "<ID>x</ID><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status>"
                "<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload>"
            ),
            "InvalidRequest",
            "AbortIncompleteMultipartUpload cannot be specified with Tags.",
        ),
        (
            doc(
                "<ID>x</ID><Filter><ObjectSizeLessThan>5</ObjectSizeLessThan></Filter><Status>Enabled</Status>"
                "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>"
            ),
            "InvalidRequest",
            "ExpiredObjectDeleteMarker cannot be specified with Object Size.",
        ),
        (
            doc(
                "<ID>x</ID><Filter><And><Tag><Key>k</Key><Value>1</Value></Tag><Tag><Key>k</Key><Value>2</Value></Tag>"
                "</And></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>"
            ),
            "InvalidRequest",
            "Duplicate Tag Keys are not allowed.",
        ),
        (
            doc(
                "<ID>x</ID><Filter/><Status>Enabled</Status>"
                "<NoncurrentVersionExpiration><NoncurrentDays>0</NoncurrentDays></NoncurrentVersionExpiration>"
            ),
            "InvalidArgument",
            "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
        ),
        (
            doc(
                "<ID>x</ID><Filter/><Status>Enabled</Status><Expiration><Days>10</Days></Expiration>"
                "<Transition><Days>30</Days><StorageClass>cold</StorageClass></Transition>"
            ),
            "InvalidArgument",
            "'Days' in the Expiration action for filter '' must be greater than 'Days' in the Transition action",
        ),
        (
            doc(
                "<ID>x</ID><Filter/><Status>Enabled</Status><Transition><Days>3</Days><StorageClass>GLACIER</StorageClass></Transition>"
            ),
            "InvalidStorageClass",
            None,
        ),
        (
            doc(
                "<ID>x</ID><Filter/><Status>Enabled</Status><Transition><Days>3</Days><StorageClass>cold</StorageClass></Transition>"
                "<Transition><Date>2030-01-01</Date><StorageClass>local</StorageClass></Transition>"
            ),
            "InvalidRequest",
            "Found mixed 'Date' and 'Days' based Transition actions in lifecycle rule",
        ),
    ],
)
def test_invalid_configurations_get_s3s_errors(body, code, message):
    refused(body, code, message)


def test_too_many_rules():
    many = [
        f"<ID>r{i}</ID><Filter/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>" for i in range(1001)
    ]
    refused(doc(*many), "MalformedXML")
    rules.parse(doc(*many[:1000]), PLACEMENTS)


def test_a_stored_configuration_loads_without_its_placements():
    body = doc(
        "<ID>x</ID><Filter/><Status>Enabled</Status><Transition><Days>3</Days><StorageClass>gone</StorageClass></Transition>"
    )
    refused(body, "InvalidStorageClass")
    parsed = rules.parse(body, None)
    assert documents.load(documents.store(parsed)).rules[0].transitions[0].storage_class == "gone"


# -- evaluation with a fake clock


def configure(*rule_xml: str, min_size: str = rules.MIN_SIZE_128K) -> rules.Configuration:
    return rules.parse(doc(*rule_xml), PLACEMENTS, min_size)


def version(key: str = "logs/a", size: int = 10, modified: float = 1000.0, **kw) -> Version:
    return Version(key=key, size=size, modified=modified, placement=kw.pop("placement", "local"), **kw)


def test_expiration_is_due_at_the_day_boundary_after_creation_plus_days():
    config = configure(EXPIRE_1)
    v = version(modified=5 * DAY + 10)
    assert evaluate.expiration(config, v) == (7 * DAY, "a")
    assert evaluate.due(config, v, 7 * DAY - 1) is None
    action = evaluate.due(config, v, 7 * DAY)
    assert action is not None and (action.kind, action.rule_id) == (evaluate.EXPIRE, "a")
    assert evaluate.due(config, version(key="other/a", modified=5 * DAY), 100 * DAY) is None


def test_a_short_day_scales_days_but_not_dates():
    config = configure(EXPIRE_1)
    assert evaluate.expiration(config, version(modified=100.5), day_seconds=1) == (102.0, "a")
    dated = configure("<ID>d</ID><Filter/><Status>Enabled</Status><Expiration><Date>2030-01-01</Date></Expiration>")
    assert evaluate.expiration(dated, version(), day_seconds=1) == (1893456000.0, "d")


def test_disabled_rules_and_filters():
    config = configure(
        "<ID>t</ID><Filter><And><Prefix>logs/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag>"
        "<ObjectSizeLessThan>100</ObjectSizeLessThan></And></Filter><Status>Enabled</Status>"
        "<Expiration><Days>1</Days></Expiration>",
        "<ID>off</ID><Filter/><Status>Disabled</Status><Expiration><Days>1</Days></Expiration>",
    )
    later = 10 * DAY
    assert evaluate.due(config, version(), later) is None  # no tag
    assert evaluate.due(config, version(tags=(("k", "v"),)), later) is not None
    assert evaluate.due(config, version(tags=(("k", "v"),), size=100), later) is None


def test_the_earliest_expiration_wins():
    config = configure(
        "<ID>late</ID><Filter/><Status>Enabled</Status><Expiration><Days>9</Days></Expiration>",
        "<ID>soon</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>2</Days></Expiration>",
    )
    assert evaluate.expiration(config, version(modified=0)) == (2 * DAY, "soon")


def test_transition_after_days_to_another_placement_only_when_big_enough_by_default():
    rule = (
        "<ID>t</ID><Filter/><Status>Enabled</Status>"
        "<Transition><Days>2</Days><StorageClass>cold</StorageClass></Transition>"
    )
    config = configure(rule)
    small, big = version(modified=0), version(modified=0, size=200 * 1024)
    assert evaluate.due(config, small, 3 * DAY) is None  # S3's 128 KiB default minimum
    action = evaluate.due(config, big, 2 * DAY)
    assert action is not None and (action.kind, action.placement) == (evaluate.TRANSITION, "cold")
    assert evaluate.due(config, big, 2 * DAY - 1) is None
    assert evaluate.due(config, version(modified=0, size=200 * 1024, placement="cold"), 3 * DAY) is None
    anything = configure(rule, min_size=rules.MIN_SIZE_VARIES)
    assert evaluate.due(anything, small, 3 * DAY) is not None


def test_expiration_wins_over_transition():
    config = configure(
        "<ID>t</ID><Filter/><Status>Enabled</Status><Transition><Days>1</Days><StorageClass>cold</StorageClass></Transition>"
        "<Expiration><Days>2</Days></Expiration>",
        min_size=rules.MIN_SIZE_VARIES,
    )
    assert evaluate.due(config, version(modified=0), 1 * DAY).kind == evaluate.TRANSITION
    assert evaluate.due(config, version(modified=0), 2 * DAY).kind == evaluate.EXPIRE


def test_noncurrent_expiration_counts_from_when_it_stopped_being_current_and_keeps_the_newest():
    config = configure(
        "<ID>n</ID><Filter/><Status>Enabled</Status><NoncurrentVersionExpiration><NoncurrentDays>3</NoncurrentDays>"
        "<NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration>"
    )
    old = version(modified=0, is_latest=False, noncurrent_since=10 * DAY, newer_noncurrent=2)
    assert evaluate.due(config, old, 12 * DAY) is None
    assert evaluate.due(config, old, 13 * DAY).kind == evaluate.EXPIRE_NONCURRENT
    kept = version(modified=0, is_latest=False, noncurrent_since=10 * DAY, newer_noncurrent=1)
    assert evaluate.due(config, kept, 100 * DAY) is None
    # The current version is not touched by a noncurrent rule.
    assert evaluate.due(config, version(modified=0), 100 * DAY) is None


def test_a_lone_delete_marker_is_removed_with_expired_object_delete_marker_or_days():
    marker = version(size=0, modified=0, delete_marker=True, only_version=True)
    flagged = configure(
        "<ID>m</ID><Filter/><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true"
        "</ExpiredObjectDeleteMarker></Expiration>"
    )
    assert evaluate.due(flagged, marker, 1).kind == evaluate.REMOVE_MARKER
    assert evaluate.due(flagged, version(size=0, delete_marker=True, only_version=False), 10 * DAY) is None
    by_days = configure(EXPIRE_1)
    assert evaluate.due(by_days, marker, DAY - 1) is None
    assert evaluate.due(by_days, marker, DAY).kind == evaluate.REMOVE_MARKER


def test_upload_abort():
    config = configure(
        "<ID>u</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Enabled</Status>"
        "<AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload>"
    )
    upload = Upload(id="x", container_id=1, key="tmp/big", created=100.0)
    assert evaluate.abort_due(config, upload, 2 * DAY) is None
    assert evaluate.abort_due(config, upload, 3 * DAY).kind == evaluate.ABORT_UPLOAD
    assert evaluate.abort_due(config, Upload(id="y", container_id=1, key="keep/big", created=0.0), 9 * DAY) is None


def test_locked_versions():
    plain = Artifact(container_id=1, key="k", locator="l", size=1, md5="0", modified=0.0)
    assert not evaluate.locked(plain, 10.0)
    from attrs import evolve

    assert evaluate.locked(evolve(plain, legal_hold=True), 10.0)
    assert evaluate.locked(evolve(plain, retention=Retention("GOVERNANCE", 11.0)), 10.0)
    assert not evaluate.locked(evolve(plain, retention=Retention("GOVERNANCE", 9.0)), 10.0)


def test_common_prefix():
    config = configure(
        "<ID>a</ID><Filter><Prefix>logs/2024/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>",
        "<ID>b</ID><Filter><Prefix>logs/2025/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>",
    )
    assert evaluate.common_prefix(config) == "logs/202"


def test_day_seconds_setting(tmp_path):
    from vaultaire.config import ConfigError, build, load_file

    path = tmp_path / "v.toml"
    path.write_text("[lifecycle]\nday_seconds = 2\n")
    assert build(load_file(str(path)), {}).lifecycle_day_seconds == 2.0
    assert build({}, {}).lifecycle_day_seconds == 86400.0
    path.write_text("[lifecycle]\nday_seconds = 0\n")
    with pytest.raises(ConfigError, match="day_seconds"):
        build(load_file(str(path)), {})
