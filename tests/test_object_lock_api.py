"""Object Lock through boto3 and the aws cli against a real `twistd vaultaire`: every operation,
every refusal with S3's code, the headers on GET/HEAD, and the bucket's default retention."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3
from botocore.exceptions import ClientError

from tests.daemon import Daemon

LOCK_ONLY = {"ObjectLockEnabled": "Enabled"}


@pytest.fixture(scope="module")
def s3(module_daemon: Daemon) -> Any:
    return module_daemon.boto3_client()


def new_bucket(s3: Any, lock: bool = True) -> str:
    name = f"lock-{uuid.uuid4().hex[:12]}"
    if lock:
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    yield new_bucket(s3)


def soon(days: float = 1) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


def refused(call: Any, **kwargs: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"].get("Message", ""),
    )


# -- the bucket's configuration


def test_a_bucket_created_with_lock_has_the_configuration(s3: Any, bucket: str) -> None:
    assert s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"] == LOCK_ONLY


def test_a_bucket_without_lock_has_none_and_cannot_get_one_unversioned(s3: Any) -> None:
    plain = new_bucket(s3, lock=False)
    status, code, message = refused(s3.get_object_lock_configuration, Bucket=plain)
    assert (status, code, message) == (
        404,
        "ObjectLockConfigurationNotFoundError",
        "Object Lock configuration does not exist for this bucket",
    )
    status, code, message = refused(s3.put_object_lock_configuration, Bucket=plain, ObjectLockConfiguration=LOCK_ONLY)
    assert (status, code) == (409, "InvalidBucketState")
    assert message == "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"


def test_default_retention_is_set_read_and_removed(s3: Any, bucket: str) -> None:
    rule = {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 3}}
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={**LOCK_ONLY, "Rule": rule})
    got = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert got == {**LOCK_ONLY, "Rule": rule}
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=LOCK_ONLY)
    assert s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"] == LOCK_ONLY


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({"ObjectLockEnabled": "Disabled"}, "MalformedXML"),
        ({**LOCK_ONLY, "Rule": {"DefaultRetention": {"Mode": "governance", "Days": 1}}}, "MalformedXML"),
        ({**LOCK_ONLY, "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}}}, "MalformedXML"),
        ({**LOCK_ONLY, "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE"}}}, "MalformedXML"),
        ({**LOCK_ONLY, "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 0}}}, "InvalidArgument"),
        ({**LOCK_ONLY, "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": -1}}}, "InvalidArgument"),
    ],
)
def test_bad_configurations(s3: Any, bucket: str, config: dict[str, Any], code: str) -> None:
    assert refused(s3.put_object_lock_configuration, Bucket=bucket, ObjectLockConfiguration=config)[:2] == (400, code)
    assert s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"] == LOCK_ONLY


# -- one version's retention and legal hold


def test_retention_on_put_shows_on_head_get_and_get_object_retention(s3: Any, bucket: str) -> None:
    until = soon(2)
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
    head = s3.head_object(Bucket=bucket, Key="k")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("COMPLIANCE", until)
    got = s3.get_object(Bucket=bucket, Key="k")
    assert (got["ObjectLockMode"], got["ObjectLockRetainUntilDate"]) == ("COMPLIANCE", until)
    assert got["Body"].read() == b"data"
    assert s3.get_object_retention(Bucket=bucket, Key="k")["Retention"] == {
        "Mode": "COMPLIANCE",
        "RetainUntilDate": until,
    }
    assert "ObjectLockLegalHoldStatus" not in head


def test_a_version_without_retention_has_no_lock_configuration(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    status, code, _ = refused(s3.get_object_retention, Bucket=bucket, Key="plain")
    assert (status, code) == (404, "NoSuchObjectLockConfiguration")
    assert "ObjectLockMode" not in s3.head_object(Bucket=bucket, Key="plain")


def test_governance_shortened_only_with_bypass(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="g", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=soon(2))
    shorter = {"Mode": "GOVERNANCE", "RetainUntilDate": soon(1)}
    status, code, message = refused(s3.put_object_retention, Bucket=bucket, Key="g", Retention=shorter)
    assert (status, code, message) == (403, "AccessDenied", "Access Denied because object protected by object lock.")
    to_compliance = {"Mode": "COMPLIANCE", "RetainUntilDate": soon(3)}
    assert refused(s3.put_object_retention, Bucket=bucket, Key="g", Retention=to_compliance)[:2] == (
        403,
        "AccessDenied",
    )
    longer = {"Mode": "GOVERNANCE", "RetainUntilDate": soon(5)}
    s3.put_object_retention(Bucket=bucket, Key="g", Retention=longer)
    assert s3.get_object_retention(Bucket=bucket, Key="g")["Retention"] == longer
    s3.put_object_retention(Bucket=bucket, Key="g", Retention=shorter, BypassGovernanceRetention=True)
    assert s3.get_object_retention(Bucket=bucket, Key="g")["Retention"] == shorter
    s3.put_object_retention(Bucket=bucket, Key="g", Retention={}, BypassGovernanceRetention=True)  # removed
    assert refused(s3.get_object_retention, Bucket=bucket, Key="g")[1] == "NoSuchObjectLockConfiguration"


def test_compliance_is_never_loosened_even_with_bypass(s3: Any, bucket: str) -> None:
    until = soon(2)
    s3.put_object(Bucket=bucket, Key="c", Body=b"x", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
    for retention in (
        {"Mode": "COMPLIANCE", "RetainUntilDate": soon(1)},
        {"Mode": "GOVERNANCE", "RetainUntilDate": soon(9)},
        {},
    ):
        status, code, _ = refused(
            s3.put_object_retention, Bucket=bucket, Key="c", Retention=retention, BypassGovernanceRetention=True
        )
        assert (status, code) == (403, "AccessDenied")
    assert s3.get_object_retention(Bucket=bucket, Key="c")["Retention"] == {
        "Mode": "COMPLIANCE",
        "RetainUntilDate": until,
    }
    s3.put_object_retention(Bucket=bucket, Key="c", Retention={"Mode": "COMPLIANCE", "RetainUntilDate": soon(4)})


def test_retention_in_the_past_is_refused(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="p", Body=b"x")
    past = {"Mode": "GOVERNANCE", "RetainUntilDate": datetime(2020, 1, 1, tzinfo=UTC)}
    status, code, message = refused(s3.put_object_retention, Bucket=bucket, Key="p", Retention=past)
    assert (status, code, message) == (400, "InvalidArgument", "The retain until date must be in the future!")


def test_legal_hold_on_and_off(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="h", Body=b"x", ObjectLockLegalHoldStatus="ON")
    assert s3.head_object(Bucket=bucket, Key="h")["ObjectLockLegalHoldStatus"] == "ON"
    assert s3.get_object_legal_hold(Bucket=bucket, Key="h")["LegalHold"] == {"Status": "ON"}
    s3.put_object_legal_hold(Bucket=bucket, Key="h", LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=bucket, Key="h")["LegalHold"] == {"Status": "OFF"}
    # Once set, a hold is told ON or OFF, as S3 does.
    assert s3.head_object(Bucket=bucket, Key="h")["ObjectLockLegalHoldStatus"] == "OFF"
    assert s3.get_object(Bucket=bucket, Key="h")["ObjectLockLegalHoldStatus"] == "OFF"
    s3.put_object_legal_hold(Bucket=bucket, Key="h", LegalHold={"Status": "ON"})
    assert s3.get_object_legal_hold(Bucket=bucket, Key="h")["LegalHold"] == {"Status": "ON"}


def test_retention_and_hold_operations_need_a_lock_bucket(s3: Any) -> None:
    plain = new_bucket(s3, lock=False)
    s3.put_object(Bucket=plain, Key="k", Body=b"x")
    retention = {"Mode": "GOVERNANCE", "RetainUntilDate": soon()}
    for call, kwargs in (
        (s3.put_object_retention, {"Retention": retention}),
        (s3.get_object_retention, {}),
        (s3.put_object_legal_hold, {"LegalHold": {"Status": "ON"}}),
        (s3.get_object_legal_hold, {}),
    ):
        status, code, message = refused(call, Bucket=plain, Key="k", **kwargs)
        assert (status, code, message) == (400, "InvalidRequest", "Bucket is missing Object Lock Configuration")


def test_missing_versions_and_keys(s3: Any, bucket: str) -> None:
    assert refused(s3.get_object_retention, Bucket=bucket, Key="nothing")[:2] == (404, "NoSuchKey")
    legal = {"Status": "ON"}
    assert refused(s3.put_object_legal_hold, Bucket=bucket, Key="nothing", LegalHold=legal)[:2] == (404, "NoSuchKey")


# -- lock headers on writes


def test_lock_headers_on_a_bucket_without_lock_are_refused(s3: Any) -> None:
    plain = new_bucket(s3, lock=False)
    for kwargs in (
        {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": soon()},
        {"ObjectLockLegalHoldStatus": "OFF"},
    ):
        status, code, message = refused(s3.put_object, Bucket=plain, Key="k", Body=b"x", **kwargs)
        assert (status, code, message) == (400, "InvalidRequest", "Bucket is missing ObjectLockConfiguration")
    assert refused(s3.head_object, Bucket=plain, Key="k")[0] == 404  # nothing was written


def test_half_a_retention_is_refused(s3: Any, bucket: str) -> None:
    status, code, message = refused(s3.put_object, Bucket=bucket, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE")
    assert (status, code) == (400, "InvalidArgument")
    assert message == "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
    status, code, _ = refused(s3.create_multipart_upload, Bucket=bucket, Key="k", ObjectLockRetainUntilDate=soon())
    assert (status, code) == (400, "InvalidArgument")


def test_a_locked_put_needs_an_integrity_header(module_daemon: Daemon, s3: Any, bucket: str) -> None:
    bare = module_daemon.boto3_client(request_checksum_calculation="when_required")
    lock = {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": soon()}
    status, code, message = refused(bare.put_object, Bucket=bucket, Key="k", Body=b"x", **lock)
    assert (status, code) == (400, "InvalidRequest")
    assert message.startswith("Content-MD5 OR x-amz-checksum- HTTP header is required")
    md5 = base64.b64encode(hashlib.md5(b"x").digest()).decode()
    bare.put_object(Bucket=bucket, Key="k", Body=b"x", ContentMD5=md5, **lock)
    bare.put_object(Bucket=bucket, Key="plain", Body=b"x")  # no lock asked, none needed
    # A bucket default is a lock too.
    rule = {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={**LOCK_ONLY, "Rule": rule})
    assert refused(bare.put_object, Bucket=bucket, Key="d", Body=b"x")[:2] == (400, "InvalidRequest")


def test_the_bucket_default_applies_to_new_versions_that_name_none(s3: Any, bucket: str) -> None:
    rule = {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={**LOCK_ONLY, "Rule": rule})
    before = time.time()
    s3.put_object(Bucket=bucket, Key="d", Body=b"x")
    head = s3.head_object(Bucket=bucket, Key="d")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    until = head["ObjectLockRetainUntilDate"].timestamp()
    assert before + 86400 - 1 <= until <= time.time() + 86400 + 1
    own = soon(10)
    s3.put_object(Bucket=bucket, Key="own", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=own)
    assert s3.head_object(Bucket=bucket, Key="own")["ObjectLockRetainUntilDate"] == own


def test_copies_do_not_inherit_the_source_lock(s3: Any, bucket: str) -> None:
    s3.put_object(
        Bucket=bucket,
        Key="src",
        Body=b"x",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=soon(),
        ObjectLockLegalHoldStatus="ON",
    )
    s3.copy_object(Bucket=bucket, Key="plain-copy", CopySource={"Bucket": bucket, "Key": "src"})
    head = s3.head_object(Bucket=bucket, Key="plain-copy")
    assert "ObjectLockMode" not in head and "ObjectLockLegalHoldStatus" not in head
    until = soon(3)
    s3.copy_object(
        Bucket=bucket,
        Key="locked-copy",
        CopySource={"Bucket": bucket, "Key": "src"},
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=until,
    )
    head = s3.head_object(Bucket=bucket, Key="locked-copy")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("GOVERNANCE", until)
    plain = new_bucket(s3, lock=False)
    assert refused(
        s3.copy_object,
        Bucket=plain,
        Key="k",
        CopySource={"Bucket": bucket, "Key": "src"},
        ObjectLockLegalHoldStatus="ON",
    )[:2] == (400, "InvalidRequest")


def test_multipart_uploads_carry_their_lock_to_the_version(s3: Any, bucket: str) -> None:
    until = soon(2)
    upload = s3.create_multipart_upload(
        Bucket=bucket,
        Key="mp",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=until,
        ObjectLockLegalHoldStatus="ON",
    )["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"x" * 1024)
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    )
    head = s3.head_object(Bucket=bucket, Key="mp")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"], head["ObjectLockLegalHoldStatus"]) == (
        "GOVERNANCE",
        until,
        "ON",
    )


def test_a_part_of_a_locked_upload_needs_an_integrity_header(module_daemon: Daemon, s3: Any, bucket: str) -> None:
    bare = module_daemon.boto3_client(request_checksum_calculation="when_required")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp2", ObjectLockLegalHoldStatus="ON")["UploadId"]
    status, code, _ = refused(bare.upload_part, Bucket=bucket, Key="mp2", UploadId=upload, PartNumber=1, Body=b"x")
    assert (status, code) == (400, "InvalidRequest")


def test_post_object_form_fields_lock_the_version(module_daemon: Daemon, s3: Any, bucket: str) -> None:
    until = soon(2).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = {"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": until}
    post = s3.generate_presigned_post(bucket, "form", Fields=fields, Conditions=[{k: v} for k, v in fields.items()])
    response = urllib3.request("POST", post["url"], fields={**post["fields"], "file": ("f.txt", b"hello")})
    assert response.status == 204, response.data
    head = s3.head_object(Bucket=bucket, Key="form")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"].strftime("%Y-%m-%dT%H:%M:%SZ")) == (
        "GOVERNANCE",
        until,
    )


def test_bypass_is_refused_where_there_is_no_lock(s3: Any) -> None:
    plain = new_bucket(s3, lock=False)
    s3.put_object(Bucket=plain, Key="k", Body=b"x")
    status, code, message = refused(s3.delete_object, Bucket=plain, Key="k", BypassGovernanceRetention=True)
    assert (status, code) == (400, "InvalidArgument")
    assert message == "x-amz-bypass-governance-retention is only applicable to Object Lock enabled buckets."
    delete = {"Objects": [{"Key": "k"}]}
    assert refused(s3.delete_objects, Bucket=plain, Delete=delete, BypassGovernanceRetention=True)[:2] == (
        400,
        "InvalidArgument",
    )
    s3.head_object(Bucket=plain, Key="k")  # still there


# -- the aws cli


def test_aws_cli_retention_and_legal_hold(module_daemon: Daemon, s3: Any, bucket: str, aws_home: Path) -> None:
    s3.put_object(Bucket=bucket, Key="cli", Body=b"x")
    until = soon(2).strftime("%Y-%m-%dT%H:%M:%SZ")
    module_daemon.aws(
        aws_home,
        "s3api",
        "put-object-retention",
        "--bucket",
        bucket,
        "--key",
        "cli",
        "--retention",
        json.dumps({"Mode": "GOVERNANCE", "RetainUntilDate": until}),
    )
    got = json.loads(
        module_daemon.aws(aws_home, "s3api", "get-object-retention", "--bucket", bucket, "--key", "cli").stdout
    )
    assert got["Retention"]["Mode"] == "GOVERNANCE"
    assert got["Retention"]["RetainUntilDate"].startswith(until[:19])
    module_daemon.aws(
        aws_home, "s3api", "put-object-legal-hold", "--bucket", bucket, "--key", "cli", "--legal-hold", "Status=ON"
    )
    got = json.loads(
        module_daemon.aws(aws_home, "s3api", "get-object-legal-hold", "--bucket", bucket, "--key", "cli").stdout
    )
    assert got["LegalHold"] == {"Status": "ON"}
    shorter = soon(1).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = module_daemon.aws(
        aws_home,
        "s3api",
        "put-object-retention",
        "--bucket",
        bucket,
        "--key",
        "cli",
        "--retention",
        json.dumps({"Mode": "GOVERNANCE", "RetainUntilDate": shorter}),
        check=False,
    )
    assert result.returncode != 0 and "AccessDenied" in result.stderr
    config = json.loads(
        module_daemon.aws(aws_home, "s3api", "get-object-lock-configuration", "--bucket", bucket).stdout
    )
    assert config["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"


def test_asking_for_lock_on_an_existing_bucket_without_one_is_never_done(s3: Any) -> None:
    plain = new_bucket(s3, lock=False)
    s3.create_bucket(Bucket=plain)  # us-east-1: creating a bucket you own again is 200...
    status, code, _ = refused(s3.create_bucket, Bucket=plain, ObjectLockEnabledForBucket=True)
    assert (status, code) == (409, "BucketAlreadyOwnedByYou")  # ...but not when it would lie about a lock
    assert refused(s3.get_object_lock_configuration, Bucket=plain)[0] == 404
    locked = new_bucket(s3)
    s3.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)


# -- enforcement on versions


def versions_of(s3: Any, bucket: str, key: str) -> list[str]:
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return [v["VersionId"] for v in listing.get("Versions", []) if v["Key"] == key]


def test_a_lock_bucket_is_versioned_for_good(s3: Any, bucket: str) -> None:
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    suspended = {"Status": "Suspended"}
    status, code, _ = refused(s3.put_bucket_versioning, Bucket=bucket, VersioningConfiguration=suspended)
    assert (status, code) == (409, "InvalidBucketState")


def test_lock_on_an_existing_versioned_bucket(s3: Any) -> None:
    name = new_bucket(s3, lock=False)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=LOCK_ONLY)
    assert s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"] == LOCK_ONLY
    suspended = {"Status": "Suspended"}
    assert refused(s3.put_bucket_versioning, Bucket=name, VersioningConfiguration=suspended)[1] == "InvalidBucketState"


@pytest.mark.parametrize(
    "lock",
    [
        {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": soon()},
        {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": soon()},
        {"ObjectLockLegalHoldStatus": "ON"},
    ],
)
def test_a_locked_version_is_not_deleted_but_the_key_gets_a_marker(s3: Any, bucket: str, lock: dict[str, Any]) -> None:
    version = s3.put_object(Bucket=bucket, Key="k", Body=b"kept", **lock)["VersionId"]
    status, code, message = refused(s3.delete_object, Bucket=bucket, Key="k", VersionId=version)
    assert (status, code, message) == (403, "AccessDenied", "Access Denied because object protected by object lock.")
    batch = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k", "VersionId": version}]})
    assert [(e["Key"], e["VersionId"], e["Code"]) for e in batch["Errors"]] == [("k", version, "AccessDenied")]
    assert "Deleted" not in batch
    # Overwriting and deleting the key keep the locked version underneath.
    s3.put_object(Bucket=bucket, Key="k", Body=b"newer")
    marker = s3.delete_object(Bucket=bucket, Key="k")
    assert marker["DeleteMarker"] is True
    s3.delete_object(Bucket=bucket, Key="k", VersionId=marker["VersionId"])  # markers are never locked
    assert version in versions_of(s3, bucket, "k")
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=version)["Body"].read() == b"kept"


def test_governance_versions_go_with_bypass_compliance_and_holds_never(s3: Any, bucket: str) -> None:
    governed = s3.put_object(
        Bucket=bucket, Key="g", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=soon()
    )
    s3.delete_object(Bucket=bucket, Key="g", VersionId=governed["VersionId"], BypassGovernanceRetention=True)
    assert versions_of(s3, bucket, "g") == []
    held = s3.put_object(
        Bucket=bucket,
        Key="h",
        Body=b"x",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=soon(),
        ObjectLockLegalHoldStatus="ON",
    )
    assert (
        refused(s3.delete_object, Bucket=bucket, Key="h", VersionId=held["VersionId"], BypassGovernanceRetention=True)[
            1
        ]
        == "AccessDenied"
    )
    complied = s3.put_object(
        Bucket=bucket, Key="c", Body=b"x", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=soon()
    )
    batch = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "c", "VersionId": complied["VersionId"]}]},
        BypassGovernanceRetention=True,
    )
    assert [e["Code"] for e in batch["Errors"]] == ["AccessDenied"]
    # Once the hold is lifted, bypass lets the GOVERNANCE version go.
    s3.put_object_legal_hold(Bucket=bucket, Key="h", VersionId=held["VersionId"], LegalHold={"Status": "OFF"})
    s3.delete_object(Bucket=bucket, Key="h", VersionId=held["VersionId"], BypassGovernanceRetention=True)


def test_an_unlocked_version_in_a_lock_bucket_is_deleted(s3: Any, bucket: str) -> None:
    version = s3.put_object(Bucket=bucket, Key="free", Body=b"x")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="free", VersionId=version)
    assert versions_of(s3, bucket, "free") == []


def test_retention_and_hold_per_version(s3: Any, bucket: str) -> None:
    old = s3.put_object(Bucket=bucket, Key="v", Body=b"old")["VersionId"]
    new = s3.put_object(Bucket=bucket, Key="v", Body=b"new")["VersionId"]
    until = soon(2)
    retention = {"Mode": "COMPLIANCE", "RetainUntilDate": until}
    s3.put_object_retention(Bucket=bucket, Key="v", VersionId=old, Retention=retention)
    s3.put_object_legal_hold(Bucket=bucket, Key="v", VersionId=new, LegalHold={"Status": "ON"})
    assert s3.get_object_retention(Bucket=bucket, Key="v", VersionId=old)["Retention"] == retention
    assert refused(s3.get_object_retention, Bucket=bucket, Key="v")[1] == "NoSuchObjectLockConfiguration"
    assert s3.get_object_legal_hold(Bucket=bucket, Key="v")["LegalHold"] == {"Status": "ON"}
    # A hold written OFF with the object is told as OFF.
    s3.put_object(Bucket=bucket, Key="off", Body=b"x", ObjectLockLegalHoldStatus="OFF")
    assert s3.get_object_legal_hold(Bucket=bucket, Key="off")["LegalHold"] == {"Status": "OFF"}
    # A version that never had a hold has no legal hold to show: S3's 404, and no header.
    never = refused(s3.get_object_legal_hold, Bucket=bucket, Key="v", VersionId=old)
    assert never[:2] == (404, "NoSuchObjectLockConfiguration")
    assert "ObjectLockLegalHoldStatus" not in s3.head_object(Bucket=bucket, Key="v", VersionId=old)
    head = s3.head_object(Bucket=bucket, Key="v", VersionId=old)
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("COMPLIANCE", until)
    assert refused(s3.delete_object, Bucket=bucket, Key="v", VersionId=old)[1] == "AccessDenied"
    assert refused(s3.delete_object, Bucket=bucket, Key="v", VersionId=new)[1] == "AccessDenied"


def test_a_delete_markers_lock_is_not_there(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="m", Body=b"x")
    marker = s3.delete_object(Bucket=bucket, Key="m")["VersionId"]
    status, code, _ = refused(s3.get_object_retention, Bucket=bucket, Key="m", VersionId=marker)
    assert (status, code) == (405, "MethodNotAllowed")
    retention = {"Mode": "GOVERNANCE", "RetainUntilDate": soon()}
    assert refused(s3.put_object_retention, Bucket=bucket, Key="m", VersionId=marker, Retention=retention)[0] == 405
    assert (
        refused(s3.put_object_legal_hold, Bucket=bucket, Key="m", VersionId=marker, LegalHold={"Status": "ON"})[0]
        == 405
    )
    assert refused(s3.get_object_retention, Bucket=bucket, Key="m")[:2] == (404, "NoSuchKey")


def test_a_bucket_holding_locked_versions_is_not_deleted(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ObjectLockLegalHoldStatus="ON")
    s3.delete_object(Bucket=bucket, Key="k")
    assert refused(s3.delete_bucket, Bucket=bucket)[:2] == (409, "BucketNotEmpty")


def test_aws_cli_copies_into_a_bucket_with_a_default_retention(
    module_daemon: Daemon, s3: Any, bucket: str, aws_home: Path, tmp_path: Path
) -> None:
    rule = {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={**LOCK_ONLY, "Rule": rule})
    source = tmp_path / "backup.bin"
    source.write_bytes(b"backup" * 1000)
    module_daemon.aws(aws_home, "s3", "cp", "--only-show-errors", str(source), f"s3://{bucket}/backup.bin")
    assert s3.head_object(Bucket=bucket, Key="backup.bin")["ObjectLockMode"] == "GOVERNANCE"


def test_boto3_upload_file_multipart_with_a_lock(s3: Any, bucket: str, tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(11 * 2**20))
    until = soon(3)
    extra = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until, "ObjectLockLegalHoldStatus": "ON"}
    config = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    s3.upload_file(str(source), bucket, "big.bin", ExtraArgs=extra, Config=config)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ETag"].endswith('-3"')  # it went up in parts
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"], head["ObjectLockLegalHoldStatus"]) == (
        "COMPLIANCE",
        until,
        "ON",
    )
