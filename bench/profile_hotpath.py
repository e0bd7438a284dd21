#!/usr/bin/env python3
"""Where the microseconds of a 4 KiB GET and PUT go: a py-spy profile of a real daemon.

Run by hand, never from the test suite. For each operation (``--ops get,put``):

1. start ``twistd -n vaultaire`` on free 127.0.0.1 ports with a fresh data directory
   (extra daemon flags with ``--daemon-arg``, e.g. ``--daemon-arg=--workers=2``);
2. load the objects and presign the URLs with the benchmark harness (``bench/harness``:
   1000 objects of 4 KiB for GET, 20,000 presigned PUT URLs for PUT);
3. an unprofiled wrk run (32 connections, ``--duration`` s): req/s and the server's CPU
   per request from /proc (the process and its children);
4. the same wrk load again while ``py-spy record`` samples every thread of the daemon (and
   its worker processes) without pausing it; idle threads (epoll, queue waits) are not sampled.

It prints, per operation, the server CPU per request (from /proc), then the busy thread
time per request by layer (twisted.web parsing, Klein routing, SigV4, S3 handlers,
catalog, driver, thread hops, reactor and socket I/O...) and the top functions by own and
by cumulative time. Busy thread time is what py-spy samples: a thread on a core, runnable,
or inside a system call; it is close to CPU time where nothing waits for the disk (GET)
and larger where fsync does (PUT). The collapsed stacks are kept (``STAMP-profile-OP.txt`` in --out-dir) for
a flame graph (``flamegraph.pl`` or speedscope.app read them).

    .venv/bin/python bench/profile_hotpath.py --duration 10
    /tmp/vbench/venv/bin/python bench/profile_hotpath.py --twistd .venv/bin/twistd --ops get

Needs wrk on PATH, boto3 importable, and py-spy (``pip install py-spy``; attaching needs
root or ptrace rights over the daemon).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench" / "harness"))

import s3bench  # noqa: E402  (bench/harness/s3bench.py: loading, presigning, wrk, /proc accounting)

ACCESS_KEY, SECRET_KEY = "benchkey", "benchsecret123"

HOP_FUNCTIONS = (
    "ReactorBase.callFromThread",
    "ReactorBase.wakeUp",
    "_UnixWaker.wakeUp",
    "deferToThreadPool",
    "ThreadPool.callInThread",
    "ThreadPool.callInThreadWithCallback",
    "_UnixWaker.doRead",  # the reactor draining the wake-up pipe that callFromThread wrote to
)
HOPS = "thread hops (deferToThread, callFromThread, wake-ups)"
# the transport's side of writing a response: buffering, registering for writability, send()
WRITE_FUNCTIONS = ("FileDescriptor.doWrite", "FileDescriptor.startWriting", "FileDescriptor.writeSequence")
WRITING = "response writing (transport buffers, send)"
RECEIVING = "socket recv (Connection.doRead)"
REACTOR = "reactor loop and socket I/O"

# Layers, tried from the innermost frame outwards: the first frame whose file matches names
# the layer, so C calls and standard-library helpers (hmac, sqlite3, xml) are charged to the
# Vaultaire or Twisted code that called them.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("auth: SigV4/SigV2 verification", ("vaultaire/sigv4.py", "vaultaire/sigv2.py", "vaultaire/api/auth.py")),
    ("catalog (SQLite, its thread)", ("vaultaire/catalog/",)),
    ("driver (blob files)", ("vaultaire/drivers/",)),
    ("engine (write order, pipes)", ("vaultaire/engine/",)),
    ("ops: metrics and event log", ("vaultaire/ops/", "prometheus_client/")),
    ("S3 API: request, handlers, headers, XML", ("vaultaire/api/", "vaultaire/")),
    ("Klein routing (klein, werkzeug)", ("klein/", "werkzeug/")),
    (HOPS, ("twisted/_threads/", "queue.py")),
    ("Deferred machinery", ("twisted/internet/defer.py",)),
    ("twisted.web: HTTP parsing, Request, Site", ("twisted/web/", "twisted/protocols/")),
    # not twisted/python/log.py: its callWithContext wraps every reactor event, logged or not
    ("logging", ("twisted/logger/", "logging/")),
]
OTHER = "other (stdlib roots, thread bootstrap)"
# Leaf frames of a thread blocked in a wait. py-spy counts a thread as busy while it is
# runnable, so a thread just woken up (and waiting for a core or the GIL) is sampled here;
# that is no CPU spent by the daemon, and these samples are left out of the attribution.
WAIT_LEAVES = ("Condition.wait", "Event.wait", "Thread.join", "Thread._wait_for_tstate_lock", "sleep")
WAITING = "waiting (woken, not yet running)"


def layer_of(stack: list[str]) -> str:
    """The layer a sample's CPU is charged to, from its innermost frames outwards.

    Frames of the reactor itself (twisted/internet, twisted/python) only decide when no
    caller inside them names a more precise layer: ``_add`` under ``startWriting`` is
    response writing, ``untilConcludes`` under ``_UnixWaker.wakeUp`` is a thread hop.
    """
    name = stack[-1].partition(" (")[0]
    if name in WAIT_LEAVES:
        return WAITING
    if name == "Connection.doRead":
        return RECEIVING
    for frame in reversed(stack):
        name, _, where = frame.partition(" (")
        if name in HOP_FUNCTIONS:
            return HOPS
        if name in WRITE_FUNCTIONS:
            return WRITING
        if any(p in where for p in ("twisted/internet/base.py", "twisted/internet/epollreactor.py")):
            if name.endswith(("mainLoop", "runUntilCurrent", "doPoll", "doIteration")):
                return REACTOR
        for layer, prefixes in LAYERS:
            if any(p in where for p in prefixes):
                return layer
        # anything else is reactor plumbing (twisted/internet, twisted/python) or the standard
        # library: a caller further out names the layer
    return REACTOR if any("twisted/" in f for f in stack) else OTHER


# Frames every sample of a thread passes through (twistd's start-up, the reactor loop, the
# thread pools' loops): their cumulative time is the thread's, which says nothing.
PLUMBING_FILES = (
    "twisted/application/",
    "twisted/scripts/",
    "(threading.py)",
    "twisted/python/context.py",
    "twisted/python/log.py",
    "twisted/_threads/",
    "twisted/python/threadpool.py",
    "(twistd)",
)
PLUMBING_FUNCTIONS = ("ReactorBase.run", "ReactorBase.mainLoop", "EPollReactor.doPoll", "_PollLikeMixin._doReadOrWrite")


def is_plumbing(frame: str) -> bool:
    return frame.partition(" (")[0] in PLUMBING_FUNCTIONS or any(p in frame for p in PLUMBING_FILES)


@dataclass
class Profile:
    """Collapsed py-spy stacks, aggregated."""

    samples: int = 0  # busy samples, the waits excluded
    waiting: int = 0
    by_layer: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)
    cumulative: Counter[str] = field(default_factory=Counter)

    @classmethod
    def parse(cls, text: str) -> Profile:
        prof = cls()
        for line in text.splitlines():
            stack_text, _, count_text = line.rpartition(" ")
            if not stack_text or not count_text.isdigit():
                continue
            count = int(count_text)
            # py-spy prefixes a "process PID:..." frame with --subprocesses; it is no function
            stack = [f for f in stack_text.split(";") if f and not f.startswith("process ")]
            if not stack:
                continue
            layer = layer_of(stack)
            if layer == WAITING:
                prof.waiting += count
                continue
            prof.samples += count
            prof.by_layer[layer] += count
            prof.own[stack[-1]] += count
            for frame in set(stack):  # a recursive function counts once per sample
                prof.cumulative[frame] += count
        return prof


@dataclass
class Measured:
    requests: int
    req_per_s: float
    cpu_us_per_req: float
    errors: int


def measure(ctx: Any, op: str, prep: dict[str, Any], o: Any) -> Measured:
    bench = s3bench.bench_small_get if op == "get" else s3bench.bench_small_put
    r = bench(ctx, o, prep)
    return Measured(
        requests=int(r["requests"]),
        req_per_s=float(r["req_per_s"]),
        cpu_us_per_req=float(r.get("server_cpu_us_per_req") or 0.0),
        errors=int(r["errors"]) + int(r.get("postcheck_bad", 0)),
    )


def start_daemon(
    twistd: str, data: Path, daemon_args: list[str], log_path: Path
) -> tuple[subprocess.Popen[bytes], str]:
    s3_port, ops_port = free_ports(2)
    cmd = [
        twistd,
        "-n",
        "--pidfile=",
        "vaultaire",
        "--data",
        str(data),
        "--listen",
        f"tcp:{s3_port}:interface=127.0.0.1",
        "--ops",
        f"tcp:{ops_port}:interface=127.0.0.1",
        *daemon_args,
    ]
    env = dict(os.environ, VAULTAIRE_ACCESS_KEY=ACCESS_KEY, VAULTAIRE_SECRET_KEY=SECRET_KEY)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{s3_port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with status {proc.returncode}; see {log_path}")
        try:
            urllib.request.urlopen(endpoint + "/_vaultaire/health", timeout=2).read()
            return proc, endpoint
        except OSError:
            time.sleep(0.2)
    stop_daemon(proc)
    raise RuntimeError(f"the daemon did not answer within 60 s; see {log_path}")


def free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in ports:
            ports.append(port)
    return ports


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def profile_op(a: argparse.Namespace, op: str, scratch: Path, stamp: str) -> str:
    data = scratch / f"data-{op}"
    workdir = scratch / f"work-{op}"
    workdir.mkdir(parents=True, exist_ok=True)
    proc, endpoint = start_daemon(a.twistd, data, a.daemon_arg, scratch / f"daemon-{op}.log")
    try:

        def argv_for(duration: int) -> list[str]:
            return [
                "small-get" if op == "get" else "small-put",
                "--endpoint",
                endpoint,
                "--access-key",
                ACCESS_KEY,
                "--secret-key",
                SECRET_KEY,
                "--bucket",
                "bench",
                "--pid",
                str(proc.pid),
                "--workdir",
                str(workdir),
                "--duration",
                str(duration),
                "--connections",
                str(a.connections),
                "--quiet",
            ]

        args = s3bench.build_parser().parse_args(argv_for(a.duration))
        o = s3bench.Opts(args, args.cmd)
        ctx = s3bench.Ctx(args)
        prep = s3bench.prepare(args.cmd, ctx, o)
        # warm-up (imports, caches, SQLite pages), then the unprofiled measurement
        warm = s3bench.Opts(s3bench.build_parser().parse_args(argv_for(2)), args.cmd)
        measure(ctx, op, prep, warm)
        plain = measure(ctx, op, prep, o)

        raw = Path(a.out_dir) / f"{stamp}-profile-{op}.txt"
        spy = subprocess.Popen(
            [
                a.py_spy,
                "record",
                "--pid",
                str(proc.pid),
                "--subprocesses",
                "--nonblocking",
                "--nolineno",
                "--rate",
                str(a.rate),
                "--format",
                "raw",
                "--output",
                str(raw),
                "--duration",
                str(a.duration + 2),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # let py-spy attach before the load starts
        profiled = measure(ctx, op, prep, o)
        _, err = spy.communicate(timeout=a.duration + 60)
        if spy.returncode != 0 or not raw.exists():
            raise RuntimeError(f"py-spy failed (status {spy.returncode}): {err.decode(errors='replace')[-800:]}")
        prof = Profile.parse(raw.read_text())
    finally:
        stop_daemon(proc)
    return report(op, plain, profiled, prof, raw, a)


def report(op: str, plain: Measured, profiled: Measured, prof: Profile, raw: Path, a: argparse.Namespace) -> str:
    if not prof.samples or not profiled.requests:
        return f"## 4 KiB {op.upper()}: no samples ({prof.samples}) or no requests ({profiled.requests})\n"
    # A sample is 1/rate s of one thread being busy: on the CPU, runnable, or in a system
    # call (so an fsync's disk wait counts too: compare with the CPU per request from /proc).
    us_per_sample = 1e6 / a.rate / profiled.requests
    sampled_us = prof.samples * us_per_sample
    lines = [
        f"## 4 KiB {op.upper()}, wrk {a.connections} connections, {a.duration} s\n",
        f"- unprofiled: {plain.req_per_s:,.0f} req/s, server CPU {plain.cpu_us_per_req:,.0f} µs/request"
        f" ({plain.errors} errors)",
        f"- profiled (py-spy {a.rate} Hz, non-blocking): {profiled.req_per_s:,.0f} req/s, server CPU "
        f"{profiled.cpu_us_per_req:,.0f} µs/request; {prof.samples:,} busy-thread samples "
        f"= {sampled_us:,.0f} µs/request of busy thread time (on a core, runnable, or in a system call "
        "such as fsync), which the tables below divide up; "
        f"{prof.waiting:,} samples of threads woken but still in a wait left out",
        f"- collapsed stacks: {raw}\n",
        "CPU ≈ the row's share of the samples × the unprofiled CPU per request (the profiler slows the",
        "daemon down, so its own busy time per request is inflated; the shares are what it tells).\n",
        "| layer | share | busy µs/request (profiled) | ≈ CPU µs/request (unprofiled) |",
        "|---|---:|---:|---:|",
    ]
    for layer, n in prof.by_layer.most_common():
        share = n / prof.samples
        lines.append(
            f"| {layer} | {100 * share:.1f}% | {n * us_per_sample:,.1f} | {share * plain.cpu_us_per_req:,.1f} |"
        )
    cumulative = Counter({f: n for f, n in prof.cumulative.items() if not is_plumbing(f)})
    tables = (("own time", prof.own), ("cumulative time (reactor loop and thread plumbing left out)", cumulative))
    for title, counter in tables:
        lines += [
            "",
            f"Top {a.top} functions by {title}:\n",
            "| function (file) | share | busy µs/request (profiled) | ≈ CPU µs/request (unprofiled) |",
            "|---|---:|---:|---:|",
        ]
        for frame, n in counter.most_common(a.top):
            share = n / prof.samples
            lines.append(
                f"| `{frame}` | {100 * share:.1f}% | {n * us_per_sample:,.1f} | {share * plain.cpu_us_per_req:,.1f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--twistd", default=None, help="twistd of a venv with vaultaire (default: next to this Python)")
    ap.add_argument("--py-spy", default=None, help="py-spy binary (default: next to this Python, else PATH)")
    ap.add_argument("--ops", default="get,put", help="comma list of get, put (default both)")
    ap.add_argument("--duration", type=int, default=10, help="seconds of load per measurement (default 10)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rate", type=int, default=200, help="py-spy samples per second and thread (default 200)")
    ap.add_argument("--top", type=int, default=20, help="functions listed per table (default 20)")
    ap.add_argument(
        "--daemon-arg", action="append", default=[], help="extra daemon flag, repeatable (--daemon-arg=--workers=2)"
    )
    ap.add_argument("--scratch", help="data dirs and logs (default: a temp dir, removed at the end)")
    ap.add_argument("--out-dir", default=str(REPO / "bench" / "results"), help="default bench/results/")
    a = ap.parse_args()

    here = Path(sys.executable).parent
    a.twistd = a.twistd or (str(here / "twistd") if (here / "twistd").exists() else shutil.which("twistd"))
    a.py_spy = a.py_spy or (str(here / "py-spy") if (here / "py-spy").exists() else shutil.which("py-spy"))
    if not a.twistd:
        sys.exit("bench/profile_hotpath.py: no twistd found (use --twistd)")
    if not a.py_spy:
        sys.exit("bench/profile_hotpath.py: py-spy not found (pip install py-spy, or --py-spy PATH)")
    if not shutil.which("wrk"):
        sys.exit("bench/profile_hotpath.py: wrk not on PATH (apt-get install wrk)")
    os.makedirs(a.out_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    scratch = Path(a.scratch or tempfile.mkdtemp(prefix="vaultaire-profile-"))
    texts = []
    try:
        for op in [x.strip() for x in a.ops.split(",") if x.strip()]:
            if op not in ("get", "put"):
                sys.exit(f"bench/profile_hotpath.py: unknown op {op!r} (get, put)")
            text = profile_op(a, op, scratch, stamp)
            print(text, flush=True)
            texts.append(text)
    finally:
        if not a.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    out = Path(a.out_dir) / f"{stamp}-profile.md"
    out.write_text(f"Command: {' '.join(sys.argv)}\n\n" + "\n".join(texts))
    print(f"written: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
