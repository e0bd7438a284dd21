"""The operator's worker page against a supervisor of two workers: each worker's pid, state,
restarts and requests as the supervisor knows them; a worker killed is seen restarting and
then serving under a new pid; the metrics charts say whose numbers they are (the sum the
ops site's /metrics shows)."""

from __future__ import annotations

import os
import re
import signal
import urllib.request
from collections.abc import Iterator

import pytest
from console_http import Browser, poll, table_rows
from daemon import Daemon, free_port, write_config

pytestmark = pytest.mark.timeout(300)

ADMIN_KEY = "OPERATOR-KEY"
ADMIN_SECRET = "operator-secret-0123456789"


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Browser]]:
    port = free_port()
    base = tmp_path_factory.mktemp("vaultaire")
    config = write_config(
        base, f'[console]\nadmin_key = "{ADMIN_KEY}"\nadmin_secret = "{ADMIN_SECRET}"\nmetrics_seconds = 0.2\n'
    )
    with Daemon(base, workers=2, extra_args=["--console", f"tcp:{port}:interface=127.0.0.1", "--config", config]) as d:
        b = Browser(f"http://127.0.0.1:{port}")
        assert b.login(ADMIN_KEY, ADMIN_SECRET) == 303
        yield d, b


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[1])


def scraped_requests(d: Daemon) -> float:
    text = urllib.request.urlopen(d.ops_url + "/metrics", timeout=30).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("vaultaire_requests_total{")
    )


def test_each_worker_and_its_restart(supervised: tuple[Daemon, Browser]) -> None:
    d, b = supervised
    status, headers, page = b.request("GET", "/ops/workers")
    assert status == 200 and headers["x-frame-options"] == "DENY"
    assert f"The supervisor (pid {d.pid}" in page
    rows = table_rows(page, "workers")
    assert [(r[0], r[2], r[5]) for r in rows] == [("1", "serving", "0"), ("2", "serving", "0")]
    pids = [int(r[1]) for r in rows]
    assert len(set(pids)) == 2 and all(parent_of(p) == d.pid for p in pids)
    # Requests each worker served, from its own metric file: together, what /metrics sums.
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="spread")
    for i in range(30):
        s3.put_object(Bucket="spread", Key=f"k{i}", Body=b"x")
    served = [r[6] for r in table_rows(b.request("GET", "/ops/workers")[2], "workers")]
    assert sum(int(n) for n in served if n != "—") == scraped_requests(d) >= 31
    # A worker killed: restarting, then serving again under a new pid, its restart counted.
    os.kill(pids[0], signal.SIGKILL)

    def replaced() -> list[list[str]] | None:
        rows = table_rows(b.request("GET", "/ops/workers")[2], "workers")
        first = rows[0]
        return rows if first[2] == "serving" and first[1] not in ("—", str(pids[0])) else None

    rows = poll(replaced, "worker 1 replaced")
    assert rows[0][5] == "1" and rows[1][5] == "0" and rows[1][1] == str(pids[1])
    assert parent_of(int(rows[0][1])) == d.pid
    # The charts are the supervisor's sums, and say so.
    page = b.request("GET", "/ops/metrics")[2]
    assert f"Summed over the 2 worker processes of the supervisor (pid {d.pid})" in page
    assert re.search(r'id="chart-requests".*?<polyline', page, re.S)
