"""Three gateways, one namespace: a shared catalog, blobs on a real SeaweedFS cluster (issue 17).

One deployment for the module (a cluster of five ``weed`` processes and three
``twistd vaultaire``); each test uses its own buckets. The kill -9 test comes
last and restarts the gateway it killed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from daemon import ops_metrics
from gateways import Deployment
from streaming import connection


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = Deployment(tmp_path_factory.mktemp("gateways")).start()
    try:
        yield d
    finally:
        d.stop()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def status(e: ClientError) -> int:
    return int(e.response["ResponseMetadata"]["HTTPStatusCode"])


def test_a_write_on_one_gateway_is_read_on_every_other_at_once(deployment: Deployment) -> None:
    c = deployment.clients()
    c[0].create_bucket(Bucket="raw")
    for other in c[1:]:
        other.head_bucket(Bucket="raw")  # a bucket made on one gateway exists on all
    for i in range(12):
        body = os.urandom(1000 + i)
        c[i % 3].put_object(Bucket="raw", Key="k", Body=body)
        for reader in c:
            assert reader.get_object(Bucket="raw", Key="k")["Body"].read() == body, i
    c[1].delete_object(Bucket="raw", Key="k")
    for reader in c:
        with pytest.raises(ClientError) as e:
            reader.head_object(Bucket="raw", Key="k")
        assert status(e.value) == 404


def test_listings_agree_across_gateways(deployment: Deployment) -> None:
    c = deployment.clients()
    c[2].create_bucket(Bucket="listing")
    for i in range(40):
        c[i % 3].put_object(Bucket="listing", Key=f"dir{i % 4}/key{i:03d}", Body=str(i).encode())

    def listing(s3: Any) -> tuple[list[str], list[str]]:
        flat = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket="listing", PaginationConfig={"PageSize": 7})
            for o in page.get("Contents", [])
        ]
        tree = s3.list_objects_v2(Bucket="listing", Delimiter="/")
        return flat, [p["Prefix"] for p in tree.get("CommonPrefixes", [])]

    seen = [listing(s3) for s3 in c]
    assert seen[0] == seen[1] == seen[2]
    assert len(seen[0][0]) == 40 and seen[0][1] == ["dir0/", "dir1/", "dir2/", "dir3/"]


def test_aws_cli_multipart_with_parts_on_different_gateways(deployment: Deployment, tmp_path: Path) -> None:
    g = deployment.gateways
    c = deployment.clients()
    c[0].create_bucket(Bucket="multi")
    parts = [os.urandom(5 * 2**20), os.urandom(2**20 + 17)]
    started = json.loads(
        g[0].aws(tmp_path, "s3api", "create-multipart-upload", "--bucket", "multi", "--key", "big").stdout
    )
    upload = started["UploadId"]
    done = []
    for number, (gateway, data) in enumerate(zip(g[1:], parts, strict=True), start=1):
        path = tmp_path / f"part{number}"
        path.write_bytes(data)
        out = gateway.aws(
            tmp_path,
            "s3api",
            "upload-part",
            "--bucket",
            "multi",
            "--key",
            "big",
            "--upload-id",
            upload,
            "--part-number",
            str(number),
            "--body",
            str(path),
        )
        done.append({"PartNumber": number, "ETag": json.loads(out.stdout)["ETag"]})
    # The parts as any gateway lists them.
    listed = c[0].list_parts(Bucket="multi", Key="big", UploadId=upload)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2]
    manifest = tmp_path / "parts.json"
    manifest.write_text(json.dumps({"Parts": done}))
    g[0].aws(
        tmp_path,
        "s3api",
        "complete-multipart-upload",
        "--bucket",
        "multi",
        "--key",
        "big",
        "--upload-id",
        upload,
        "--multipart-upload",
        f"file://{manifest}",
    )
    assert md5(c[2].get_object(Bucket="multi", Key="big")["Body"].read()) == md5(b"".join(parts))


def test_a_conditional_create_racing_on_three_gateways_has_exactly_one_winner(deployment: Deployment) -> None:
    c = deployment.clients()
    c[0].create_bucket(Bucket="race")
    for round_ in range(3):
        key = f"once-{round_}"
        barrier = threading.Barrier(9)
        outcomes: list[tuple[int, bytes]] = []
        lock = threading.Lock()

        def put(
            s3: Any,
            body: bytes,
            key: str = key,
            barrier: threading.Barrier = barrier,
            outcomes: list[tuple[int, bytes]] = outcomes,
            lock: threading.Lock = lock,
        ) -> None:
            barrier.wait()
            try:
                s3.put_object(Bucket="race", Key=key, Body=body, IfNoneMatch="*")
                code = 200
            except ClientError as e:
                code = status(e)
            with lock:
                outcomes.append((code, body))

        threads = [
            threading.Thread(target=put, args=(c[i % 3], f"writer {i} ".encode() + os.urandom(64))) for i in range(9)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        winners = [body for code, body in outcomes if code == 200]
        assert len(outcomes) == 9
        assert len(winners) == 1, outcomes
        # The losers learn the key exists (412), or that a racing write is in progress (409, as S3).
        assert {code for code, _ in outcomes if code != 200} <= {409, 412}, outcomes
        for s3 in c:
            assert s3.get_object(Bucket="race", Key=key)["Body"].read() == winners[0]


def _job_runs(deployment: Deployment, job: str) -> list[float]:
    key = f'vaultaire_deployment_job_runs_total{{job="{job}"}}'
    return [ops_metrics(g).get(key, 0.0) if g.running else 0.0 for g in deployment.gateways]


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.2)


def test_the_sweep_runs_once_per_period_across_gateways(deployment: Deployment) -> None:
    # sweep_seconds = 2: every gateway checks every 2 s; together they sweep once per 2 s.
    before, t0 = sum(_job_runs(deployment, "garbage-sweep")), time.monotonic()
    time.sleep(7)
    runs, elapsed = sum(_job_runs(deployment, "garbage-sweep")) - before, time.monotonic() - t0
    # One per period (give or take the edges), never one per gateway per period (18 here).
    assert elapsed / 2 - 2 <= runs <= elapsed / 2 + 2, (runs, elapsed)


def test_one_gateway_exports_the_stored_gauges_and_another_takes_over_after_kill9(deployment: Deployment) -> None:
    def exporters() -> list[int]:
        return [
            i
            for i, g in enumerate(deployment.gateways)
            if g.running and any(k.startswith("vaultaire_tenant_stored_bytes{") for k in ops_metrics(g))
        ]

    holder = _wait(lambda: exporters() if len(exporters()) == 1 else None, 30, "one gateway exporting")[0]
    victim = deployment.gateways[holder]
    victim.kill9()
    try:
        # flush_seconds = 1: the lease lasts 3 s; another gateway exports within a few seconds.
        t0 = time.monotonic()
        taker = _wait(lambda: exporters(), 20, "another gateway exporting")
        assert len(taker) == 1 and taker[0] != holder
        assert time.monotonic() - t0 < 10
    finally:
        victim.restart()


def test_kill9_of_a_gateway_mid_upload_loses_nothing_acknowledged_and_leaves_no_orphan(
    deployment: Deployment,
) -> None:
    c = deployment.clients()
    victim = deployment.gateways[1]
    c[0].create_bucket(Bucket="crash")
    acknowledged: dict[str, str] = {}
    for i in range(15):
        body = os.urandom(20_000 + i)
        c[i % 3].put_object(Bucket="crash", Key=f"before/{i}", Body=body)
        acknowledged[f"before/{i}"] = md5(body)

    # Traffic on the other two gateways all along.
    errors: list[str] = []
    stop = threading.Event()

    def traffic(s3: Any, name: str) -> None:
        n = 0
        while not stop.is_set():
            key, body = f"{name}/{n}", os.urandom(10_000)
            try:
                s3.put_object(Bucket="crash", Key=key, Body=body)
                acknowledged[key] = md5(body)
                if s3.get_object(Bucket="crash", Key=key)["Body"].read() != body:
                    errors.append(f"{key}: read back other bytes")
            except Exception as e:
                errors.append(f"{key}: {e}")
            n += 1

    workers = [threading.Thread(target=traffic, args=(c[i], f"during{i}")) for i in (0, 2)]
    for w in workers:
        w.start()
    try:
        # A large PUT streaming into the victim: half its body sent, then the gateway dies.
        url = c[1].generate_presigned_url("put_object", Params={"Bucket": "crash", "Key": "cut"}, ExpiresIn=600)
        conn, target = connection(url)
        size = 16 * 2**20
        conn.putrequest("PUT", target)
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        conn.send(os.urandom(size // 2))
        # Its blob is intended in the catalog (and its bytes on their way to the cluster).
        _wait(lambda: deployment.rows("SELECT COUNT(*) FROM intents")[0][0] > 0, 30, "the upload's intent")
        victim.kill9()
        conn.close()
        time.sleep(3)  # the others keep serving
    finally:
        stop.set()
        for w in workers:
            w.join(60)
    assert errors == []
    assert any(k.startswith("during") for k in acknowledged)
    for key, digest in acknowledged.items():
        got = c[2].get_object(Bucket="crash", Key=key)["Body"].read()
        assert md5(got) == digest, key
    with pytest.raises(ClientError):
        c[0].head_object(Bucket="crash", Key="cut")

    # The sweep (on a live gateway) frees the dead writer's blob: the cluster holds what the
    # catalog references, nothing more, nothing less.
    def settled() -> dict[str, set[str]] | None:
        ledger = deployment.ledger()
        ok = not ledger["intents"] and not ledger["garbage"] and ledger["stored"] == ledger["referenced"]
        return ledger if ok else None

    try:
        _wait(settled, 60, "the cluster holding exactly the referenced blobs")
    except AssertionError:
        ledger = deployment.ledger()
        raise AssertionError(
            {
                "orphans": sorted(ledger["stored"] - ledger["referenced"])[:5],
                "missing": sorted(ledger["referenced"] - ledger["stored"])[:5],
                "intents": len(ledger["intents"]),
                "garbage": len(ledger["garbage"]),
                # Whose intents stayed, and which writers the catalog knows (PostgreSQL's
                # writer rows; SQLite's are lock files): what a failure here needs to be read.
                "intent rows": deployment.rows("SELECT owner, created, locator FROM intents")[:5],
                "writers": deployment.writers(),
                "victim": victim.log_text()[-3000:],
            }
        ) from None
    finally:
        # The module's later tests need all three gateways, whatever this one's outcome.
        victim.restart()
    assert c[1].get_object(Bucket="crash", Key="before/1")["Body"].read()
