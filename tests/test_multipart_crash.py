"""kill -9 during CompleteMultipartUpload; abort and expiry give the space back.

A completion is one catalog transaction, so a crash at any moment must leave the key
holding exactly the old artifact (and the upload still there, whole) or exactly the new
one (and the upload gone) -- never a mix, never a torn manifest, never a leaked blob.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from botocore.exceptions import ClientError
from daemon import Daemon, assert_no_leak, blob_files, write_config

from tests.s3helpers import (
    Server,
    complete_body,
    complete_upload,
    create_upload,
    error_code,
    multipart_etag,
    upload_part,
    xml_values,
)

PART_SIZE = 8 * 1024
PARTS = 120
# Delays (ms) between the last byte of the Complete request and SIGKILL: here the commit
# lands 1-4 ms after the request, so the low end is dense.
DELAYS_MS = [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 7, 10, 15, 20, 30]
FALLBACK_DELAYS_MS = [50, 100, 200, 500, 1000, 2000]
ROUNDS = 2


def read_md5(s3: Any, bucket: str, key: str, **kw: Any) -> tuple[str, dict[str, Any]]:
    got = s3.get_object(Bucket=bucket, Key=key, **kw)
    h = hashlib.md5()
    for chunk in got["Body"].iter_chunks(2**20):
        h.update(chunk)
    return h.hexdigest(), got


def upload_parts(s3: Any, bucket: str, key: str, parts: list[bytes]) -> tuple[str, list[dict[str, Any]]]:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]

    def one(i: int) -> dict[str, Any]:
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=i + 1, Body=parts[i])
        return {"PartNumber": i + 1, "ETag": r["ETag"]}

    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(one, range(len(parts))))
    return upload, done


def send_complete(s3: Any, bucket: str, key: str, upload: str, body: bytes) -> http.client.HTTPConnection:
    """POST the whole Complete request (presigned: no signing work left) and return at once."""
    url = s3.generate_presigned_url(
        "complete_multipart_upload", Params={"Bucket": bucket, "Key": key, "UploadId": upload}, HttpMethod="POST"
    )
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    # No Content-Type: boto3 presigns with SigV2 here, which would sign it.
    conn.request("POST", f"{parts.path}?{parts.query}", body=body)
    return conn


def response_status(conn: http.client.HTTPConnection) -> int | None:
    """The Complete's status if the daemon answered before it died, else None."""
    try:
        r = conn.getresponse()
        r.read()
        return r.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


@pytest.mark.timeout(600)  # ~35 kill -9 and restart rounds; a loaded machine is much slower
def test_kill9_during_complete_leaves_old_or_new(tmp_path: Path, record_property: Any) -> None:
    cfg = write_config(tmp_path, "[multipart]\nmin_part_size = 1024\n")
    daemon = Daemon(tmp_path / "v", extra_args=["--config", cfg]).start()
    try:
        s3 = daemon.boto3_client(max_pool_connections=16)
        bucket, key = "crash", "obj"
        s3.create_bucket(Bucket=bucket)
        new_parts = [os.urandom(PART_SIZE) for _ in range(PARTS - 1)] + [os.urandom(1234)]
        new_md5 = hashlib.md5(b"".join(new_parts)).hexdigest()
        new_etag = multipart_etag(new_parts)
        new_size = sum(map(len, new_parts))

        # Calibrate: how long does an undisturbed Complete of this size take here?
        upload, done = upload_parts(s3, bucket, "calibrate", new_parts)
        t0 = time.monotonic()
        s3.complete_multipart_upload(Bucket=bucket, Key="calibrate", UploadId=upload, MultipartUpload={"Parts": done})
        complete_ms = (time.monotonic() - t0) * 1000
        record_property("complete_ms", round(complete_ms, 2))
        s3.delete_object(Bucket=bucket, Key="calibrate")

        outcomes: list[tuple[float, str, int | None]] = []
        planned = [(rnd, ms) for rnd in range(ROUNDS) for ms in DELAYS_MS]
        # On a loaded machine the commit may land later than 30 ms: then go on, longer.
        # Up to several times the measured Complete, for a machine busier still.
        fallback = [(ROUNDS, ms) for ms in [*FALLBACK_DELAYS_MS, *(complete_ms * k for k in (2, 4, 8))]]
        while planned or (fallback and {kind for _, kind, _ in outcomes} != {"old", "new"}):
            rnd, ms = planned.pop(0) if planned else fallback.pop(0)
            delay = ms / 1000
            old = f"old {rnd} {delay} ".encode() + os.urandom(50_000)
            old_md5 = hashlib.md5(old).hexdigest()
            s3.put_object(Bucket=bucket, Key=key, Body=old)
            upload, done = upload_parts(s3, bucket, key, new_parts)
            conn = send_complete(s3, bucket, key, upload, complete_body((p["PartNumber"], p["ETag"]) for p in done))
            if delay:
                time.sleep(delay)
            daemon.kill9()
            status = response_status(conn)
            daemon.restart()
            s3 = daemon.boto3_client(max_pool_connections=16)

            where = f"round {rnd}, delay {delay * 1000:.1f} ms, status {status}"
            md5, got = read_md5(s3, bucket, key)
            etag = got["ETag"].strip('"')
            head = s3.head_object(Bucket=bucket, Key=key)
            assert head["ETag"] == got["ETag"], where
            pending = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
            if md5 == new_md5:
                outcomes.append((delay, "new", status))
                assert (etag, head["ContentLength"]) == (new_etag, new_size), where
                assert pending == [], where  # the upload went with the commit
                part_md5, part = read_md5(s3, bucket, key, PartNumber=PARTS // 2)
                assert part_md5 == hashlib.md5(new_parts[PARTS // 2 - 1]).hexdigest(), where
                assert part["PartsCount"] == PARTS, where
            else:
                outcomes.append((delay, "old", status))
                assert md5 == old_md5, f"{where}: neither the old nor the new content"
                assert (etag, head["ContentLength"]) == (old_md5, len(old)), where
                assert status != 200, f"{where}: Complete answered 200 but the old object survived"
                assert pending == [upload], where  # the upload survived whole
                listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload, MaxParts=1000)
                assert len(listed["Parts"]) == PARTS, where
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
            assert_no_leak(daemon.data_dir)
        record_property("outcomes", outcomes)
        print("complete outcomes (delay s, kind, status):", outcomes)
        kinds = {kind for _, kind, _ in outcomes}
        # The delays must straddle the commit, or the test proved nothing.
        assert kinds == {"old", "new"}, outcomes
    finally:
        daemon.stop()


@pytest.mark.timeout(60)
def test_abort_frees_space(daemon: Daemon) -> None:
    s3 = daemon.boto3_client()
    s3.create_bucket(Bucket="abort")
    s3.put_object(Bucket="abort", Key="k", Body=b"keep me")
    before = len(blob_files(daemon.data_dir))
    upload = s3.create_multipart_upload(Bucket="abort", Key="k")["UploadId"]
    for n in range(1, 5):
        s3.upload_part(Bucket="abort", Key="k", UploadId=upload, PartNumber=n, Body=os.urandom(300_000))
    s3.upload_part(Bucket="abort", Key="k", UploadId=upload, PartNumber=2, Body=b"again")  # replaces part 2
    assert len(blob_files(daemon.data_dir)) == before + 4
    s3.abort_multipart_upload(Bucket="abort", Key="k", UploadId=upload)
    assert len(blob_files(daemon.data_dir)) == before
    with pytest.raises(ClientError) as info:
        s3.list_parts(Bucket="abort", Key="k", UploadId=upload)
    assert info.value.response["Error"]["Code"] == "NoSuchUpload"
    assert s3.list_multipart_uploads(Bucket="abort").get("Uploads", []) == []
    assert s3.get_object(Bucket="abort", Key="k")["Body"].read() == b"keep me"
    assert_no_leak(daemon.data_dir)


@pytest.mark.timeout(60)
def test_expired_upload_is_collected_at_restart(tmp_path: Path) -> None:
    """The expiry timer also fires when the daemon starts: an upload older than it is gone."""
    cfg = write_config(tmp_path, "[multipart]\nupload_expiry = 1\n")
    daemon = Daemon(tmp_path / "v", extra_args=["--config", cfg]).start()
    try:
        s3 = daemon.boto3_client()
        s3.create_bucket(Bucket="exp")
        empty = len(blob_files(daemon.data_dir))
        upload = s3.create_multipart_upload(Bucket="exp", Key="stale")["UploadId"]
        for n in (1, 2, 3):
            s3.upload_part(Bucket="exp", Key="stale", UploadId=upload, PartNumber=n, Body=os.urandom(100_000))
        assert len(blob_files(daemon.data_dir)) == empty + 3
        time.sleep(1.5)
        daemon.kill9()  # not even a clean shutdown
        daemon.restart()
        s3 = daemon.boto3_client()
        deadline = time.monotonic() + 60  # generous: a loaded machine is only slower
        while s3.list_multipart_uploads(Bucket="exp").get("Uploads") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert s3.list_multipart_uploads(Bucket="exp").get("Uploads", []) == []
        while len(blob_files(daemon.data_dir)) != empty and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(blob_files(daemon.data_dir)) == empty
        with pytest.raises(ClientError) as info:
            s3.upload_part(Bucket="exp", Key="stale", UploadId=upload, PartNumber=4, Body=b"late")
        assert info.value.response["Error"]["Code"] == "NoSuchUpload"
        assert_no_leak(daemon.data_dir)
    finally:
        daemon.stop()


@pytest_twisted.ensureDeferred
async def test_expire_uploads_in_process(tmp_path: Path) -> None:
    """Engine.expire_uploads on a real SQLite catalog and local driver: only old uploads go.

    The engine's clock is the test's: uploads are "old" by its hand, not by a wall-clock race.
    """
    now = [1_800_000_000.0]
    server = Server(str(tmp_path), clock=lambda: now[0])
    await server.start()
    try:
        assert (await server.request("PUT", "/bucket")).code == 200

        old = await create_upload(server, "/bucket/old")
        await upload_part(server, "/bucket/old", old, 1, b"a" * 1000)
        await upload_part(server, "/bucket/old", old, 2, b"b" * 1000)
        done = await create_upload(server, "/bucket/done")  # completed: its parts now belong to an artifact
        etag = await upload_part(server, "/bucket/done", done, 1, b"kept")
        now[0] += 3600
        young = await create_upload(server, "/bucket/young")
        await upload_part(server, "/bucket/young", young, 1, b"young")
        r = await complete_upload(server, "/bucket/done", done, [(1, etag)])
        assert r.code == 200, r.body
        assert len(server.blob_files()) == 4
        now[0] += 60
        assert await server.engine.expire_uploads(max_age=3661) == 0  # "old" is 3660 s old: not yet
        assert await server.engine.expire_uploads(max_age=120) == 1
        assert len(server.blob_files()) == 2
        r = await server.request("GET", "/bucket/old", query=f"uploadId={old}")
        assert (r.code, error_code(r)) == (404, "NoSuchUpload")
        r = await server.request("GET", "/bucket", query="uploads=")
        assert xml_values(r.body, "UploadId") == [young]
        r = await server.request("GET", "/bucket/done")
        assert (r.code, r.body) == (200, b"kept")
        assert await server.engine.expire_uploads(max_age=61) == 0  # "young" is 60 s old: kept
        assert await server.engine.expire_uploads(max_age=59) == 1
        assert len(server.blob_files()) == 1  # only the completed artifact's blob is left
    finally:
        await server.stop()
