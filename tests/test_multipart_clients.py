"""Acceptance: real S3 clients' multipart uploads and ranged downloads against a real daemon.

Every client uploads a file big enough to go multipart, downloads it again, and every
byte is compared (both sides hashed while streaming). The multipart ETag is checked
against the md5-of-md5s of the client's own part size, so the part boundaries are right
too. After every client, nothing leaked: no unfinished uploads, no staged blobs, and
exactly one blob per stored part (one per single-PUT artifact).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon import Daemon, assert_no_leak, catalog_rows

from tests.commands import run

pytestmark = pytest.mark.timeout(240)

MIB = 2**20
BIN = os.path.dirname(sys.executable)
RCLONE = os.path.join(BIN, "rclone")
S3CMD = os.path.join(BIN, "s3cmd")

_names = itertools.count()


# -- files: cheap to make, hashed while written and while read


class Made:
    """A generated file: its MD5 and, per part size, the multipart ETag S3 gives it."""

    def __init__(self, path: Path, size: int, md5: str, etags: dict[int, str]) -> None:
        self.path, self.size, self.md5, self.etags = path, size, md5, etags


def make_file(path: Path, size: int, part_sizes: Iterable[int] = ()) -> Made:
    """``size`` bytes: a random 1 MiB block repeated, each copy stamped with its counter."""
    block = bytearray(os.urandom(MIB))
    whole = hashlib.md5()
    # per part size: (digests of finished parts, hasher of the current part, bytes in it)
    state: dict[int, list[Any]] = {p: [[], hashlib.md5(), 0] for p in part_sizes}
    written = 0
    with open(path, "wb") as f:
        for counter in itertools.count():
            if written >= size:
                break
            block[:16] = counter.to_bytes(16, "big")
            chunk = memoryview(block)[: min(MIB, size - written)]
            f.write(chunk)
            whole.update(chunk)
            for part_size, st in state.items():
                view = chunk
                while view:
                    take = min(len(view), part_size - st[2])
                    st[1].update(view[:take])
                    st[2] += take
                    view = view[take:]
                    if st[2] == part_size:
                        st[0].append(st[1].digest())
                        st[1], st[2] = hashlib.md5(), 0
            written += len(chunk)
    etags = {}
    for part_size, (digests, current, filled) in state.items():
        if filled:
            digests = [*digests, current.digest()]
        etags[part_size] = f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"
    return Made(path, size, whole.hexdigest(), etags)


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return h.hexdigest()


def assert_same(made: Made, downloaded: Path) -> None:
    assert downloaded.stat().st_size == made.size
    assert file_md5(downloaded) == made.md5, f"{downloaded} differs from {made.path}"


def new_bucket(daemon: Daemon) -> str:
    name = f"mp-{os.getpid()}-{next(_names)}"
    daemon.boto3_client().create_bucket(Bucket=name)
    return name


def head_etag(daemon: Daemon, bucket: str, key: str) -> tuple[str, int]:
    head = daemon.boto3_client().head_object(Bucket=bucket, Key=key)
    return head["ETag"].strip('"'), head["ContentLength"]


@pytest.fixture(autouse=True)
def leaves_nothing_behind(module_daemon: Daemon) -> Iterator[None]:
    """After each client: no unfinished upload, no staged blob, no garbage, exactly the blobs the
    catalog references; and the client's big file went up as a multipart artifact."""
    data = module_daemon.data_dir
    multipart_before = _multipart_artifacts(data)
    yield
    assert catalog_rows(data, "SELECT COUNT(*) FROM uploads") == [(0,)]
    assert catalog_rows(data, "SELECT COUNT(*) FROM parts") == [(0,)]
    assert_no_leak(data)
    assert _multipart_artifacts(data) > multipart_before


def _multipart_artifacts(data: Path) -> int:
    return sum(
        bool(json.loads(extra).get("parts")) for (extra,) in catalog_rows(data, "SELECT metadata FROM artifacts")
    )


# -- the clients


def test_aws_cli_cp_200mib(module_daemon: Daemon, tmp_path: Path, aws_home: Path) -> None:
    part = 16 * MIB
    # The Daemon helper only writes the aws config if there is none: ask for 16 MiB parts.
    (aws_home / "aws-config").write_text(
        "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"
        "    multipart_threshold = 16MB\n    multipart_chunksize = 16MB\n    max_concurrent_requests = 8\n"
    )
    (aws_home / "aws-credentials").write_text("")
    made = make_file(tmp_path / "up.bin", 200 * MIB, [part])
    bucket = new_bucket(module_daemon)
    module_daemon.aws(aws_home, "s3", "cp", "--only-show-errors", str(made.path), f"s3://{bucket}/big/200.bin")
    assert head_etag(module_daemon, bucket, "big/200.bin") == (made.etags[part], made.size)
    made.path.unlink()  # keep one 200 MiB copy on disk at a time
    down = tmp_path / "down.bin"
    module_daemon.aws(aws_home, "s3", "cp", "--only-show-errors", f"s3://{bucket}/big/200.bin", str(down))
    assert_same(made, down)


def test_rclone_copy_5m_chunks(module_daemon: Daemon, tmp_path: Path) -> None:
    part = 5 * MIB
    src, back = tmp_path / "src", tmp_path / "back"
    src.mkdir()
    made = make_file(src / "r.bin", 33 * MIB + 12345, [part])
    small = make_file(src / "small.bin", 3 * MIB)  # under the cutoff: one PUT
    bucket = new_bucket(module_daemon)
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
    common = [
        "--s3-chunk-size",
        "5M",
        "--s3-upload-cutoff",
        "5M",
        "--s3-upload-concurrency",
        "4",
        "--retries",
        "1",
        "--low-level-retries",
        "1",
    ]
    run([RCLONE, "copy", str(src), f"vt:{bucket}/dir", *common], env=env)
    assert head_etag(module_daemon, bucket, "dir/r.bin") == (made.etags[part], made.size)
    assert head_etag(module_daemon, bucket, "dir/small.bin") == (small.md5, small.size)
    run([RCLONE, "copy", f"vt:{bucket}/dir", str(back), *common], env=env)
    assert_same(made, back / "r.bin")
    assert_same(small, back / "small.bin")
    # rclone's own comparison (sizes and hashes, the multipart one from its metadata) agrees
    run([RCLONE, "check", str(src), f"vt:{bucket}/dir", "--download", *common], env=env)


def test_boto3_transfer_manager(module_daemon: Daemon, tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    part = 5 * MIB
    made = make_file(tmp_path / "b.bin", 60 * MIB + 777, [part])
    bucket = new_bucket(module_daemon)
    s3 = module_daemon.boto3_client(max_pool_connections=16)
    cfg = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=8)
    s3.upload_file(str(made.path), bucket, "boto/60.bin", Config=cfg)
    assert head_etag(module_daemon, bucket, "boto/60.bin") == (made.etags[part], made.size)
    down = tmp_path / "b.down"
    s3.download_file(bucket, "boto/60.bin", str(down), Config=cfg)
    assert_same(made, down)
    # Each part reads back alone too (GET ?partNumber=N)
    with open(made.path, "rb") as f:
        for number in (1, 7, 13):
            f.seek((number - 1) * part)
            expected = hashlib.md5(f.read(part)).hexdigest()
            got = s3.get_object(Bucket=bucket, Key="boto/60.bin", PartNumber=number)
            assert got["PartsCount"] == 13
            h = hashlib.md5()
            for chunk in got["Body"].iter_chunks(MIB):
                h.update(chunk)
            assert h.hexdigest() == expected, number


def test_s3cmd_put_get(module_daemon: Daemon, tmp_path: Path) -> None:
    part = 5 * MIB
    made = make_file(tmp_path / "s.bin", 27 * MIB + 5, [part])
    bucket = new_bucket(module_daemon)
    hostport = f"127.0.0.1:{module_daemon.port}"
    cfg = tmp_path / "s3cfg"
    cfg.write_text(
        "[default]\n"
        f"access_key = {module_daemon.access_key}\n"
        f"secret_key = {module_daemon.secret_key}\n"
        f"host_base = {hostport}\n"
        f"host_bucket = {hostport}\n"
        "bucket_location = us-east-1\n"
        "use_https = False\n"
        "signature_v2 = False\n"
        "check_ssl_certificate = False\n"
        "progress_meter = False\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)
    s3cmd = [sys.executable, S3CMD, "-c", str(cfg)]
    run([*s3cmd, "put", "--multipart-chunk-size-mb", "5", str(made.path), f"s3://{bucket}/s3cmd/s.bin"], env=env)
    assert head_etag(module_daemon, bucket, "s3cmd/s.bin") == (made.etags[part], made.size)
    down = tmp_path / "s.down"
    run([*s3cmd, "get", "--force", f"s3://{bucket}/s3cmd/s.bin", str(down)], env=env)
    assert_same(made, down)


def test_minio_fput_fget(module_daemon: Daemon, tmp_path: Path) -> None:
    from minio import Minio

    part = 5 * MIB
    made = make_file(tmp_path / "m.bin", 64 * MIB, [part])
    bucket = new_bucket(module_daemon)
    client = Minio(
        f"127.0.0.1:{module_daemon.port}",
        access_key=module_daemon.access_key,
        secret_key=module_daemon.secret_key,
        secure=False,
        region=module_daemon.region,
    )
    result = client.fput_object(bucket, "minio/64.bin", str(made.path), part_size=part, num_parallel_uploads=4)
    assert result.etag.strip('"') == made.etags[part]
    assert head_etag(module_daemon, bucket, "minio/64.bin") == (made.etags[part], made.size)
    down = tmp_path / "m.down"
    client.fget_object(bucket, "minio/64.bin", str(down))
    assert_same(made, down)
