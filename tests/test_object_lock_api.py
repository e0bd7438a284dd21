def test_aws_cli_copies_into_a_bucket_with_a_default_retention(
    module_daemon: Daemon, s3: Any, bucket: str, aws_home: Path, tmp_path: Path
) -> None:
    rule = {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={**LOCK_ONLY, "Rule": rule})
    source = tmp_path / "backup.bin"
    source.write_bytes(b"backup" * 1000)
    module_daemon.aws(aws_home, "s3", "cp", "--only-show-errors", str(source), f"s3://{bucket}/backup.bin")
    assert s3.head_object(Bucket=bucket, Key="backup.bin")["ObjectLockMode"] == "GOVERNANCE"
