"""Tenants through a real daemon: isolation with boto3, vaultaire-admin beside live traffic,
secrets kept out of the catalog file, the events, the logs and the metrics."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from daemon import ADMIN, Daemon, write_config


def admin(d: Daemon, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([ADMIN, "--data", str(d.data_dir), *args], capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def new_tenant(d: Daemon, name: str) -> Any:
    admin(d, "tenant", "create", name)
    keys = json.loads(admin(d, "key", "create", name, "--json").stdout)
    return d.boto3_client(access_key=keys["access_key"], secret_key=keys["secret_key"]), keys


def code_of(call: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def metrics_text(d: Daemon) -> str:
    return urllib.request.urlopen(d.ops_url + "/metrics", timeout=10).read().decode()


def wait_until(what: str, condition: Any, timeout: float = 30) -> None:
    """Poll ``condition`` until true; a generous deadline, since a busy machine is only slower."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.1)


@pytest.fixture
def config_daemon(tmp_path: Path):
    config = write_config(tmp_path, "[metering]\nflush_seconds = 1\ntenant_label_limit = 2\n")
    d = Daemon(tmp_path / "v", extra_args=["--config", config]).start()
    try:
        yield d
    finally:
        d.stop()


def test_two_tenants_are_invisible_to_each_other(config_daemon):
    d = config_daemon
    alice, _ = new_tenant(d, "alice")  # created while the daemon runs: usable at once
    bob, _ = new_tenant(d, "bob")
    alice.create_bucket(Bucket="same-name")
    alice.put_object(Bucket="same-name", Key="k", Body=b"alice's")
    # Bucket names are unique across tenants (issue 14): alice's name is not bob's to take.
    assert code_of(lambda: bob.create_bucket(Bucket="same-name")) == "BucketAlreadyExists"
    bob.create_bucket(Bucket="bob-only")
    bob.put_object(Bucket="bob-only", Key="secret.txt", Body=b"bob's secret")
    upload = bob.create_multipart_upload(Bucket="bob-only", Key="mp")["UploadId"]

    assert alice.get_object(Bucket="same-name", Key="k")["Body"].read() == b"alice's"
    assert [b["Name"] for b in alice.list_buckets()["Buckets"]] == ["same-name"]
    assert [b["Name"] for b in bob.list_buckets()["Buckets"]] == ["bob-only"]

    attempts = {
        "HeadBucket": lambda: alice.head_bucket(Bucket="bob-only"),
        "ListObjectsV2": lambda: alice.list_objects_v2(Bucket="bob-only"),
        "ListObjects": lambda: alice.list_objects(Bucket="bob-only"),
        "GetObject": lambda: alice.get_object(Bucket="bob-only", Key="secret.txt"),
        "HeadObject": lambda: alice.head_object(Bucket="bob-only", Key="secret.txt"),
        "PutObject": lambda: alice.put_object(Bucket="bob-only", Key="x", Body=b"x"),
        "DeleteObject": lambda: alice.delete_object(Bucket="bob-only", Key="secret.txt"),
        "CopyObject out": lambda: alice.copy_object(
            Bucket="same-name", Key="stolen", CopySource={"Bucket": "bob-only", "Key": "secret.txt"}
        ),
        "CopyObject in": lambda: alice.copy_object(
            Bucket="bob-only", Key="planted", CopySource={"Bucket": "same-name", "Key": "k"}
        ),
        "GetBucketLocation": lambda: alice.get_bucket_location(Bucket="bob-only"),
        "DeleteBucket": lambda: alice.delete_bucket(Bucket="bob-only"),
        "CreateMultipartUpload": lambda: alice.create_multipart_upload(Bucket="bob-only", Key="m"),
        "ListMultipartUploads": lambda: alice.list_multipart_uploads(Bucket="bob-only"),
        "ListParts": lambda: alice.list_parts(Bucket="bob-only", Key="mp", UploadId=upload),
        "UploadPart": lambda: alice.upload_part(Bucket="bob-only", Key="mp", UploadId=upload, PartNumber=1, Body=b"x"),
        "AbortMultipartUpload": lambda: alice.abort_multipart_upload(Bucket="bob-only", Key="mp", UploadId=upload),
    }
    # A bucket name means one bucket across tenants (issue 14): bob's is found, and alice, granted
    # nothing, is denied, as S3 answers another account's bucket.
    for name, attempt in attempts.items():
        # Another tenant's bucket is 403 unless a grant allows (issue 14). HEAD responses carry no
        # body, so botocore reports the bare status.
        assert code_of(attempt) == ("403" if name.startswith("Head") else "AccessDenied"), name
    # DeleteObjects answers each key, as S3 does.
    deleted = alice.delete_objects(Bucket="bob-only", Delete={"Objects": [{"Key": "secret.txt"}]})
    assert [(e["Key"], e["Code"]) for e in deleted["Errors"]] == [("secret.txt", "AccessDenied")]
    assert "Deleted" not in deleted
    # A presigned URL of alice's for bob's container is refused the same way.
    url = alice.generate_presigned_url("get_object", Params={"Bucket": "bob-only", "Key": "secret.txt"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 403 and b"<Code>AccessDenied</Code>" in refused.value.read()
    # Alice's attempts changed nothing of bob's.
    assert bob.get_object(Bucket="bob-only", Key="secret.txt")["Body"].read() == b"bob's secret"
    assert [o["Key"] for o in bob.list_objects_v2(Bucket="bob-only")["Contents"]] == ["secret.txt"]
    assert [u["UploadId"] for u in bob.list_multipart_uploads(Bucket="bob-only")["Uploads"]] == [upload]


def test_admin_commands_while_the_daemon_serves_traffic(config_daemon):
    d = config_daemon
    client, keys = new_tenant(d, "carol")
    client.create_bucket(Bucket="busy")
    stop = threading.Event()
    outcomes: list[str] = []

    def traffic() -> None:
        own = d.boto3_client(access_key=keys["access_key"], secret_key=keys["secret_key"])
        i = 0
        while not stop.is_set():
            try:
                own.put_object(Bucket="busy", Key=f"k{i % 20}", Body=b"v" * 1000)
                own.get_object(Bucket="busy", Key=f"k{i % 20}")["Body"].read()
                outcomes.append("ok")
            except ClientError as e:
                outcomes.append(e.response["Error"]["Code"])
            except Exception as e:  # a dropped connection would be a bug: recorded, asserted on below
                outcomes.append(type(e).__name__)
            i += 1

    def wait_for(what: str, condition: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert worker.is_alive() and time.monotonic() < deadline, f"no {what}: {outcomes[-20:]}"
            time.sleep(0.05)

    # Each step waits for the traffic to show the previous one took effect (events, not sleeps).
    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        wait_for("traffic", lambda: outcomes.count("ok") >= 5)
        quota_at = len(outcomes)
        admin(d, "quota", "set", "carol", "--max-bytes", "15000")
        wait_for("quota refusal", lambda: "QuotaExceeded" in outcomes[quota_at:])
        suspending_at = len(outcomes)  # the suspension takes effect while the command runs
        admin(d, "tenant", "suspend", "carol")
        suspended_at = len(outcomes)  # the one request in flight now may still pass
        wait_for("suspension", lambda: outcomes[suspended_at + 1 :].count("AccessDenied") >= 5)
        resumed_at = len(outcomes)
        admin(d, "tenant", "resume", "carol")
        admin(d, "quota", "set", "carol", "--max-bytes", "none")
        lifted_at = len(outcomes)
        wait_for("resumed traffic", lambda: outcomes[lifted_at + 1 :].count("ok") >= 5)
    finally:
        stop.set()
        worker.join(30)
    assert set(outcomes[:quota_at]) == {"ok"}, outcomes[:quota_at]
    assert set(outcomes[quota_at:suspending_at]) <= {"ok", "QuotaExceeded"}, outcomes[quota_at:suspending_at]
    # The daemon sees a suspension at the next request: every one begun after it is refused...
    assert set(outcomes[suspended_at + 1 : resumed_at]) == {"AccessDenied"}, outcomes[suspended_at:resumed_at]
    # ...and resumption, with the quota lifted, likewise: every request after it passes.
    assert set(outcomes[lifted_at + 1 :]) == {"ok"}, outcomes[lifted_at:]
    # A quota never let more than it allowed in: stored totals are what is listed.
    shown = json.loads(admin(d, "tenant", "show", "carol", "--json").stdout)
    listed = client.list_objects_v2(Bucket="busy").get("Contents", [])
    assert shown["stored_bytes"] == sum(o["Size"] for o in listed)
    assert shown["stored_objects"] == len(listed)

    # A revoked key stops working at once; the tenant's other key goes on.
    other = json.loads(admin(d, "key", "create", "carol", "--json").stdout)
    admin(d, "key", "revoke", keys["access_key"])
    assert code_of(lambda: client.list_buckets()) == "InvalidAccessKeyId"
    fresh = d.boto3_client(access_key=other["access_key"], secret_key=other["secret_key"])
    assert [b["Name"] for b in fresh.list_buckets()["Buckets"]] == ["busy"]
    # Refusals are one clear line.
    busy = admin(d, "tenant", "delete", "carol", check=False)
    assert busy.returncode == 1 and "still owns 1 container" in busy.stderr


def test_secrets_never_at_rest_in_clear_nor_in_logs_events_metrics(config_daemon):
    d = config_daemon
    client, keys = new_tenant(d, "dave")
    client.create_bucket(Bucket="dave-data")
    client.put_object(Bucket="dave-data", Key="k", Body=b"v")
    client.get_object(Bucket="dave-data", Key="k")
    secret = keys["secret_key"]
    catalog_bytes = b"".join(p.read_bytes() for p in d.data_dir.rglob("catalog.sqlite3*") if p.is_file())
    assert secret.encode() not in catalog_bytes and d.secret_key.encode() not in catalog_bytes
    assert keys["access_key"].encode() in catalog_bytes  # the row is there, sealed
    listing = admin(d, "key", "list").stdout + admin(d, "key", "list", "--json").stdout
    listing += admin(d, "tenant", "show", "dave", "--json").stdout
    assert keys["access_key"] in listing and secret not in listing
    # Wait until dave's requests are in the event log and the metrics, so their absence of the
    # secret means something.
    wait_until(
        "dave's GetObject event",
        lambda: any(e.get("operation") == "GetObject" and e.get("container") == "dave-data" for e in d.events()),
    )
    wait_until("dave's metrics", lambda: 'tenant="dave"' in metrics_text(d))
    for text in (d.events_path.read_text(), d.log_text(), metrics_text(d)):
        assert secret not in text


def test_per_tenant_metrics_with_a_label_cap(config_daemon):
    d = config_daemon
    d.boto3_client().create_bucket(Bucket="default-bucket")  # the first tenant, "default"
    clients = {}
    for name in ("erin", "frank", "grace"):
        client, _ = new_tenant(d, name)
        client.create_bucket(Bucket=f"{name}-bucket")
        client.put_object(Bucket=f"{name}-bucket", Key="k", Body=b"x" * 1000)
        client.get_object(Bucket=f"{name}-bucket", Key="k")["Body"].read()
        clients[name] = client

    def samples() -> dict[str, float]:
        found = {}
        for line in metrics_text(d).splitlines():
            if line.startswith("vaultaire_tenant_"):
                name, value = line.rsplit(" ", 1)
                found[name] = float(value)
        return found

    def total(found: dict[str, float], metric: str) -> float:
        return sum(v for n, v in found.items() if n.startswith(metric + "{"))

    # flush_seconds = 1 refreshes the stored gauges: wait for them rather than for a guessed time.
    wait_until("the stored gauges", lambda: total(samples(), "vaultaire_tenant_stored_objects") == 3)
    samples = samples()
    tenants_labelled = {n.split('tenant="')[1].split('"')[0] for n in samples if 'tenant="' in n}
    # tenant_label_limit = 2: two tenants by name, everyone else summed under _other.
    assert len(tenants_labelled - {"_other"}) == 2 and "_other" in tenants_labelled, tenants_labelled
    assert total(samples, "vaultaire_tenant_stored_bytes") == 3000
    assert total(samples, "vaultaire_tenant_stored_objects") == 3
    gets = sum(v for n, v in samples.items() if n.startswith("vaultaire_tenant_requests_total{") and 'class="b"' in n)
    assert gets == 3
    sent = sum(v for n, v in samples.items() if n.startswith("vaultaire_tenant_bytes_sent_total{"))
    assert sent == 3000  # the three GET bodies; the other answers had none
