#!/usr/bin/env python3
"""What versioning costs. Run by hand, never in tests.

Three kinds of daemon are compared, started in turn, the order rotated every repetition:

* ``baseline``: the code before versioning (``--baseline``, a git ref of this repository,
  exported with ``git archive`` to a scratch directory and run with it first on PYTHONPATH),
  on a plain bucket;
* ``unversioned``: this tree (or ``--this-tree``: e.g. versioning alone, without what was
  merged beside it), on a bucket that never had versioning;
* ``versioned``: the same code, on a bucket with versioning Enabled.

Parts (``--skip`` any):

1. ``catalog``: CPU microseconds per catalog point read and per overwrite, in process.
2. ``sequential``: one request at a time on one keep-alive connection, the server's CPU
   microseconds per 4 KiB GET and per 4 KiB PUT overwrite (100 keys, each PUT of a versioned
   bucket adds a version): the measure a busy machine disturbs least.
3. ``throughput``: 4 KiB GET and PUT req/s with wrk on presigned URLs, 32 connections (the
   harness of bench/harness/s3bench.py); versioned: every object already has ``--versions``
   versions, PUTs add versions to 1000 keys over and over.
4. ``listing``: one bucket of ``--keys`` keys x ``--versions`` versions (every 10th key's
   newest version a delete marker), loaded straight into the catalog (the catalog's own row
   codec and version ranks, no blobs: listings never read them): ListObjectsV2 pages of 1000
   keys and ListObjectVersions pages of 1000 versions, first, middle and last page, reached
   with real markers; median milliseconds of ``--repeat``.

Example:

    .venv/bin/python bench/versions.py --runs 3 --duration 10 --keys 100000 --versions 5
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench" / "harness"))

import s3bench  # noqa: E402
from daemon import Daemon  # noqa: E402

from vaultaire.catalog import versions  # noqa: E402
from vaultaire.catalog.rows import ARTIFACT_COLUMNS, extra_json  # noqa: E402
from vaultaire.model import Artifact  # noqa: E402

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
PAGE = 1000
SIZE = 4096
VERSIONING = {"Status": "Enabled"}


class BaselineDaemon(Daemon):
    """A daemon running another tree of this repository's code (first on PYTHONPATH)."""

    def __init__(self, base: Path, tree: Path) -> None:
        super().__init__(base)
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


def ctx_for(d: Daemon, bucket: str, workdir: Path) -> Any:
    args = argparse.Namespace(
        endpoint=d.endpoint_url,
        bucket=bucket,
        pid=[d.proc.pid] if d.proc else [],
        workdir=str(workdir),
        region=d.region,
        access_key=d.access_key,
        secret_key=d.secret_key,
        quiet=True,
    )
    return s3bench.Ctx(args)


def small(d: Daemon, kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """One daemon's 4 KiB GET and PUT runs: {"get": req/s, "put": req/s}."""
    s3 = d.boto3_client()
    bucket = "bench"
    s3.create_bucket(Bucket=bucket)
    if kind == "versioned":
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=VERSIONING)
    if kind == "baseline":
        # Proof the old code is what runs: it has no versioning to turn on.
        try:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=VERSIONING)
        except s3.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "NotImplemented", e.response
        else:
            raise RuntimeError(f"the baseline daemon ({args.baseline}) turned versioning on: not the old code")
    ctx = ctx_for(d, bucket, workdir)
    o = argparse.Namespace(
        prefix="",
        objects=1000,
        size=SIZE,
        keys=1000,
        connections=32,
        threads=2,
        duration=args.duration,
        timeout=30,
    )
    get_prep = s3bench.prep_small_get(ctx, o)
    if kind == "versioned":
        body = os.urandom(SIZE)
        keys = [f"small/obj{i:05d}" for i in range(o.objects)]
        for _ in range(args.versions - 1):
            s3bench.parallel(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=body), keys, 8)
    get = s3bench.bench_small_get(ctx, o, get_prep)
    put_prep = s3bench.prep_small_put(ctx, o)
    put = s3bench.bench_small_put(ctx, o, put_prep)
    for name, res in (("get", get), ("put", put)):
        if res["errors"] or res.get("postcheck_bad"):
            raise RuntimeError(f"{kind} {name}: {res}")
    # Server CPU per request: on a busy machine, the cost measure that other load disturbs least.
    return {
        "get": float(get["req_per_s"]),
        "put": float(put["req_per_s"]),
        "get_cpu": float(get.get("server_cpu_us_per_req", "nan")),
        "put_cpu": float(put.get("server_cpu_us_per_req", "nan")),
    }


def throughput(args: argparse.Namespace, scratch: Path) -> dict[str, dict[str, list[float]]]:
    tree = scratch / "baseline-tree"
    if not tree.exists():
        export(args.baseline, tree)
    kinds = ["baseline", "unversioned", "versioned"]
    results: dict[str, dict[str, list[float]]] = {
        k: {"get": [], "put": [], "get_cpu": [], "put_cpu": []} for k in kinds
    }
    for run in range(args.runs):
        order = kinds[run % 3 :] + kinds[: run % 3]
        for kind in order:
            base = scratch / f"{kind}-{run}"
            if kind == "baseline":
                d: Daemon = BaselineDaemon(base, tree)
            elif args.this_tree:
                d = BaselineDaemon(base, Path(args.this_tree))
            else:
                d = Daemon(base)
            d.start()
            try:
                found = small(d, kind, args, base / "work")
            finally:
                d.stop()
                shutil.rmtree(base, ignore_errors=True)
            for name, value in found.items():
                results[kind][name].append(value)
            print(
                f"# run {run + 1} {kind}: GET {found['get']:.0f} req/s ({found['get_cpu']:.0f} us CPU/req),"
                f" PUT {found['put']:.0f} req/s ({found['put_cpu']:.0f} us CPU/req), load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    return results


# -- one request at a time: the server's CPU per request with the least contention


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sequential_one(d: Daemon, versioned: bool, gets: int, puts: int) -> tuple[float, float]:
    """(CPU us per GET, CPU us per PUT overwrite) of 4 KiB objects, one keep-alive connection."""
    s3 = d.boto3_client()
    bucket = "sequential"
    s3.create_bucket(Bucket=bucket)
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=VERSIONING)
    body = os.urandom(SIZE)
    keys = [f"k{i}" for i in range(100)]

    def signed(operation: str) -> list[Any]:
        return [
            urllib.parse.urlsplit(s3.generate_presigned_url(operation, Params={"Bucket": bucket, "Key": k}))
            for k in keys
        ]

    put_urls, get_urls = signed("put_object"), signed("get_object")
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
    assert d.proc is not None

    def run(urls: list[Any], method: str, n: int) -> float:
        start = _cpu_seconds(d.proc.pid)  # type: ignore[union-attr]
        for i in range(n):
            u = urls[i % len(urls)]
            conn.request(method, f"{u.path}?{u.query}", body=body if method == "PUT" else None)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"{method}: {response.status} {data[:300]!r}")
        return (_cpu_seconds(d.proc.pid) - start) / n * 1e6  # type: ignore[union-attr]

    run(put_urls, "PUT", len(put_urls))  # the objects (and, versioned, their first version)
    run(get_urls, "GET", len(get_urls))  # warm-up
    return run(get_urls, "GET", gets), run(put_urls, "PUT", puts)


def sequential(args: argparse.Namespace, scratch: Path) -> dict[str, list[tuple[float, float]]]:
    tree = scratch / "baseline-tree"
    if not tree.exists():
        export(args.baseline, tree)
    kinds = ["baseline", "unversioned", "versioned"]
    found: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
    for run in range(args.runs):
        for kind in kinds[run % 3 :] + kinds[: run % 3]:
            base = scratch / f"seq-{kind}-{run}"
            if kind == "baseline":
                d: Daemon = BaselineDaemon(base, tree)
            elif args.this_tree:
                d = BaselineDaemon(base, Path(args.this_tree))
            else:
                d = Daemon(base)
            d.start()
            try:
                found[kind].append(sequential_one(d, kind == "versioned", 3000, 600))
            finally:
                d.stop()
                shutil.rmtree(base, ignore_errors=True)
            get_us, put_us = found[kind][-1]
            print(f"# sequential run {run + 1} {kind}: {get_us:.0f} us CPU/GET, {put_us:.0f} us CPU/PUT", flush=True)
    return found


# -- the catalog's hot path in process, without HTTP: old and new code in one run

CATALOG_PROBE = r"""
import os, sys, tempfile, time
from twisted.internet import reactor, task
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.model import Artifact
from vaultaire.sealing import SecretBox

async def main(reactor, versioned):
    catalog = SQLiteCatalog(os.path.join(tempfile.mkdtemp(), "c.sqlite3"), reactor, SecretBox(os.urandom(32)))
    await catalog.start()
    tenant = await catalog.ensure_tenant("t")
    container = await catalog.create_container(tenant.id, "b", "local")
    if versioned:
        await catalog.put_setting(container, "versioning", "Enabled")
    keys = [f"obj{i:05d}" for i in range(1000)]
    for k in keys:
        await catalog.put_artifact(Artifact(container.id, k, "loc/" + k, 4096, "0" * 32, 1.0))
    reads = 20000
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(reads):
        await catalog.artifact(container.id, keys[i % 1000])
    read_us = (time.process_time() - c0) / reads * 1e6
    writes = 2000
    c0 = time.process_time()
    for i in range(writes):  # overwrites: versioned, each one demotes the current version
        await catalog.put_artifact(Artifact(container.id, keys[i % 1000], f"w/{i}", 4096, "0" * 32, 2.0))
    write_us = (time.process_time() - c0) / writes * 1e6
    print(f"{read_us:.1f} {write_us:.1f}")
    await catalog.stop()

task.react(lambda r: __import__("twisted.internet.defer", fromlist=["x"]).ensureDeferred(main(r, sys.argv[1] == "1")))
"""


def catalog_costs(args: argparse.Namespace, scratch: Path) -> dict[str, list[tuple[float, float]]]:
    """CPU microseconds per catalog point read and per overwrite, in a process of each code."""
    tree = scratch / "baseline-tree"
    if not tree.exists():
        export(args.baseline, tree)
    found: dict[str, list[tuple[float, float]]] = {"baseline": [], "unversioned": [], "versioned": []}
    for _ in range(args.runs):
        for kind in found:
            env = dict(os.environ)
            if kind == "baseline":
                env["PYTHONPATH"] = str(tree)
            elif args.this_tree:
                env["PYTHONPATH"] = str(args.this_tree)
            out = subprocess.run(
                [sys.executable, "-c", CATALOG_PROBE, "1" if kind == "versioned" else "0"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                cwd=str(scratch),
            ).stdout.split()
            found[kind].append((float(out[0]), float(out[1])))
    return found


# -- listings


def key_of(i: int, dirs: int, per_dir: int) -> str:
    return f"dir{i // per_dir:04d}/file{i % per_dir:06d}"


def load(data_dir: Path, bucket: str, n_keys: int, n_versions: int, dirs: int) -> tuple[list[str], int]:
    """Rows for every version of every key; returns (keys in order, versions + markers written)."""
    db = sqlite3.connect(data_dir / "catalog.sqlite3", isolation_level=None)
    (container_id,) = db.execute("SELECT id FROM containers WHERE name = ?", (bucket,)).fetchone()
    per_dir = -(-n_keys // dirs)
    keys = sorted(key_of(i, dirs, per_dir) for i in range(n_keys))
    now = time.time()
    md5 = "d41d8cd98f00b204e9800998ecf8427e"
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    currents, olds = [], []
    written = 0
    for i, key in enumerate(keys):
        raw = key.encode()
        top = versions._rank_of_time(now) - 10 * n_versions * i  # ranks: newer is lower
        for age in range(n_versions):  # age 0: the newest
            rank = top + age
            marker = age == 0 and i % 10 == 0
            version = Artifact(
                container_id,
                key,
                "" if marker else f"bench/{i}/{age}",
                0 if marker else 1024,
                "" if marker else md5,
                now - age,
                version_id=versions._mint(rank),
                delete_marker=marker,
                is_latest=age == 0,
            )
            row = (container_id, raw, version.locator, version.size, version.md5, version.modified,
                   version.content_type, extra_json(version, rank))  # fmt: skip
            if age == 0 and not marker:
                currents.append(row)
            else:
                olds.append((*row, rank, version.version_id))
            written += 1
        if len(olds) > 50_000:
            flush(db, currents, olds)
    flush(db, currents, olds)
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return keys, written


def flush(db: sqlite3.Connection, currents: list[Any], olds: list[Any]) -> None:
    db.executemany(f"INSERT INTO artifacts ({ARTIFACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", currents)
    db.executemany(
        f"INSERT INTO versions ({ARTIFACT_COLUMNS}, rank, version_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", olds
    )
    currents.clear()
    olds.clear()


class Client:
    """Presigned listings over one persistent connection: signing and parsing are not timed."""

    def __init__(self, d: Daemon, bucket: str) -> None:
        self.s3 = d.boto3_client()
        self.bucket = bucket
        self.conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=120)

    def url(self, operation: str, **params: Any) -> str:
        return str(self.s3.generate_presigned_url(operation, Params={"Bucket": self.bucket, **params}, ExpiresIn=3600))

    def get(self, url: str) -> tuple[float, ET.Element]:
        parts = urllib.parse.urlsplit(url)
        started = time.perf_counter()
        self.conn.request("GET", f"{parts.path}?{parts.query}")
        response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {body[:500]!r}")
        return elapsed, ET.fromstring(body)


def timed(client: Client, url: str, repeat: int) -> tuple[float, float, ET.Element]:
    client.get(url)  # warm-up
    times, doc = [], None
    for _ in range(repeat):
        elapsed, doc = client.get(url)
        times.append(elapsed * 1000)
    assert doc is not None
    return statistics.median(times), min(times), doc


def listings(args: argparse.Namespace, scratch: Path) -> list[dict[str, Any]]:
    bucket = "versions"
    d = Daemon(scratch / "listing").start()
    try:
        s3 = d.boto3_client()
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=VERSIONING)
    finally:
        d.stop()
    started = time.monotonic()
    keys, written = load(d.data_dir, bucket, args.keys, args.versions, args.dirs)
    print(f"# {len(keys):,} keys x {args.versions} versions ({written:,} rows) loaded in "
          f"{time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
    d.restart()
    rows: list[dict[str, Any]] = []
    try:
        client = Client(d, bucket)
        listed = [k for i, k in enumerate(keys) if i % 10 != 0]  # keys whose current version is data
        for name, start in (
            ("first", 0),
            ("middle", len(listed) // 2 // PAGE * PAGE),
            ("last", (len(listed) - 1) // PAGE * PAGE),
        ):
            params: dict[str, Any] = {"MaxKeys": PAGE}
            if start:
                params["StartAfter"] = listed[start - 1]  # the page ListObjectsV2's token would give
            median, least, doc = timed(client, client.url("list_objects_v2", **params), args.repeat)
            got = [e.findtext(f"{NS}Key") for e in doc.findall(f"{NS}Contents")]
            assert got == listed[start : start + PAGE], f"ListObjectsV2 {name} page is wrong"
            rows.append(
                {"listing": "ListObjectsV2", "page": name, "entries": len(got), "median_ms": median, "min_ms": least}
            )
        total = len(keys) * args.versions
        for name, start in (("first", 0), ("middle", total // 2 // PAGE * PAGE), ("last", (total - 1) // PAGE * PAGE)):
            params = {"MaxKeys": PAGE}
            if start:
                # The marker of the page before: the last version of key number start-1 // versions.
                index = (start - 1) // args.versions
                before = client.get(client.url("list_object_versions", Prefix=keys[index], MaxKeys=args.versions))[1]
                ids = [e.findtext(f"{NS}VersionId") for e in before if e.tag in (f"{NS}Version", f"{NS}DeleteMarker")]
                params.update(KeyMarker=keys[index], VersionIdMarker=ids[(start - 1) % args.versions])
            median, least, doc = timed(client, client.url("list_object_versions", **params), args.repeat)
            entries = [e for e in doc if e.tag in (f"{NS}Version", f"{NS}DeleteMarker")]
            first = entries[0].findtext(f"{NS}Key")
            assert first == keys[start // args.versions], f"ListObjectVersions {name} page starts at {first}"
            rows.append(
                {"listing": "ListObjectVersions", "page": name, "entries": len(entries), "median_ms": median}
                | {"min_ms": least}
            )
    finally:
        d.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="78f6c56", help="git ref of the code before versioning")
    parser.add_argument(
        "--this-tree",
        help="run the unversioned and versioned daemons from this source tree instead of the working tree"
        " (to measure versioning alone, without what was merged beside it)",
    )
    parser.add_argument("--runs", type=int, default=3, help="repetitions of the GET/PUT runs (median reported)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--keys", type=int, default=100_000, help="keys of the listing bucket")
    parser.add_argument("--versions", type=int, default=5, help="versions of each key")
    parser.add_argument("--dirs", type=int, default=100, help="directories the listing keys are spread over")
    parser.add_argument("--repeat", type=int, default=7, help="timed requests per listing page")
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: catalog, sequential, throughput, listing"
    )
    parser.add_argument("--scratch", help="where data directories go (default: a temp dir, removed at the end)")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    parts = ("catalog", "sequential", "throughput", "listing")
    if skip - set(parts):
        parser.error(f"--skip takes {', '.join(parts)}")
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="vaultaire-versions-bench-"))
    try:
        if "catalog" not in skip:
            costs = catalog_costs(args, scratch)
            base_read = statistics.median(r for r, _w in costs["baseline"])
            base_write = statistics.median(w for _r, w in costs["baseline"])
            print(f"\nCatalog in process, CPU us per call (median of {args.runs}): point read, overwrite\n")
            print("| code | read us | vs baseline | overwrite us | vs baseline |")
            print("|---|---:|---:|---:|---:|")
            for kind, runs in costs.items():
                read = statistics.median(r for r, _w in runs)
                write = statistics.median(w for _r, w in runs)
                print(
                    f"| {kind} | {read:.1f} | {read / base_read - 1:+.1%} | {write:.1f}"
                    f" | {write / base_write - 1:+.1%} |"
                )
        if "sequential" not in skip:
            seq = sequential(args, scratch)
            base_get = statistics.median(g for g, _p in seq["baseline"])
            base_put = statistics.median(p for _g, p in seq["baseline"])
            print(f"\nOne request at a time, server CPU us per request (median of {args.runs})\n")
            print("| daemon | GET us | vs baseline | PUT (overwrite) us | vs baseline |")
            print("|---|---:|---:|---:|---:|")
            for kind, runs in seq.items():
                get_us = statistics.median(g for g, _p in runs)
                put_us = statistics.median(p for _g, p in runs)
                print(
                    f"| {kind} | {get_us:.0f} | {get_us / base_get - 1:+.1%} | {put_us:.0f}"
                    f" | {put_us / base_put - 1:+.1%} |"
                )
        if "throughput" not in skip:
            results = throughput(args, scratch)
            base = {name: statistics.median(results["baseline"][name]) for name in results["baseline"]}
            cpu: dict[str, tuple[float, float]] = {}
            print(f"\n4 KiB, wrk 32 connections, {args.duration} s, median of {args.runs} runs (req/s)\n")
            print("| daemon | GET req/s | vs baseline | PUT req/s | vs baseline | runs GET | runs PUT |")
            print("|---|---:|---:|---:|---:|---|---|")
            for kind, found in results.items():
                get, put = statistics.median(found["get"]), statistics.median(found["put"])
                cpu[kind] = (statistics.median(found["get_cpu"]), statistics.median(found["put_cpu"]))
                gets, puts = (", ".join(f"{v:.0f}" for v in found[name]) for name in ("get", "put"))
                print(
                    f"| {kind} | {get:.0f} | {get / base['get'] - 1:+.1%} | {put:.0f} | {put / base['put'] - 1:+.1%}"
                    f" | {gets} | {puts} |"
                )
            print("\nServer CPU per request (us, median): the cost other load disturbs least\n")
            print("| daemon | GET us/req | vs baseline | PUT us/req | vs baseline |")
            print("|---|---:|---:|---:|---:|")
            for kind, (get_cpu, put_cpu) in cpu.items():
                print(
                    f"| {kind} | {get_cpu:.0f} | {get_cpu / base['get_cpu'] - 1:+.1%} | {put_cpu:.0f}"
                    f" | {put_cpu / base['put_cpu'] - 1:+.1%} |"
                )
        if "listing" not in skip:
            rows = listings(args, scratch)
            print(
                f"\n{args.keys:,} keys x {args.versions} versions, pages of {PAGE}: ms (median of {args.repeat}, min)\n"
            )
            print("| listing | page | entries | median ms | min ms |")
            print("|---|---|---:|---:|---:|")
            for r in rows:
                print(f"| {r['listing']} | {r['page']} | {r['entries']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} |")
    finally:
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
