#!/usr/bin/env python3
"""Encryption at rest: SSE-S3, SSE-C and SSE-KMS against plain in the same run, on one real daemon.

Starts one ``twistd vaultaire`` (one process, plain HTTP on 127.0.0.1, SSE-C allowed there
by ``sse_c_plain_http``) and measures, mode after mode so all see the same machine:

* 1 GiB PUT (curl -T, presigned; the SSE headers are signed), MB/s,
* 1 GiB GET (curl -o /dev/null), MB/s,
* the daemon's peak RSS during each of those transfers (VmRSS sampled every 20 ms),
* 4 KiB GETs with wrk (2 threads, 16 connections, --seconds each), req/s: every mode once
  per round, ``--small-rounds`` rounds, medians,
* a 1 MiB range GET from the middle of the encrypted 1 GiB object, three times (the first may
  read the disk, the others the page cache): time, and the bytes the
  daemon read (``rchar`` of /proc/PID/io) next to the plaintext bytes the packages it had
  to open hold (computed from the package format).

Run by hand (never from the tests):

    .venv/bin/python bench/sse.py [--size-mib 1024] [--seconds 10] [--scratch /tmp/vbench-sse]

With ``--baseline-ref REF`` it instead compares this checkout with REF (``git archive`` of it,
e.g. ``main``) in one run: one daemon of each, the same objects PUT to both, then ``--rounds``
rounds of 1 GiB GETs, every mode on both daemons in each round (who goes first alternates),
reporting medians of GET MB/s and of the daemon's CPU seconds per GiB (robust on a loaded
machine), with the load average:

    .venv/bin/python bench/sse.py --baseline-ref main --rounds 5 --modes plain,sse-s3,sse-c
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from daemon import ACCESS_KEY, REGION, SECRET_KEY, Daemon  # noqa: E402

from vaultaire.encryption.packages import PACKAGE, sealed_range  # noqa: E402
from vaultaire.sigv4 import presign_url  # noqa: E402

MIB = 2**20
_KEY = os.urandom(32)
SSE_C = {
    "x-amz-server-side-encryption-customer-algorithm": "AES256",
    "x-amz-server-side-encryption-customer-key": base64.b64encode(_KEY).decode(),
    "x-amz-server-side-encryption-customer-key-md5": base64.b64encode(hashlib.md5(_KEY).digest()).decode(),
}
# (label, headers of the PUT, headers every GET must send)
MODES = (
    ("plain", {}, {}),
    ("sse-s3", {"x-amz-server-side-encryption": "AES256"}, {}),
    ("sse-c", SSE_C, SSE_C),
    ("sse-kms", {"x-amz-server-side-encryption": "aws:kms"}, {}),
)


class PeakRss:
    """The largest VmRSS of ``pid`` seen while running."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            except OSError:
                return
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rchar(pid: int) -> int:
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise RuntimeError("no rchar")


def url_for(d: Daemon, method: str, key: str, headers: dict[str, str] | None = None) -> str:
    return presign_url(
        method,
        f"{d.endpoint_url}/bench/{key}",
        ACCESS_KEY,
        SECRET_KEY,
        REGION,
        now=datetime.now(UTC),
        expires=3600,
        extra_signed_headers=headers,
    )


def curl(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "-f", "--max-time", "900", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def source_file(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        for _ in range(size // MIB):
            f.write(block)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: int, headers: dict[str, str], pid: int) -> tuple[float, float]:
    """(req/s, the daemon's CPU µs per request): the second holds up on a loaded machine."""
    extra = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    before = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", *extra, url], capture_output=True, text=True, check=True
    ).stdout
    used = cpu_seconds(pid) - before
    if "Non-2xx" in out:
        raise RuntimeError(out)
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]  # wrk always says it
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), used / count * 1e6  # type: ignore[union-attr]


def main() -> None:
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--size-mib", type=int, default=1024)
    a.add_argument("--seconds", type=int, default=10)
    a.add_argument("--small-rounds", type=int, default=3, help="rounds of 4 KiB GETs (every mode in each)")
    a.add_argument("--scratch", default=None)
    a.add_argument("--modes", default="plain,sse-s3,sse-c,sse-kms", help="comma-separated; plain first")
    a.add_argument("--baseline-ref", default=None, help="compare 1 GiB GETs with this git ref (see above)")
    a.add_argument("--rounds", type=int, default=5, help="with --baseline-ref: GET rounds")
    o = a.parse_args()
    if o.baseline_ref:
        compare(o)
        return
    wanted = o.modes.split(",")
    scratch = Path(o.scratch or tempfile.mkdtemp(prefix="vbench-sse-"))
    scratch.mkdir(parents=True, exist_ok=True)
    size = o.size_mib * MIB
    src = scratch / "source.bin"
    source_file(src, size)
    small = scratch / "small.bin"
    small.write_bytes(os.urandom(4096))
    config = scratch / "vaultaire.toml"
    config.write_text("[security]\nsse_c_plain_http = true\n")
    d = Daemon(scratch / "daemon", workers=1, extra_args=["--config", str(config)]).start()
    try:
        s3 = d.boto3_client()
        s3.create_bucket(Bucket="bench")
        pid = d.pid
        rows = []
        cpu_rows: dict[str, tuple[float, float]] = {}
        for label, headers, read_headers in MODES:
            if label not in wanted:
                continue
            extra = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
            read_extra = [arg for name, value in read_headers.items() for arg in ("-H", f"{name}: {value}")]
            key = f"big-{label}"
            cpu0 = cpu_seconds(pid)
            with PeakRss(pid) as put_rss:
                put_s = curl(["-T", str(src), *extra, url_for(d, "PUT", key, headers)])
            cpu1 = cpu_seconds(pid)
            with PeakRss(pid) as get_rss:
                get_s = curl(["-o", "/dev/null", *read_extra, url_for(d, "GET", key, read_headers)])
            cpu2 = cpu_seconds(pid)
            # The daemon's CPU per GiB moved: what throughput would be where the CPU is the limit.
            cpu_rows[label] = ((cpu1 - cpu0) / (size / 2**30), (cpu2 - cpu1) / (size / 2**30))
            curl(["-T", str(small), *extra, url_for(d, "PUT", f"small-{label}", headers)])
            rows.append((label, size / put_s / 1e6, size / get_s / 1e6, put_rss.peak_kib, get_rss.peak_kib, 0.0, 0.0))
        # 4 KiB GETs: every mode once per round, the medians reported (one run each swung by ±0.05).
        small_runs: dict[str, list[tuple[float, float]]] = {}
        for _ in range(o.small_rounds):
            for label, _, read_headers in MODES:
                if label in wanted:
                    url = url_for(d, "GET", f"small-{label}", read_headers)
                    small_runs.setdefault(label, []).append(wrk(url, o.seconds, read_headers, pid))
        rows = [
            (
                *row[:5],
                statistics.median(r[0] for r in small_runs[row[0]]),
                statistics.median(r[1] for r in small_runs[row[0]]),
            )
            for row in rows
        ]
        print(
            f"object {o.size_mib} MiB; 4 KiB GETs {o.seconds} s each, medians of {o.small_rounds} rounds; "
            f"one daemon process (pid {pid})"
        )
        print(
            "| mode | PUT MB/s | GET MB/s | peak RSS PUT MiB | peak RSS GET MiB | 4 KiB GET req/s "
            "| 4 KiB GET daemon CPU µs/req |"
        )
        print("|---|---|---|---|---|---|---|")
        for label, put, get, prss, grss, rps, cpu in rows:
            print(
                f"| {label} | {put:.0f} | {get:.0f} | {prss / 1024:.0f} | {grss / 1024:.0f} | {rps:.0f} | {cpu:.0f} |"
            )
        print(
            "daemon CPU seconds per GiB: " + ", ".join(f"{k} PUT {p:.2f} GET {g:.2f}" for k, (p, g) in cpu_rows.items())
        )
        plain = rows[0]
        for enc in rows[1:]:
            p_cpu, e_cpu = cpu_rows[plain[0]], cpu_rows[enc[0]]
            print(
                f"ratios {enc[0]}/plain by daemon CPU per GiB: "
                f"PUT {p_cpu[0] / e_cpu[0]:.2f}, GET {p_cpu[1] / e_cpu[1]:.2f}"
            )
            print(
                f"ratios {enc[0]}/plain: PUT {enc[1] / plain[1]:.2f}, GET {enc[2] / plain[2]:.2f}, "
                f"4 KiB GET {enc[5] / plain[5]:.2f} (by daemon CPU per request: {plain[6] / enc[6]:.2f})"
            )
        if "sse-s3" not in wanted:
            return

        start = size // 2 - MIB // 2 + 1234  # not on a package boundary
        end = start + MIB - 1
        # Three times: the first may read its packages from the disk (after four 1 GiB
        # transfers the page cache need not hold them), the others from the page cache.
        took = []
        for _ in range(3):
            before = rchar(pid)
            took.append(curl(["-o", "/dev/null", "-H", f"Range: bytes={start}-{end}", url_for(d, "GET", "big-sse-s3")]))
            read = rchar(pid) - before
        where = sealed_range(start, end, size)
        packages = end // PACKAGE - where.first_package + 1
        times = ", ".join(f"{t * 1000:.1f}" for t in took)
        print(
            f"1 MiB range GET at byte {start} of the encrypted object, 3 times: {times} ms; "
            f"{packages} packages opened = {packages * PACKAGE} plaintext bytes decrypted; "
            f"daemon read {read} bytes (rchar, incl. the request) for {where.stored_end - where.stored_start + 1} "
            "stored bytes wanted"
        )
    finally:
        d.stop()


def start_baseline(ref: str, scratch: Path, config: Path) -> Daemon:
    """A daemon running ``ref``'s code (its source extracted under ``scratch``)."""
    src = scratch / "baseline-src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src) + (os.pathsep + saved if saved else "")
    try:
        d = Daemon(scratch / "baseline", workers=1, extra_args=["--config", str(config)])
        d.console_port = (src / "vaultaire" / "console").exists()
        d.start()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    return d


def compare(o: argparse.Namespace) -> None:
    """1 GiB GETs of each mode on this checkout and on ``--baseline-ref``, round after round."""
    wanted = o.modes.split(",")
    scratch = Path(o.scratch or tempfile.mkdtemp(prefix="vbench-sse-"))
    scratch.mkdir(parents=True, exist_ok=True)
    for old in ("baseline", "this"):  # a reused scratch starts afresh
        shutil.rmtree(scratch / old, ignore_errors=True)
    size = o.size_mib * MIB
    src = scratch / "source.bin"
    source_file(src, size)
    config = scratch / "vaultaire.toml"
    config.write_text("[security]\nsse_c_plain_http = true\n")
    daemons = {"baseline": start_baseline(o.baseline_ref, scratch, config)}
    try:
        daemons["this"] = Daemon(scratch / "this", workers=1, extra_args=["--config", str(config)]).start()
        modes = [m for m in MODES if m[0] in wanted]
        put: dict[tuple[str, str], tuple[float, float]] = {}
        for name, d in daemons.items():
            d.boto3_client().create_bucket(Bucket="bench")
            for label, headers, _ in modes:
                extra = [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]
                cpu0 = cpu_seconds(d.pid)
                took = curl(["-T", str(src), *extra, url_for(d, "PUT", f"big-{label}", headers)])
                put[name, label] = (size / took / 1e6, (cpu_seconds(d.pid) - cpu0) / (size / 2**30))
        got: dict[tuple[str, str], list[tuple[float, float]]] = {}
        loads = []
        for n in range(o.rounds):
            order = list(daemons) if n % 2 == 0 else list(daemons)[::-1]
            for label, _, read_headers in modes:
                read_extra = [arg for k, v in read_headers.items() for arg in ("-H", f"{k}: {v}")]
                for name in order:
                    d = daemons[name]
                    cpu0 = cpu_seconds(d.pid)
                    took = curl(["-o", "/dev/null", *read_extra, url_for(d, "GET", f"big-{label}", read_headers)])
                    cpu = (cpu_seconds(d.pid) - cpu0) / (size / 2**30)
                    got.setdefault((name, label), []).append((size / took / 1e6, cpu))
            loads.append(os.getloadavg()[0])
            print(f"round {n + 1}/{o.rounds} done, load {loads[-1]:.1f}", flush=True)
        print(
            f"\n{o.size_mib} MiB objects, one daemon process each; this checkout vs {o.baseline_ref}; "
            f"GET medians of {o.rounds} rounds; 1-min load average {min(loads):.1f}-{max(loads):.1f}"
        )
        print("| daemon | mode | PUT MB/s | PUT CPU-s/GiB | GET MB/s | GET CPU-s/GiB | GET ratio to plain | by CPU |")
        print("|---|---|---|---|---|---|---|---|")
        for name in daemons:
            med = {
                label: (
                    statistics.median(r[0] for r in got[name, label]),
                    statistics.median(r[1] for r in got[name, label]),
                )
                for label, _, _ in modes
            }
            plain = med.get("plain")
            for label, _, _ in modes:
                mbs, cpu = med[label]
                ratio = f"{mbs / plain[0]:.2f} | {plain[1] / cpu:.2f}" if plain else "- | -"
                print(
                    f"| {name} | {label} | {put[name, label][0]:.0f} | {put[name, label][1]:.2f} "
                    f"| {mbs:.0f} | {cpu:.2f} | {ratio} |"
                )
    finally:
        for d in daemons.values():
            d.stop()


if __name__ == "__main__":
    main()
