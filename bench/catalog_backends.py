#!/usr/bin/env python3
"""The catalog code's cost on SQLite and PostgreSQL, in one process: an A/B tool. Run by hand, never in tests.

Not the deployment's figure: a gateway is ``twistd vaultaire`` with a worker per core, and
its req/s are ``bench/run.py --peers vaultaire,vaultaire-pg`` (wrk against both daemons in
one run). Here the S3 stack runs as one process (the tests' in-process ``Server``) and the
load comes from Python threads, which take a core of their own: the req/s are the client's
as much as the server's (it reported PostgreSQL GETs at 0.76 of SQLite's where the daemons
measure 0.60). What it is for is the gateway's CPU per request of one catalog change
against another (``--baseline-ref``), catalog by catalog.

Each backend in turn (order rotated every run), a PostgreSQL 16 from the ``pgserver`` wheel
for the second. ``--clients`` threads send presigned 4 KiB PUTs (overwrites of ``--keys``
keys) then GETs, each for ``--duration`` seconds, on keep-alive connections. Reported per
backend: req/s, the gateway process's CPU microseconds per request, and PostgreSQL's (its
server processes) per request: CPU is what a loaded machine disturbs least. Also the load
average at the time.

    .venv/bin/python bench/catalog_backends.py --runs 2 --duration 8 --clients 8

``--baseline-ref REF`` (a git ref, e.g. ``main``) adds the same backends run from that commit's
code (``git archive`` into a scratch directory, first on the server's path): an A/B in one run.
``--backends postgresql`` measures one backend only; ``--inline-max 65536`` keeps the objects in
the catalog (the daemon's default) instead of blob files.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
# Not this directory: bench/multipart.py would shadow the library treq imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO / "tests"))

SERVE = """
import os, sys
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("bench")]  # bench/multipart.py shadows a library
sys.path.insert(0, os.path.join(sys.argv[1], "tests"))
sys.path.insert(0, sys.argv[1])
from twisted.internet import reactor, defer
from tests.s3helpers import Server
server = Server(sys.argv[2], catalog_url=sys.argv[3] or None, inline_max=int(sys.argv[4]))
async def main():
    await server.start("bench")
    print(server.url, flush=True)
def failed(f):  # said, and the process ends: the bench then stops instead of waiting for a URL
    print(f.getTraceback(), file=sys.stderr, flush=True)
    reactor.stop()
reactor.callWhenRunning(lambda: defer.ensureDeferred(main()).addErrback(failed))
import threading
threading.Thread(target=lambda: (sys.stdin.read(), reactor.callFromThread(reactor.stop)), daemon=True).start()
reactor.run()
"""


def presigned(url: str, method: str, key: str) -> str:
    import boto3
    from botocore.config import Config
    from s3helpers import ACCESS, REGION, SECRET

    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
        region_name=REGION,
        config=Config(signature_version="s3v4"),
    )
    op = "put_object" if method == "PUT" else "get_object"
    return s3.generate_presigned_url(op, Params={"Bucket": "bench", "Key": key}, ExpiresIn=3600)


def load(urls: list[str], method: str, clients: int, duration: float) -> int:
    body = os.urandom(4096)
    done = [0] * clients
    stop = time.monotonic() + duration

    def client(n: int) -> None:
        parsed = urllib.parse.urlsplit(urls[0])
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        i = n
        while time.monotonic() < stop:
            target = urllib.parse.urlsplit(urls[i % len(urls)])
            conn.request(method, f"{target.path}?{target.query}", body=body if method == "PUT" else None)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            done[n] += 1
            i += clients
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done)


def cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def postgres_processes(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def export(ref: str) -> Path:
    """The code of ``ref``, exported to a scratch directory."""
    tree = Path(tempfile.mkdtemp(prefix="vt-bench-baseline-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def run_backend(
    backend: str, url: str | None, pg_pid: int | None, a: argparse.Namespace, tree: Path = REPO
) -> dict[str, Any]:
    data = tempfile.mkdtemp(prefix=f"vt-bench-{backend}-")
    child = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(tree), data, url or "", str(a.inline_max)],
        cwd=str(REPO),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    base = child.stdout.readline().strip()
    if not base:
        raise RuntimeError(f"the {backend} gateway of {tree} did not start (its error is above)")
    gateway = psutil.Process(child.pid)
    keys = [f"k{i}" for i in range(a.keys)]
    puts = [presigned(base, "PUT", k) for k in keys]
    gets = [presigned(base, "GET", k) for k in keys]
    body = os.urandom(4096)
    parsed = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    for url in puts:  # every key exists before the GETs
        target = urllib.parse.urlsplit(url)
        conn.request("PUT", f"{target.path}?{target.query}", body=body)
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
    conn.close()
    load(puts, "PUT", 4, 1.0)  # warm up: connections pooled
    load(gets, "GET", 4, 1.0)
    result: dict[str, Any] = {"backend": backend}
    for method, urls in (("PUT", puts), ("GET", gets)):
        pg = postgres_processes(pg_pid) if pg_pid else []
        g0, p0, t0 = cpu([gateway]), cpu(pg), time.monotonic()
        n = load(urls, method, a.clients, a.duration)
        g1, p1, t1 = cpu([gateway]), cpu(pg), time.monotonic()
        result[method] = {
            "req_s": round(n / (t1 - t0)),
            "gateway_cpu_us": round((g1 - g0) / n * 1e6),
            "postgres_cpu_us": round((p1 - p0) / n * 1e6) if pg_pid else 0,
        }
    child.stdin.close()
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        child.kill()  # the stack in process has no clean stop for a reactor stopped from outside
        child.wait()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--keys", type=int, default=200)
    # 0: every object a blob file (fsynced on its own); 65536: the daemon's default, 4 KiB in the catalog.
    parser.add_argument("--inline-max", type=int, default=0, help="objects up to this size kept in the catalog")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--baseline-ref", default=None, help="a git ref whose code runs beside this tree's")
    a = parser.parse_args()
    import postgres  # tests/postgres.py

    trees = {"": REPO}
    if a.baseline_ref:
        trees[f"{a.baseline_ref}:"] = export(a.baseline_ref)
    variants = [(label, backend) for backend in a.backends.split(",") for label in trees]
    server = postgres.PostgresServer()
    pg_pid = int(server._server.get_pid())
    results: dict[str, list[dict[str, Any]]] = {label + backend: [] for label, backend in variants}
    try:
        for run in range(a.runs):
            # Rotated every run: no variant always runs first (or last) on a machine whose load drifts.
            shift = run % len(variants)
            for label, backend in variants[shift:] + variants[:shift]:
                # Empty: each tree's gateway writes its own schema, so a baseline from before a
                # schema change is not refused by the newer schema of the suite's template.
                url = server.fresh_database(empty=True) if backend == "postgresql" else None
                r = run_backend(backend, url, pg_pid if url else None, a, trees[label])
                print(f"run {run} {label}{backend} {r} load {os.getloadavg()}", flush=True)
                results[label + backend].append(r)
    finally:
        server.stop()
    print(
        f"\n4 KiB, inline max {a.inline_max}, {a.clients} clients, {a.duration}s each, {a.runs} runs (medians);"
        f" load {os.getloadavg()}"
    )
    for name, rs in results.items():
        for method in ("GET", "PUT"):
            line = {k: statistics.median(r[method][k] for r in rs) for k in rs[0][method]}
            print(f"{name:20} {method}: {line}")


if __name__ == "__main__":
    main()
