"""A real `twistd -n vaultaire` process for acceptance tests.

Plain Python (no pytest-twisted): start a daemon on free 127.0.0.1 ports with a
fresh data directory, wait for its health endpoint, talk to it with boto3 or
the aws cli, kill it, restart it on the same data directory and ports.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
AWS = os.path.join(os.path.dirname(sys.executable), "aws")
ADMIN = os.path.join(os.path.dirname(sys.executable), "vaultaire-admin")

ACCESS_KEY = "VTTESTACCESSKEY00001"
SECRET_KEY = "test-secret-key-for-vaultaire-0123456789"
REGION = "us-east-1"
# Daemons run as one process unless a test asks for workers; VAULTAIRE_TEST_WORKERS=2
# runs the whole suite against a supervisor and two workers instead.
DEFAULT_WORKERS = int(os.environ.get("VAULTAIRE_TEST_WORKERS", "1"))


class DaemonError(Exception):
    pass


_LIVE: set[Daemon] = set()


@atexit.register
def _kill_leftovers() -> None:
    for daemon in list(_LIVE):
        daemon.kill9()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def twistd_command(*args: str, console_port: bool = True) -> list[str]:
    """`twistd -n vaultaire ARGS` without a pid file (so daemons can share a cwd).

    The web console gets a free port unless ARGS name one: its default, 9001, would clash
    between daemons running at once. ``console_port=False``: code older than the console."""
    console = (
        []
        if not console_port or any(a == "--console" or a.startswith("--console=") for a in args)
        else ["--console", "tcp:0:interface=127.0.0.1"]
    )
    return [TWISTD, "-n", "--pidfile=", "vaultaire", *console, *args]


def run_twistd(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run twistd to completion (for start-up failures): returns the finished process."""
    full_env = dict(os.environ)
    for name in ("VAULTAIRE_ACCESS_KEY", "VAULTAIRE_SECRET_KEY"):
        full_env.pop(name, None)
    full_env.update(env or {})
    return subprocess.run(
        twistd_command(*args), cwd=str(cwd), env=full_env, capture_output=True, text=True, timeout=timeout
    )


def write_config(directory: Path, text: str, name: str = "vaultaire.toml") -> str:
    """Write a daemon config file ``name`` holding ``text`` into ``directory``; returns its path for ``--config``."""
    path = Path(directory) / name
    path.write_text(text)
    return str(path)


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """A start-up refusal: non-zero exit and exactly one ``vaultaire: ...`` line on stderr naming each needle."""
    lines = result.stderr.splitlines()
    assert result.returncode != 0, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}\nstdout:\n{result.stdout}"
    assert lines[0].startswith("vaultaire: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


class Daemon:
    """One vaultaire process; call ``start()`` (or use as a context manager)."""

    def __init__(
        self,
        base: Path,
        *,
        access_key: str | None = ACCESS_KEY,
        secret_key: str | None = SECRET_KEY,
        extra_args: Sequence[str] = (),
        scheme: str = "http",
        listen_template: str = "tcp:{port}:interface=127.0.0.1",
        startup_timeout: float = 20.0,
        pass_data: bool = True,
        region: str = REGION,
        verify: Any = None,
        workers: int | None = None,
    ) -> None:
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.base / "data"
        self.access_key = access_key
        self.secret_key = secret_key
        self.extra_args = list(extra_args)
        self.scheme = scheme
        self.listen_template = listen_template
        self.startup_timeout = startup_timeout
        self.pass_data = pass_data
        self.region = region
        self.verify = verify
        self.workers = DEFAULT_WORKERS if workers is None else workers
        self.port: int | None = None
        self.ops_port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.base / "daemon.log"
        self._log_file: Any = None
        self.starts = 0

    # -- addresses

    @property
    def endpoint_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.ops_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def events_path(self) -> Path:
        return self.data_dir / "events" / "events.jsonl"

    # -- life cycle

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("VAULTAIRE_ACCESS_KEY", "VAULTAIRE_SECRET_KEY"):
            env.pop(name, None)
        if self.access_key is not None:
            env["VAULTAIRE_ACCESS_KEY"] = self.access_key
        if self.secret_key is not None:
            env["VAULTAIRE_SECRET_KEY"] = self.secret_key
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # False for a daemon running code older than the web console (benchmarks' baselines).
    console_port = True

    def command(self) -> list[str]:
        return twistd_command(
            *(["--data", str(self.data_dir)] if self.pass_data else []),
            "--listen",
            self.listen_template.format(port=self.port),
            "--ops",
            f"tcp:{self.ops_port}:interface=127.0.0.1",
            "--workers",
            str(self.workers),
            *self.extra_args,
            console_port=self.console_port,
        )

    def start(self) -> Daemon:
        """Pick free ports (retrying if another process grabs one) and start."""
        last: Exception | None = None
        for _ in range(5):
            self.port, self.ops_port = free_port(), free_port()
            if self.port == self.ops_port:
                continue
            try:
                self._spawn()
                return self
            except DaemonError as e:
                if "cannot listen" not in self.log_text():
                    raise
                last = e
        raise DaemonError(f"could not find free ports: {last}")

    def restart(self) -> Daemon:
        """Stop if running, start again on the same data directory and ports."""
        if self.running:
            self.stop()
        self._spawn()
        return self

    def _spawn(self) -> None:
        self.starts += 1
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"\n==== start {self.starts}: {' '.join(self.command())}\n".encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(
            self.command(),
            cwd=str(self.base),
            env=self._env(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        _LIVE.add(self)
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                self._close_log()
                raise DaemonError(f"vaultaire exited with {self.proc.returncode} during start-up:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(self.ops_url + "/health", timeout=2) as r:
                    doc = json.loads(r.read())
                    if r.status == 200 and doc.get("status") != "starting":
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        self.kill9()
        raise DaemonError(f"vaultaire not healthy after {self.startup_timeout}s:\n{self.log_text()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._close_log()
        return self.proc.returncode

    def kill9(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self._close_log()
        # A supervisor killed -9 leaves its runtime directory (metric files) in /dev/shm.
        tag = hashlib.sha256(os.path.abspath(self.data_dir).encode()).hexdigest()[:16]
        shutil.rmtree(f"/dev/shm/vaultaire-{os.getuid()}-{tag}", ignore_errors=True)

    def _close_log(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            _LIVE.discard(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- clients

    def boto3_client(self, *, access_key: str | None = None, secret_key: str | None = None, **config: Any) -> Any:
        import boto3
        from botocore.config import Config

        cfg = Config(
            region_name=self.region,
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            **config,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=self.region,
            config=cfg,
            verify=self.verify,
        )

    def events(self) -> list[dict[str, Any]]:
        try:
            text = self.events_path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def aws_env(self, home: Path) -> dict[str, str]:
        """An environment for the aws cli that can only reach this daemon."""
        home.mkdir(parents=True, exist_ok=True)
        config = home / "aws-config"
        creds = home / "aws-credentials"
        if not config.exists():
            config.write_text(
                "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"
                "    multipart_threshold = 64MB\n    multipart_chunksize = 64MB\n"
            )
            creds.write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            {
                "AWS_CONFIG_FILE": str(config),
                "AWS_SHARED_CREDENTIALS_FILE": str(creds),
                "AWS_ACCESS_KEY_ID": self.access_key or "",
                "AWS_SECRET_ACCESS_KEY": self.secret_key or "",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_PAGER": "",
                "HOME": str(home),
            }
        )
        return env

    def aws(self, home: Path, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the aws cli against this daemon only."""
        cmd = [AWS, "--endpoint-url", self.endpoint_url, *args]
        result = subprocess.run(cmd, env=self.aws_env(home), capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"aws {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result


def ops_metrics(d: Daemon) -> dict[str, float]:
    """The ops port's samples: 'name{labels}' -> value."""
    with urllib.request.urlopen(d.ops_url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def read_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM (kB) from /proc/PID/status."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0])
    return out


def blob_files(data_dir: Path) -> list[Path]:
    """Every blob file under a data directory, staged ones included."""
    return [p for p in (data_dir / "blobs").rglob("*") if p.is_file()]


def catalog_rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the catalog directly (read-only) to check what the daemon committed."""
    db = sqlite3.connect(f"file:{data_dir / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def _version_rows(data_dir: Path) -> list[tuple[Any, ...]]:
    """(locator, metadata) of every data version: current ones, then noncurrent ones (no delete markers)."""
    rows = catalog_rows(data_dir, "SELECT locator, metadata FROM artifacts")
    if catalog_rows(data_dir, "SELECT 1 FROM sqlite_master WHERE name = 'versions'"):
        rows += [
            (locator, extra)
            for locator, extra in catalog_rows(data_dir, "SELECT locator, metadata FROM versions")
            if not json.loads(extra).get("marker")
        ]
    return rows


def referenced_blobs(data_dir: Path) -> int:
    """Blobs the catalog references: one per single-PUT version, one per part (stored or uploaded)."""
    total = 0
    for _locator, extra in _version_rows(data_dir):
        total += len(json.loads(extra).get("parts", [])) or 1
    return int(total + catalog_rows(data_dir, "SELECT COUNT(*) FROM parts")[0][0])


def assert_no_leak(data_dir: Path) -> None:
    """Once dead writers' intents are swept: nothing staged, and every blob file is referenced by the
    catalog or queued as garbage (replaced blobs wait out the read grace period), and every referenced
    blob is there."""
    ledger = wait_blobs_settled(data_dir)
    assert [p for p in blob_files(data_dir) if p.name.endswith(".part")] == []
    assert len(ledger["referenced"]) == referenced_blobs(data_dir)


def self_signed_certificate(tmp_path: Path) -> tuple[Path, Path]:
    """(key, certificate) PEM files for 127.0.0.1, made with the cryptography package (a dependency)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key, cert


def https_daemon(base: Path, **options: Any) -> tuple[Daemon, Path]:
    """A Daemon (not yet started) serving HTTPS on 127.0.0.1 with a fresh self-signed certificate, and the
    certificate's path (for clients' CA bundles)."""
    base.mkdir(parents=True, exist_ok=True)
    key, cert = self_signed_certificate(base)
    listen = f"ssl:{{port}}:privateKey={key}:certKey={cert}:interface=127.0.0.1"
    return Daemon(base, scheme="https", verify=str(cert), listen_template=listen, **options), cert


def rclone_remote(d: Daemon, home: Path, rclone: str) -> tuple[list[str], dict[str, str]]:
    """The start of an rclone command line and its environment for a remote named ``V:`` on daemon ``d``
    (configured through the environment only, with an empty config file in ``home``)."""
    config = home / "rclone.conf"
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
    env.update(
        {
            "RCLONE_CONFIG_V_TYPE": "s3",
            "RCLONE_CONFIG_V_PROVIDER": "Other",
            "RCLONE_CONFIG_V_ACCESS_KEY_ID": d.access_key or "",
            "RCLONE_CONFIG_V_SECRET_ACCESS_KEY": d.secret_key or "",
            "RCLONE_CONFIG_V_ENDPOINT": d.endpoint_url,
            "RCLONE_CONFIG_V_REGION": "us-east-1",
            "RCLONE_CONFIG_V_FORCE_PATH_STYLE": "true",
            "HOME": str(home),
        }
    )
    return [rclone, "--config", str(config)], env


def blob_ledger(data_dir: Path) -> dict[str, set[str]]:
    """Blob files on disk (staged ones as ``LOCATOR.part``) beside what the catalog says of blobs:
    referenced (every version's, manifests' parts, uploads' parts), queued as garbage, intended."""
    import json as _json

    root = data_dir / "blobs"
    files = {str(p.relative_to(root)) for p in blob_files(data_dir)}
    referenced: set[str] = set()
    for locator, extra in _version_rows(data_dir):
        parts = _json.loads(extra).get("parts") or []
        referenced |= {p[0] for p in parts} if parts else {locator}
    referenced |= {r[0] for r in catalog_rows(data_dir, "SELECT locator FROM parts")}
    garbage = {r[0] for r in catalog_rows(data_dir, "SELECT locator FROM garbage")}
    intents = {r[0] for r in catalog_rows(data_dir, "SELECT locator FROM intents")}
    return {"files": files, "referenced": referenced, "garbage": garbage, "intents": intents}


def unaccounted_blobs(ledger: dict[str, set[str]]) -> tuple[set[str], set[str]]:
    """(files no catalog row knows, referenced blobs with no file): both empty when they agree."""
    known = ledger["referenced"] | ledger["garbage"] | ledger["intents"]
    orphans = {f for f in ledger["files"] if f.removesuffix(".part") not in known}
    missing = ledger["referenced"] - ledger["files"]
    return orphans, missing


def wait_blobs_settled(data_dir: Path, timeout: float = 60.0) -> dict[str, set[str]]:
    """After a restart: wait for the sweep to turn dead writers' intents into freed blobs, then
    return the ledger. Raises if files and catalog still disagree at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        ledger = blob_ledger(data_dir)
        orphans, missing = unaccounted_blobs(ledger)
        staged = {f for f in ledger["files"] if f.endswith(".part")}
        settled = not ledger["intents"] and not orphans and not missing and not staged
        if settled or time.monotonic() > deadline:
            assert settled, (
                f"blobs and catalog disagree: {len(orphans)} orphan files, {len(missing)} referenced blobs missing,"
                f" {len(ledger['intents'])} intents, {len(staged)} staged files left"
            )
            return ledger
        time.sleep(0.1)
