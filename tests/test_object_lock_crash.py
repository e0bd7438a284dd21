"""kill -9 the daemon while clients hammer locked versions: after each restart every locked
version is there, whole, still locked (its retention never shorter), and still refuses deletion."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from daemon import Daemon

BUCKET = "vault"
KEYS = 12
WORKERS = 3
ROUNDS = 2


def until(days: float) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


@pytest.mark.timeout(240)
def test_kill9_never_loses_or_unlocks_a_locked_version(daemon: Daemon) -> None:
    s3 = daemon.boto3_client()
    s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    locked: dict[tuple[str, str], tuple[str, datetime]] = {}  # (key, version) -> (md5, earliest until)
    for i in range(KEYS):
        key = f"k{i}"
        body = os.urandom(50_000 + i)
        lock: dict[str, Any] = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until(1)}
        if i % 3 == 0:
            lock["ObjectLockLegalHoldStatus"] = "ON"
        version = s3.put_object(Bucket=BUCKET, Key=key, Body=body, **lock)["VersionId"]
        locked[(key, version)] = (hashlib.md5(body).hexdigest(), lock["ObjectLockRetainUntilDate"])
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"unlocked on top")

    for round_ in range(ROUNDS):
        hammer_then_kill(daemon, locked, round_)
        daemon.restart()
        check_locked(daemon.boto3_client(), locked)


def hammer_then_kill(daemon: Daemon, locked: dict[tuple[str, str], tuple[str, datetime]], round_: int) -> None:
    stop = threading.Event()
    killing = threading.Event()
    failures: list[str] = []
    done = [0]
    guard = threading.Lock()
    targets = sorted(locked)

    def worker(n: int) -> None:
        client = daemon.boto3_client()
        rng = random.Random(round_ * 100 + n)
        while not stop.is_set():
            key, version = rng.choice(targets)
            action = rng.randrange(5)
            try:
                if action == 0:
                    try:
                        client.delete_object(Bucket=BUCKET, Key=key, VersionId=version)
                        failures.append(f"deleted locked {key} {version}")
                    except ClientError as e:
                        if e.response["Error"]["Code"] != "AccessDenied":
                            raise
                elif action == 1:
                    batch = client.delete_objects(
                        Bucket=BUCKET, Delete={"Objects": [{"Key": key, "VersionId": version}]}
                    )
                    if batch.get("Deleted") or [e["Code"] for e in batch.get("Errors", [])] != ["AccessDenied"]:
                        failures.append(f"batch delete of locked {key} {version}: {batch}")
                elif action == 2:  # a date later than the last one extends; an earlier one is refused
                    later = until(2 + rng.random())
                    try:
                        client.put_object_retention(
                            Bucket=BUCKET,
                            Key=key,
                            VersionId=version,
                            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later},
                        )
                    except ClientError as e:
                        if e.response["Error"]["Code"] != "AccessDenied":
                            raise
                elif action == 3:  # new versions and delete markers on top
                    client.put_object(Bucket=BUCKET, Key=key, Body=os.urandom(rng.randint(1, 200_000)))
                    client.delete_object(Bucket=BUCKET, Key=key)
                else:
                    client.put_object_legal_hold(
                        Bucket=BUCKET, Key=key, VersionId=version, LegalHold={"Status": rng.choice(["ON", "OFF"])}
                    )
            except Exception as e:  # after the kill, every request may fail
                if not killing.is_set():
                    with guard:
                        failures.append(f"worker {n}: {e!r}")
                return
            with guard:
                done[0] += 1

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(WORKERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while done[0] < 60 + 40 * round_ and time.monotonic() < deadline and not failures:
        time.sleep(0.05)
    killing.set()
    daemon.kill9()
    stop.set()
    for t in threads:
        t.join(30)
    assert not failures, failures[:5]
    assert done[0] >= 60, f"only {done[0]} requests before the deadline"


def check_locked(s3: Any, locked: dict[tuple[str, str], tuple[str, datetime]]) -> None:
    for (key, version), (md5, earliest) in locked.items():
        got = s3.get_object(Bucket=BUCKET, Key=key, VersionId=version)
        assert hashlib.md5(got["Body"].read()).hexdigest() == md5, (key, version)
        assert got["ObjectLockMode"] == "COMPLIANCE"
        assert got["ObjectLockRetainUntilDate"] >= earliest, (key, version)
        with pytest.raises(ClientError) as refused:
            s3.delete_object(Bucket=BUCKET, Key=key, VersionId=version)
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
