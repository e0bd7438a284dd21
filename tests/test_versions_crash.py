"""kill -9 during versioned writes and deletes: after a restart no acknowledged version is lost,
none is visible half-written, no deleted one comes back, and blobs and catalog agree."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from typing import Any

import pytest
from daemon import Daemon, wait_blobs_settled

BUCKET = "crash-versions"
KEYS = [f"k{n}" for n in range(4)]


def all_versions(s3: Any) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
        entries += [dict(v, marker=False) for v in page.get("Versions", [])]
        entries += [dict(m, marker=True) for m in page.get("DeleteMarkers", [])]
    return entries


@pytest.mark.timeout(180)
def test_kill9_during_versioned_writes_and_deletes(daemon: Daemon) -> None:
    s3 = daemon.boto3_client()
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    lock = threading.Lock()
    acked: dict[str, tuple[str, str]] = {}  # version id -> (key, md5) the daemon acknowledged
    removed: set[str] = set()  # version ids whose delete the daemon acknowledged
    # Deletes sent but not answered when the kill struck: committed or not, either is right.
    attempted: set[str] = set()
    failures: list[str] = []
    stop, killing = threading.Event(), threading.Event()

    def worker(n: int) -> None:
        client = daemon.boto3_client()
        rng = random.Random(n)
        while not stop.is_set():
            key = rng.choice(KEYS)
            try:
                roll = rng.random()
                if roll < 0.6:
                    body = os.urandom(rng.randint(1, 400) * 1000)
                    version = client.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"]
                    with lock:
                        acked[version] = (key, hashlib.md5(body).hexdigest())
                elif roll < 0.8:
                    client.delete_object(Bucket=BUCKET, Key=key)  # a delete marker
                else:
                    with lock:
                        mine = [v for v, (k, _md5) in acked.items() if k == key and v not in removed]
                    if mine:
                        victim = rng.choice(mine)
                        with lock:
                            attempted.add(victim)
                        client.delete_object(Bucket=BUCKET, Key=key, VersionId=victim)
                        with lock:
                            removed.add(victim)
            except Exception as e:
                if not killing.is_set():
                    with lock:
                        failures.append(f"worker {n}: {e!r}")
                return

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while (len(acked) < 30 or len(removed) < 3) and time.monotonic() < deadline and not failures:
        time.sleep(0.02)
    assert failures == [], failures
    assert len(acked) >= 30 and removed, f"too slow: {len(acked)} versions, {len(removed)} deletes in 60 s"
    killing.set()
    daemon.kill9()
    stop.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert failures == [], failures

    daemon.restart()
    s3 = daemon.boto3_client()
    listed = all_versions(s3)
    by_id = {e["VersionId"]: e for e in listed}
    # Every acknowledged version not acknowledged deleted is there, and reads back whole.
    for version, (key, md5) in acked.items():
        if version in removed:
            assert version not in by_id, f"deleted version {version} of {key} came back"
            continue
        if version in attempted and version not in by_id:
            continue  # its delete was in flight at the kill and committed: not lost, deleted
        assert version in by_id, f"acknowledged version {version} of {key} is lost"
        body = s3.get_object(Bucket=BUCKET, Key=key, VersionId=version)["Body"].read()
        assert hashlib.md5(body).hexdigest() == md5
    # Whatever else is listed (written or deleted as the kill struck) is whole too.
    for entry in listed:
        if entry["marker"]:
            continue
        body = s3.get_object(Bucket=BUCKET, Key=entry["Key"], VersionId=entry["VersionId"])["Body"].read()
        assert f'"{hashlib.md5(body).hexdigest()}"' == entry["ETag"]
    # One current version per key, and GET agrees with the listing.
    for key in KEYS:
        mine = [e for e in listed if e["Key"] == key]
        latest = [e for e in mine if e["IsLatest"]]
        assert len(latest) == (1 if mine else 0), f"{key}: {len(latest)} current versions"
        if latest and not latest[0]["marker"]:
            assert s3.head_object(Bucket=BUCKET, Key=key)["VersionId"] == latest[0]["VersionId"]
    wait_blobs_settled(daemon.data_dir)
