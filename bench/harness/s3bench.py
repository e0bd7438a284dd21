#!/usr/bin/env python3
# A copy of the developers' shared harness (../shared/bench), ruff-formatted; bench/run.py drives it.
# Keep changes to it small and upstreamable: Vaultaire-specific behaviour belongs in bench/run.py.
"""s3bench - a small, cheap-on-the-client benchmark harness for S3-compatible servers.

Load generation is done by external, low-overhead programs:
  * wrk (with a Lua script that cycles through pre-generated presigned URLs)
    for the small-object GET/PUT benchmarks,
  * curl with presigned URLs for the large-object GET/PUT benchmarks,
  * boto3 only for the listing benchmark (and for data loading).

Presigned URLs (SigV4, query-string auth) make every server do its normal
signature verification work on every request.

Subcommands (each one benchmark; all take --endpoint/--access-key/--secret-key/--bucket):
  small-get   1000 x 4 KiB objects, GET with 32 connections for 10 s (req/s, p50/p99, errors)
  small-put   PUT 4 KiB objects with 32 connections for 10 s
  large-get   one 1 GiB object: single-stream GET MB/s and 4-stream aggregate MB/s
  large-put   single-request (non-multipart) PUT of 1 GiB, MB/s
  list        10,000 keys dir%03d/file%05d: ListObjectsV2 full pagination + delimiter listings
  all         all of the above
  plain-small-get / plain-large-get
              the same load against plain HTTP URLs (e.g. nginx static files) as a ceiling
  disk-large-put
              the disk's own ceiling for large-put: a plain write+fsync loop of the same bytes

With --pid PID (repeatable) the server process (and its descendants) is watched
during every measurement: CPU seconds used and peak RSS (VmHWM, reset via
/proc/PID/clear_refs before each measurement, plus VmRSS sampling).

MB/s are decimal (10^6 bytes per second). Latencies are in milliseconds.
Every measurement is repeated --runs times (default 3) and the median is reported.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

KIB = 1024
MIB = 1024 * 1024

LUA_SCRIPT = r"""
-- s3bench wrk script: cycles through a list of request paths (path+query).
-- args: paths_file method body_file nthreads
local paths = {}
local n = 0
local idx = 0
local method = "GET"
local body = nil
local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    if #line > 0 then n = n + 1; paths[n] = line end
  end
  f:close()
  method = args[2] or "GET"
  if args[3] ~= nil and args[3] ~= "" and args[3] ~= "-" then
    local bf = assert(io.open(args[3], "rb"))
    body = bf:read("*a")
    bf:close()
  end
  local nthreads = tonumber(args[4]) or 1
  local t = tid or 1
  idx = math.floor((t - 1) * n / nthreads)
end

function request()
  idx = idx % n + 1
  return wrk.format(method, paths[idx], nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'S3BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"lat_p50_us":%d,"lat_p90_us":%d,' ..
    '"lat_p99_us":%d,"lat_max_us":%d,"lat_mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


# --------------------------------------------------------------------------------------
# process monitoring (server CPU and memory)
# --------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _read_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    rest = data[data.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); ppid is field 4; utime 14; stime 15
    return {"ppid": int(rest[1]), "utime": int(rest[11]), "stime": int(rest[12])}


def _status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def process_tree(root_pids):
    """Return the given pids plus all their descendants (that exist now)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            st = _read_stat(name)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        children.setdefault(st["ppid"], []).append(int(name))
    out, todo = [], [p for p in root_pids if os.path.exists(f"/proc/{p}")]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class ProcMonitor:
    """Watches server processes during one measurement: CPU seconds and peak RSS."""

    def __init__(self, pids, interval=0.02):
        self.root = list(pids or [])
        self.interval = interval
        self._stop = threading.Event()
        self._thread = None

    def _cpu_ticks(self, pids):
        total = 0
        for p in pids:
            try:
                st = _read_stat(p)
                total += st["utime"] + st["stime"]
            except (FileNotFoundError, ProcessLookupError):
                pass
        return total

    @staticmethod
    def _sys_cpu():
        """(busy, steal, total) jiffies of the whole machine, from /proc/stat."""
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
        busy = user + nice + system + irq + softirq
        return busy, steal, busy + idle + iowait + steal

    def start(self):
        self.t0 = time.perf_counter()
        self.client0 = os.times()
        self.sys0 = self._sys_cpu()
        if not self.root:
            return self
        self.pids = process_tree(self.root)
        self.hwm_reset = True
        for p in self.pids:
            try:
                with open(f"/proc/{p}/clear_refs", "w") as f:
                    f.write("5")  # reset VmHWM to current RSS
            except OSError:
                self.hwm_reset = False
        self.rss_before = sum(_status_kib(p, "VmRSS") for p in self.pids)
        self.max_sampled = self.rss_before
        self.ticks0 = self._cpu_ticks(self.pids)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            rss = sum(_status_kib(p, "VmRSS") for p in self.pids)
            if rss > self.max_sampled:
                self.max_sampled = rss
            self._stop.wait(self.interval)

    def stop(self):
        wall = time.perf_counter() - self.t0
        c1 = os.times()
        client_cpu = (
            c1.user
            - self.client0.user
            + c1.system
            - self.client0.system
            + c1.children_user
            - self.client0.children_user
            + c1.children_system
            - self.client0.children_system
        )
        res = {
            "wall_s": round(wall, 3),
            "client_cpu_s": round(client_cpu, 2),
            "client_cpu_pct": round(100.0 * client_cpu / wall, 1) if wall > 0 else None,
        }
        s1 = self._sys_cpu()
        # whole-machine busy CPU in the window, in % of one core (so 2 cores = 200%)
        sys_busy_pct = 100.0 * (s1[0] - self.sys0[0]) / CLK_TCK / wall if wall > 0 else 0
        res["machine_cpu_pct"] = round(sys_busy_pct, 1)
        res["steal_pct"] = round(100.0 * (s1[1] - self.sys0[1]) / CLK_TCK / wall, 1) if wall > 0 else 0
        if not self.root:
            return res
        self._stop.set()
        self._thread.join()
        ticks = self._cpu_ticks(self.pids) - self.ticks0
        hwm = sum(_status_kib(p, "VmHWM") for p in self.pids)
        rss_after = sum(_status_kib(p, "VmRSS") for p in self.pids)
        peak = max(hwm if self.hwm_reset else 0, self.max_sampled)
        server_cpu = ticks / CLK_TCK
        res.update(
            {
                "server_cpu_s": round(server_cpu, 2),
                "server_cpu_pct": round(100.0 * server_cpu / wall, 1) if wall > 0 else None,
                "rss_before_mib": round(self.rss_before / 1024, 1),
                "rss_peak_mib": round(peak / 1024, 1),
                "rss_after_mib": round(rss_after / 1024, 1),
                "rss_growth_mib": round((peak - self.rss_before) / 1024, 1),
                "nprocs": len(self.pids),
                # CPU used by everything else on the machine (noise from other tenants)
                "other_cpu_pct": round(sys_busy_pct - 100.0 * server_cpu / wall - res["client_cpu_pct"], 1),
            }
        )
        return res


# --------------------------------------------------------------------------------------
# S3 helpers
# --------------------------------------------------------------------------------------


class Ctx:
    def __init__(self, args):
        self.args = args
        self.endpoint = args.endpoint.rstrip("/") if getattr(args, "endpoint", None) else None
        self.bucket = getattr(args, "bucket", None)
        self.pids = getattr(args, "pid", None) or []
        self.workdir = args.workdir or os.environ.get("S3BENCH_WORKDIR") or tempfile.mkdtemp(prefix="s3bench-")
        os.makedirs(self.workdir, exist_ok=True)
        self._client = None
        self.log = (
            (lambda *a: None) if getattr(args, "quiet", False) else (lambda *a: print(*a, file=sys.stderr, flush=True))
        )

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            cfg_kwargs = dict(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=10,
                read_timeout=900,
                max_pool_connections=64,
            )
            try:  # botocore >= 1.36: do not add flexible checksums (older servers reject them)
                Config(request_checksum_calculation="when_required")
                cfg_kwargs.update(
                    request_checksum_calculation="when_required", response_checksum_validation="when_required"
                )
            except TypeError:
                pass
            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=self.args.region,
                aws_access_key_id=self.args.access_key,
                aws_secret_access_key=self.args.secret_key,
                config=Config(**cfg_kwargs),
            )
        return self._client

    def presign(self, op, bucket, key, expires=7 * 24 * 3600):
        return self.client.generate_presigned_url(op, Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires)

    def ensure_bucket(self, bucket):
        c = self.client
        try:
            c.head_bucket(Bucket=bucket)
            return
        except Exception:
            pass
        try:
            c.create_bucket(Bucket=bucket)
        except c.exceptions.BucketAlreadyOwnedByYou:
            pass
        except c.exceptions.BucketAlreadyExists:
            pass
        c.head_bucket(Bucket=bucket)

    def count_prefix(self, bucket, prefix, size=None):
        """Count keys under prefix (optionally only those with the given size)."""
        n = 0
        token = None
        while True:
            kw = dict(Bucket=bucket, Prefix=prefix, MaxKeys=1000)
            if token:
                kw["ContinuationToken"] = token
            r = self.client.list_objects_v2(**kw)
            for o in r.get("Contents", []):
                if size is None or o["Size"] == size:
                    n += 1
            if not r.get("IsTruncated"):
                return n
            token = r.get("NextContinuationToken")
            if not token:
                return n


def split_url(url):
    u = urllib.parse.urlsplit(url)
    base = f"{u.scheme}://{u.netloc}"
    path = u.path + ("?" + u.query if u.query else "")
    return base, path


def http_request(url, method="GET", body=None, timeout=60):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    path = u.path + ("?" + u.query if u.query else "")
    conn.request(method, path, body=body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def parallel(fn, items, workers):
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        for _ in ex.map(fn, items):
            pass


def median_of(runs):
    """Median of every numeric field across runs."""
    keys = []
    for r in runs:
        for k in r:
            if k not in keys:
                keys.append(k)
    med = {}
    for k in keys:
        vals = [r[k] for r in runs if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]
        if vals and len(vals) == len(runs):
            m = statistics.median(vals)
            if isinstance(m, float) and m.is_integer() and all(isinstance(v, int) for v in vals):
                m = int(m)
            med[k] = round(m, 3) if isinstance(m, float) else m
    return med


# --------------------------------------------------------------------------------------
# wrk-driven small-object benchmarks
# --------------------------------------------------------------------------------------


def wrk_binary():
    w = shutil.which(os.environ.get("S3BENCH_WRK", "wrk"))
    if not w:
        sys.exit("wrk not found (apt-get install wrk)")
    return w


def run_wrk(ctx, base_url, paths_file, method, body_file, connections, duration, threads, timeout_s):
    script = os.path.join(ctx.workdir, "s3bench-wrk.lua")
    with open(script, "w") as f:
        f.write(LUA_SCRIPT)
    threads = max(1, min(threads, connections))
    cmd = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        f"{timeout_s}s",
        "-s",
        script,
        base_url,
        "--",
        paths_file,
        method,
        body_file or "-",
        str(threads),
    ]
    mon = ProcMonitor(ctx.pids).start()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + timeout_s + 60)
    mres = mon.stop()
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("S3BENCH_JSON ")), None)
    if p.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed rc={p.returncode}: {p.stdout[-2000:]} {p.stderr[-2000:]}")
    w = json.loads(line[len("S3BENCH_JSON ") :])
    secs = w["duration_us"] / 1e6
    errors = w["err_connect"] + w["err_read"] + w["err_write"] + w["err_status"] + w["err_timeout"]
    res = {
        "requests": w["requests"],
        "req_per_s": round(w["requests"] / secs, 1),
        "p50_ms": round(w["lat_p50_us"] / 1000, 2),
        "p90_ms": round(w["lat_p90_us"] / 1000, 2),
        "p99_ms": round(w["lat_p99_us"] / 1000, 2),
        "max_ms": round(w["lat_max_us"] / 1000, 2),
        "errors": errors,
        "non2xx": w["err_status"],
        "err_socket": w["err_connect"] + w["err_read"] + w["err_write"],
        "err_timeout": w["err_timeout"],
        "MB_per_s": round(w["bytes"] / secs / 1e6, 1),
    }
    res.update(mres)
    if "server_cpu_s" in mres and w["requests"]:
        # contention-robust cost metric: server CPU time per request
        res["server_cpu_us_per_req"] = round(1e6 * mres["server_cpu_s"] / w["requests"], 1)
    return res


def diagnose(ctx, urls, method="GET", body=None, n=5):
    """Replay a few requests sequentially and report their status codes (used after errors)."""
    out = []
    for url in random.sample(urls, min(n, len(urls))):
        try:
            st, data = http_request(url, method, body)
            out.append(f"{st}:{data[:200]!r}" if st >= 300 else str(st))
        except Exception as e:
            out.append(f"exc:{e}")
    return out


def prep_small_get(ctx, o):
    b = ctx.bucket
    ctx.ensure_bucket(b)
    keys = [f"{o.prefix}small/obj{i:05d}" for i in range(o.objects)]
    have = ctx.count_prefix(b, f"{o.prefix}small/obj", size=o.size)
    if have != o.objects:
        ctx.log(f"[small-get] loading {o.objects} objects of {o.size} B into {b}")
        c = ctx.client
        parallel(lambda k: c.put_object(Bucket=b, Key=k, Body=os.urandom(o.size)), keys, 8)
        have = ctx.count_prefix(b, f"{o.prefix}small/obj", size=o.size)
        if have != o.objects:
            raise RuntimeError(f"small-get: expected {o.objects} objects after load, listing shows {have}")
    urls = [ctx.presign("get_object", b, k) for k in keys]
    # preflight: a few GETs must return 200 with the right length
    for u in random.sample(urls, min(3, len(urls))):
        st, data = http_request(u)
        if st != 200 or len(data) != o.size:
            raise RuntimeError(f"small-get preflight failed: status {st}, {len(data)} bytes: {data[:300]!r}")
    notes = []
    # does the server check signatures at all? (a wrong X-Amz-Signature must be refused)
    bad_sig = re.sub(
        r"(X-Amz-Signature=)([0-9a-f])", lambda m: m.group(1) + ("1" if m.group(2) != "1" else "2"), urls[0]
    )
    st, data = http_request(bad_sig)
    if st < 300:
        notes.append(f"accepted a presigned GET with a wrong signature (status {st}): signatures not verified")
    base, _ = split_url(urls[0])
    pf = os.path.join(ctx.workdir, "small-get.paths")
    with open(pf, "w") as f:
        for u in urls:
            f.write(split_url(u)[1] + "\n")
    return {"base": base, "paths_file": pf, "urls": urls, "notes": notes}


def bench_small_get(ctx, o, prep):
    res = run_wrk(ctx, prep["base"], prep["paths_file"], "GET", None, o.connections, o.duration, o.threads, o.timeout)
    if res["errors"]:
        res["diag"] = diagnose(ctx, prep["urls"])
    return res


def prep_small_put(ctx, o):
    b = ctx.bucket
    ctx.ensure_bucket(b)
    keys = [f"{o.prefix}put/obj{i:06d}" for i in range(o.keys)]
    urls = [ctx.presign("put_object", b, k) for k in keys]
    body = os.urandom(o.size)
    bf = os.path.join(ctx.workdir, f"small-put-{o.size}.body")
    with open(bf, "wb") as f:
        f.write(body)
    st, data = http_request(urls[0], "PUT", body)
    if st != 200:
        raise RuntimeError(f"small-put preflight failed: status {st}: {data[:300]!r}")
    h = ctx.client.head_object(Bucket=b, Key=keys[0])
    if h["ContentLength"] != o.size:
        raise RuntimeError(f"small-put preflight: stored size {h['ContentLength']} != {o.size}")
    base, _ = split_url(urls[0])
    pf = os.path.join(ctx.workdir, "small-put.paths")
    with open(pf, "w") as f:
        for u in urls:
            f.write(split_url(u)[1] + "\n")
    return {"base": base, "paths_file": pf, "body_file": bf, "keys": keys, "urls": urls, "body": body}


def bench_small_put(ctx, o, prep):
    res = run_wrk(
        ctx, prep["base"], prep["paths_file"], "PUT", prep["body_file"], o.connections, o.duration, o.threads, o.timeout
    )
    # post-check: a sample of the keys written in this run must exist with the right size
    # wrk thread t starts at key offset t*n/threads; the first requests/(2*threads) keys after
    # each offset were certainly requested during this run.
    n, th = len(prep["keys"]), max(1, min(o.threads, o.connections))
    per = max(1, min(n // th, res["requests"] // (2 * th)))
    written = [prep["keys"][(t * n // th + j) % n] for t in range(th) for j in range(per)]
    bad = 0
    for k in random.sample(written, min(10, len(written))):
        try:
            h = ctx.client.head_object(Bucket=ctx.bucket, Key=k)
            if h["ContentLength"] != o.size:
                bad += 1
        except Exception:
            bad += 1
    res["postcheck_bad"] = bad
    if res["errors"]:
        res["diag"] = diagnose(ctx, prep["urls"], "PUT", prep["body"])
    return res


# --------------------------------------------------------------------------------------
# curl-driven large-object benchmarks
# --------------------------------------------------------------------------------------


def large_source(ctx, size, path=None):
    path = path or os.path.join(ctx.workdir, f"large-src-{size}.bin")
    if os.path.exists(path) and os.path.getsize(path) == size:
        return path
    ctx.log(f"[large] writing {size} random bytes to {path}")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        left = size
        while left:
            n = min(left, 16 * MIB)
            f.write(os.urandom(n))
            left -= n
    os.rename(tmp, path)
    return path


def curl_put(url, path, max_time):
    cmd = [
        "curl",
        "-sS",
        "-o",
        "-",
        "-w",
        "\nS3BENCH %{http_code} %{size_upload} %{time_total}",
        "-H",
        "Expect:",
        "-T",
        path,
        "--max-time",
        str(max_time),
        url,
    ]
    p = subprocess.run(cmd, capture_output=True, timeout=max_time + 30)
    out = p.stdout.decode(errors="replace")
    tail = out.rsplit("S3BENCH ", 1)
    if p.returncode != 0 or len(tail) != 2:
        raise RuntimeError(
            f"curl PUT failed rc={p.returncode}: {p.stderr.decode(errors='replace')[-500:]} {out[-500:]}"
        )
    code, size_up, t = tail[1].split()
    return int(code), int(float(size_up)), float(t), tail[0][-500:]


def curl_get_cmd(url, max_time):
    return [
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "S3BENCH %{http_code} %{size_download} %{time_total}",
        "--max-time",
        str(max_time),
        url,
    ]


def parse_curl_get(p_rc, out, err):
    if p_rc != 0 or "S3BENCH " not in out:
        raise RuntimeError(f"curl GET failed rc={p_rc}: {err[-500:]} {out[-500:]}")
    code, size, t = out.rsplit("S3BENCH ", 1)[1].split()
    return int(code), int(float(size)), float(t)


def prep_large_get_url(ctx, o):
    """Ensure the large object exists; return its presigned GET URL."""
    b = ctx.bucket
    ctx.ensure_bucket(b)
    size = o.size_mib * MIB
    key = f"{o.prefix}large/get-{o.size_mib}m"
    src = large_source(ctx, size, o.src_file)
    try:
        have = ctx.client.head_object(Bucket=b, Key=key)["ContentLength"]
    except Exception:
        have = None
    if have != size:
        ctx.log(f"[large-get] uploading {size} B object {key}")
        code, up, t, body = curl_put(ctx.presign("put_object", b, key), src, o.max_time)
        if code != 200:
            raise RuntimeError(f"large-get load: PUT status {code}: {body}")
        have = ctx.client.head_object(Bucket=b, Key=key)["ContentLength"]
        if have != size:
            raise RuntimeError(f"large-get load: stored size {have} != {size}")
    url = ctx.presign("get_object", b, key)
    notes = verify_tail(ctx, url, src, size)
    for nt in notes:
        ctx.log(f"[large-get] note: {nt}")
    return url, notes


def verify_tail(ctx, url, src, size, n=MIB):
    """Untimed integrity spot check: the last n bytes via a range GET must equal the source.
    Returns a list of protocol notes (e.g. a range answer with status 200 instead of 206)."""
    notes = []
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=120)
    conn.request("GET", u.path + "?" + u.query, headers={"Range": f"bytes={size - n}-{size - 1}"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    with open(src, "rb") as f:
        f.seek(size - n)
        want = f.read(n)
    if r.status not in (200, 206):
        raise RuntimeError(f"range GET status {r.status}: {data[:300]!r}")
    partial = r.status == 206 or (r.getheader("Content-Range") is not None and len(data) == n)
    if r.status == 200 and partial:
        notes.append("range GET answered 200 (not 206) with a partial body and Content-Range")
    if partial and data != want:
        raise RuntimeError("range GET: tail bytes differ from source")
    if not partial:
        notes.append("range GET ignored: full body returned")
        if len(data) != size or data[-n:] != want:
            raise RuntimeError("range GET ignored and full body differs from source")
    return notes


def bench_large_get(ctx, o, url, size):
    res = {}
    for streams in o.streams:
        cmd = curl_get_cmd(url, o.max_time)
        mon = ProcMonitor(ctx.pids).start()
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(streams)
        ]
        outs = [p.communicate(timeout=o.max_time + 30) for p in procs]
        wall = time.perf_counter() - t0
        m = mon.stop()
        errors = 0
        per = []
        for p, (out, err) in zip(procs, outs, strict=True):
            code, got, t = parse_curl_get(p.returncode, out, err)
            if code != 200 or got != size:
                errors += 1
            per.append(got / t / 1e6 if t > 0 else 0)
        tag = f"s{streams}"
        res[f"{tag}_MB_per_s"] = round(streams * size / wall / 1e6, 1)
        if streams > 1:
            res[f"{tag}_min_stream_MB_per_s"] = round(min(per), 1)
        res[f"{tag}_errors"] = errors
        if "server_cpu_s" in m:
            res[f"{tag}_server_cpu_s_per_GB"] = round(m["server_cpu_s"] / (streams * size / 1e9), 3)
        for k in (
            "server_cpu_pct",
            "client_cpu_pct",
            "other_cpu_pct",
            "rss_before_mib",
            "rss_peak_mib",
            "rss_growth_mib",
        ):
            if k in m:
                res[f"{tag}_{k}"] = m[k]
    return res


def prep_large_put(ctx, o):
    ctx.ensure_bucket(ctx.bucket)
    size = o.size_mib * MIB
    src = large_source(ctx, size, o.src_file)
    key = f"{o.prefix}large/put-{o.size_mib}m"
    return {"src": src, "key": key, "size": size, "url": ctx.presign("put_object", ctx.bucket, key)}


def bench_large_put(ctx, o, prep):
    mon = ProcMonitor(ctx.pids).start()
    t0 = time.perf_counter()
    code, up, t, body = curl_put(prep["url"], prep["src"], o.max_time)
    wall = time.perf_counter() - t0
    m = mon.stop()
    res = {"status": code, "MB_per_s": round(prep["size"] / wall / 1e6, 1), "wall_s": round(wall, 3)}
    errors = 0 if (code == 200 and up == prep["size"]) else 1
    if code == 200:
        try:
            got = ctx.client.head_object(Bucket=ctx.bucket, Key=prep["key"])["ContentLength"]
        except Exception:
            got = None
        if got != prep["size"]:
            errors = 1
            res["stored_size"] = got
    else:
        res["body"] = body[-300:]
    res["errors"] = errors
    if "server_cpu_s" in m:
        res["server_cpu_s_per_GB"] = round(m["server_cpu_s"] / (prep["size"] / 1e9), 3)
    for k in ("server_cpu_pct", "client_cpu_pct", "other_cpu_pct", "rss_before_mib", "rss_peak_mib", "rss_growth_mib"):
        if k in m:
            res[k] = m[k]
    return res


# --------------------------------------------------------------------------------------
# listing benchmark (boto3)
# --------------------------------------------------------------------------------------


def list_bucket_name(ctx, o):
    return o.list_bucket or f"{ctx.bucket}-list"


def prep_list(ctx, o):
    b = list_bucket_name(ctx, o)
    ctx.ensure_bucket(b)
    keys = [f"dir{i // o.per_dir:03d}/file{i:05d}" for i in range(o.keys)]
    have = ctx.count_prefix(b, "")
    if have != o.keys:
        if have:
            raise RuntimeError(f"list bucket {b} holds {have} keys, expected 0 or {o.keys}; use an empty bucket")
        ctx.log(f"[list] loading {o.keys} keys into {b}")
        c = ctx.client
        parallel(lambda k: c.put_object(Bucket=b, Key=k, Body=b"0123456789abcdef"), keys, o.load_workers)
        have = ctx.count_prefix(b, "")
        if have != o.keys:
            raise RuntimeError(f"list: {have} keys after load, expected {o.keys}")
    return {"bucket": b}


def bench_list(ctx, o, prep):
    c = ctx.client
    b = prep["bucket"]
    res = {}
    # 1. full pagination, 1000 per page
    mon = ProcMonitor(ctx.pids).start()
    t0 = time.perf_counter()
    n, pages, token = 0, 0, None
    while True:
        kw = dict(Bucket=b, MaxKeys=o.page_size)
        if token:
            kw["ContinuationToken"] = token
        r = c.list_objects_v2(**kw)
        pages += 1
        n += len(r.get("Contents", []))
        if not r.get("IsTruncated"):
            break
        token = r.get("NextContinuationToken")
        if not token or pages > o.keys:
            break
    m = mon.stop()
    res["full_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    res["full_keys"] = n
    res["full_pages"] = pages
    res["full_client_cpu_ms"] = round(m["client_cpu_s"] * 1000, 0)
    if "server_cpu_pct" in m:
        res["full_server_cpu_s"] = m["server_cpu_s"]
    # 2. delimiter listing at the root: expect one CommonPrefix per directory
    t0 = time.perf_counter()
    nprefix, npages, token = 0, 0, None
    while True:
        kw = dict(Bucket=b, Delimiter="/", MaxKeys=o.page_size)
        if token:
            kw["ContinuationToken"] = token
        r = c.list_objects_v2(**kw)
        npages += 1
        nprefix += len(r.get("CommonPrefixes", [])) + len(r.get("Contents", []))
        if not r.get("IsTruncated"):
            break
        token = r.get("NextContinuationToken")
        if not token or npages > o.keys:
            break
    res["delim_root_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    res["delim_root_entries"] = nprefix
    # 3. prefix + delimiter inside one directory
    ndirs = (o.keys + o.per_dir - 1) // o.per_dir
    d = f"dir{(ndirs // 2):03d}/"
    t0 = time.perf_counter()
    r = c.list_objects_v2(Bucket=b, Prefix=d, Delimiter="/", MaxKeys=o.page_size)
    res["prefix_delim_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    res["prefix_delim_entries"] = len(r.get("Contents", [])) + len(r.get("CommonPrefixes", []))
    want_dir = min(o.per_dir, o.keys - (ndirs // 2) * o.per_dir)
    res["errors"] = int(n != o.keys) + int(nprefix != ndirs) + int(res["prefix_delim_entries"] != want_dir)
    return res


# --------------------------------------------------------------------------------------
# the disk's own reference: a plain write+fsync loop (no server, no network)
# --------------------------------------------------------------------------------------

# Run as its own process, so that its CPU is measured like a server's: reads the source in
# 1 MiB chunks (as curl does), writes them to a new file, fsyncs it and its directory.
DISK_LOOP = """
import os, sys, time
src, dst, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
with open(src, "rb", buffering=0) as f:
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    while True:
        data = f.read(chunk)
        if not data:
            break
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    os.fsync(fd)
    os.close(fd)
d = os.open(os.path.dirname(dst), os.O_RDONLY | os.O_DIRECTORY)
os.fsync(d)
os.close(d)
print(time.perf_counter() - t0)
"""


def prep_disk_large_put(ctx, o):
    size = o.size_mib * MIB
    src = large_source(ctx, size, o.src_file)
    os.makedirs(o.dir, exist_ok=True)
    return {"src": src, "size": size, "dst": os.path.join(o.dir, "disk-ref.bin")}


def bench_disk_large_put(ctx, o, prep):
    """1 GiB written and fsynced by a plain loop on the disk the servers write to: their ceiling."""
    child = subprocess.Popen(
        [sys.executable, "-c", DISK_LOOP, prep["src"], prep["dst"], str(MIB)], stdout=subprocess.PIPE, text=True
    )
    t0 = time.perf_counter()
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    try:
        os.unlink(prep["dst"])  # the next repetition writes a new file, as a PUT does
    except FileNotFoundError:
        pass
    if child.returncode != 0:
        raise RuntimeError(f"disk write loop failed rc={child.returncode}")
    secs = float(out.strip())
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "MB_per_s": round(prep["size"] / secs / 1e6, 1),
        "wall_s": round(secs, 3),
        "process_wall_s": round(wall, 3),
        "errors": 0,
        "server_cpu_s_per_GB": round(cpu / (prep["size"] / 1e9), 3),
        "rss_peak_mib": round(usage.ru_maxrss / 1024, 1),
    }


# --------------------------------------------------------------------------------------
# plain HTTP (ceiling) benchmarks
# --------------------------------------------------------------------------------------


def prep_plain_small(ctx, o):
    urls = list(o.url or [])
    if o.url_file:
        with open(o.url_file) as f:
            urls += [ln.strip() for ln in f if ln.strip()]
    if not urls:
        sys.exit("plain-small-get needs --url or --url-file")
    st, data = http_request(urls[0])
    if st != 200:
        raise RuntimeError(f"plain preflight: status {st}")
    base, _ = split_url(urls[0])
    pf = os.path.join(ctx.workdir, "plain-small.paths")
    with open(pf, "w") as f:
        for u in urls:
            f.write(split_url(u)[1] + "\n")
    return {"base": base, "paths_file": pf, "urls": urls}


def plain_large_size(url):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
    conn.request("HEAD", u.path)
    r = conn.getresponse()
    r.read()
    conn.close()
    if r.status != 200:
        raise RuntimeError(f"plain-large-get: HEAD status {r.status}")
    return int(r.getheader("Content-Length"))


# --------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------

BENCHES = ["small-get", "small-put", "large-get", "large-put", "list"]


def prepare(name, ctx, o):
    if name == "small-get":
        return prep_small_get(ctx, o)
    if name == "small-put":
        return prep_small_put(ctx, o)
    if name == "large-get":
        url, notes = prep_large_get_url(ctx, o)
        return {"url": url, "size": o.size_mib * MIB, "notes": notes}
    if name == "large-put":
        return prep_large_put(ctx, o)
    if name == "list":
        return prep_list(ctx, o)
    if name == "plain-small-get":
        return prep_plain_small(ctx, o)
    if name == "plain-large-get":
        return {"url": o.url[0], "size": plain_large_size(o.url[0])}
    if name == "disk-large-put":
        return prep_disk_large_put(ctx, o)
    raise ValueError(name)


def run_once(name, ctx, o, prep):
    if name in ("small-get", "plain-small-get"):
        return bench_small_get(ctx, o, prep)
    if name == "small-put":
        return bench_small_put(ctx, o, prep)
    if name in ("large-get", "plain-large-get"):
        return bench_large_get(ctx, o, prep["url"], prep["size"])
    if name == "large-put":
        return bench_large_put(ctx, o, prep)
    if name == "list":
        return bench_list(ctx, o, prep)
    if name == "disk-large-put":
        return bench_disk_large_put(ctx, o, prep)
    raise ValueError(name)


def summarize(name, med):
    def g(k, fmt="{}"):
        return fmt.format(med[k]) if k in med else "-"

    if name in ("small-get", "small-put", "plain-small-get"):
        s = (
            f"{g('req_per_s')} req/s  p50 {g('p50_ms')} ms  p99 {g('p99_ms')} ms  errors {g('errors')}"
            f"  server CPU {g('server_cpu_pct')}%  client CPU {g('client_cpu_pct')}%"
        )
        return s
    if name in ("large-get", "plain-large-get"):
        parts = []
        for k in sorted(med):
            if k.endswith("_MB_per_s") and not k.endswith("min_stream_MB_per_s"):
                tag = k.split("_")[0]
                parts.append(
                    f"{tag[1:]} stream(s): {med[k]} MB/s (errors {med.get(tag + '_errors', '-')}, "
                    f"server peak RSS {med.get(tag + '_rss_peak_mib', '-')} MiB, "
                    f"server CPU {med.get(tag + '_server_cpu_pct', '-')}%)"
                )
        return "; ".join(parts)
    if name in ("large-put", "disk-large-put"):
        return (
            f"{g('MB_per_s')} MB/s  errors {g('errors')}  server peak RSS {g('rss_peak_mib')} MiB "
            f"(before {g('rss_before_mib')})  server CPU {g('server_cpu_pct')}%"
        )
    if name == "list":
        return (
            f"full pagination {g('full_ms')} ms ({g('full_keys')} keys, {g('full_pages')} pages); "
            f"delimiter at root {g('delim_root_ms')} ms ({g('delim_root_entries')} prefixes); "
            f"prefix+delimiter {g('prefix_delim_ms')} ms ({g('prefix_delim_entries')} keys); errors {g('errors')}"
        )
    return json.dumps(med)


def run_bench(name, ctx, o):
    prep = prepare(name, ctx, o)
    runs = []
    for i in range(o.runs):
        r = run_once(name, ctx, o, prep)
        ctx.log(f"[{name}] run {i + 1}/{o.runs}: {json.dumps(r)}")
        runs.append(r)
    med = median_of(runs)
    return {"bench": name, "endpoint": ctx.endpoint, "runs": runs, "median": med}


def add_common(p, s3=True):
    p.add_argument("--runs", type=int, default=3, help="repetitions; the median is reported (default 3)")
    p.add_argument(
        "--pid",
        type=int,
        action="append",
        help="server PID to watch (CPU, RSS); repeatable; descendant processes are included",
    )
    p.add_argument(
        "--workdir",
        help="scratch dir for URL lists, wrk script and the 1 GiB source file "
        "(default $S3BENCH_WORKDIR or a new temp dir)",
    )
    p.add_argument("--json-out", help="append the JSON result(s) to this file")
    p.add_argument("--quiet", action="store_true")
    if s3:
        p.add_argument("--endpoint", required=True, help="e.g. http://127.0.0.1:9000")
        p.add_argument("--access-key", default=os.environ.get("AWS_ACCESS_KEY_ID", "bench"))
        p.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY", "benchsecret"))
        p.add_argument("--region", default="us-east-1")
        p.add_argument("--bucket", default="bench", help="bucket for objects (created if missing)")
        p.add_argument("--prefix", default="", help="key prefix for the objects this harness writes")


def add_small(p):
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--duration", type=int, default=10, help="seconds")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--timeout", type=int, default=10, help="wrk per-request timeout, seconds")
    p.add_argument("--size", type=int, default=4 * KIB, help="object size in bytes (default 4096)")


def add_large(p):
    p.add_argument("--size-mib", type=int, default=1024, help="large object size in MiB (default 1024)")
    p.add_argument("--max-time", type=int, default=600, help="curl --max-time per transfer, seconds")
    p.add_argument(
        "--src-file",
        help="local file with the large object's bytes (created with random data "
        "if missing; default <workdir>/large-src-<bytes>.bin)",
    )


def add_get_streams(p):
    p.add_argument("--streams", default="1,4", help="comma list of parallel stream counts (default 1,4)")


def add_list(p):
    p.add_argument("--keys", type=int, default=10000)
    p.add_argument("--per-dir", type=int, default=100, help="keys per dirNNN/ prefix (default 100)")
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument(
        "--list-bucket",
        help="bucket for the listing keys (default <bucket>-list); must be empty or hold exactly the benchmark keys",
    )
    p.add_argument("--load-workers", type=int, default=16)


def build_parser():
    ap = argparse.ArgumentParser(
        prog="s3bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("small-get", help="GET 4 KiB objects with wrk")
    add_common(p)
    add_small(p)
    p.add_argument("--objects", type=int, default=1000)

    p = sub.add_parser("small-put", help="PUT 4 KiB objects with wrk")
    add_common(p)
    add_small(p)
    p.add_argument("--keys", type=int, default=20000, help="distinct presigned PUT URLs to cycle through")

    p = sub.add_parser("large-get", help="single-stream and parallel GET of one large object with curl")
    add_common(p)
    add_large(p)
    add_get_streams(p)

    p = sub.add_parser("large-put", help="single-request PUT of one large object with curl")
    add_common(p)
    add_large(p)

    p = sub.add_parser("list", help="ListObjectsV2 over 10,000 keys with boto3")
    add_common(p)
    add_list(p)

    p = sub.add_parser("all", help="all S3 benchmarks")
    add_common(p)
    add_small(p)
    add_large(p)
    add_get_streams(p)
    p.add_argument("--objects", type=int, default=1000)
    p.add_argument("--put-keys", type=int, default=20000)
    p.add_argument("--list-keys", type=int, default=10000)
    p.add_argument("--per-dir", type=int, default=100)
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument("--list-bucket")
    p.add_argument("--load-workers", type=int, default=16)
    p.add_argument("--only", help="comma list of benchmarks to run (default all: " + ",".join(BENCHES) + ")")

    p = sub.add_parser("plain-small-get", help="ceiling: wrk GET of plain HTTP URLs")
    add_common(p, s3=False)
    add_small(p)
    p.add_argument("--url", action="append", help="URL (repeatable)")
    p.add_argument("--url-file", help="file with one URL per line")

    p = sub.add_parser("plain-large-get", help="ceiling: curl GET of one plain HTTP URL")
    add_common(p, s3=False)
    add_large(p)
    add_get_streams(p)
    p.add_argument("--url", action="append", required=True)

    p = sub.add_parser("disk-large-put", help="reference: write+fsync of the large object's bytes, no server")
    add_common(p, s3=False)
    add_large(p)
    p.add_argument("--dir", required=True, help="directory on the disk the servers write to")
    return ap


class Opts:
    """Per-benchmark option view built from the parsed args (lets 'all' reuse the functions)."""

    def __init__(self, args, name):
        d = dict(vars(args))
        if args.cmd == "all":
            if name == "small-put":
                d["keys"] = args.put_keys
            elif name == "list":
                d["keys"] = args.list_keys
        if "streams" in d and isinstance(d["streams"], str):
            d["streams"] = [int(x) for x in d["streams"].split(",") if x.strip()]
        d.setdefault("prefix", "")
        self.__dict__.update(d)


def main(argv=None):
    args = build_parser().parse_args(argv)
    ctx = Ctx(args)
    names = BENCHES if args.cmd == "all" else [args.cmd]
    if args.cmd == "all" and args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
    results = []
    for name in names:
        o = Opts(args, name)
        res = run_bench(name, ctx, o)
        results.append(res)
        print(f"{name:16s} {summarize(name, res['median'])}", flush=True)
        if args.json_out:
            with open(args.json_out, "a") as f:
                f.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
