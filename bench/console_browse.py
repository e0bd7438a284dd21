#!/usr/bin/env python3
"""How long the console's browse page of 1,000 keys takes. Run by hand, never in tests.

Starts ``twistd vaultaire`` with its console (tests/daemon.py's ``Daemon``), puts 1,000 small
objects in one bucket, signs in, and times ``GET /b/BUCKET`` (one page: the console lists the
1,000 keys with ListObjectsV2 from the S3 port, then builds and writes the page):

- server side: the whole HTTP exchange from this process (median and min of ``--repeat``),
  and the daemon's CPU per page from /proc (robust on a loaded machine);
- with ``--chromium``: Debian's Chromium (playwright-core, as the browser tests install them)
  loading the same page, from the navigation's start to responseEnd, DOMContentLoaded and load.

    .venv/bin/python bench/console_browse.py --repeat 15 --chromium
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from console_http import Browser  # noqa: E402
from daemon import Daemon, free_port, write_config  # noqa: E402

BUCKET = "browse"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.0f} ms, min {min(values) * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--chromium", action="store_true", help="also time the page in Chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="console-browse-") as scratch:
        port = free_port()
        config = write_config(Path(scratch), "")
        with Daemon(
            Path(scratch), extra_args=["--console", f"tcp:{port}:interface=127.0.0.1", "--config", config]
        ) as d:
            s3 = d.boto3_client()
            s3.create_bucket(Bucket=BUCKET)
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda i: s3.put_object(Bucket=BUCKET, Key=f"photos-{i:05d}.jpg", Body=b"x" * 100),
                        range(args.keys),
                    )
                )
            base = f"http://127.0.0.1:{port}"
            b = Browser(base)
            assert b.login(d.access_key or "", d.secret_key or "") == 303
            status, _, page = b.request("GET", f"/b/{BUCKET}")  # once untimed: caches warm
            assert status == 200 and page.count("photos-") >= args.keys, status
            times = []
            cpu_before = cpu_seconds(d.pid)
            for _ in range(args.repeat):
                started = time.perf_counter()
                status, _, page = b.request("GET", f"/b/{BUCKET}")
                times.append(time.perf_counter() - started)
                assert status == 200
            cpu = (cpu_seconds(d.pid) - cpu_before) / args.repeat
            print(f"page of {args.keys} keys, {len(page.encode()) / 1024:.0f} KiB of HTML")
            print(f"server side (whole HTTP exchange): {ms(times)} over {args.repeat}")
            print(f"daemon CPU per page: {cpu * 1000:.0f} ms")
            print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            if args.chromium:
                chromium_times(base, d, args.repeat, Path(scratch))


def chromium_times(base: str, d: Daemon, repeat: int, scratch: Path) -> None:
    from npm import npm_modules
    from test_browser import JS_DIR

    from tests.commands import apt_program

    chromium = apt_program("chromium", "chromium")
    modules = npm_modules(JS_DIR, "playwright-core", "browser")
    plan = {
        "console": base,
        "chromium": chromium,
        "access": d.access_key,
        "secret": d.secret_key,
        "path": f"/b/{BUCKET}",
        "repeat": repeat,
    }
    plan_file = scratch / "plan.json"
    plan_file.write_text(json.dumps(plan))
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update({"NODE_PATH": str(modules), "HOME": str(scratch)})
    script = Path(__file__).parent / "console_browse.js"
    done = subprocess.run(["node", str(script), str(plan_file)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    timings = json.loads(done.stdout)
    for name in ("responseEnd", "domContentLoadedEventEnd", "loadEventEnd"):
        values = [t[name] / 1000 for t in timings]
        print(f"chromium, navigation start to {name}: {ms(values)} over {len(values)}")


if __name__ == "__main__":
    main()
