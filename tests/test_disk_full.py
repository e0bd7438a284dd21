"""A real daemon whose data directory is on a small tmpfs that fills up.

Writes stop at the free-space reserve with 507 before their body is read;
then the disk is filled to the last byte from outside, and reads, listings,
health and deletes must keep working (deletes freeing space at once), with
no worker dying (the memory-mapped metric files are not on this disk). Once
space is back, writes work again. CI runs as root and mounts the tmpfs; a
run that cannot mount fails, it is not skipped.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from daemon import Daemon, catalog_rows, ops_metrics

from vaultaire.config import ConfigError, Settings
from vaultaire.startup import runtime_directory

pytestmark = pytest.mark.timeout(300)

DISK_SIZE = 64 * 2**20
MiB = 2**20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.fail(f"the disk-full test needs to mount a small tmpfs (as root, as CI runs): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path: Path) -> Path:
    """Write a file until the filesystem has no byte left."""
    filler = path / "filler"
    chunk = b"\0" * MiB
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError:
                break
        for size in (65536, 4096, 512, 1):  # the last partial pages
            while True:
                try:
                    if f.write(b"\0" * size) != size:
                        break
                except OSError:
                    break
    assert free_bytes(path) < 4096
    return filler


def inline_rows(d: Daemon) -> int:
    return int(catalog_rows(d.data_dir, "SELECT count(*) FROM inline_blobs")[0][0])


def status_of(call: Callable[[], object]) -> str:
    try:
        call()
    except ClientError as e:
        return f"{e.response['ResponseMetadata']['HTTPStatusCode']} {e.response['Error']['Code']}"
    return "ok"


def raw_put_with_expect(d: Daemon, url: str, length: int) -> bytes:
    """Headers only, with Expect: 100-continue: what the server answers before any body byte."""
    parts = urllib.parse.urlsplit(url)
    head = (
        f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: 127.0.0.1:{d.port}\r\n"
        f"Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", d.port), timeout=20) as s:
        s.sendall(head)
        return s.recv(65536)


def ops_health(d: Daemon) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(d.ops_url + "/health", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def worker_restarts(d: Daemon) -> float:
    return ops_metrics(d)["vaultaire_worker_restarts_total"]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_full_data_disk_still_reads_lists_and_deletes(tmp_path: Path, small_disk: Path, workers: int) -> None:
    d = Daemon(tmp_path / f"daemon-{workers}", workers=workers)  # its log stays off the small disk
    d.data_dir = small_disk / "data"
    d.start()
    try:
        assert not (d.data_dir / "run").exists()  # metric files live on tmpfs elsewhere
        s3 = d.boto3_client()
        s3.create_bucket(Bucket="full")
        s3.put_object(Bucket="full", Key="keep", Body=b"kept bytes")
        small = os.urandom(32 * 1024)  # kept in the catalog (engine/inline.py), not a blob file
        s3.put_object(Bucket="full", Key="small", Body=small)
        assert inline_rows(d) == 2  # "keep" and "small"
        upload = s3.create_multipart_upload(Bucket="full", Key="mp")["UploadId"]
        part = os.urandom(5 * MiB)
        s3.upload_part(Bucket="full", Key="mp", UploadId=upload, PartNumber=1, Body=part)
        done = s3.create_multipart_upload(Bucket="full", Key="mpobj")["UploadId"]
        etag = s3.upload_part(Bucket="full", Key="mpobj", UploadId=done, PartNumber=1, Body=part)["ETag"]
        s3.complete_multipart_upload(
            Bucket="full", Key="mpobj", UploadId=done, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
        )

        # Through S3: 8 MiB objects until the reserve refuses one, before the disk is full.
        big = os.urandom(8 * MiB)
        filled: list[str] = []
        refused = ""
        for i in range(10):
            refused = status_of(lambda i=i: s3.put_object(Bucket="full", Key=f"fill-{i}", Body=big))
            if refused != "ok":
                break
            filled.append(f"fill-{i}")
        assert refused == "507 InsufficientStorage" and len(filled) >= 3, (refused, filled)

        # From outside: the last byte of the disk goes.
        filler = fill(small_disk)
        answers: dict[str, str] = {}
        answers["PUT 1 byte"] = status_of(lambda: s3.put_object(Bucket="full", Key="new", Body=b"x"))
        url = s3.generate_presigned_url("put_object", Params={"Bucket": "full", "Key": "raw"}, ExpiresIn=300)
        interim = raw_put_with_expect(d, url, 10 * MiB)
        answers["PUT 10 MiB, Expect: 100-continue"] = interim.split(b"\r\n", 1)[0].decode()
        answers["CreateMultipartUpload"] = status_of(lambda: s3.create_multipart_upload(Bucket="full", Key="mp2"))
        answers["UploadPart"] = status_of(
            lambda: s3.upload_part(Bucket="full", Key="mp", UploadId=upload, PartNumber=2, Body=b"y" * 1000)
        )
        answers["GET"] = status_of(lambda: s3.get_object(Bucket="full", Key="keep")["Body"].read())
        answers["PUT 32 KiB"] = status_of(lambda: s3.put_object(Bucket="full", Key="small2", Body=small))
        assert s3.get_object(Bucket="full", Key="small")["Body"].read() == small
        assert s3.get_object(Bucket="full", Key="keep")["Body"].read() == b"kept bytes"
        answers["HEAD"] = status_of(lambda: s3.head_object(Bucket="full", Key="keep"))
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket="full")["Contents"]]
        answers["LIST"] = "ok" if listed == sorted(["keep", "mpobj", "small", *filled]) else "wrong"
        answers["ListParts"] = status_of(lambda: s3.list_parts(Bucket="full", Key="mp", UploadId=upload))
        # /health answers from a probe made every 10 s: wait for one made since the disk filled.
        wait_for(lambda: ops_health(d)[1]["status"] != "ok", 30, "a health probe of the full disk")
        code, doc = ops_health(d)
        answers["ops /health"] = f"{code} {doc['status']}"
        local = doc["drivers"]["local"]  # type: ignore[index]
        assert local["status"] == "degraded" and local["reserve_bytes"] == DISK_SIZE // 100  # the default: 1%
        assert local["free_bytes"] < local["reserve_bytes"]
        samples = ops_metrics(d)
        assert samples['vaultaire_driver_reserve_bytes{driver="local"}'] == DISK_SIZE // 100
        assert samples['vaultaire_driver_free_bytes{driver="local"}'] < DISK_SIZE // 100
        before = free_bytes(small_disk)
        answers["DELETE multipart object"] = status_of(lambda: s3.delete_object(Bucket="full", Key="mpobj"))
        freed_multipart = free_bytes(small_disk) - before
        before = free_bytes(small_disk)
        answers["DELETE"] = status_of(lambda: s3.delete_object(Bucket="full", Key=filled[0]))
        freed = free_bytes(small_disk) - before
        answers["DeleteObjects"] = status_of(
            lambda: s3.delete_objects(Bucket="full", Delete={"Objects": [{"Key": k} for k in filled[1:]]})
        )
        answers["DELETE small"] = status_of(lambda: s3.delete_object(Bucket="full", Key="small"))
        answers["AbortMultipartUpload"] = status_of(
            lambda: s3.abort_multipart_upload(Bucket="full", Key="mp", UploadId=upload)
        )
        print(f"\nworkers={workers}, while the disk was full:")
        for operation, answer in answers.items():
            print(f"  {operation:36} {answer}")
        assert answers == {
            "PUT 1 byte": "507 InsufficientStorage",
            "PUT 10 MiB, Expect: 100-continue": "HTTP/1.1 507 Insufficient Storage Space",
            "CreateMultipartUpload": "507 InsufficientStorage",
            "UploadPart": "507 InsufficientStorage",
            "GET": "ok",
            "PUT 32 KiB": "507 InsufficientStorage",
            "HEAD": "ok",
            "LIST": "ok",
            "ListParts": "ok",
            "ops /health": "200 degraded",
            "DELETE multipart object": "ok",
            "DELETE": "ok",
            "DeleteObjects": "ok",
            "DELETE small": "ok",
            "AbortMultipartUpload": "ok",
        }
        assert freed >= 7.5 * MiB, freed  # the 8 MiB blob is freed at once (less what the catalog wrote)
        # A multipart object's parts wait a grace period for reads in flight, but not on a full disk.
        assert freed_multipart >= 4.5 * MiB, freed_multipart
        assert s3.list_objects_v2(Bucket="full")["KeyCount"] == 1
        assert inline_rows(d) == 1  # the deleted small object's row went with its delete
        if workers > 1:
            assert worker_restarts(d) == 0  # no SIGBUS, no crash loop

        # Space back from outside: writes work again.
        filler.unlink()
        after: dict[str, str] = {}
        after["PUT"] = status_of(lambda: s3.put_object(Bucket="full", Key="again", Body=big))
        upload = s3.create_multipart_upload(Bucket="full", Key="mp3")["UploadId"]
        etag = s3.upload_part(Bucket="full", Key="mp3", UploadId=upload, PartNumber=1, Body=part)["ETag"]
        after["multipart"] = status_of(
            lambda: s3.complete_multipart_upload(
                Bucket="full", Key="mp3", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
            )
        )
        after["GET"] = "ok" if s3.get_object(Bucket="full", Key="again")["Body"].read() == big else "wrong"
        after["small"] = status_of(lambda: s3.put_object(Bucket="full", Key="small", Body=small))
        after["GET small"] = "ok" if s3.get_object(Bucket="full", Key="small")["Body"].read() == small else "wrong"
        after["DELETE"] = status_of(lambda: s3.delete_object(Bucket="full", Key="again"))
        print(f"workers={workers}, after space came back: {after}")
        assert after == {"PUT": "ok", "multipart": "ok", "GET": "ok", "small": "ok", "GET small": "ok", "DELETE": "ok"}
        # The catalog's headroom is taken back by the periodic work once there is room.
        wait_for(lambda: (d.data_dir / "catalog.headroom").exists(), 30, "the catalog headroom to be restored")
        wait_for(lambda: ops_health(d)[1]["status"] == "ok", 30, "health to be ok again")
        assert ops_health(d)[0] == 200
        assert "Traceback" not in d.log_text()
        if workers > 1:
            assert worker_restarts(d) == 0
    finally:
        d.stop()


def test_the_runtime_directory_is_on_tmpfs_and_ours(tmp_path: Path) -> None:
    settings = Settings(data=str(tmp_path / "data"))
    default = runtime_directory(settings, {})
    try:
        assert default.startswith("/dev/shm/vaultaire-") and os.stat(default).st_mode & 0o777 == 0o700
        assert runtime_directory(Settings(data=str(tmp_path / "other")), {}) != default  # one per data directory
    finally:
        os.rmdir(default)
    systemd = tmp_path / "run" / "vaultaire"
    assert runtime_directory(settings, {"RUNTIME_DIRECTORY": f"{systemd}:/elsewhere"}) == str(systemd)
    configured = tmp_path / "configured"
    chosen = Settings(data=str(tmp_path / "data"), runtime_dir=str(configured))
    assert runtime_directory(chosen, {"RUNTIME_DIRECTORY": str(systemd)}) == str(configured)
    # /dev/shm is everyone's: a directory another user could write to is refused.
    configured.chmod(0o777)
    with pytest.raises(ConfigError, match="writable by no one else"):
        runtime_directory(chosen, {})
