#!/usr/bin/env python3
"""Gateways over one PostgreSQL catalog: scaling and listing. Run by hand, never in tests.

``scale``: 4 KiB GETs on one gateway, then on two gateways at once, each ``twistd vaultaire``
pinned to its own core (``taskset -c``), over one PostgreSQL (the ``pgserver`` wheel's) and a
``local`` placement marked ``shared = true`` (one machine: every gateway sees the directory).
One ``wrk`` per loaded gateway cycles through presigned GETs of ``--objects`` keys. Reported per
run: req/s (summed over gateways), the gateways' CPU microseconds per request, PostgreSQL's, and
the load average; then the 2-gateway / 1-gateway ratio of the medians. Rounds alternate.

``listing``: ListObjectsV2 page latency (first, middle and last page of 1000, flat and with a
delimiter) in a bucket of ``--keys`` keys, one gateway on PostgreSQL; the rows are inserted
straight into the catalog (COPY), the pages measured as bench/listing.py does.

    .venv/bin/python bench/gateways_pg.py scale --seconds 10 --rounds 3
    .venv/bin/python bench/gateways_pg.py listing --keys 1000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO / "tests"))

from daemon import Daemon  # noqa: E402
from postgres import PostgresServer, gateway_config  # noqa: E402

BUCKET = "bench"


class PinnedDaemon(Daemon):
    """A gateway whose processes run on the given cores only."""

    cores = ""

    def command(self) -> list[str]:
        return ["taskset", "-c", self.cores, *super().command()]


def gateways(base: Path, url: str, cores: list[str]) -> list[Daemon]:
    shared = gateway_config(base, url)
    out = []
    for i, core in enumerate(cores):
        d = PinnedDaemon(base / f"gateway{i}", extra_args=["--config", shared], workers=1)
        d.cores = core
        out.append(d.start())
    return out


def tree_cpu(pid: int) -> float:
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for q in procs:
        try:
            t = q.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def postgres_cpu(server: PostgresServer) -> float:
    pid = server._server.get_pid()
    return tree_cpu(pid) if pid else 0.0


def wrk_script(path: Path, urls: list[str]) -> Path:
    targets = [urllib.parse.urlsplit(u) for u in urls]
    lines = ",\n".join(f'  "{t.path}?{t.query}"' for t in targets)
    path.write_text(
        f"paths = {{\n{lines}\n}}\ni = 0\n"
        'request = function()\n  i = i % #paths + 1\n  return wrk.format("GET", paths[i])\nend\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("REQUESTS %d STATUS %d SOCKET %d\\n", summary.requests, summary.errors.status,'
        " summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))\n"
        "end\n"
    )
    return path


def run_load(loaded: list[Daemon], scripts: list[Path], seconds: float, conns: int, server: PostgresServer) -> dict:
    cpu0 = [tree_cpu(d.pid) for d in loaded]
    pg0 = postgres_cpu(server)
    procs = [
        subprocess.Popen(
            ["wrk", "-t1", f"-c{conns}", f"-d{round(seconds)}s", "-s", str(s), f"http://127.0.0.1:{d.port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for d, s in zip(loaded, scripts, strict=True)
    ]
    outs = [p.communicate()[0] for p in procs]
    requests = errors = socket_errors = 0
    for out in outs:
        line = next((x for x in out.splitlines() if x.startswith("REQUESTS")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no summary:\n{out}")
        _, r, _, status, _, sock = line.split()
        requests, errors, socket_errors = requests + int(r), errors + int(status), socket_errors + int(sock)
    cpu = sum(tree_cpu(d.pid) for d in loaded) - sum(cpu0)
    pg = postgres_cpu(server) - pg0
    return {
        "gateways": len(loaded),
        "rps": requests / seconds,
        "errors": errors,  # answers other than 2xx/3xx
        "socket_errors": socket_errors,  # connect, read, write errors and wrk's 2 s timeouts
        "gateway_us_per_req": cpu / max(requests, 1) * 1e6,
        "postgres_us_per_req": pg / max(requests, 1) * 1e6,
        "load": os.getloadavg()[0],
    }


def scale(a: argparse.Namespace, scratch: Path) -> None:
    server = PostgresServer()
    try:
        ds = gateways(scratch, server.fresh_database(), ["0", "1"])
        try:
            s3 = ds[0].boto3_client()
            s3.create_bucket(Bucket=BUCKET)
            body = os.urandom(4096)
            for i in range(a.objects):
                s3.put_object(Bucket=BUCKET, Key=f"obj{i:05d}", Body=body)
            scripts = []
            for n, d in enumerate(ds):
                c = d.boto3_client()
                urls = [
                    c.generate_presigned_url(
                        "get_object", Params={"Bucket": BUCKET, "Key": f"obj{i:05d}"}, ExpiresIn=7200
                    )
                    for i in range(a.objects)
                ]
                scripts.append(wrk_script(scratch / f"get{n}.lua", urls))
            run_load(ds, scripts, 2, a.connections, server)  # warm-up
            rows = []
            for r in range(a.rounds):
                order = [1, 2] if r % 2 == 0 else [2, 1]
                for n in order:
                    row = run_load(ds[:n], scripts[:n], a.seconds, a.connections, server)
                    rows.append(row)
                    print(
                        f"round {r + 1} gateways={n}: {row['rps']:.0f} req/s, non-2xx {row['errors']},"
                        f" socket errors/timeouts {row['socket_errors']},"
                        f" gateway {row['gateway_us_per_req']:.0f} us/req, postgres {row['postgres_us_per_req']:.0f}"
                        f" us/req, load {row['load']:.2f}",
                        flush=True,
                    )
            one = statistics.median(r["rps"] for r in rows if r["gateways"] == 1)
            two = statistics.median(r["rps"] for r in rows if r["gateways"] == 2)
            print(f"\n4 KiB GET, median req/s: 1 gateway {one:.0f}, 2 gateways {two:.0f}, ratio {two / one:.2f}")
        finally:
            for d in ds:
                d.stop()
    finally:
        server.stop()


def listing(a: argparse.Namespace, scratch: Path) -> None:
    import importlib.util

    import psycopg

    # bench/listing.py by its path (the bench directory on sys.path would shadow libraries).
    spec = importlib.util.spec_from_file_location("bench_listing", REPO / "bench" / "listing.py")
    assert spec is not None and spec.loader is not None
    bench_listing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_listing)
    PAGE, keys_for, measure = bench_listing.PAGE, bench_listing.keys_for, bench_listing.measure

    from vaultaire.catalog.rows import ARTIFACT_COLUMNS
    from vaultaire.catalog.rows import extra_json as _extra
    from vaultaire.model import Artifact

    server = PostgresServer()
    try:
        url = server.fresh_database()
        (d,) = gateways(scratch, url, [a.cores])
        try:
            d.boto3_client().create_bucket(Bucket=BUCKET.replace("bench", "listing"))
            keys = keys_for(a.keys, a.dirs)
            t0 = time.monotonic()
            with psycopg.connect(url, autocommit=True) as conn:
                (container_id,) = conn.execute("SELECT id FROM containers WHERE name = 'listing'").fetchone()  # type: ignore[misc]
                now = time.time()
                extra = _extra(Artifact(container_id=container_id, key="", locator="", size=0, md5="", modified=now))
                md5 = "d41d8cd98f00b204e9800998ecf8427e"
                with conn.cursor().copy(f"COPY artifacts ({ARTIFACT_COLUMNS}) FROM STDIN") as copy:
                    for i, k in enumerate(keys):
                        copy.write_row(
                            (container_id, k.encode(), f"bench/{i}", 1024, md5, now, "binary/octet-stream", extra)
                        )
                conn.execute("ANALYZE artifacts")
            print(f"# {a.keys:,} keys loaded into PostgreSQL in {time.monotonic() - t0:.1f} s", flush=True)
            rows = measure(d, keys, a.repeat)
            # ListObjectVersions, first page with a delimiter (boto3's wall time: its parsing included).
            s3 = d.boto3_client()
            times = []
            for _ in range(3):
                t1 = time.perf_counter()
                page = s3.list_object_versions(Bucket="listing", Delimiter="/", MaxKeys=1000)
                times.append((time.perf_counter() - t1) * 1000)
            versions_note = (
                f"ListObjectVersions, delimiter /, first page ({len(page.get('CommonPrefixes', []))} prefixes),"
                f" boto3 wall time: median {statistics.median(times):.0f} ms"
            )
        finally:
            d.stop()
    finally:
        server.stop()
    print(f"\nListObjectsV2 on PostgreSQL, {PAGE} entries a page, ms per page (median of {a.repeat}, min)\n")
    print("| keys | listing | page | entries | median ms | min ms |")
    print("|---:|---|---|---:|---:|---:|")
    for r in rows:
        cells = [f"{r['keys']:,}", r["listing"], r["page"], r["entries"], f"{r['median_ms']:.1f}", f"{r['min_ms']:.1f}"]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print(versions_note)
    print(f"load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("scale")
    s.add_argument("--seconds", type=float, default=10)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--objects", type=int, default=200)
    s.add_argument("--connections", type=int, default=16, help="per gateway")
    li = sub.add_parser("listing")
    li.add_argument("--keys", type=int, default=1_000_000)
    li.add_argument("--dirs", type=int, default=10_000)
    li.add_argument("--repeat", type=int, default=7)
    li.add_argument("--cores", default="0")
    a = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="vt-gwpg-"))
    os.chmod(scratch, 0o755)
    try:
        {"scale": scale, "listing": listing}[a.what](a, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
