#!/usr/bin/env python3
"""The cost of the authorization step on the hot path: 4 KiB GETs, req/s and server CPU per request.

Starts two ``twistd vaultaire`` daemons (one process each, plain HTTP on 127.0.0.1): one running
the code to compare with (``--baseline-ref``, default ``main``, extracted with ``git archive``
into the scratch directory and put first on PYTHONPATH), one running this checkout. Then, in
rounds that alternate the cases so all see the same machine, wrk (2 threads, 16 connections,
``--seconds`` each) GETs one presigned 4 KiB object:

* ``baseline-root``: the baseline daemon, the tenant's root key;
* ``root``: this code, the root key, a bucket without a policy (the step's fast path);
* ``root-policy20``: this code, the root key, a bucket with a bucket policy of 20 statements
  (the policy is evaluated: it could deny the root user);
* ``user-policy20``: this code, a user whose identity policy allows nothing, granted the GET by
  that same 20-statement bucket policy.

Server CPU per request is the daemon's (and its children's) utime + stime from /proc over the
wrk run, divided by the requests wrk completed. Medians over ``--rounds``.

    .venv/bin/python bench/access.py [--seconds 10] [--rounds 3] [--baseline-ref main] [--scratch DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from daemon import ACCESS_KEY, ADMIN, REGION, SECRET_KEY, Daemon  # noqa: E402

from vaultaire.sigv4 import presign_url  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def policy20(bucket: str, user_arn: str) -> str:
    """Twenty statements of the kinds real bucket policies hold; one of them grants the user."""
    arn = f"arn:aws:s3:::{bucket}"
    statements: list[dict[str, object]] = [
        {
            "Sid": "DenyOutsideNet",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, arn + "/*"],
            "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}},
        },
        {
            "Sid": "DenyOldSignatures",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": arn + "/*",
            "Condition": {"StringEquals": {"s3:signatureversion": "AWS"}},
        },
        {
            "Sid": "DenyUnencryptedPuts",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": arn + "/*",
            "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}},
        },
        {
            "Sid": "UserReads",
            "Effect": "Allow",
            "Principal": {"AWS": user_arn},
            "Action": "s3:GetObject",
            "Resource": arn + "/*",
        },
    ]
    for i in range(16):
        # Principals must exist (PutBucketPolicy refuses unknown ones): the one user, other prefixes.
        team = user_arn
        if i % 3 == 0:  # listing of its own prefix only
            statements.append(
                {
                    "Sid": f"Team{i}List",
                    "Effect": "Allow",
                    "Principal": {"AWS": team},
                    "Action": "s3:ListBucket",
                    "Resource": arn,
                    "Condition": {"StringLike": {"s3:prefix": [f"team{i}/*"]}},
                }
            )
        else:
            statements.append(
                {
                    "Sid": f"Team{i}",
                    "Effect": "Allow",
                    "Principal": {"AWS": team},
                    "Action": ["s3:GetObject", "s3:PutObject"] if i % 2 else "s3:Get*",
                    "Resource": f"{arn}/team{i}/*",
                }
            )
    assert len(statements) == 20
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and every live descendant."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += (int(stats[p][11]) + int(stats[p][12])) / TICKS
        todo += children.get(p, [])
    return total


def wrk(url: str, seconds: int) -> tuple[float, int]:
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", url], capture_output=True, text=True, check=True
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rate is None or count is None:
        raise RuntimeError(f"wrk said nothing readable:\n{out}")
    rps, done = float(rate.group(1)), int(count.group(1))
    return rps, done


def admin(d: Daemon, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [ADMIN, "--data", str(d.data_dir), *args], capture_output=True, text=True, check=True, input=stdin
    ).stdout


def presigned(d: Daemon, bucket: str, access: str = ACCESS_KEY, secret: str = SECRET_KEY) -> str:
    return presign_url(
        "GET", f"{d.endpoint_url}/{bucket}/obj", access, secret, REGION, now=datetime.now(UTC), expires=3600
    )


def main() -> None:
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--seconds", type=int, default=10)
    a.add_argument("--rounds", type=int, default=3)
    a.add_argument("--baseline-ref", default="main")
    a.add_argument("--scratch", default=None)
    a.add_argument("--cases", default="baseline-root,root,root-policy20,user-policy20", help="which, comma-separated")
    o = a.parse_args()
    scratch = Path(o.scratch or tempfile.mkdtemp(prefix="vbench-access-"))
    for old in ("baseline-src", "baseline", "this"):  # a reused scratch starts afresh
        shutil.rmtree(scratch / old, ignore_errors=True)
    baseline_src = scratch / "baseline-src"
    baseline_src.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", o.baseline_ref], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(baseline_src)], input=archive.stdout, check=True)
    body = os.urandom(4096)

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(baseline_src) + (os.pathsep + saved if saved else "")
    try:
        base = Daemon(scratch / "baseline", workers=1)
        base.console_port = (baseline_src / "vaultaire" / "console").exists()
        base.start()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    this = Daemon(scratch / "this", workers=1).start()
    try:
        # A baseline without the authorization step refuses unsigned requests with its own message:
        # proof that its daemon runs the baseline's code, not this checkout's.
        if not (baseline_src / "vaultaire/api/authorize.py").exists():
            try:
                urllib.request.urlopen(f"{base.endpoint_url}/nosuchbucket/x", timeout=10)
            except urllib.error.HTTPError as e:
                assert b"Anonymous access is not allowed" in e.read(), "the baseline daemon runs this checkout's code"
        for d in (base, this):
            s3 = d.boto3_client()
            s3.create_bucket(Bucket="plain")
            s3.put_object(Bucket="plain", Key="obj", Body=body)
        s3 = this.boto3_client()
        s3.create_bucket(Bucket="guarded")
        s3.put_object(Bucket="guarded", Key="obj", Body=body)
        user = json.loads(admin(this, "user", "create", "default", "reader", "--json"))
        s3.put_bucket_policy(Bucket="guarded", Policy=policy20("guarded", user["arn"]))
        cases: dict[str, tuple[Daemon, Callable[[], str]]] = {
            "baseline-root": (base, lambda: presigned(base, "plain")),
            "root": (this, lambda: presigned(this, "plain")),
            "root-policy20": (this, lambda: presigned(this, "guarded")),
            "user-policy20": (this, lambda: presigned(this, "guarded", user["access_key"], user["secret_key"])),
        }
        cases = {name: cases[name] for name in o.cases.split(",")}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for n in range(o.rounds):
            names = list(cases)
            names = names[n % len(names) :] + names[: n % len(names)]  # rotate who goes first
            for name in names:
                d, url = cases[name]
                wrk(url(), 1)  # warm up
                before = cpu_seconds(d.pid)
                rps, done = wrk(url(), o.seconds)
                cpu_us = (cpu_seconds(d.pid) - before) / done * 1e6
                results[name].append((rps, cpu_us))
                print(f"round {n + 1} {name}: {rps:.0f} req/s, {cpu_us:.0f} us CPU/request", flush=True)
        reference = "root" if "root" in results else next(iter(results))
        print(f"\n4 KiB GET, wrk -t2 -c16 -d{o.seconds}s, one daemon process each, medians of {o.rounds} rounds")
        print(f"| case | req/s | server CPU µs/request | req/s vs {reference} | CPU vs {reference} |")
        print("|---|---|---|---|---|")
        root_rps = statistics.median(r for r, _ in results[reference])
        root_cpu = statistics.median(c for _, c in results[reference])
        for name, rows in results.items():
            rps = statistics.median(r for r, _ in rows)
            cpu = statistics.median(c for _, c in rows)
            print(f"| {name} | {rps:.0f} | {cpu:.0f} | {rps / root_rps:.3f} | {cpu / root_cpu:.3f} |")
    finally:
        this.stop()
        base.stop()


if __name__ == "__main__":
    main()
