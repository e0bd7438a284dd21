"""restic (Debian's package) backs up into an Object Lock bucket and restores from it: the
backup tool's ransomware defence. Every version it wrote is locked, and stays so."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.commands import apt_program, run
from tests.daemon import Daemon


def tree_equal(a: Path, b: Path) -> bool:
    compared = filecmp.dircmp(a, b)
    if compared.left_only or compared.right_only or compared.diff_files or compared.funny_files:
        return False
    return all(tree_equal(a / sub, b / sub) for sub in compared.common_dirs)


@pytest.mark.timeout(300)
def test_restic_backup_and_restore_in_an_object_lock_bucket(module_daemon: Daemon, tmp_path: Path) -> None:
    restic = apt_program("restic", "restic")
    s3: Any = module_daemon.boto3_client()
    s3.create_bucket(Bucket="restic-vault", ObjectLockEnabledForBucket=True)
    rule = {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}
    s3.put_object_lock_configuration(
        Bucket="restic-vault", ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": rule}
    )
    source = tmp_path / "data"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("hello, locked world\n")
    (source / "sub" / "random.bin").write_bytes(os.urandom(3 * 2**20 + 17))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESTIC_"))},
        "RESTIC_REPOSITORY": f"s3:{module_daemon.endpoint_url}/restic-vault",
        "RESTIC_PASSWORD": "correct horse battery staple",
        "AWS_ACCESS_KEY_ID": module_daemon.access_key or "",
        "AWS_SECRET_ACCESS_KEY": module_daemon.secret_key or "",
        "AWS_DEFAULT_REGION": module_daemon.region,
        "RESTIC_CACHE_DIR": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
    }
    run([restic, "init"], env=env)
    run([restic, "backup", str(source)], env=env, timeout=180)
    restored = tmp_path / "restored"
    run([restic, "restore", "latest", "--target", str(restored)], env=env, timeout=180)
    assert tree_equal(source, restored / source.relative_to("/"))
    run([restic, "check", "--read-data"], env=env, timeout=180)

    # Every version restic wrote carries the bucket's default, and nobody deletes one.
    versions = s3.list_object_versions(Bucket="restic-vault")["Versions"]
    assert versions
    for version in versions:
        head = s3.head_object(Bucket="restic-vault", Key=version["Key"], VersionId=version["VersionId"])
        assert head["ObjectLockMode"] == "GOVERNANCE", version["Key"]
    victim = versions[0]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket="restic-vault", Key=victim["Key"], VersionId=victim["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
