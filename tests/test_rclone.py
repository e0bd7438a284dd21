"""The rclone driver against real remotes: rclone's local backend, Azure Blob (Azurite) and SFTP (sshd).

One daemon (module scope) has an rclone driver on each remote and a mirror over
the local and SFTP ones; each test uses its own buckets. The remotes and the
daemon are real processes; nothing is faked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from daemon import Daemon, catalog_rows, read_status, run_twistd
from remotes import Azurite, Sshd
from streaming import SIZE, RssSampler, connection, streamed_get, streamed_put, write_source

pytestmark = pytest.mark.timeout(240)

RCLONE = os.path.join(os.path.dirname(sys.executable), "rclone")
ADMIN = os.path.join(os.path.dirname(sys.executable), "vaultaire-admin")
PART = 256 * 1024


def write_setup(base: Path, azurite: Azurite | None, sshd: Sshd | None) -> tuple[Path, Path]:
    """(vaultaire.toml, rclone.conf) with an rclone driver per remote given, and a mirror."""
    base.mkdir(parents=True, exist_ok=True)
    rclone_conf = base / "rclone.conf"
    sections = ["[loc]\ntype = local\n"]
    drivers = [f'[drivers.rcl]\ntype = "rclone"\nremote = "loc:{base}/remote-local/vault-local"\n']
    if azurite is not None:
        sections.append(azurite.rclone_section("az"))
        drivers.append('[drivers.az]\ntype = "rclone"\nremote = "az:vault-azure"\n')
    if sshd is not None:
        sections.append(sshd.rclone_section("sf"))
        drivers.append(f'[drivers.sf]\ntype = "rclone"\nremote = "sf:{base}/remote-sftp/vault-sftp"\ntimeout = 10\n')
        drivers.append('[placements.mirrored]\npolicy = "mirror"\ndrivers = ["rcl", "sf"]\n')
    rclone_conf.write_text("\n".join(sections))
    os.chmod(rclone_conf, 0o600)
    toml = base / "vaultaire.toml"
    # free_grace: deleted blobs wait that long for reads in progress, then the sweep frees them.
    config = "[multipart]\nmin_part_size = 65536\n\n[placement]\nfree_grace = 1\n\n" + "\n".join(
        d + f'rclone_config = "{rclone_conf}"\n' if "rclone" in d else d for d in drivers
    )
    toml.write_text(config)
    return toml, rclone_conf


def health(daemon: Daemon) -> dict[str, Any]:
    with urllib.request.urlopen(daemon.ops_url + "/health", timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def rclone_pid(daemon: Daemon, driver: str) -> int:
    pid = health(daemon)["drivers"][driver]["rclone"]["pid"]
    assert isinstance(pid, int)
    return pid


def garbage(daemon: Daemon) -> set[str]:
    """Blob locators queued for the garbage sweep."""
    return {row[0] for row in catalog_rows(daemon.data_dir, "SELECT locator FROM garbage")}


def serving_anew(daemon: Daemon, driver: str, old_pid: int) -> bool:
    """The health report (probed every few seconds) shows another rclone process serving."""
    report = health(daemon)["drivers"][driver]["rclone"]
    return bool(report["serving"]) and report["pid"] != old_pid


def remote_files(rclone_conf: Path, remote: str) -> list[str]:
    """What rclone itself lists on a remote (recursively, files only)."""
    done = subprocess.run(
        [RCLONE, "--config", str(rclone_conf), "lsf", "-R", "--files-only", remote],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not {what} after {timeout}s")


@pytest.fixture(scope="module")
def remotes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Azurite, Sshd]]:
    azurite = Azurite(tmp_path_factory.mktemp("azurite"))
    sshd = Sshd(tmp_path_factory.mktemp("sshd"))
    azurite.start()
    sshd.start()
    try:
        yield azurite, sshd
    finally:
        azurite.stop()
        sshd.stop()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, remotes: tuple[Azurite, Sshd]) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("rclone")
    toml, rclone_conf = write_setup(base, *remotes)
    d = Daemon(base / "vaultaire", extra_args=["--config", str(toml)], startup_timeout=60)
    d.start()
    try:
        yield {"daemon": d, "toml": toml, "rclone_conf": rclone_conf, "base": base, "sshd": remotes[1]}
    finally:
        d.stop()


REMOTES = {
    "rcl": "loc:{base}/remote-local/vault-local",
    "az": "az:vault-azure",
    "sf": "sf:{base}/remote-sftp/vault-sftp",
}


@pytest.mark.parametrize("driver", ["rcl", "az", "sf"])
def test_put_get_range_multipart_list_delete(setup: dict[str, Any], driver: str) -> None:
    daemon: Daemon = setup["daemon"]
    remote = REMOTES[driver].format(base=setup["base"])
    s3 = daemon.boto3_client()
    bucket = f"ops-{driver}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": driver})
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == driver
    before = set(remote_files(setup["rclone_conf"], remote))
    bodies = {"empty": b"", "small.txt": b"hello rclone", "dir/one-mib": os.urandom(2**20), "dir/sub/x": b"x" * 1000}
    for key, body in bodies.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    for key, body in bodies.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
    big = bodies["dir/one-mib"]
    got = s3.get_object(Bucket=bucket, Key="dir/one-mib", Range="bytes=1000-299999")
    assert (got["ContentLength"], got["Body"].read()) == (299000, big[1000:300000])
    assert s3.get_object(Bucket=bucket, Key="dir/one-mib", Range="bytes=-10")["Body"].read() == big[-10:]

    # Multipart: each part its own blob on the remote, the artifact their manifest.
    parts = [os.urandom(PART), os.urandom(PART), os.urandom(1234)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="multi")["UploadId"]
    etags = [
        s3.upload_part(Bucket=bucket, Key="multi", UploadId=upload, PartNumber=n, Body=p)["ETag"]
        for n, p in enumerate(parts, 1)
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="multi",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    whole = b"".join(parts)
    assert s3.get_object(Bucket=bucket, Key="multi")["Body"].read() == whole
    ranged = s3.get_object(Bucket=bucket, Key="multi", Range=f"bytes={PART - 10}-{PART + 9}")["Body"].read()
    assert ranged == whole[PART - 10 : PART + 10]
    created = set(remote_files(setup["rclone_conf"], remote)) - before
    assert len(created) == len(bodies) + len(parts)

    listed = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in listed["Contents"]] == ["empty", "multi", "small.txt"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["dir/"]
    in_dir = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")["Contents"]
    assert [o["Key"] for o in in_dir] == ["dir/one-mib", "dir/sub/x"]

    for key in [*bodies, "multi"]:
        s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    # Deleted blobs wait for the sweep (reads in progress may still need them): queued, not leaked.
    assert set(remote_files(setup["rclone_conf"], remote)) - before <= garbage(daemon)


def test_rclone_runs_as_a_child_with_its_secret_off_the_command_line_and_its_log_in_ours(setup: dict[str, Any]) -> None:
    daemon: Daemon = setup["daemon"]
    pid = rclone_pid(daemon, "rcl")
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    environ = dict(
        item.split(b"=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in item
    )
    access, secret = environ[b"RCLONE_AUTH_KEY"].strip(b'"').split(b",")
    assert cmdline[1:3] == [b"serve", b"s3"] and b"--addr" in cmdline
    assert not any(secret in arg or access in arg for arg in cmdline)
    status = Path(f"/proc/{pid}/status").read_text()
    assert f"PPid:\t{daemon.pid}" in status  # the daemon's own child, dying with it (PDEATHSIG)
    log = daemon.log_text()
    assert "[rclone rcl] Starting s3 server on" in log and secret.decode() not in log
    # Every rclone driver reports health and latency like any other, in /health and /metrics.
    for driver in ("rcl", "az", "sf"):
        report = health(daemon)["drivers"][driver]
        assert report["status"] == "ok" and report["rclone"]["serving"], report
    with urllib.request.urlopen(daemon.ops_url + "/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert 'vaultaire_driver_up{driver="az"} 1.0' in metrics
    assert 'vaultaire_driver_latency_seconds{driver="sf"}' in metrics


def slow_put(url: str, size: int, started: threading.Event) -> tuple[int, bytes]:
    """A PUT whose body trickles in (64 KiB every 50 ms): it is mid-stream when rclone dies."""
    conn, target = connection(url)
    try:
        conn.putrequest("PUT", target)
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        sent = 0
        try:
            while sent < size:
                chunk = os.urandom(min(65536, size - sent))
                conn.send(chunk)
                sent += len(chunk)
                if sent >= 1024 * 1024:
                    started.set()
                time.sleep(0.05)
        except OSError:
            pass  # the daemon answered (an error) and closed before the body was all sent
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_rclone_killed_mid_transfer_means_503s_a_restart_and_nothing_acknowledged_lost(setup: dict[str, Any]) -> None:
    daemon: Daemon = setup["daemon"]
    s3 = daemon.boto3_client(signature_version="s3v4")
    s3.create_bucket(Bucket="killed", CreateBucketConfiguration={"LocationConstraint": "rcl"})
    acknowledged: dict[str, str] = {}
    refused: list[str] = []
    halt = threading.Event()

    def writer(n: int) -> None:
        i = 0
        while not halt.is_set():
            key, body = f"w{n}/{i}", os.urandom(256 * 1024)
            try:
                s3.put_object(Bucket="killed", Key=key, Body=body)
                acknowledged[key] = hashlib.md5(body).hexdigest()
            except ClientError as e:
                refused.append(e.response["Error"]["Code"])
            except Exception as e:  # the connection cut mid-request: not acknowledged either
                refused.append(type(e).__name__)
            i += 1

    old = rclone_pid(daemon, "rcl")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "killed", "Key": "slow"}, ExpiresIn=600)
    streaming = threading.Event()
    outcome: list[tuple[int, bytes]] = []
    slow = threading.Thread(target=lambda: outcome.append(slow_put(url, 8 * 2**20, streaming)))
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for t in [slow, *threads]:
        t.start()
    try:
        wait_for(lambda: len(acknowledged) >= 10 and streaming.is_set(), 60, "writes acknowledged, one streaming")
        os.kill(old, signal.SIGKILL)
        slow.join(60)
        wait_for(lambda: serving_anew(daemon, "rcl", old), 60, "a new rclone serving")
        count = len(acknowledged)
        wait_for(lambda: len(acknowledged) >= count + 10, 60, "writes acknowledged after the restart")
    finally:
        halt.set()
        for t in [slow, *threads]:
            t.join(60)
    # The upload streaming into the dead rclone is refused with 503 SlowDown (clients retry), never a hang.
    assert outcome and outcome[0][0] == 503 and b"<Code>SlowDown</Code>" in outcome[0][1], outcome
    with pytest.raises(ClientError):
        s3.head_object(Bucket="killed", Key="slow")
    report = health(daemon)["drivers"]["rcl"]
    assert report["rclone"]["pid"] != old and report["rclone"]["restarts"] >= 1
    assert set(refused) <= {"SlowDown", "ServiceUnavailable"}, refused
    for key, md5 in acknowledged.items():
        body = s3.get_object(Bucket="killed", Key=key)["Body"].read()
        assert hashlib.md5(body).hexdigest() == md5, key
    assert "rclone for driver rcl" in daemon.log_text() and "restarting it in" in daemon.log_text()
    print(f"\nrclone killed: {len(acknowledged)} writes acknowledged, {len(refused)} refused ({set(refused)})")


def test_a_hung_rclone_is_killed_and_restarted(setup: dict[str, Any]) -> None:
    daemon: Daemon = setup["daemon"]
    s3 = daemon.boto3_client()
    s3.create_bucket(Bucket="hung", CreateBucketConfiguration={"LocationConstraint": "rcl"})
    s3.put_object(Bucket="hung", Key="before", Body=b"kept")
    old = rclone_pid(daemon, "rcl")
    os.kill(old, signal.SIGSTOP)  # alive, listening, answering nothing
    try:
        wait_for(lambda: serving_anew(daemon, "rcl", old), 90, "a new rclone serving")
    finally:
        try:
            os.kill(old, signal.SIGCONT)
        except ProcessLookupError:
            pass  # killed, as it should be
    assert "has not answered 3 health checks: killing it" in daemon.log_text()
    assert s3.get_object(Bucket="hung", Key="before")["Body"].read() == b"kept"


def test_migration_from_local_to_azurite_and_back(setup: dict[str, Any]) -> None:
    daemon: Daemon = setup["daemon"]
    conf = setup["rclone_conf"]
    local = REMOTES["rcl"].format(base=setup["base"])
    s3 = daemon.boto3_client()
    before = {remote: set(remote_files(conf, remote)) for remote in (local, "az:vault-azure")}
    s3.create_bucket(Bucket="moving", CreateBucketConfiguration={"LocationConstraint": "rcl"})
    bodies = {f"k{i}": os.urandom(3000 * (i + 1)) for i in range(8)}
    for key, body in bodies.items():
        s3.put_object(Bucket="moving", Key=key, Body=body)
    parts = [os.urandom(PART), os.urandom(500)]
    upload = s3.create_multipart_upload(Bucket="moving", Key="multi")["UploadId"]
    etags = [
        s3.upload_part(Bucket="moving", Key="multi", UploadId=upload, PartNumber=n, Body=p)["ETag"]
        for n, p in enumerate(parts, 1)
    ]
    s3.complete_multipart_upload(
        Bucket="moving",
        Key="multi",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    bodies["multi"] = b"".join(parts)
    blobs = len(bodies) - 1 + len(parts)

    admin = [ADMIN, "--config", str(setup["toml"]), "--data", str(daemon.data_dir), "--json"]
    for target, source_remote, target_remote in (("az", local, "az:vault-azure"), ("rcl", "az:vault-azure", local)):
        done = subprocess.run([*admin, "migrate", "moving", target], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert (report["to"], report["artifacts_moved"]) == (target, 9), report
        assert s3.get_bucket_location(Bucket="moving")["LocationConstraint"] == target
        # The live daemon serves the moved container at once, from the new placement.
        for key, body in bodies.items():
            assert s3.get_object(Bucket="moving", Key=key)["Body"].read() == body, key
        assert (
            s3.get_object(Bucket="moving", Key="multi", Range=f"bytes={PART - 5}-{PART + 4}")["Body"].read()
            == (bodies["multi"][PART - 5 : PART + 5])
        )
        # Moved, not copied: the target holds the container's blobs; the source's wait for the sweep.
        assert len(set(remote_files(conf, target_remote)) - before[target_remote] - garbage(daemon)) == blobs
        assert set(remote_files(conf, source_remote)) - before[source_remote] <= garbage(daemon)


def test_the_garbage_sweep_frees_blobs_on_every_remote(setup: dict[str, Any]) -> None:
    """What deletes and migrations queued is freed on every remote by the sweep (run at start)."""
    daemon: Daemon = setup["daemon"]
    queued = garbage(daemon)
    assert queued  # the tests above deleted and moved blobs on each remote
    time.sleep(1.5)  # free_grace = 1
    daemon.restart()  # the first sweep runs once the engine (and every rclone) has started
    wait_for(lambda: garbage(daemon) == set(), 60, "the garbage queue empty")
    for driver in ("rcl", "az", "sf"):
        on_remote = set(remote_files(setup["rclone_conf"], REMOTES[driver].format(base=setup["base"])))
        assert on_remote & queued == set(), driver


def test_mirror_across_local_and_sftp_with_sftp_down(setup: dict[str, Any]) -> None:
    daemon: Daemon = setup["daemon"]
    sshd: Sshd = setup["sshd"]
    sftp_remote = REMOTES["sf"].format(base=setup["base"])
    s3 = daemon.boto3_client()
    s3.create_bucket(Bucket="mirrored", CreateBucketConfiguration={"LocationConstraint": "mirrored"})
    bodies = {f"m{i}": os.urandom(20000 + i) for i in range(5)}
    for key, body in bodies.items():
        s3.put_object(Bucket="mirrored", Key=key, Body=body)
    on_sftp = set(remote_files(setup["rclone_conf"], sftp_remote))
    sshd.stop()
    try:
        # Reads go on from the local side; a write cannot reach both sides and is refused, not half-done.
        for key, body in bodies.items():
            assert s3.get_object(Bucket="mirrored", Key=key)["Body"].read() == body, key
        with pytest.raises(ClientError) as refused:
            s3.put_object(Bucket="mirrored", Key="while-down", Body=b"nope")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    finally:
        sshd.start()

    # Back: writes reach both sides again (rclone reconnects to the same host key).
    def write_works() -> bool:
        try:
            s3.put_object(Bucket="mirrored", Key="after", Body=b"back")
            return True
        except ClientError:
            return False

    wait_for(write_works, 60, "a mirrored write after sshd is back")
    assert s3.get_object(Bucket="mirrored", Key="after")["Body"].read() == b"back"
    with pytest.raises(ClientError):
        s3.head_object(Bucket="mirrored", Key="while-down")
    # SFTP holds the new acknowledged blob. Anything else new there belongs to no artifact: a write
    # refused while rclone was reconnecting, whose upload rclone finished after the driver gave up
    # waiting (an orphan no client can see, as after a crash).
    new_on_sftp = set(remote_files(setup["rclone_conf"], sftp_remote)) - on_sftp
    referenced = {row[0] for row in catalog_rows(daemon.data_dir, "SELECT locator FROM artifacts")}
    after = catalog_rows(daemon.data_dir, "SELECT locator FROM artifacts WHERE key = CAST('after' AS BLOB)")
    assert after and after[0][0] in new_on_sftp
    assert new_on_sftp & referenced == {after[0][0]}


@pytest.mark.slow
def test_one_gib_through_rclone_with_flat_memory(setup: dict[str, Any], tmp_path: Path) -> None:
    daemon: Daemon = setup["daemon"]
    source = tmp_path / "one-gib.bin"
    expected_md5 = write_source(source)
    s3 = daemon.boto3_client(signature_version="s3v4")
    s3.create_bucket(Bucket="big-rclone", CreateBucketConfiguration={"LocationConstraint": "rcl"})
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "big-rclone", "Key": "g"}, ExpiresIn=3600)
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "big-rclone", "Key": "g"}, ExpiresIn=3600)
    rclone = rclone_pid(daemon, "rcl")
    samplers = [RssSampler(daemon.pid), RssSampler(rclone)]
    for s in samplers:
        s.start()
    t0 = time.monotonic()
    try:
        status, headers, body = streamed_put(put_url, source)
        t_put = time.monotonic() - t0
        assert status == 200, body
        status, total, got_md5 = streamed_get(get_url)
        t_get = time.monotonic() - t0 - t_put
    finally:
        for s in samplers:
            s.stop()
    assert (status, total, got_md5) == (200, SIZE, expected_md5)
    source.unlink()
    daemon_mib, rclone_mib = (s.peak_kib / 1024 for s in samplers)
    final = read_status(daemon.pid)
    message = (
        f"1 GiB through rclone (local backend): PUT {SIZE / t_put / 1e6:.0f} MB/s, GET {SIZE / t_get / 1e6:.0f} MB/s;"
        f" peak RSS daemon {daemon_mib:.0f} MiB (now {final['VmRSS'] / 1024:.0f}), rclone {rclone_mib:.0f} MiB"
    )
    print("\n" + message)
    assert min(s.samples for s in samplers) > 10, message
    assert daemon_mib < 150 and rclone_mib < 200, message
    s3.delete_object(Bucket="big-rclone", Key="g")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"remote": "od:"}, "must end in a folder name"),
        ({"remote": "od:Photos"}, "must end in a folder name"),
        ({"remote": "od:vault", "args": ["--auth-key", "a,b"]}, "must not set --addr, --auth-key or --config"),
        ({"remote": "od:vault", "args": ["--config=/x"]}, "must not set"),
        ({"remote": "od:vault", "args": [3]}, "'args' must be a list of strings"),
        ({"remote": "od:vault", "timeout": 0}, "'timeout' must be positive"),
        ({"remote": "od:vault", "bucket": "x"}, "unknown setting 'bucket' for a rclone driver"),
        ({}, "'remote' is required"),
    ],
)
def test_rclone_driver_settings_are_checked_with_the_config(table: dict[str, Any], message: str) -> None:
    from vaultaire.config import ConfigError, build

    with pytest.raises(ConfigError, match=re.escape(message)):
        build({"drivers": {"od": {"type": "rclone", **table}}}, {})
    build({"drivers": {"od": {"type": "rclone", "remote": "od:some/vault", "args": ["--transfers", "8"]}}}, {})


def test_start_up_says_in_one_line_what_is_wrong_with_rclone(tmp_path: Path) -> None:
    toml, rclone_conf = write_setup(tmp_path / "ok", None, None)
    good = toml.read_text()
    cases = {
        "missing binary": (good.replace('type = "rclone"', 'type = "rclone"\nrclone = "/nowhere/rclone"'), None),
        "unknown remote": (good.replace('remote = "loc:', 'remote = "nope:'), None),
        "broken config": (good, "[loc\ntype = local\n"),
        "bad remote name": (good.replace("vault-local", "Vault Local"), None),
    }
    expected = {
        "missing binary": "driver 'rcl': no rclone binary '/nowhere/rclone'",
        "unknown remote": 'didn\'t find section in config file ("nope")',
        "broken config": "Failed to load config file",
        "bad remote name": "must end in a folder name of 3 to 63 lowercase letters",
    }
    for case, (config, rclone_text) in cases.items():
        base = tmp_path / case.replace(" ", "-")
        base.mkdir()
        (base / "vaultaire.toml").write_text(config)
        if rclone_text is not None:
            rclone_conf.write_text(rclone_text)
        done = run_twistd(["--config", str(base / "vaultaire.toml"), "--data", str(base / "data")], base, timeout=60)
        rclone_conf.write_text("[loc]\ntype = local\n")
        assert done.returncode != 0, case
        lines = [line for line in done.stderr.splitlines() if line.startswith("vaultaire:")]
        assert len(lines) == 1 and expected[case] in lines[0], (case, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, case


def test_workers_share_one_rclone_run_by_the_supervisor(tmp_path: Path) -> None:
    toml, _ = write_setup(tmp_path / "w", None, None)
    with Daemon(tmp_path / "v", extra_args=["--config", str(toml)], workers=2, startup_timeout=60) as daemon:
        children = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(daemon.pid)], capture_output=True, text=True)
        serving = [line for line in children.stdout.splitlines() if "rclone serve s3" in line]
        assert len(serving) == 1, children.stdout
        handoff = daemon.data_dir / "run" / "rclone" / "rcl.json"
        assert handoff.stat().st_mode & 0o777 == 0o600
        s3 = daemon.boto3_client()
        s3.create_bucket(Bucket="shared", CreateBucketConfiguration={"LocationConstraint": "rcl"})
        bodies = {f"s{i}": os.urandom(10000) for i in range(10)}  # spread over both workers
        for key, body in bodies.items():
            s3.put_object(Bucket="shared", Key=key, Body=body)
        # The supervisor restarts a killed rclone on the same port: the workers carry on.
        os.kill(int(serving[0].split()[0]), signal.SIGKILL)

        def reads_work() -> bool:
            try:
                return all(s3.get_object(Bucket="shared", Key=k)["Body"].read() == b for k, b in bodies.items())
            except ClientError:
                return False

        wait_for(reads_work, 60, "reads through the workers after rclone's restart")
    assert not handoff.exists()
