"""The byte quota under --workers 2: concurrent uploads through both workers never store
more than the quota, however the per-process early checks admitted them.

The early check (before ``100 Continue``) counts what the tenant stores plus the
uploads in flight *in that worker*; two workers can each admit an upload that
together do not fit. The commit check, inside the catalog transaction, is the
one that holds across processes: what it refuses is answered 403 QuotaExceeded
and its blob dropped (no leak), and what it commits never exceeds the quota.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError
from daemon import Daemon, wait_blobs_settled

ADMIN = os.path.join(os.path.dirname(sys.executable), "vaultaire-admin")
QUOTA = 9 * 2**20
BODY = 2 * 2**20
UPLOADERS = 8
TRIES = 3


def admin(d: Daemon, *args: str) -> str:
    done = subprocess.run([ADMIN, "--data", str(d.data_dir), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.timeout(300)
def test_concurrent_uploads_through_two_workers_never_exceed_the_quota(tmp_path: Any) -> None:
    with Daemon(tmp_path, workers=2) as d:
        s3 = d.boto3_client()
        s3.create_bucket(Bucket="quota")
        admin(d, "quota", "set", "default", "--max-bytes", str(QUOTA))
        lock = threading.Lock()
        stored: list[str] = []
        outcomes: list[str] = []
        start = threading.Barrier(UPLOADERS)

        def upload(n: int) -> None:
            client = d.boto3_client()
            start.wait(30)
            for i in range(TRIES):
                key = f"u{n}-{i}"
                try:
                    client.put_object(Bucket="quota", Key=key, Body=os.urandom(BODY))
                    outcome = "ok"
                except ClientError as e:
                    outcome = e.response["Error"]["Code"]
                except Exception as e:  # a dropped connection or a 5xx would be a bug
                    outcome = repr(e)
                with lock:
                    outcomes.append(outcome)
                    if outcome == "ok":
                        stored.append(key)

        threads = [threading.Thread(target=upload, args=(n,)) for n in range(UPLOADERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        assert not any(t.is_alive() for t in threads)

        assert set(outcomes) <= {"ok", "QuotaExceeded"}, outcomes
        assert len(stored) == QUOTA // BODY  # exactly what fits was stored...
        assert outcomes.count("QuotaExceeded") == UPLOADERS * TRIES - QUOTA // BODY  # ...the rest refused
        listed = s3.list_objects_v2(Bucket="quota").get("Contents", [])
        assert sorted(o["Key"] for o in listed) == sorted(stored)
        shown = json.loads(admin(d, "tenant", "show", "default", "--json"))
        assert shown["stored_bytes"] == len(stored) * BODY <= QUOTA
        # Refused commits dropped their blobs: files and catalog agree.
        ledger = wait_blobs_settled(d.data_dir)
        assert len(ledger["referenced"]) == len(stored)
