"""In-process S3 server and a signing treq client for the API tests.

The server is the real stack (S3Site, S3Api, engine, SQLite catalog, local
driver) on 127.0.0.1:0 inside the test's reactor; requests are signed with
our own SigV4 client code, so a test can also send exactly the wrong thing.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed

from vaultaire import __version__, sigv4
from vaultaire.api.app import S3Api
from vaultaire.api.auth import Authenticator
from vaultaire.api.http import S3Site
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.drivers.local import LocalDriver
from vaultaire.drivers.s3 import S3Driver, S3DriverConfig
from vaultaire.engine import Engine
from vaultaire.ops.events import EventLog
from vaultaire.ops.metrics import Metrics
from vaultaire.sealing import SecretBox

ACCESS = "TESTACCESSKEY"
SECRET = "test-secret-key-0123456789"
REGION = "us-east-1"
UPSTREAM_BUCKET = "vaultaire-blobs"


class Server:
    """The whole stack in process. With ``upstream`` (an S3 endpoint URL, see
    ``tests/upstreams.py``), containers are placed on an s3 driver over it, in
    bucket ``vaultaire-blobs`` under a prefix of this server's own."""

    def __init__(
        self,
        data: str,
        domains: tuple[str, ...] = (),
        upstream: str | None = None,
        placements: Mapping[str, Any] | None = None,
        cors_default: tuple[Any, ...] = (),
        free_grace: float = 0,
    ) -> None:
        self.data = data
        self.catalog = SQLiteCatalog(os.path.join(data, "catalog.sqlite3"), reactor, SecretBox(os.urandom(32)))
        self.upstream = upstream
        self.driver: Any
        if upstream is None:
            self.driver = LocalDriver(os.path.join(data, "blobs"), reactor)
        else:
            from upstreams import ACCESS as UP_ACCESS
            from upstreams import SECRET as UP_SECRET

            self.driver = S3Driver(
                S3DriverConfig(
                    endpoint=upstream,
                    bucket=UPSTREAM_BUCKET,
                    access_key=UP_ACCESS,
                    secret_key=UP_SECRET,
                    prefix=f"srv-{uuid.uuid4().hex[:10]}/",
                    part_size=5 * 2**20,
                    timeout=10.0,
                ),
                reactor,
                name="s3",
            )
        drivers = {self.driver.name: self.driver, **(placements or {})}
        # Replaced blobs are freed at once unless a test asks for the daemon's grace period.
        self.engine = Engine(self.catalog, drivers, reactor, default_placement=self.driver.name, free_grace=free_grace)
        self.events = EventLog(os.path.join(data, "events"))
        self.metrics = Metrics()
        self.api = S3Api(
            self.engine,
            Authenticator(self.engine.credential, REGION, 900, time.time),
            self.events,
            self.metrics,
            region=REGION,
            health_path="/_vaultaire/health",
            version=__version__,
            started=time.time(),
            domains=domains,
            cors_default=cors_default,
        )
        self.port: Any = None
        self.url = ""

    async def start(self, *buckets: str) -> None:
        """Listen, with the test tenant's key and the given buckets already created."""
        await self.engine.start()
        await self.engine.ensure_credential("default", ACCESS, SECRET)
        self.events.start()
        self.port = reactor.listenTCP(0, S3Site(self.api.resource()), interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"
        for name in buckets:
            response = await self.request("PUT", f"/{name}")
            assert response.code == 200, response.body

    async def stop(self) -> None:
        await self.port.stopListening()
        await self.engine.stop()
        self.events.stop()

    def blob_files(self) -> list[str]:
        """Every blob the driver holds: files for local, upstream objects for s3 (a blocking listing)."""
        if self.upstream is not None:
            from upstreams import keys

            return keys(self.upstream, UPSTREAM_BUCKET, self.driver.config.prefix)
        found = []
        for dirpath, _dirs, files in os.walk(os.path.join(self.data, "blobs")):
            found += [os.path.join(dirpath, f) for f in files]
        return found

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        query: str = "",
        secret: str = SECRET,
        access: str = ACCESS,
        payload_hash: str | None = None,
        sign: bool = True,
    ) -> Any:
        """``path`` is decoded text ("/bucket/key with space"); it is encoded here like SDKs do."""
        raw_path = quote(path, safe="/~")
        url = self.url + raw_path + (f"?{query}" if query else "")
        hdrs = dict(headers or {})
        if sign:
            digest = payload_hash if payload_hash is not None else hashlib.sha256(body).hexdigest()
            hdrs.update(sigv4.sign_headers(method, url, hdrs, digest, access, secret, REGION, now=datetime.now(UTC)))
        response = await treq.request(
            method,
            url.encode("ascii"),
            data=body if body or method in ("PUT", "POST") else None,
            headers={k: [v] for k, v in hdrs.items()},
            persistent=False,
        )
        response.body = await response.content()
        return response

    def presign(self, method: str, path: str, expires: int = 300, now: datetime | None = None) -> str:
        url = self.url + quote(path, safe="/~")
        return sigv4.presign_url(method, url, ACCESS, SECRET, REGION, now=now or datetime.now(UTC), expires=expires)


def error_code(response: Any) -> str | None:
    body = response.body.decode("utf-8", "replace")
    if "<Code>" not in body:
        return None
    return body.split("<Code>", 1)[1].split("</Code>", 1)[0]


def later(seconds: float) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def raw_exchange(port: int, head: bytes, body_parts: list[bytes], read_first: bool) -> bytes:
    """Send headers, optionally read the interim answer, then the body; return all that came back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(head)
        got = b""
        if read_first:
            got = s.recv(65536)
            if not got.startswith(b"HTTP/1.1 100"):
                return got
        for part in body_parts:
            s.sendall(part)
        while b"\r\n\r\n" not in got.split(b"HTTP/1.1 100 Continue\r\n\r\n")[-1]:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got
    finally:
        s.close()


def signed_head(server: Server, method: str, path: str, length: int | None, extra: dict[str, str]) -> bytes:
    url = server.url + path
    hdrs = {"content-length": str(length), **extra} if length is not None else dict(extra)
    hdrs.update(
        sigv4.sign_headers(
            method, url, hdrs, sigv4.UNSIGNED_PAYLOAD, ACCESS, SECRET, "us-east-1", now=datetime.now(UTC)
        )
    )
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in hdrs.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Chunks:
    """A ChunkSource over fixed chunks: an upload body for the engine without HTTP."""

    def __init__(self, *chunks: bytes) -> None:
        self._chunks = list(chunks)

    def read(self) -> Deferred[bytes]:
        return succeed(self._chunks.pop(0) if self._chunks else b"")
