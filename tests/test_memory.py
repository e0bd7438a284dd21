"""The daemon streams: a 1 GiB upload and download keep its peak RSS far below the object size."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from daemon import Daemon, read_status
from streaming import SIZE, RssSampler, connection, streamed_get, streamed_put, write_source

LIMIT_KIB = 150 * 1024


@pytest.mark.timeout(300)
def test_one_gib_upload_and_download_peak_rss(daemon: Daemon, tmp_path: Path, record_property: Any) -> None:
    source = tmp_path / "one-gib.bin"
    expected_md5 = write_source(source)

    s3 = daemon.boto3_client(signature_version="s3v4")
    s3.create_bucket(Bucket="big")
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "big", "Key": "one-gib"}, ExpiresIn=3600)
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "big", "Key": "one-gib"}, ExpiresIn=3600)

    pid = daemon.pid
    baseline = read_status(pid)
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        hwm_reset = True
    except OSError:
        hwm_reset = False

    sampler = RssSampler(pid)
    sampler.start()
    t0 = time.monotonic()
    try:
        status, headers, body = streamed_put(put_url, source)
        t_put = time.monotonic() - t0
        assert status == 200, body
        assert headers["etag"] == f'"{expected_md5}"'
        status, total, got_md5 = streamed_get(get_url)
        t_get = time.monotonic() - t0 - t_put
    finally:
        sampler.stop()
    final = read_status(pid)

    assert status == 200
    assert total == SIZE
    assert got_md5 == expected_md5
    peak_kib = max(sampler.peak_kib, final["VmHWM"] if hwm_reset else 0)
    record_property("peak_rss_mib", round(peak_kib / 1024, 1))
    message = (
        f"daemon peak RSS {peak_kib / 1024:.1f} MiB (sampled max {sampler.peak_kib / 1024:.1f} MiB over "
        f"{sampler.samples} samples, VmHWM {final['VmHWM'] / 1024:.1f} MiB{'' if hwm_reset else ' since start'}, "
        f"baseline RSS {baseline['VmRSS'] / 1024:.1f} MiB); PUT {t_put:.1f}s, GET {t_get:.1f}s"
    )
    print("\nmemory: " + message)
    assert sampler.samples > 10, message
    assert peak_kib < LIMIT_KIB, message


def throttled_get(url: str, rate: float) -> tuple[int, int, str]:
    """GET reading at most ``rate`` bytes a second: a slow client the daemon must not buffer for."""
    conn, target = connection(url)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        md5 = hashlib.md5()
        total = 0
        t0 = time.monotonic()
        while chunk := response.read(256 * 1024):
            md5.update(chunk)
            total += len(chunk)
            ahead = total / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        return response.status, total, md5.hexdigest()
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_one_gib_through_the_s3_driver_with_a_slow_reader(tmp_path: Path, seaweed: Any, record_property: Any) -> None:
    """1 GiB up through the s3 driver to SeaweedFS, then down to a client reading at 10 MB/s."""
    from upstreams import ACCESS, SECRET

    config = tmp_path / "vaultaire.toml"
    config.write_text(
        f"""
[drivers.up]
type = "s3"
endpoint = "{seaweed.endpoint}"
bucket = "vaultaire-blobs"
prefix = "memtest/"
access_key = "{ACCESS}"
secret_key = "{SECRET}"

[placement]
default = "up"
"""
    )
    source = tmp_path / "one-gib.bin"
    expected_md5 = write_source(source)
    with Daemon(tmp_path / "vaultaire", extra_args=["--config", str(config)]) as daemon:
        s3 = daemon.boto3_client(signature_version="s3v4")
        s3.create_bucket(Bucket="big")
        put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "big", "Key": "k"}, ExpiresIn=3600)
        get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "big", "Key": "k"}, ExpiresIn=3600)
        sampler = RssSampler(daemon.pid)
        sampler.start()
        t0 = time.monotonic()
        try:
            status, headers, body = streamed_put(put_url, source)
            t_put = time.monotonic() - t0
            assert status == 200, body
            assert headers["etag"] == f'"{expected_md5}"'
            status, total, got_md5 = throttled_get(get_url, 10e6)
            t_get = time.monotonic() - t0 - t_put
        finally:
            sampler.stop()
        final = read_status(daemon.pid)
        assert not list((daemon.data_dir / "blobs").rglob("*")) or all(
            p.is_dir() for p in (daemon.data_dir / "blobs").rglob("*")
        ), "the bytes went to local disk, not the s3 driver"
    assert (status, total, got_md5) == (200, SIZE, expected_md5)
    peak_kib = max(sampler.peak_kib, final["VmHWM"])
    record_property("s3_peak_rss_mib", round(peak_kib / 1024, 1))
    message = (
        f"daemon peak RSS {peak_kib / 1024:.1f} MiB over {sampler.samples} samples; "
        f"PUT {t_put:.1f}s ({SIZE / t_put / 1e6:.0f} MB/s), GET at 10 MB/s {t_get:.1f}s"
    )
    print("\ns3 memory: " + message)
    assert t_get > SIZE / 10e6 * 0.9, "the client was not slow"
    assert peak_kib < LIMIT_KIB, message
