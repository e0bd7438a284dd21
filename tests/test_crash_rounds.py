"""Round after round of kill -9 under concurrent writers: no blob file is ever leaked.

Each round restarts the daemon on the same data directory, lets 8 writers
PUT, overwrite, delete and upload parts, and kills it with SIGKILL at a random
moment. After each restart the sweep must bring blob files and catalog back
into exact agreement: every file is referenced, queued as garbage or gone.
Run with one process and with a supervisor of two workers.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import pytest
from daemon import Daemon, wait_blobs_settled

ROUNDS = 5
WRITERS = 8
BUCKET = "rounds"
PART_SIZE = 256 * 1024  # the daemon is told parts may be this small


def writer(daemon: Daemon, n: int, rnd: int, killing: threading.Event, failures: list[str], acks: list[int]) -> None:
    client = daemon.boto3_client()
    rng = random.Random(rnd * 100 + n)
    i = 0
    while not killing.is_set():
        key = f"w{n}-{rng.randint(0, 5)}"  # few keys: many overwrites
        try:
            action = rng.random()
            if action < 0.1:
                client.delete_object(Bucket=BUCKET, Key=key)
            elif action < 0.2:
                # A multipart upload left unfinished or completed (two parts + a tail).
                upload = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
                parts = []
                for number, size in ((1, PART_SIZE), (2, PART_SIZE), (3, 1000)):
                    etag = client.upload_part(
                        Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=number, Body=os.urandom(size)
                    )["ETag"]
                    parts.append({"PartNumber": number, "ETag": etag})
                if rng.random() < 0.7:
                    client.complete_multipart_upload(
                        Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
                    )
            else:
                client.put_object(Bucket=BUCKET, Key=key, Body=os.urandom(rng.randint(0, 2**20)))
        except Exception as e:
            if not killing.is_set():
                failures.append(f"writer {n}, round {rnd}: {e!r}")
            return
        i += 1
        acks[n] = i


@pytest.mark.timeout(400)
@pytest.mark.parametrize("workers", [1, 2])
def test_kill9_rounds_leak_no_blob(tmp_path: Any, workers: int, record_property: Any) -> None:
    config = tmp_path / "vaultaire.toml"
    config.write_text(f"[multipart]\nmin_part_size = {PART_SIZE}\n")
    daemon = Daemon(tmp_path / "v", workers=workers, extra_args=["--config", str(config)]).start()
    try:
        daemon.boto3_client().create_bucket(Bucket=BUCKET)
        counts = []
        for rnd in range(ROUNDS):
            killing = threading.Event()
            failures: list[str] = []
            acks = [0] * WRITERS
            threads = [
                threading.Thread(target=writer, args=(daemon, n, rnd, killing, failures, acks), daemon=True)
                for n in range(WRITERS)
            ]
            for t in threads:
                t.start()
            # Kill once every writer has finished a request or two, at a random moment after.
            deadline = time.monotonic() + 60
            while sum(acks) < WRITERS and time.monotonic() < deadline and not failures:
                time.sleep(0.02)
            time.sleep(random.uniform(0.0, 0.5))
            killing.set()
            daemon.kill9()
            for t in threads:
                t.join(60)
            assert not any(t.is_alive() for t in threads), "a writer hangs after the kill"
            assert failures == [], failures
            assert sum(acks) >= WRITERS, f"round {rnd}: writers too slow ({sum(acks)} requests in 60 s)"
            daemon.restart()
            ledger = wait_blobs_settled(daemon.data_dir)
            counts.append((rnd, sum(acks), len(ledger["files"]), len(ledger["referenced"]), len(ledger["garbage"])))
        summary = "; ".join(
            f"round {r}: {a} requests, {f} blob files = {ref} referenced + {f - ref} of {g} queued garbage"
            for r, a, f, ref, g in counts
        )
        record_property("kill9_rounds", summary)
        print(f"\nkill -9 rounds (workers={workers}): {summary}")
        # Still writable and readable after all that.
        s3 = daemon.boto3_client()
        s3.put_object(Bucket=BUCKET, Key="after", Body=b"fine")
        assert s3.get_object(Bucket=BUCKET, Key="after")["Body"].read() == b"fine"
    finally:
        daemon.stop()
