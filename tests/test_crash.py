"""kill -9 the daemon in the middle of uploads; after a restart every listed object is whole."""

from __future__ import annotations

import hashlib
import os
import random
import socket
import threading
import time
import urllib.parse
from typing import Any

import pytest
from daemon import Daemon, blob_files, catalog_rows, wait_blobs_settled

UPLOAD_THREADS = 4
STALLED_SIZE = 4 * 2**20
INLINE_MAX = 64 * 1024  # the daemon's default [storage] inline_max_bytes


def stalled_put(url: str, size: int, sent_half: threading.Event, release: threading.Event) -> None:
    """PUT via a presigned URL: headers and half the body, then nothing until released."""
    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    try:
        head = (
            f"PUT {parts.path}?{parts.query} HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\n"
            f"Content-Length: {size}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        sock.sendall(head.encode())
        sock.sendall(os.urandom(size // 2))
        sent_half.set()
        release.wait(60)
    except OSError:
        pass
    finally:
        sent_half.set()
        sock.close()


@pytest.mark.timeout(180)
def test_kill9_during_uploads(daemon: Daemon, record_property: Any) -> None:
    s3 = daemon.boto3_client()
    s3.create_bucket(Bucket="crash")
    # Some objects committed well before the crash, overwritten during it.
    before: dict[str, str] = {}
    for i in range(3):
        body = os.urandom(100_000 + i)
        s3.put_object(Bucket="crash", Key=f"before-{i}", Body=body)
        before[f"before-{i}"] = hashlib.md5(body).hexdigest()

    stop = threading.Event()
    killing = threading.Event()  # set just before the kill: from then on a failed request is expected
    failures: list[str] = []  # anything an uploader saw go wrong before the kill
    lock = threading.Lock()
    acked: dict[str, str] = {}  # key -> md5 the daemon acknowledged
    sent: dict[str, set[str]] = {k: {v} for k, v in before.items()}  # key -> every md5 ever sent
    started = 0

    def uploader(n: int) -> None:
        nonlocal started
        client = daemon.boto3_client()
        rng = random.Random(n)
        i = 0
        while not stop.is_set():
            # Every third write overwrites a "before" key: old or new content is fine, never a mix.
            key = f"before-{i % 3}" if i % 3 == 2 else f"t{n}-{i}"
            if i % 2:
                # Small objects go into the catalog with their row (engine/inline.py): half the writes.
                body = os.urandom(rng.randint(0, INLINE_MAX))
            else:
                body = os.urandom(rng.randint(1, 8) * 2**20 - rng.randint(0, 1000))
            digest = hashlib.md5(body).hexdigest()
            with lock:
                sent.setdefault(key, set()).add(digest)
                started += 1
            try:
                etag = client.put_object(Bucket="crash", Key=key, Body=body)["ETag"].strip('"')
            except Exception as e:
                if not killing.is_set():  # a server error, not the crash: the test must fail
                    with lock:
                        failures.append(f"uploader {n}, {key}: {e!r}")
                return  # the daemon died under us
            with lock:
                if etag != digest:
                    failures.append(f"uploader {n}, {key}: ETag {etag} for a body of MD5 {digest}")
                acked[key] = digest
            i += 1

    threads = [threading.Thread(target=uploader, args=(n,), daemon=True) for n in range(UPLOAD_THREADS)]
    for t in threads:
        t.start()
    stalled_url = daemon.boto3_client(signature_version="s3v4").generate_presigned_url(
        "put_object", Params={"Bucket": "crash", "Key": "stalled"}, ExpiresIn=600
    )
    sent_half, release = threading.Event(), threading.Event()
    stalled = threading.Thread(target=stalled_put, args=(stalled_url, STALLED_SIZE, sent_half, release), daemon=True)
    stalled.start()
    assert sent_half.wait(30)

    deadline = time.monotonic() + 60
    while len(acked) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert failures == [], failures
    assert len(acked) >= 6, f"uploads too slow: {len(acked)} acknowledged in 60s"
    time.sleep(random.uniform(0.05, 0.3))
    staged_before_kill = [p for p in blob_files(daemon.data_dir) if p.name.endswith(".part")]
    killing.set()
    daemon.kill9()
    stop.set()
    release.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "an uploader hangs after the kill"
    stalled.join(30)
    assert failures == [], failures
    assert staged_before_kill, "no staged write was in flight at the kill; the test proves nothing"

    daemon.restart()
    s3 = daemon.boto3_client()
    assert not [p for p in blob_files(daemon.data_dir) if p.name.endswith(".part")], (
        "staged .part files survived the restart"
    )

    listed: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="crash"):
        for obj in page.get("Contents", []):
            listed[obj["Key"]] = obj["ETag"].strip('"')
    assert "stalled" not in listed

    for key, etag in listed.items():
        digest = hashlib.md5()
        response = s3.get_object(Bucket="crash", Key=key)
        for chunk in response["Body"].iter_chunks(2**20):
            digest.update(chunk)
        assert digest.hexdigest() == etag, f"{key}: content MD5 {digest.hexdigest()} != ETag {etag}"
        assert etag in sent.get(key, set()), f"{key}: ETag {etag} matches nothing a client sent"
        assert response["ContentLength"] == s3.head_object(Bucket="crash", Key=key)["ContentLength"]
        sizes[key] = response["ContentLength"]

    # Every acknowledged write survived (or was superseded by a later write to the same key).
    for key, digest in acked.items():
        assert key in listed, f"acknowledged upload {key} lost by the crash"
        if not key.startswith("before-"):
            assert listed[key] == digest, f"acknowledged upload {key} has the wrong content"
    for key in before:
        assert key in listed

    # Every blob file (and inline row) is one the catalog references or has queued as garbage: none leaked.
    ledger = wait_blobs_settled(daemon.data_dir)
    small = [key for key, size in sizes.items() if size <= INLINE_MAX]
    assert small and catalog_rows(daemon.data_dir, "SELECT count(*) FROM inline_blobs")[0][0] >= len(small)
    record_property("blob_files", len(ledger["files"]))
    record_property("uploads_started", started)
    print(
        f"\ncrash: {started} uploads started, {len(acked)} acknowledged, {len(listed)} listed, "
        f"{len(staged_before_kill)} staged at the kill; after restart {len(ledger['files'])} blob files = "
        f"{len(ledger['referenced'])} referenced + {len(ledger['files'] - ledger['referenced'])} queued garbage"
    )

    # The daemon is healthy and writable after the crash.
    s3.put_object(Bucket="crash", Key="after", Body=b"fine")
    assert s3.get_object(Bucket="crash", Key="after")["Body"].read() == b"fine"
