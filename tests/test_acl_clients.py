"""Acceptance: boto3 and the aws cli set and read ACLs, ownership controls and public access blocks
on a real `twistd vaultaire`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.timeout(180)

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def error_of(e: pytest.ExceptionInfo[ClientError]) -> str:
    return str(e.value.response["Error"]["Code"])


def grant_list(acl: dict[str, Any]) -> list[tuple[str, str]]:
    return [(g["Grantee"].get("ID") or g["Grantee"].get("URI"), g["Permission"]) for g in acl["Grants"]]


def test_boto3_acls_ownership_and_public_access_block(module_daemon: Any) -> None:
    s3 = module_daemon.boto3_client()
    owner = s3.list_buckets()["Owner"]["ID"]
    s3.create_bucket(Bucket="acl-default")
    assert s3.get_bucket_ownership_controls(Bucket="acl-default")["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}
    ]
    acl = s3.get_bucket_acl(Bucket="acl-default")
    assert acl["Owner"]["ID"] == owner
    assert grant_list(acl) == [(owner, "FULL_CONTROL")]
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="acl-default", Key="k", Body=b"x", ACL="public-read")
    assert error_of(e) == "AccessControlListNotSupported"

    s3.create_bucket(Bucket="acl-open", ObjectOwnership="ObjectWriter")
    block = s3.get_public_access_block(Bucket="acl-open")["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="acl-open", Key="k", Body=b"x", ACL="public-read")
    assert error_of(e) == "AccessDenied"
    s3.put_public_access_block(
        Bucket="acl-open",
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": False,
            "IgnorePublicAcls": False,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_object(Bucket="acl-open", Key="k", Body=b"x", ACL="public-read")
    assert (ALL_USERS, "READ") in grant_list(s3.get_object_acl(Bucket="acl-open", Key="k"))
    s3.put_object_acl(
        Bucket="acl-open",
        Key="k",
        AccessControlPolicy={
            "Owner": {"ID": owner},
            "Grants": [
                {"Grantee": {"Type": "CanonicalUser", "ID": owner}, "Permission": "FULL_CONTROL"},
                {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ_ACP"},
            ],
        },
    )
    assert grant_list(s3.get_object_acl(Bucket="acl-open", Key="k")) == [
        (owner, "FULL_CONTROL"),
        (ALL_USERS, "READ_ACP"),
    ]
    s3.put_bucket_acl(Bucket="acl-open", ACL="public-read")
    assert (ALL_USERS, "READ") in grant_list(s3.get_bucket_acl(Bucket="acl-open"))
    s3.put_bucket_acl(Bucket="acl-open", GrantRead=f'id="{owner}"', GrantWriteACP=f"id={owner}")
    assert sorted(grant_list(s3.get_bucket_acl(Bucket="acl-open"))) == [(owner, "READ"), (owner, "WRITE_ACP")]
    with pytest.raises(ClientError) as e:
        s3.put_bucket_acl(Bucket="acl-open", GrantRead='emailAddress="someone@example.com"')
    assert error_of(e) == "UnresolvableGrantByEmailAddress"
    s3.put_bucket_ownership_controls(
        Bucket="acl-open", OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]}
    )
    s3.delete_bucket_ownership_controls(Bucket="acl-open")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_ownership_controls(Bucket="acl-open")
    assert error_of(e) == "OwnershipControlsNotFoundError"
    s3.delete_public_access_block(Bucket="acl-open")
    with pytest.raises(ClientError) as e:
        s3.get_public_access_block(Bucket="acl-open")
    assert error_of(e) == "NoSuchPublicAccessBlockConfiguration"


def test_aws_cli_put_object_acl_and_put_public_access_block(module_daemon: Any, aws_home: Path) -> None:
    # boto3 for the set-up and the checks: each aws cli run costs seconds of start-up on a loaded machine.
    s3 = module_daemon.boto3_client()
    s3.create_bucket(Bucket="acl-cli", ObjectOwnership="ObjectWriter")
    s3.put_object(Bucket="acl-cli", Key="photo.txt", Body=b"a public photo")
    module_daemon.aws(
        aws_home,
        "s3api",
        "put-public-access-block",
        "--bucket",
        "acl-cli",
        "--public-access-block-configuration",
        "BlockPublicAcls=false,IgnorePublicAcls=false,BlockPublicPolicy=true,RestrictPublicBuckets=true",
    )
    block = s3.get_public_access_block(Bucket="acl-cli")["PublicAccessBlockConfiguration"]
    assert (block["BlockPublicAcls"], block["BlockPublicPolicy"]) == (False, True)
    module_daemon.aws(
        aws_home, "s3api", "put-object-acl", "--bucket", "acl-cli", "--key", "photo.txt", "--acl", "public-read"
    )
    assert (ALL_USERS, "READ") in grant_list(s3.get_object_acl(Bucket="acl-cli", Key="photo.txt"))
    # aws s3 cp --acl, as website deploy scripts do.
    source = aws_home / "index.html"
    source.write_bytes(b"<!doctype html>")
    module_daemon.aws(aws_home, "s3", "cp", str(source), "s3://acl-cli/site/index.html", "--acl", "public-read")
    assert (ALL_USERS, "READ") in grant_list(s3.get_object_acl(Bucket="acl-cli", Key="site/index.html"))
