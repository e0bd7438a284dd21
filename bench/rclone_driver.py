#!/usr/bin/env python3
"""The rclone driver's cost: Vaultaire over rclone (local backend) vs Vaultaire's local driver
vs ``rclone serve s3`` straight, in one run.

Starts, on 127.0.0.1, one after the other:

* Vaultaire whose default placement is an rclone driver on rclone's ``local`` backend
  (Vaultaire runs ``rclone serve s3`` itself: that process is the daemon's child and is
  counted with it),
* Vaultaire with its local driver,
* ``rclone serve s3`` on a local directory, with one key pair,

and runs the shared harness (``bench/harness/s3bench.py``) against each:

* large-put: one 1 GiB PUT with curl to a presigned URL (MB/s),
* large-get: one 1 GiB GET with curl, single stream (MB/s),
* small-get: 4 KiB GETs with wrk, 32 connections, 10 s (req/s, p50/p99).

Run by hand (needs curl and wrk: ``apt-get install -y curl wrk``):

    .venv/bin/python bench/rclone_driver.py --runs 3 [--scratch /tmp/vbench-rclone] [--size-mib 1024]

The machine is shared: the harness waits (bounded) for it to be quiet before each run,
and the figures are medians of --runs repetitions.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from daemon import Daemon, free_port  # noqa: E402
from s3driver import BENCHES, figure, run_harness  # noqa: E402

RCLONE = os.path.join(os.path.dirname(sys.executable), "rclone")
ACCESS, SECRET = "RCLONEBENCHACCESS01", "rclone-bench-secret-0123456789"


def rclone_straight(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "RCLONE_AUTH_KEY": f'"{ACCESS},{SECRET}"', "RCLONE_CONFIG": "/dev/null"}
    proc = subprocess.Popen(
        [RCLONE, "serve", "s3", "--addr", f"127.0.0.1:{port}", str(root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(root.parent / "rclone-straight.log", "wb"),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("rclone serve s3 did not listen")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--scratch", default=None, help="data dirs and the 1 GiB source (default: a new temp dir)")
    a = ap.parse_args()
    a.scratch = a.scratch or tempfile.mkdtemp(prefix="vbench-rclone-")
    scratch = Path(a.scratch)
    results = {}

    config = scratch / "vaultaire-rclone.toml"
    (scratch / "rclone.conf").write_text("[loc]\ntype = local\n")
    config.write_text(
        f'[drivers.rc]\ntype = "rclone"\nremote = "loc:{scratch}/rclone-remote/blobs"\n'
        f'rclone_config = "{scratch}/rclone.conf"\n\n[placement]\ndefault = "rc"\n'
    )
    for name, args in (("vaultaire-rclone", ["--config", str(config)]), ("vaultaire-local", [])):
        daemon = Daemon(scratch / name, extra_args=args, startup_timeout=60).start()
        try:
            results[name] = run_harness(
                name, daemon.endpoint_url, daemon.access_key or "", daemon.secret_key or "", [daemon.pid], a
            )
        finally:
            daemon.stop()
    proc, endpoint = rclone_straight(scratch / "rclone-straight" / "root")
    try:
        results["rclone-straight"] = run_harness("rclone-straight", endpoint, ACCESS, SECRET, [proc.pid], a)
    finally:
        proc.terminate()
        proc.wait(10)

    names = ("vaultaire-rclone", "vaultaire-local", "rclone-straight")
    print(
        "\n| benchmark | Vaultaire, rclone driver (local backend) | Vaultaire, local driver"
        " | rclone serve s3 straight | rclone driver / local driver | rclone driver / rclone straight |"
    )
    print("|---|---|---|---|---|---|")
    for bench in BENCHES:
        cells, values = [], []
        for name in names:
            value, unit, extra = figure(results[name][bench], bench)
            cells.append(f"{value:.1f} {unit} ({extra})")
            values.append(value)
        ratios = [f"{values[0] / v:.2f}" if v else "-" for v in values[1:]]
        print(f"| {bench} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    print("\nRSS/CPU: the Vaultaire daemon with its children (so its rclone too), or the rclone process.")
    print(f"\nruns={a.runs} (medians), size={a.size_mib} MiB, raw JSON in {scratch}/*.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
