"""Clients at their defaults against a real daemon (issue 12): s3cmd, botocore, boto3 retries."""

from __future__ import annotations

import base64
import email.header
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from daemon import Daemon

from tests.commands import run

BIN = Path(sys.executable).parent
MIB = 2**20


def test_s3cmd_without_bucket_location(module_daemon: Daemon, tmp_path: Path) -> None:
    """s3cmd's default bucket_location is "US": it signs for region US first and relies on
    AuthorizationHeaderMalformed's <Region> to retry; "US" is also a name of us-east-1."""
    hostport = f"127.0.0.1:{module_daemon.port}"
    cfg = tmp_path / "s3cfg"
    cfg.write_text(
        "[default]\n"
        f"access_key = {module_daemon.access_key}\n"
        f"secret_key = {module_daemon.secret_key}\n"
        f"host_base = {hostport}\n"
        f"host_bucket = {hostport}\n"
        "use_https = False\n"
        "progress_meter = False\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)
    s3cmd = [sys.executable, str(BIN / "s3cmd"), "-c", str(cfg)]
    bucket = f"s3cmd-default-{os.getpid()}"
    run([*s3cmd, "mb", f"s3://{bucket}"], env=env, timeout=180)
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(1000))
    run([*s3cmd, "put", str(small), f"s3://{bucket}/small.bin"], env=env, timeout=180)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 * MIB))
    run([*s3cmd, "put", "--multipart-chunk-size-mb", "5", str(big), f"s3://{bucket}/big.bin"], env=env, timeout=180)
    down = tmp_path / "big.down"
    run([*s3cmd, "get", "--force", f"s3://{bucket}/big.bin", str(down)], env=env, timeout=180)
    assert down.read_bytes() == big.read_bytes()
    listed = run([*s3cmd, "ls", f"s3://{bucket}/"], env=env, timeout=180).stdout
    assert f"s3://{bucket}/small.bin" in listed and f"s3://{bucket}/big.bin" in listed


def test_botocore_non_ascii_metadata(module_daemon: Daemon) -> None:
    """botocore sends header values as UTF-8 bytes and signs those bytes; S3 returns a
    non-ASCII metadata value as an RFC 2047 encoded-word, and an encoded-word as it came."""
    s3 = module_daemon.boto3_client()
    bucket = f"meta-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)

    def add_header(request: Any, **_: Any) -> None:
        # botocore's own Metadata parameter refuses non-ASCII; tools add such headers this way.
        request.headers["x-amz-meta-x"] = "Hello World\xe9"

    s3.meta.events.register("before-sign.s3.PutObject", add_header)
    try:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    finally:
        s3.meta.events.unregister("before-sign.s3.PutObject", add_header)
    got = s3.head_object(Bucket=bucket, Key="k")["Metadata"]["x"]
    assert got == "=?UTF-8?B?" + base64.b64encode("Hello World\xe9".encode()).decode() + "?="
    assert str(email.header.make_header(email.header.decode_header(got))) == "Hello World\xe9"
    encoded = "=?UTF-8?Q?Hello_World=C3=A9?="
    s3.put_object(Bucket=bucket, Key="k2", Body=b"x", Metadata={"x": encoded})
    assert s3.get_object(Bucket=bucket, Key="k2")["Metadata"] == {"x": encoded}


def test_boto3_retries_a_complete_whose_answer_was_lost(module_daemon: Daemon) -> None:
    """The first CompleteMultipartUpload reaches the server, its answer is lost on the way
    back (the connection drops): boto3 retries, and the retry must get 200 and the same ETag."""
    import urllib3
    from botocore.exceptions import ConnectionClosedError

    s3 = module_daemon.boto3_client()
    bucket = f"retry-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="CRC32")["UploadId"]
    part = s3.upload_part(
        Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"hello", ChecksumAlgorithm="CRC32"
    )
    delivered: list[bytes] = []

    def lose_first_answer(request: Any, **_: Any) -> None:
        if delivered:
            return None  # the retry goes out normally
        answer = urllib3.PoolManager().request(
            request.method, request.url, body=request.body, headers=dict(request.headers.items())
        )
        delivered.append(answer.data)
        raise ConnectionClosedError(endpoint_url=request.url)

    s3.meta.events.register("before-send.s3.CompleteMultipartUpload", lose_first_answer)
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"], "ChecksumCRC32": part["ChecksumCRC32"]}]},
    )
    assert len(delivered) == 1 and b"<ETag>" in delivered[0], delivered  # the lost answer was a success
    first_etag = delivered[0].split(b"<ETag>")[1].split(b"</ETag>")[0].decode().replace("&quot;", '"')
    assert done["ETag"] == first_etag
    assert done["ChecksumCRC32"] == delivered[0].split(b"<ChecksumCRC32>")[1].split(b"</ChecksumCRC32>")[0].decode()
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello"


def test_boto3_pages_through_list_buckets(module_daemon: Daemon) -> None:
    s3 = module_daemon.boto3_client()
    prefix = f"pages-{os.getpid()}-"
    names = [f"{prefix}{i}" for i in range(3)]
    for name in names:
        s3.create_bucket(Bucket=name)
    first = s3.list_buckets(MaxBuckets=2, Prefix=prefix)
    assert [b["Name"] for b in first["Buckets"]] == names[:2] and first["Prefix"] == prefix
    pages = s3.get_paginator("list_buckets").paginate(Prefix=prefix, BucketRegion="us-east-1", MaxBuckets=1)
    assert [b["Name"] for page in pages for b in page["Buckets"]] == names


def test_boto3_presigned_post_with_filename_and_checksum(module_daemon: Daemon) -> None:
    """boto3's own policy (its expiration format, ${filename} in the key) and a checksum field."""
    import urllib3

    s3 = module_daemon.boto3_client()
    bucket = f"forms-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    post = s3.generate_presigned_post(
        Bucket=bucket,
        Key="uploads/${filename}",
        Conditions=[["starts-with", "$key", "uploads/"], ["content-length-range", 0, 1000]],
        ExpiresIn=600,
    )
    digest = base64.b64encode(hashlib.sha256(b"form body").digest()).decode()
    fields = {**post["fields"], "x-amz-checksum-sha256": digest, "file": ("note.txt", b"form body", "text/plain")}
    answer = urllib3.PoolManager().request("POST", post["url"], fields=fields)
    assert answer.status == 204, answer.data
    got = s3.get_object(Bucket=bucket, Key="uploads/note.txt", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"form body" and got["ChecksumSHA256"] == digest
