#!/usr/bin/env python3
"""What keeping small objects in the catalog buys (engine/inline.py). Run by hand, never in tests.

Three kinds of daemon, started in turn, the order rotated every repetition:

* ``main``: the code of ``--baseline-ref`` (exported with ``git archive`` to a scratch
  directory, first on PYTHONPATH): small objects are blob files;
* ``files``: this tree with ``[storage] inline_max_bytes = 0``: blob files, so the
  difference to ``inline`` is inlining alone, not what else the branch holds;
* ``inline``: this tree as configured by default (objects up to 64 KiB inline).

Each: 4 KiB PUTs (new keys, over and over) and 4 KiB GETs of 1000 objects, with wrk on
presigned URLs at ``--connections`` connections (the harness of bench/harness/s3bench.py):
req/s, p99 latency, and the server's CPU microseconds per request (the measure a loaded
machine disturbs least); the load average is printed with each run.

``--interleaved N`` measures instead one request at a time on a keep-alive connection, the
daemons all up at once and taking turns, N rounds of ``--batch`` GETs and PUTs each: the
server's CPU microseconds per request, compared under the same load (other processes on a
shared machine move every daemon's figures alike), and the wall time of a PUT.

``--wrk-rounds N`` is the same with wrk: the daemons all up at once, taking turns at
``--duration`` seconds of PUTs then GETs at ``--connections`` connections, N rounds.

Example:

    .venv/bin/python bench/inline.py --runs 3 --duration 10
    .venv/bin/python bench/inline.py --interleaved 8 --batch 1000
    .venv/bin/python bench/inline.py --wrk-rounds 6 --duration 5
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench" / "harness"))

import s3bench  # noqa: E402
from daemon import Daemon  # noqa: E402

SIZE = 4096
KINDS = ("main", "files", "inline")
MEASURES = ("put", "put_cpu", "put_p99", "get", "get_cpu", "get_p99")


class TreeDaemon(Daemon):
    """A daemon running another tree of this repository's code (first on PYTHONPATH)."""

    def __init__(self, base: Path, tree: Path, **kwargs: Any) -> None:
        super().__init__(base, **kwargs)
        self.tree = tree
        self.console_port = (tree / "vaultaire" / "console").exists()

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["PYTHONPATH"] = str(self.tree)
        return env


def export(ref: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def daemon(kind: str, base: Path, tree: Path, workers: int) -> Daemon:
    if kind == "main":
        return TreeDaemon(base, tree, workers=workers)
    if kind == "files":
        base.mkdir(parents=True, exist_ok=True)
        config = base / "files.toml"
        config.write_text("[storage]\ninline_max_bytes = 0\n")
        return Daemon(base, workers=workers, extra_args=["--config", str(config)])
    return Daemon(base, workers=workers)


def context(d: Daemon, workdir: Path) -> Any:
    workdir.mkdir(parents=True, exist_ok=True)
    return s3bench.Ctx(
        argparse.Namespace(
            endpoint=d.endpoint_url,
            bucket="bench",
            pid=[d.proc.pid] if d.proc else [],
            workdir=str(workdir),
            region=d.region,
            access_key=d.access_key,
            secret_key=d.secret_key,
            quiet=True,
        )
    )


def options(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(
        prefix="",
        objects=1000,
        size=SIZE,
        keys=20000,
        connections=args.connections,
        threads=2,
        duration=args.duration,
        timeout=30,
    )


def measures(put: dict[str, Any], get: dict[str, Any]) -> dict[str, float]:
    for name, res in (("put", put), ("get", get)):
        if res["errors"] or res.get("postcheck_bad"):
            raise RuntimeError(f"{name}: {res}")
    return {
        "put": float(put["req_per_s"]),
        "put_cpu": float(put.get("server_cpu_us_per_req", "nan")),
        "put_p99": float(put["p99_ms"]),
        "get": float(get["req_per_s"]),
        "get_cpu": float(get.get("server_cpu_us_per_req", "nan")),
        "get_p99": float(get["p99_ms"]),
    }


def one_run(d: Daemon, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    ctx, o = context(d, workdir), options(args)
    put = s3bench.bench_small_put(ctx, o, s3bench.prep_small_put(ctx, o))
    get = s3bench.bench_small_get(ctx, o, s3bench.prep_small_get(ctx, o))
    return measures(put, get)


def table(title: str, kinds: list[str], results: dict[str, dict[str, list[float]]]) -> None:
    print(f"\n{title}")
    print(f"{'':8} {'PUT req/s':>10} {'CPU us':>8} {'p99 ms':>8} {'GET req/s':>10} {'CPU us':>8} {'p99 ms':>8}")
    for kind in kinds:
        m = {name: statistics.median(values) for name, values in results[kind].items()}
        print(
            f"{kind:8} {m['put']:10.0f} {m['put_cpu']:8.0f} {m['put_p99']:8.1f}"
            f" {m['get']:10.0f} {m['get_cpu']:8.0f} {m['get_p99']:8.1f}"
        )


def wrk_rounds(args: argparse.Namespace, kinds: list[str], scratch: Path, tree: Path) -> None:
    daemons = {kind: daemon(kind, scratch / f"wrk-{kind}", tree, args.workers) for kind in kinds}
    for d in daemons.values():
        d.start()
    try:
        o = options(args)
        ctxs = {kind: context(d, scratch / f"wrk-{kind}" / "work") for kind, d in daemons.items()}
        preps = {k: (s3bench.prep_small_put(c, o), s3bench.prep_small_get(c, o)) for k, c in ctxs.items()}
        results: dict[str, dict[str, list[float]]] = {k: {m: [] for m in MEASURES} for k in kinds}
        for rnd in range(args.wrk_rounds):
            order = kinds[rnd % len(kinds) :] + kinds[: rnd % len(kinds)]
            for kind in order:
                put = s3bench.bench_small_put(ctxs[kind], o, preps[kind][0])
                get = s3bench.bench_small_get(ctxs[kind], o, preps[kind][1])
                for name, value in measures(put, get).items():
                    results[kind][name].append(value)
            line = ", ".join(
                f"{k} PUT {results[k]['put'][-1]:.0f}/s {results[k]['put_cpu'][-1]:.0f} us"
                f" GET {results[k]['get'][-1]:.0f}/s {results[k]['get_cpu'][-1]:.0f} us"
                for k in kinds
            )
            print(f"# round {rnd + 1}: {line}; load {os.getloadavg()[0]:.1f}", flush=True)
        title = f"4 KiB objects, {args.connections} connections, {args.workers} worker(s), daemons taking turns,"
        table(f"{title} medians of {args.wrk_rounds} rounds:", kinds, results)
    finally:
        for d in daemons.values():
            d.stop()


def inline_rows(d: Daemon) -> int:
    import sqlite3

    db = sqlite3.connect(f"file:{d.data_dir / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        found = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'inline_blobs'").fetchone()
        return int(db.execute("SELECT count(*) FROM inline_blobs").fetchone()[0]) if found else 0
    finally:
        db.close()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sequential:
    """One daemon's keep-alive connection and presigned URLs for 4 KiB GETs and new-key PUTs."""

    def __init__(self, d: Daemon, batch: int, rounds: int) -> None:
        self.d = d
        s3 = d.boto3_client()
        s3.create_bucket(Bucket="seq")
        self.body = os.urandom(SIZE)
        gets = [f"get/{i:05d}" for i in range(1000)]
        s3bench.parallel(lambda k: s3.put_object(Bucket="seq", Key=k, Body=self.body), gets, 8)

        def signed(operation: str, key: str) -> Any:
            url = s3.generate_presigned_url(operation, Params={"Bucket": "seq", "Key": key}, ExpiresIn=7200)
            parts = urllib.parse.urlsplit(url)
            return f"{parts.path}?{parts.query}"

        self.get_urls = [signed("get_object", k) for k in gets]
        self.put_urls = [signed("put_object", f"put/{i:07d}") for i in range(batch * rounds)]
        self.conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
        self.puts_done = 0

    def _one(self, method: str, path: str, body: bytes | None) -> None:
        self.conn.request(method, path, body=body)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200 or (method == "GET" and len(data) != SIZE):
            raise RuntimeError(f"{method} {response.status}: {data[:200]!r}")

    def gets(self, n: int) -> float:
        """CPU us per GET."""
        assert self.d.proc is not None
        start = _cpu_seconds(self.d.proc.pid)
        for i in range(n):
            self._one("GET", self.get_urls[i % len(self.get_urls)], None)
        return (_cpu_seconds(self.d.proc.pid) - start) / n * 1e6

    def puts(self, n: int) -> tuple[float, float]:
        """(CPU us per PUT, wall ms per PUT) of new keys."""
        assert self.d.proc is not None
        start, t0 = _cpu_seconds(self.d.proc.pid), time.monotonic()
        for _ in range(n):
            self._one("PUT", self.put_urls[self.puts_done], self.body)
            self.puts_done += 1
        return (_cpu_seconds(self.d.proc.pid) - start) / n * 1e6, (time.monotonic() - t0) / n * 1e3


def interleaved(args: argparse.Namespace, kinds: list[str], scratch: Path, tree: Path) -> None:
    daemons = {kind: daemon(kind, scratch / f"seq-{kind}", tree, 1) for kind in kinds}
    for d in daemons.values():
        d.start()
    try:
        clients = {kind: Sequential(d, args.batch, args.interleaved) for kind, d in daemons.items()}
        got: dict[str, dict[str, list[float]]] = {k: {"get": [], "put": [], "put_ms": []} for k in kinds}
        for rnd in range(args.interleaved):
            order = kinds[rnd % len(kinds) :] + kinds[: rnd % len(kinds)]
            for kind in order:
                got[kind]["get"].append(clients[kind].gets(args.batch))
                cpu, ms = clients[kind].puts(args.batch)
                got[kind]["put"].append(cpu)
                got[kind]["put_ms"].append(ms)
            line = ", ".join(
                f"{k} GET {got[k]['get'][-1]:.0f} us, PUT {got[k]['put'][-1]:.0f} us ({got[k]['put_ms'][-1]:.2f} ms)"
                for k in kinds
            )
            print(f"# round {rnd + 1}: {line}; load {os.getloadavg()[0]:.1f}", flush=True)
        print(f"\n4 KiB, one request at a time, server CPU per request, medians of {args.interleaved} rounds:")
        print(f"{'':8} {'GET us':>8} {'PUT us':>8} {'PUT ms':>8} {'inline rows':>12}")
        for kind in kinds:
            m = {name: statistics.median(values) for name, values in got[kind].items()}
            rows = inline_rows(daemons[kind])
            print(f"{kind:8} {m['get']:8.0f} {m['put']:8.0f} {m['put_ms']:8.2f} {rows:12}")
    finally:
        for d in daemons.values():
            d.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-ref", default="main", help="git ref of the code to compare with")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (medians reported)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="S3 worker processes of each daemon")
    parser.add_argument("--kinds", default=",".join(KINDS), help="which daemons, comma-separated")
    parser.add_argument("--interleaved", type=int, default=0, help="rounds of one-at-a-time requests instead")
    parser.add_argument("--batch", type=int, default=1000, help="requests of each kind per round (--interleaved)")
    parser.add_argument("--wrk-rounds", type=int, default=0, help="rounds of wrk runs, the daemons taking turns")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    scratch = Path(tempfile.mkdtemp(prefix="vaultaire-bench-inline-"))
    try:
        tree = export(args.baseline_ref, scratch / "baseline-tree") if "main" in kinds else scratch
        if args.interleaved:
            interleaved(args, kinds, scratch, tree)
            return
        if args.wrk_rounds:
            wrk_rounds(args, kinds, scratch, tree)
            return
        results: dict[str, dict[str, list[float]]] = {k: {m: [] for m in MEASURES} for k in kinds}
        for run in range(args.runs):
            order = kinds[run % len(kinds) :] + kinds[: run % len(kinds)]
            for kind in order:
                base = scratch / f"{kind}-{run}"
                d = daemon(kind, base, tree, args.workers)
                d.start()
                try:
                    found = one_run(d, args, base / "work")
                    rows = inline_rows(d)
                finally:
                    d.stop()
                    shutil.rmtree(base, ignore_errors=True)
                for name, value in found.items():
                    results[kind][name].append(value)
                print(
                    f"# run {run + 1} {kind}: PUT {found['put']:.0f} req/s ({found['put_cpu']:.0f} us CPU/req,"
                    f" p99 {found['put_p99']:.1f} ms), GET {found['get']:.0f} req/s ({found['get_cpu']:.0f} us"
                    f" CPU/req, p99 {found['get_p99']:.1f} ms); {rows} inline rows; load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        title = f"4 KiB objects, {args.connections} connections, {args.workers} worker(s), medians of {args.runs}:"
        table(title, kinds, results)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
