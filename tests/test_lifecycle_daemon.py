"""Lifecycle rules applied by a real daemon with one-second days ([lifecycle] day_seconds = 1):
boto3 and the aws cli configure them; objects expire, an upload is aborted, an artifact moves
to a second placement; each action is an event and a metric. With workers, the supervisor
runs them (once for all)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.daemon import Daemon, ops_metrics, write_config

DEADLINE = 60.0


def wait_for(what: str, check: Callable[[], bool], deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {deadline}s: {what}")


def gone(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    return False


def files_under(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, files in os.walk(root) for f in files]


@pytest.mark.timeout(180)
def test_rules_run_in_the_background_once_for_all_workers(tmp_path: Path) -> None:
    # Two workers: the supervisor runs the rules (the single process runs the same runner, see
    # tests/test_lifecycle_runner.py), and counts each action once.
    cold = tmp_path / "cold-blobs"
    config = write_config(
        tmp_path,
        f'[lifecycle]\nday_seconds = 1\n\n[drivers.local2]\ntype = "local"\nroot = "{cold}"\n',
    )
    with Daemon(tmp_path / "v", extra_args=["--config", config], workers=2) as daemon:
        s3 = daemon.boto3_client()
        s3.create_bucket(Bucket="life")
        s3.put_bucket_lifecycle_configuration(
            Bucket="life",
            LifecycleConfiguration={
                "Rules": [
                    {"ID": "tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 2}},
                    {
                        "ID": "cold",
                        "Filter": {"And": {"Prefix": "cold/", "ObjectSizeGreaterThan": 0}},
                        "Status": "Enabled",
                        "Transitions": [{"Days": 1, "StorageClass": "local2"}],
                    },
                    {
                        "ID": "uploads",
                        "Filter": {"Prefix": "mp/"},
                        "Status": "Enabled",
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                    },
                ]
            },
        )
        got = s3.get_bucket_lifecycle_configuration(Bucket="life")
        assert [r["ID"] for r in got["Rules"]] == ["tmp", "cold", "uploads"]
        assert got["Rules"][1]["Transitions"] == [{"Days": 1, "StorageClass": "local2"}]
        put = s3.put_object(Bucket="life", Key="tmp/a", Body=b"short-lived")
        assert 'rule-id="tmp"' in put["Expiration"]
        assert 'rule-id="tmp"' in s3.head_object(Bucket="life", Key="tmp/a")["Expiration"]
        body = os.urandom(300_000)
        s3.put_object(Bucket="life", Key="cold/b", Body=body)
        s3.put_object(Bucket="life", Key="keep/c", Body=b"kept")
        upload = s3.create_multipart_upload(Bucket="life", Key="mp/x")["UploadId"]
        s3.upload_part(Bucket="life", Key="mp/x", UploadId=upload, PartNumber=1, Body=b"p" * 1000)

        wait_for("tmp/a expired", lambda: gone(s3, "life", "tmp/a"))
        wait_for("the upload aborted", lambda: not s3.list_multipart_uploads(Bucket="life").get("Uploads"))
        wait_for(
            "cold/b moved to local2",
            lambda: s3.head_object(Bucket="life", Key="cold/b").get("StorageClass") == "local2",
        )
        assert s3.get_object(Bucket="life", Key="cold/b")["Body"].read() == body
        assert len(files_under(cold)) == 1
        assert s3.get_object(Bucket="life", Key="keep/c")["Body"].read() == b"kept"

        def counted() -> dict[str, float]:
            samples = ops_metrics(daemon)
            return {
                action: samples.get(f'vaultaire_lifecycle_actions_total{{action="{action}"}}', 0.0)
                for action in ("expire", "transition", "abort-upload")
            }

        wait_for("the metrics", lambda: counted() == {"expire": 1.0, "transition": 1.0, "abort-upload": 1.0})
        assert ops_metrics(daemon).get("vaultaire_lifecycle_runs_total", 0) >= 2  # at start, then every day

        def lifecycle_events() -> list[tuple[str, str, str]]:
            return sorted(
                (e["operation"], e["key"], e["rule_id"])
                for e in daemon.events()
                if e["operation"].startswith("Lifecycle")
            )

        wait_for("the events", lambda: len(lifecycle_events()) == 3)
        assert lifecycle_events() == [
            ("LifecycleAbortUpload", "mp/x", "uploads"),
            ("LifecycleExpire", "tmp/a", "tmp"),
            ("LifecycleTransition", "cold/b", "cold"),
        ]
        s3.delete_bucket_lifecycle(Bucket="life")
        with pytest.raises(ClientError) as caught:
            s3.get_bucket_lifecycle_configuration(Bucket="life")
        assert caught.value.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
        aws_cli_put_and_get(daemon, tmp_path)


def aws_cli_put_and_get(daemon: Daemon, tmp_path: Path) -> None:
    """The aws cli's put/get/delete-bucket-lifecycle-configuration, and an error it shows."""
    home = tmp_path / "aws"
    daemon.aws(home, "s3api", "create-bucket", "--bucket", "cli")
    document = {
        "Rules": [
            {
                "ID": "old-versions",
                "Filter": {"Prefix": "logs/"},
                "Status": "Enabled",
                "NoncurrentVersionExpiration": {"NoncurrentDays": 30, "NewerNoncurrentVersions": 3},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
            },
            {"ID": "markers", "Filter": {}, "Status": "Enabled", "Expiration": {"ExpiredObjectDeleteMarker": True}},
        ]
    }
    path = tmp_path / "lifecycle.json"
    path.write_text(json.dumps(document))
    daemon.aws(
        home,
        "s3api",
        "put-bucket-lifecycle-configuration",
        "--bucket",
        "cli",
        "--lifecycle-configuration",
        f"file://{path}",
    )
    got = json.loads(daemon.aws(home, "s3api", "get-bucket-lifecycle-configuration", "--bucket", "cli").stdout)
    assert got["Rules"][0]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30, "NewerNoncurrentVersions": 3}
    assert got["Rules"][1]["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"Rules": [{"ID": "x", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 0}}]}))
    failed = daemon.aws(
        home,
        "s3api",
        "put-bucket-lifecycle-configuration",
        "--bucket",
        "cli",
        "--lifecycle-configuration",
        f"file://{bad}",
        check=False,
    )
    assert failed.returncode != 0 and "InvalidArgument" in failed.stderr
    daemon.aws(home, "s3api", "delete-bucket-lifecycle", "--bucket", "cli")
