"""Three gateways over a PostgreSQL catalog, blobs on a SeaweedFS cluster (issue 17).

The scenarios of tests/test_gateways.py (imported: pytest runs them here on this module's
deployment), then what only a database server brings: PostgreSQL stopped and started again
under load, and a once-per-deployment job whose gateway is killed while holding its lease.

The module starts a PostgreSQL of its own (tests/postgres.py's server class, not the
session's): the outage test stops and restarts it, which no other test may see.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from daemon import Daemon
from gateways import Deployment
from postgres import PostgresServer
from test_gateways import (  # noqa: F401 (collected and run here, on this module's deployment)
    _job_runs,
    _wait,
    md5,
    test_a_conditional_create_racing_on_three_gateways_has_exactly_one_winner,
    test_a_write_on_one_gateway_is_read_on_every_other_at_once,
    test_aws_cli_multipart_with_parts_on_different_gateways,
    test_kill9_of_a_gateway_mid_upload_loses_nothing_acknowledged_and_leaves_no_orphan,
    test_listings_agree_across_gateways,
    test_one_gateway_exports_the_stored_gauges_and_another_takes_over_after_kill9,
    test_the_sweep_runs_once_per_period_across_gateways,
)

# The usage rollup is the job the lease test kills a holder of: its period is short here, so
# the lease a dead gateway left expires within the test.
ROLLUP_SECONDS = 6


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PostgresServer]:
    """This module's own PostgreSQL (conftest's ``server`` is the in-process S3 stack)."""
    s = PostgresServer()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, pg_server: PostgresServer) -> Iterator[Deployment]:
    d = Deployment(
        tmp_path_factory.mktemp("gateways-pg"), catalog_url=pg_server.fresh_database(), rollup_seconds=ROLLUP_SECONDS
    ).start()
    try:
        yield d
    finally:
        d.stop()


def _code(e: ClientError) -> tuple[int, str]:
    return int(e.response["ResponseMetadata"]["HTTPStatusCode"]), str(e.response.get("Error", {}).get("Code"))


def test_postgresql_stopped_and_started_under_load_gives_503s_then_serves_again_and_loses_nothing(
    deployment: Deployment, pg_server: PostgresServer
) -> None:
    # A bounded wait per request: a request the outage holds up past it is a hang.
    deadline = 30.0
    clients = [
        g.boto3_client(max_pool_connections=4, connect_timeout=5, read_timeout=deadline) for g in deployment.gateways
    ]
    clients[0].create_bucket(Bucket="outage")
    logs = [len(g.log_text()) for g in deployment.gateways]
    acknowledged: dict[str, str] = {}
    outcomes: list[tuple[str, int, str, float, float]] = []  # (gateway/op, status, code, started, seconds)
    lock = threading.Lock()
    stop = threading.Event()

    def traffic(s3: Any, name: str) -> None:
        n = 0
        while not stop.is_set():
            key, body = f"{name}/{n}", os.urandom(4096 + n % 7000)
            n += 1
            for op in ("put", "get"):
                t0 = time.monotonic()
                try:
                    if op == "put":
                        s3.put_object(Bucket="outage", Key=key, Body=body)
                        with lock:
                            acknowledged[key] = md5(body)
                    else:
                        got = s3.get_object(Bucket="outage", Key=key)["Body"].read()
                        assert got == body, key
                    status, code = 200, "OK"
                except ClientError as e:
                    status, code = _code(e)
                except Exception as e:  # a timeout, a dropped connection: recorded, then asserted on
                    status, code = 0, f"{type(e).__name__}: {e}"
                with lock:
                    outcomes.append((f"{name}/{op}", status, code, t0, time.monotonic() - t0))
                if op == "put" and status != 200:
                    break  # nothing to read back

    def seen(since: float, status: int) -> set[str]:
        with lock:
            return {o[0].split("/")[0] for o in outcomes if o[1] == status and o[3] >= since}

    def failures(since: float) -> dict[str, int]:
        with lock:
            return {n: sum(o[0].startswith(n) and o[1] == 503 and o[3] >= since for o in outcomes) for n in names}

    names = [f"g{i}" for i in range(len(clients))]
    workers = [threading.Thread(target=traffic, args=(s3, name)) for s3, name in zip(clients, names, strict=True)]
    for w in workers:
        w.start()
    try:
        _wait(lambda: seen(0, 200) == set(names), 30, "steady traffic on every gateway")
        halted = time.monotonic()
        pg_server.halt()
        try:
            # Every gateway answers 503 while the database is down.
            _wait(lambda: all(n >= 3 for n in failures(halted).values()), deadline, "503s from every gateway")
        finally:
            resumed = time.monotonic()
            pg_server.resume()
        # Service comes back by itself, on every gateway; and goes on, sweeps running meanwhile
        # (every 2 s), long enough that a sweep taking a live writer's blob would be seen.
        _wait(lambda: seen(resumed, 200) == set(names), 60, "service resumed on every gateway")
        back = time.monotonic()
        print(
            f"503s from every gateway {resumed - halted:.1f} s after the stop; 200s {back - resumed:.1f} s after start"
        )
        time.sleep(8)
    finally:
        stop.set()
        for w in workers:
            w.join(deadline + 10)
    assert not any(w.is_alive() for w in workers)
    wrong = [o for o in outcomes if (o[1], o[2]) not in {(200, "OK"), (503, "SlowDown")}]
    assert wrong == [], wrong[:10]
    slow = [o for o in outcomes if o[4] > deadline]
    assert slow == [], slow[:10]
    assert sum(o[1] == 503 for o in outcomes) >= len(names)
    # Prompt: once a gateway's process has found the database down (its first 503 waits for the
    # pool's timeout, 5 s), the rest of the outage is answered at once, not one pool timeout each.
    # The median: a gateway with two workers has two processes to find it out.
    later = [o[4] for name in names for o in [o for o in outcomes if o[0].startswith(name) and o[1] == 503][1:]]
    median = statistics.median(later)
    print(f"{len(later) + len(names)} 503s; the later ones: median {median:.2f} s, max {max(later):.2f} s")
    assert median < 4, later  # each at least the pool's 5 s timeout without the fast refusal
    # An outage is an expected condition: warnings naming it, no critical line, no traceback.
    for gateway, start in zip(deployment.gateways, logs, strict=True):
        text = gateway.log_text()[start:]
        assert "#critical" not in text and "Traceback" not in text, text[-3000:]
    # Every acknowledged PUT reads back whole, from any gateway.
    reader = deployment.gateways[0].boto3_client()
    for key, digest in acknowledged.items():
        assert md5(reader.get_object(Bucket="outage", Key=key)["Body"].read()) == digest, key
    # And the cluster settles to exactly the blobs the catalog references: the writes the outage
    # cut left no blob behind, and no sweep freed a blob a live gateway was still writing.
    _wait_settled(deployment)


def _wait_settled(deployment: Deployment, timeout: float = 60) -> None:
    def settled() -> bool:
        ledger = deployment.ledger()
        return not ledger["intents"] and not ledger["garbage"] and ledger["stored"] == ledger["referenced"]

    try:
        _wait(settled, timeout, "the cluster holding exactly the referenced blobs")
    except AssertionError:
        ledger = deployment.ledger()
        raise AssertionError(
            {
                "orphans": sorted(ledger["stored"] - ledger["referenced"])[:5],
                "missing": sorted(ledger["referenced"] - ledger["stored"])[:5],
                "intents": len(ledger["intents"]),
                "garbage": len(ledger["garbage"]),
            }
        ) from None


def _holder_of(deployment: Deployment, lease: str) -> tuple[Daemon, float] | None:
    """The gateway holding ``lease`` now and the seconds left on it (holders are host:pid:random)."""
    rows = deployment.rows(
        "SELECT holder, expires_at - extract(epoch FROM clock_timestamp()) FROM leases"
        f" WHERE name = '{lease}' AND expires_at > extract(epoch FROM clock_timestamp())"
    )
    if not rows:
        return None
    pid = int(str(rows[0][0]).split(":")[1])
    for gateway in deployment.gateways:
        if gateway.running and gateway.pid == pid:
            return gateway, float(rows[0][1])
    return None


def test_a_job_whose_gateway_is_killed_holding_its_lease_runs_on_another_after_the_period(
    deployment: Deployment,
) -> None:
    # A fresh lease (most of its period left) held by a live gateway: kill -9 that gateway then.
    held = _wait(
        lambda: (h := _holder_of(deployment, "job:usage-rollup")) and h[1] > ROLLUP_SECONDS / 2 and h,
        4 * ROLLUP_SECONDS,
        "a gateway taking the usage-rollup lease",
    )
    victim, left = held
    before = _job_runs(deployment, "usage-rollup")
    victim.kill9()
    killed = time.monotonic()
    others = [i for i, g in enumerate(deployment.gateways) if g is not victim]
    try:
        # No other gateway runs it while the dead one's lease lasts...
        while time.monotonic() < killed + left - 1:
            runs = _job_runs(deployment, "usage-rollup")
            assert all(runs[i] == before[i] for i in others), (runs, before)
            time.sleep(0.2)
        # ...and one of them does once it has expired: within a check interval (the period here).
        _wait(
            lambda: any(_job_runs(deployment, "usage-rollup")[i] > before[i] for i in others),
            left + ROLLUP_SECONDS + 10,
            "another gateway running the job",
        )
        holder = _holder_of(deployment, "job:usage-rollup")
        assert holder is not None and holder[0] is not victim
    finally:
        victim.restart()


def test_a_writer_lease_cut_by_a_restart_is_taken_again_and_not_taken_for_a_dead_writers_meanwhile() -> None:
    import psycopg

    from vaultaire.catalog.postgres.lease import _CLASS, AdvisoryLease, _key

    s = PostgresServer()  # its own: stopped and started here
    try:
        url = s.fresh_database()
        live, dead, sweeper = AdvisoryLease(url), AdvisoryLease(url), AdvisoryLease(url)
        for lease in (live, dead, sweeper):
            lease.acquire()
        s.halt()
        s.resume()
        with psycopg.connect(url, autocommit=True) as conn:
            # Within the grace after the start, neither lock is held, and neither owner is dead yet:
            # one may be a live writer that has not written since.
            assert sweeper.dead_owners([live.owner, dead.owner], conn) == []
            owner = live.owner
            live.acquire()  # its next write: the cut session is noticed, the lock taken again
            assert live.owner == owner
            took = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (_CLASS, _key(owner))).fetchone()
            assert took == (False,)  # held again, by its own session
            # A writer that took its lock since the start and lost it is dead at once.
            again = AdvisoryLease(url)
            again.acquire()
            again._conn.close()  # type: ignore[union-attr]  # as a process killed -9
            _wait(lambda: sweeper.dead_owners([live.owner, again.owner], conn) == [again.owner], 10, "seen dead")
            # One that died with nothing in flight leaves no row behind either.
            gone = AdvisoryLease(url)
            gone.acquire()
            gone._conn.close()  # type: ignore[union-attr]

            def rows() -> list[Any]:
                return conn.execute("SELECT name FROM leases WHERE name = %s", (f"writer:{gone.owner}",)).fetchall()

            assert rows() != []
            _wait(lambda: sweeper.dead_owners([], conn) == [] and rows() == [], 10, "its row gone")
            assert conn.execute(
                "SELECT count(*) FROM leases WHERE name = %s", (f"writer:{live.owner}",)
            ).fetchone() == (1,)
    finally:
        s.stop()
