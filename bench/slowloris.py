#!/usr/bin/env python3
"""Latency of normal GETs while slow clients hold connections open (slowloris).

Run by hand, never from the test suite. Starts a Vaultaire (``tests/daemon.py``)
on free loopback ports with a fresh data directory, stores a 4 KiB object,
measures ``--gets`` presigned GETs of it over ``--connections`` persistent
connections (baseline), then opens ``--slow`` slow connections (half dribble a
request head at 1 byte/s, half crawl through a signed PUT body at 10 B/s;
each one the server drops is replaced at once, so ``--slow`` stay open) and
measures the same GETs again, for ``--seconds`` at least. Prints one JSON line
per phase and a Markdown table. The daemon runs with its default connection
limits unless ``--config FILE`` says otherwise.

    .venv/bin/python bench/slowloris.py --slow 500 --gets 2000 --workers 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from daemon import Daemon  # noqa: E402  (tests/daemon.py: the shared real-daemon helper)
from slow_clients import SlowClients, get_latencies, summary  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=500, help="slow connections held open")
    parser.add_argument("--gets", type=int, default=2000, help="GETs measured per phase")
    parser.add_argument("--connections", type=int, default=4, help="parallel connections for the GETs")
    parser.add_argument("--seconds", type=float, default=60.0, help="at least this long under attack")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--config", help="a vaultaire TOML file (e.g. other [connections] limits)")
    args = parser.parse_args()

    extra = ["--config", args.config] if args.config else []
    with tempfile.TemporaryDirectory(prefix="vaultaire-slowloris-") as tmp:
        d = Daemon(Path(tmp), workers=args.workers, extra_args=extra).start()
        slow = None
        try:
            assert d.port is not None
            s3 = d.boto3_client()
            s3.create_bucket(Bucket="slow")
            s3.put_object(Bucket="slow", Key="small", Body=os.urandom(4096))
            get = s3.generate_presigned_url("get_object", Params={"Bucket": "slow", "Key": "small"}, ExpiresIn=3600)
            put = s3.generate_presigned_url("put_object", Params={"Bucket": "slow", "Key": "loris"}, ExpiresIn=3600)
            get_path, put_path = (url.split(str(d.port), 1)[1] for url in (get, put))

            get_latencies(d.port, [get_path] * 50, args.connections)  # warm up
            rows = [("baseline (0 slow)", summary(get_latencies(d.port, [get_path] * args.gets, args.connections)))]
            slow = SlowClients(d.port, args.slow, put_path).start()
            slow.wait_open(120)
            started = time.monotonic()
            latencies: list[float] = []
            while not latencies or time.monotonic() - started < args.seconds:
                latencies += get_latencies(d.port, [get_path] * args.gets, args.connections)
            attacked = summary(latencies)
            attacked["slow_open"] = slow.open
            attacked["slow_dropped"] = slow.dropped
            attacked["seconds"] = round(time.monotonic() - started, 1)
            rows.append((f"with {args.slow} slow", attacked))
        finally:
            if slow is not None:
                slow.stop()
            d.stop()
    for name, row in rows:
        print(json.dumps({"phase": name, "workers": args.workers, **row}))
    print("\n| phase | GETs | p50 ms | p99 ms | mean ms | slow dropped |")
    print("|---|---|---|---|---|---|")
    for name, row in rows:
        print(
            f"| {name} | {row['n']} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['mean_ms']:.1f}"
            f" | {row.get('slow_dropped', '')} |"
        )


if __name__ == "__main__":
    main()
