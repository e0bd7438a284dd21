"""Versioning with real clients against a real daemon: the aws cli's s3api verbs, rclone's --s3-versions."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from daemon import Daemon

from tests.commands import run

pytestmark = pytest.mark.timeout(240)

RCLONE = os.path.join(os.path.dirname(sys.executable), "rclone")


def test_aws_cli_versioning(module_daemon: Daemon, aws_home: Path, tmp_path: Path) -> None:
    """The cli's three versioning verbs (each cli start costs seconds: the rest is done with boto3)."""

    def aws(*args: str) -> str:
        return module_daemon.aws(aws_home, *args).stdout

    s3 = module_daemon.boto3_client()
    bucket = "cli-versions"
    s3.create_bucket(Bucket=bucket)
    aws("s3api", "put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    ids = [s3.put_object(Bucket=bucket, Key="doc", Body=f"version {n}".encode())["VersionId"] for n in range(2)]
    s3.delete_object(Bucket=bucket, Key="doc")
    # One entry a page: the cli follows NextKeyMarker/NextVersionIdMarker through three pages.
    listed = json.loads(aws("s3api", "list-object-versions", "--bucket", bucket, "--page-size", "1"))
    assert [v["VersionId"] for v in listed["Versions"]] == list(reversed(ids))
    assert [m["IsLatest"] for m in listed["DeleteMarkers"]] == [True]
    out = tmp_path / "out"
    got = json.loads(aws("s3api", "get-object", "--bucket", bucket, "--key", "doc", "--version-id", ids[0], str(out)))
    assert got["VersionId"] == ids[0] and out.read_bytes() == b"version 0"


def test_rclone_lists_old_versions(module_daemon: Daemon, tmp_path: Path) -> None:
    s3 = module_daemon.boto3_client()
    bucket = "rclone-versions"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="notes.txt", Body=b"first")
    s3.put_object(Bucket=bucket, Key="notes.txt", Body=b"second!")
    (tmp_path / "rclone.conf").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
    env.update(
        {
            "RCLONE_CONFIG": str(tmp_path / "rclone.conf"),
            "RCLONE_CONFIG_VT_TYPE": "s3",
            "RCLONE_CONFIG_VT_PROVIDER": "Other",
            "RCLONE_CONFIG_VT_ACCESS_KEY_ID": module_daemon.access_key or "",
            "RCLONE_CONFIG_VT_SECRET_ACCESS_KEY": module_daemon.secret_key or "",
            "RCLONE_CONFIG_VT_ENDPOINT": module_daemon.endpoint_url,
            "RCLONE_CONFIG_VT_REGION": module_daemon.region,
            "RCLONE_CONFIG_VT_FORCE_PATH_STYLE": "true",
            "HOME": str(tmp_path),
        }
    )
    plain = run([RCLONE, "lsf", f"vt:{bucket}"], env=env).stdout.split()
    assert plain == ["notes.txt"]
    versions = run([RCLONE, "lsl", "--s3-versions", f"vt:{bucket}"], env=env).stdout.splitlines()
    # rclone names an old version "<name>-v<its time>.<ext>", beside the current one.
    sizes = sorted(int(line.split()[0]) for line in versions)
    names = [line.split()[-1] for line in versions]
    assert sizes == [5, 7] and "notes.txt" in names
    old = next(name for name in names if name != "notes.txt")
    assert old.startswith("notes-v") and old.endswith(".txt")
    back = run([RCLONE, "cat", "--s3-versions", f"vt:{bucket}/{old}"], env=env).stdout
    assert back == "first"
