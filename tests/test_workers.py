"""`--workers 2`: a supervisor and two S3 worker processes on one port, as real processes."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from daemon import (
    ACCESS_KEY,
    SECRET_KEY,
    Daemon,
    catalog_rows,
    free_port,
    https_daemon,
    ops_metrics,
    run_twistd,
)

pytestmark = pytest.mark.timeout(120)

HEALTH = "/_vaultaire/health"


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path / "vaultaire", workers=2).start()
    try:
        yield d
    finally:
        d.stop()


def connect(d: Daemon) -> http.client.HTTPConnection:
    assert d.port is not None
    return http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)


def serving_pid(conn: http.client.HTTPConnection) -> int:
    """Which worker holds this connection: its pid, from the S3 port's health answer."""
    conn.request("GET", HEALTH)
    response = conn.getresponse()
    doc = json.loads(response.read())
    assert response.status == 200, doc
    return int(doc["worker_pid"])


def pids_over_new_connections(d: Daemon, n: int = 40) -> list[int]:
    pids = []
    for _ in range(n):
        conn = connect(d)
        try:
            pids.append(serving_pid(conn))
        finally:
            conn.close()
    return pids


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def is_gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting to be reaped (its sockets closed).

    Every thread must be a zombie: the main thread is one as soon as it exits,
    while the others still hold the process' descriptors open.
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return True
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    return False
        except FileNotFoundError:
            continue  # that thread is gone already
    return True


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets a process holds open."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            found.add(target[len("socket:[") : -1])
    return found


def listening_sockets(port: int) -> set[str]:
    """The inodes of the TCP sockets listening on ``port``, as the kernel lists them."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                    found.add(fields[9])
    return found


def sigint_ignored(pid: int) -> bool:
    """Whether the kernel discards SIGINT for this process (its SigIgn mask)."""
    with open(f"/proc/{pid}/status") as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
    return bool(mask & (1 << (signal.SIGINT - 1)))


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_both_workers_take_connections_and_are_children_of_the_supervisor(workers: Daemon) -> None:
    pids = pids_over_new_connections(workers)
    assert len(set(pids)) == 2, pids  # SO_REUSEPORT spreads new connections over both
    assert workers.pid not in pids
    for pid in set(pids):
        assert parent_of(pid) == workers.pid
    # Each counts for a share, not one taking nearly everything.
    assert min(pids.count(p) for p in set(pids)) >= 4, pids


def test_metrics_on_the_ops_port_sum_over_workers(workers: Daemon) -> None:
    served: dict[int, int] = {}
    for _ in range(30):
        conn = connect(workers)
        try:
            pid = serving_pid(conn)
            # The same connection, so the same worker: an unsigned request for a bucket that does
            # not exist, counted as a 404 (anonymous requests are evaluated, not refused outright).
            conn.request("GET", "/no-such-bucket/key")
            response = conn.getresponse()
            response.read()
            assert response.status == 404
            served[pid] = served.get(pid, 0) + 1
        finally:
            conn.close()
    assert len(served) == 2, served
    samples = ops_metrics(workers)
    counted = sum(v for k, v in samples.items() if k.startswith("vaultaire_requests_total{") and 'status="404"' in k)
    assert counted == 30
    assert samples["vaultaire_workers_running"] == 2
    assert samples["vaultaire_requests_in_flight"] == 0
    assert samples['vaultaire_worker_resident_memory_bytes{worker="1"}'] > 1e6


def test_concurrent_puts_across_workers_all_commit(workers: Daemon) -> None:
    workers.boto3_client().create_bucket(Bucket="many")
    threads, per_thread = 12, 10
    errors: list[BaseException] = []

    def put_some(t: int) -> None:
        s3 = workers.boto3_client()  # its own connections
        try:
            for i in range(per_thread):
                s3.put_object(Bucket="many", Key=f"t{t:02d}/k{i:02d}", Body=f"{t}-{i}".encode() * 100)
        except BaseException as e:
            errors.append(e)

    runners = [threading.Thread(target=put_some, args=(t,)) for t in range(threads)]
    for r in runners:
        r.start()
    for r in runners:
        r.join()
    assert not errors, errors[:3]  # no "database is locked", no lost write
    s3 = workers.boto3_client()
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="many", PaginationConfig={"PageSize": 25}):
        keys += [o["Key"] for o in page.get("Contents", [])]
    assert keys == sorted(f"t{t:02d}/k{i:02d}" for t in range(threads) for i in range(per_thread))
    for t, i in ((0, 0), (5, 7), (11, 9)):
        assert s3.get_object(Bucket="many", Key=f"t{t:02d}/k{i:02d}")["Body"].read() == f"{t}-{i}".encode() * 100
    assert catalog_rows(workers.data_dir, "SELECT count(*) FROM artifacts")[0][0] == threads * per_thread

    def logged() -> bool:
        puts = [e for e in workers.events() if e["operation"] == "PutObject" and e["status"] == 200]
        return len(puts) == threads * per_thread

    wait_for(logged, 10, "one event line per PUT from both workers")  # events() fails on a torn line


def test_conditional_put_from_eight_writers_has_exactly_one_winner(workers: Daemon) -> None:
    workers.boto3_client().create_bucket(Bucket="race")
    clients = [workers.boto3_client() for _ in range(8)]
    for c in clients:  # open each client's connection first, so the PUTs start together
        c.head_bucket(Bucket="race")
    for round_ in range(4):
        key = f"once-{round_}"
        barrier = threading.Barrier(len(clients))
        outcomes: dict[int, object] = {}

        def write(
            n: int, key: str = key, barrier: threading.Barrier = barrier, outcomes: dict[int, object] = outcomes
        ) -> None:
            barrier.wait()
            try:
                clients[n].put_object(Bucket="race", Key=key, Body=f"writer {n}".encode(), IfNoneMatch="*")
                outcomes[n] = "won"
            except ClientError as e:
                outcomes[n] = e.response["ResponseMetadata"]["HTTPStatusCode"]

        runners = [threading.Thread(target=write, args=(n,)) for n in range(len(clients))]
        for r in runners:
            r.start()
        for r in runners:
            r.join()
        winners = [n for n, o in outcomes.items() if o == "won"]
        assert len(winners) == 1, outcomes
        # S3: 412 PreconditionFailed if the object exists on arrival, 409 ConditionalRequestConflict
        # if a conflicting write commits while this one uploads.
        assert all(o in (409, 412) for n, o in outcomes.items() if n not in winners), outcomes
        body = clients[0].get_object(Bucket="race", Key=key)["Body"].read()
        assert body == f"writer {winners[0]}".encode()


def test_a_killed_worker_is_restarted_and_service_continues(workers: Daemon) -> None:
    s3 = workers.boto3_client()
    s3.create_bucket(Bucket="survive")
    s3.put_object(Bucket="survive", Key="before", Body=b"kept")
    before = set(pids_over_new_connections(workers))
    assert len(before) == 2
    victim = min(before)
    victim_sockets = socket_inodes(victim) & listening_sockets(workers.port)
    assert len(victim_sockets) == 1, victim_sockets  # SO_REUSEPORT: each worker listens on its own
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: is_gone(victim), 10, "the killed worker to die")
    # Connections the kernel hashes to the victim's socket are reset as it closes (SO_REUSEPORT
    # does not move them), which can lag the process' death under load: wait until the kernel
    # has dropped that listening socket, then every new connection goes to a live worker.
    wait_for(lambda: not victim_sockets & listening_sockets(workers.port), 20, "the victim's socket to close")
    # The survivor takes every new connection meanwhile.
    for pid in pids_over_new_connections(workers, 10):
        assert pid != victim
    assert s3.get_object(Bucket="survive", Key="before")["Body"].read() == b"kept"

    def replaced() -> bool:
        samples = ops_metrics(workers)
        return samples["vaultaire_workers_running"] == 2 and samples["vaultaire_worker_restarts_total"] == 1

    wait_for(replaced, 20, "the supervisor to restart the worker")
    wait_for(lambda: len(set(pids_over_new_connections(workers, 20)) - before) == 1, 20, "the new worker to serve")
    s3.put_object(Bucket="survive", Key="after", Body=b"new")
    assert s3.get_object(Bucket="survive", Key="after")["Body"].read() == b"new"
    assert "restarting it in" in workers.log_text()


def test_a_worker_whose_event_loop_hangs_is_killed_and_replaced(tmp_path: Path) -> None:
    config = tmp_path / "heartbeat.toml"
    config.write_text("[server]\nheartbeat_timeout = 4\n")
    d = Daemon(tmp_path / "vaultaire", workers=2, extra_args=["--config", str(config)]).start()
    try:
        before = set(pids_over_new_connections(d))
        assert len(before) == 2
        victim = min(before)
        os.kill(victim, signal.SIGSTOP)  # alive, but its event loop answers nothing from now on
        # No S3 request meanwhile: a connection the kernel hands to the stopped worker would wait.
        wait_for(lambda: is_gone(victim), 40, "the hung worker to be killed")

        def replaced() -> bool:
            samples = ops_metrics(d)
            return samples["vaultaire_workers_running"] == 2 and samples["vaultaire_worker_hung_kills_total"] >= 1

        wait_for(replaced, 30, "the supervisor to replace the hung worker")
        wait_for(lambda: len(set(pids_over_new_connections(d, 20)) - before) == 1, 30, "the new worker to serve")
        assert f"(pid {victim}) has not answered for" in d.log_text()
        s3 = d.boto3_client()
        s3.create_bucket(Bucket="after-hang")
        s3.put_object(Bucket="after-hang", Key="k", Body=b"served")
        assert s3.get_object(Bucket="after-hang", Key="k")["Body"].read() == b"served"
    finally:
        d.stop()


def test_sigterm_stops_the_supervisor_and_every_worker(workers: Daemon) -> None:
    pids = set(pids_over_new_connections(workers))
    assert len(pids) == 2
    assert workers.stop() in (0, -signal.SIGTERM)  # twistd ends by re-raising the SIGTERM it handled
    for pid in pids:
        assert is_gone(pid), pid
    # The port is free again: nobody still listens on it, even with SO_REUSEPORT.
    with socket.socket() as s:
        s.bind(("127.0.0.1", workers.port))


def test_kill9_of_the_supervisor_takes_the_workers_down(workers: Daemon) -> None:
    pids = set(pids_over_new_connections(workers))
    workers.kill9()
    for pid in pids:
        wait_for(lambda pid=pid: is_gone(pid), 10, f"orphan worker {pid} to die")
    # A restart on the same data and ports works at once.
    workers.restart()
    assert len(set(pids_over_new_connections(workers))) == 2


def test_only_the_supervisor_scrubs_staged_blobs(workers: Daemon) -> None:
    staged = workers.data_dir / "blobs" / "1" / "ab" / "in-flight.part"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(b"a live worker's upload")
    victim = min(pids_over_new_connections(workers))
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: ops_metrics(workers).get("vaultaire_worker_restarts_total") == 1, 20, "a restart")
    wait_for(lambda: ops_metrics(workers).get("vaultaire_workers_running") == 2, 20, "two workers")
    assert staged.exists()  # a starting worker never deletes another's staged file
    workers.restart()  # the supervisor starts before any worker: now it is a dead write's
    assert not staged.exists()


def test_sighup_replaces_the_workers_one_by_one_without_failing_requests(workers: Daemon) -> None:
    s3 = workers.boto3_client()
    s3.create_bucket(Bucket="reload")
    s3.put_object(Bucket="reload", Key="k", Body=b"v")
    before = set(pids_over_new_connections(workers))
    failures: list[str] = []
    stop = threading.Event()

    def keep_reading() -> None:
        client = workers.boto3_client()
        while not stop.is_set():
            try:
                assert client.get_object(Bucket="reload", Key="k")["Body"].read() == b"v"
            except Exception as e:
                failures.append(repr(e))

    reader = threading.Thread(target=keep_reading)
    reader.start()
    try:
        os.kill(workers.pid, signal.SIGHUP)
        wait_for(lambda: "reloaded 2 workers" in workers.log_text(), 30, "the reload to finish")
    finally:
        stop.set()
        reader.join()
    after = set(pids_over_new_connections(workers))
    assert len(after) == 2 and not after & before
    assert failures == []


def test_port_in_use_gives_one_line_and_fails(tmp_path: Path) -> None:
    # The S3 port held by a plain server, by a stranger that also uses SO_REUSEPORT (it must
    # not silently share the port), and the ops port held.
    for held, reuse in (("listen", False), ("listen", True), ("ops", False)):
        holder = socket.socket()
        if reuse:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        try:
            port = holder.getsockname()[1]
            ports = {"listen": free_port(), "ops": free_port(), held: port}
            result = run_twistd(
                [
                    *("--data", str(tmp_path / "d"), "--workers", "2"),
                    *("--listen", f"tcp:{ports['listen']}:interface=127.0.0.1"),
                    *("--ops", f"tcp:{ports['ops']}:interface=127.0.0.1"),
                ],
                tmp_path,
                {"VAULTAIRE_ACCESS_KEY": ACCESS_KEY, "VAULTAIRE_SECRET_KEY": SECRET_KEY},
            )
        finally:
            holder.close()
        lines = result.stderr.splitlines()
        assert result.returncode != 0
        assert len(lines) == 1 and lines[0].startswith("vaultaire: cannot listen on"), result.stderr
        assert str(port) in lines[0]
        # Nothing left behind in /dev/shm by a supervisor that never started.
        tag = hashlib.sha256(str(tmp_path / "d").encode()).hexdigest()[:16]
        assert not os.path.exists(f"/dev/shm/vaultaire-{os.getuid()}-{tag}")


def test_workers_setting_is_checked(tmp_path: Path) -> None:
    config = tmp_path / "w.toml"
    config.write_text("[server]\nworkers = -1\n")
    result = run_twistd(["--config", str(config), "--data", str(tmp_path / "d")], tmp_path)
    assert result.returncode != 0 and "workers" in result.stderr
    result = run_twistd(["--data", str(tmp_path / "d"), "--listen", "unix:/tmp/never.sock", "--workers", "2"], tmp_path)
    assert result.returncode != 0
    assert "--workers 2 needs a tcp: or ssl: listen endpoint" in result.stderr


def test_a_stopping_worker_finishes_its_requests_first(workers: Daemon) -> None:
    s3 = workers.boto3_client()
    s3.create_bucket(Bucket="drain")
    body = os.urandom(24 * 2**20)
    s3.put_object(Bucket="drain", Key="big", Body=body)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "drain", "Key": "big"}, ExpiresIn=300)
    conn = connect(workers)
    serving = serving_pid(conn)  # the same keep-alive connection then downloads
    conn.request("GET", url.split(str(workers.port), 1)[1])
    response = conn.getresponse()
    assert response.status == 200
    received = [response.read(2**20)]
    os.kill(workers.pid, signal.SIGHUP)  # both workers are replaced, one of them mid-download
    # Read no further until the downloading worker has been replaced and told to stop.
    wait_for(lambda: f"(pid {serving}) replaced by" in workers.log_text(), 60, "the downloading worker's replacement")
    assert not is_gone(serving)  # it is finishing this download
    while chunk := response.read(2**20):
        received.append(chunk)
    conn.close()
    assert b"".join(received) == body
    wait_for(lambda: is_gone(serving), 30, "the replaced worker to exit once its download ended")
    wait_for(lambda: "reloaded 2 workers" in workers.log_text(), 30, "the reload to finish")
    assert serving not in pids_over_new_connections(workers, 20)


def test_workers_serve_an_ssl_endpoint(tmp_path: Path) -> None:
    d, cert = https_daemon(tmp_path / "tls", workers=2)
    d.start()
    try:
        s3 = d.boto3_client()
        s3.create_bucket(Bucket="secure")
        s3.put_object(Bucket="secure", Key="k", Body=b"over TLS")
        assert s3.get_object(Bucket="secure", Key="k")["Body"].read() == b"over TLS"
        context = ssl.create_default_context(cafile=str(cert))
        pids = set()
        for _ in range(30):
            conn = http.client.HTTPSConnection("127.0.0.1", d.port, timeout=10, context=context)
            try:
                pids.add(serving_pid(conn))  # type: ignore[arg-type]
            finally:
                conn.close()
        assert len(pids) == 2
    finally:
        d.stop()


@pytest.fixture(params=["sigint-default", "sigint-ignored"])
def workers_sigint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Daemon]:
    """Workers started with SIGINT as inherited, and as a background job of a script has it: ignored."""
    previous = signal.getsignal(signal.SIGINT)
    if request.param == "sigint-ignored":
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the child inherits the disposition through exec
    try:
        d = Daemon(tmp_path / "vaultaire", workers=2).start()
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        yield d
    finally:
        d.stop()


def test_ctrl_c_is_the_supervisors_to_handle(workers_sigint: Daemon) -> None:
    # Ctrl-C in a terminal sends SIGINT to every process of the group: the workers leave it
    # to the supervisor, which stops each of them once, whatever SIGINT disposition it inherited.
    workers = workers_sigint
    pids = set(pids_over_new_connections(workers))
    # The kernel itself discards SIGINT for the workers: no need to wait and see that none dies.
    assert all(sigint_ignored(pid) for pid in pids)
    for pid in pids:
        os.kill(pid, signal.SIGINT)
    assert set(pids_over_new_connections(workers, 20)) == pids
    assert ops_metrics(workers)["vaultaire_worker_restarts_total"] == 0
    assert workers.proc is not None
    os.kill(workers.pid, signal.SIGINT)
    workers.proc.wait(20)
    for pid in pids:
        assert is_gone(pid), pid
    assert "Traceback" not in workers.log_text()


def test_ctrl_c_stops_a_single_process_daemon_that_inherited_sigint_ignored(tmp_path: Path) -> None:
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job of a script starts it
    try:
        d = Daemon(tmp_path / "single", workers=1).start()
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        assert d.proc is not None
        os.kill(d.pid, signal.SIGINT)
        d.proc.wait(20)
        assert "Received SIGINT, shutting down." in d.log_text()
    finally:
        d.stop()
