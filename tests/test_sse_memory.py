"""Encryption streams: 1 GiB through an SSE-S3 bucket keeps the daemon's peak RSS as flat as plain."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from daemon import Daemon, blob_files, read_status
from streaming import SIZE, RssSampler, streamed_get, streamed_put, write_source

from vaultaire.encryption.packages import sealed_size

LIMIT_KIB = 150 * 1024  # the plain 1 GiB test's bound (tests/test_memory.py)


@pytest.mark.timeout(300)
def test_one_gib_encrypted_upload_and_download_peak_rss(daemon: Daemon, tmp_path: Path, record_property: Any) -> None:
    source = tmp_path / "one-gib.bin"
    expected_md5 = write_source(source)
    s3 = daemon.boto3_client(signature_version="s3v4")
    s3.create_bucket(Bucket="sealed")
    # Encrypted by the bucket's default, so the presigned PUT needs no signed SSE header.
    s3.put_bucket_encryption(
        Bucket="sealed",
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "sealed", "Key": "big"}, ExpiresIn=3600)
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "sealed", "Key": "big"}, ExpiresIn=3600)

    pid = daemon.pid
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # VmHWM from here on
    sampler = RssSampler(pid)
    sampler.start()
    t0 = time.monotonic()
    try:
        status, headers, body = streamed_put(put_url, source)
        t_put = time.monotonic() - t0
        assert status == 200, body
        assert headers["x-amz-server-side-encryption"] == "AES256"
        assert headers["etag"] == f'"{expected_md5}"'  # SSE-S3 keeps the plaintext MD5
        status, total, got_md5 = streamed_get(get_url)
        t_get = time.monotonic() - t0 - t_put
    finally:
        sampler.stop()
    final = read_status(pid)
    assert (status, total, got_md5) == (200, SIZE, expected_md5)
    (blob,) = blob_files(daemon.data_dir)
    assert blob.stat().st_size == sealed_size(SIZE)  # what lies on disk is the sealed packages
    peak_kib = max(sampler.peak_kib, final["VmHWM"])
    record_property("peak_rss_mib", round(peak_kib / 1024, 1))
    message = (
        f"daemon peak RSS {peak_kib / 1024:.1f} MiB over {sampler.samples} samples; "
        f"encrypted PUT {t_put:.1f}s ({SIZE / t_put / 1e6:.0f} MB/s), GET {t_get:.1f}s ({SIZE / t_get / 1e6:.0f} MB/s)"
    )
    print("\nmemory: " + message)
    assert sampler.samples > 10, message
    assert peak_kib < LIMIT_KIB, message
