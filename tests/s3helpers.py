"""In-process S3 server and a signing treq client for the API tests.

The server is the real stack (S3Site, S3Api, engine, SQLite catalog, local
driver) on 127.0.0.1:0 inside the test's reactor; requests are signed with
our own SigV4 client code, so a test can also send exactly the wrong thing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed

from vaultaire import __version__, sigv4
from vaultaire.api.app import S3Api
from vaultaire.api.auth import Authenticator
from vaultaire.api.deadlines import ConnectionLimits
from vaultaire.api.site import S3Site
from vaultaire.catalog.open import open_catalog
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.drivers.local import LocalDriver
from vaultaire.drivers.s3 import S3Driver, S3DriverConfig
from vaultaire.encryption.keys import Keyring
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
        limits: ConnectionLimits | None = None,
        clock: Callable[[], float] = time.time,
        free_grace: float = 0,
        sse_c_plain_http: bool = True,
        master_key: bytes | None = None,
        inline_max: int = 0,
        catalog_url: str | None = None,
    ) -> None:
        self.data = data
        # Pass the same key to open a data directory again (encrypted blobs, sealed secrets).
        master_key = master_key or os.urandom(32)
        self.limits = limits
        # ``catalog_url``: a PostgreSQL catalog (tests/postgres.py) instead of SQLite in ``data``.
        self.catalog: SQLiteCatalog = open_catalog(catalog_url, data, reactor, SecretBox(master_key))
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
        # ``clock`` is the engine's: a test that needs time to pass (upload expiry) moves it.
        # Replaced blobs are freed at once unless a test asks for the daemon's grace period.
        self.engine = Engine(
            self.catalog,
            drivers,
            reactor,
            default_placement=self.driver.name,
            clock=clock,
            free_grace=free_grace,
            keyring=Keyring(master_key),
            inline_max=inline_max,  # small objects in the catalog: tests/test_inline.py
        )
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
            sse_c_plain_http=sse_c_plain_http,  # in-process tests speak plain HTTP on loopback
        )
        self.port: Any = None
        self.url = ""

    async def start(self, *buckets: str) -> None:
        """Listen, with the test tenant's key and the given buckets already created."""
        await self.engine.start()
        await self.engine.ensure_credential("default", ACCESS, SECRET)
        self.events.start()
        self.site = S3Site(self.api.resource(), limits=self.limits)
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"
        for name in buckets:
            response = await self.request("PUT", f"/{name}")
            assert response.code == 200, response.body

    async def stop(self) -> None:
        await self.port.stopListening()
        await self.engine.stop()
        self.events.stop()

    async def sweep(self) -> None:
        """Run the engine's periodic sweep now, as if the grace period for reads in flight were over.

        The local driver frees a replaced single blob at once (open readers keep the file); other
        drivers, and multipart parts, keep it queued as garbage until that period has passed.
        """
        grace, self.engine.free_grace = self.engine.free_grace, 0.0
        try:
            await self.engine.collect_garbage()
        finally:
            self.engine.free_grace = grace
        assert await self.catalog.garbage(10) == []

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


def xml_values(body: bytes, tag: str) -> list[str]:
    """The text of every element named ``tag`` (any namespace), in document order.

    Parsed, not split: a body that is not well-formed XML fails the test here.
    """
    root = ET.fromstring(body)
    return [el.text or "" for el in root.iter() if el.tag == tag or el.tag.endswith("}" + tag)]


def md5_header(body: bytes) -> dict[str, str]:
    return {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}


def location_body(name: str) -> bytes:
    """A CreateBucket body asking for placement ``name``."""
    return (
        '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<LocationConstraint>{name}</LocationConstraint></CreateBucketConfiguration>"
    ).encode()


# -- multipart uploads through the in-process server


def multipart_etag(parts: Iterable[bytes]) -> str:
    """S3's ETag of a completed multipart upload (unquoted): MD5 of the parts' MD5s, dash, count."""
    digests = [hashlib.md5(p).digest() for p in parts]
    return hashlib.md5(b"".join(digests)).hexdigest() + f"-{len(digests)}"


def complete_body(parts: Iterable[tuple[int, str]]) -> bytes:
    """A CompleteMultipartUpload document listing (part number, ETag) pairs in the order given."""
    inner = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in parts)
    return f"<CompleteMultipartUpload>{inner}</CompleteMultipartUpload>".encode()


async def create_upload(server: Server, path: str, headers: Mapping[str, str] | None = None) -> str:
    """CreateMultipartUpload on ``path`` ("/bucket/key"); returns the upload id."""
    r = await server.request("POST", path, query="uploads=", headers=headers)
    assert r.code == 200, r.body
    (upload,) = xml_values(r.body, "UploadId")
    return upload


async def upload_part(server: Server, path: str, upload: str, number: int, body: bytes) -> str:
    """UploadPart; returns the part's quoted ETag."""
    r = await server.request("PUT", path, body, query=f"partNumber={number}&uploadId={upload}")
    assert r.code == 200, r.body
    return str(r.headers.getRawHeaders("etag")[0])


async def complete_upload(
    server: Server,
    path: str,
    upload: str,
    parts: Iterable[tuple[int, str]],
    headers: Mapping[str, str] | None = None,
) -> Any:
    """CompleteMultipartUpload; returns the response, whatever it says."""
    return await server.request("POST", path, complete_body(parts), query=f"uploadId={upload}", headers=headers)


async def upload_multipart(server: Server, path: str, parts: list[bytes], complete: bool = True) -> str:
    """Create an upload, send ``parts`` as parts 1..n and (unless told not to) complete it; returns its id."""
    upload = await create_upload(server, path)
    etags = [await upload_part(server, path, upload, n, data) for n, data in enumerate(parts, 1)]
    if complete:
        r = await complete_upload(server, path, upload, enumerate(etags, 1))
        assert r.code == 200, r.body
    return upload


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


def legacy_container(server: Server, tenant_id: str, name: str) -> None:
    """Give a tenant a container ``name`` even if another tenant holds that name, as a data directory
    written before names were unique across tenants may (written straight into the catalog file)."""
    legacy_container_at(os.path.join(server.data, "catalog.sqlite3"), tenant_id, name, server.driver.name)


def legacy_container_at(catalog_path: str, tenant_id: str, name: str, placement: str = "local") -> int:
    """``legacy_container`` on a catalog file; returns the new container's id."""
    import sqlite3

    db = sqlite3.connect(catalog_path, timeout=10)
    try:
        with db:
            now = time.time()
            cur = db.execute(
                "INSERT INTO containers (tenant_id, name, placement, created) VALUES (?, ?, ?, ?)",
                (tenant_id, name, placement, now),
            )
            db.execute(
                "INSERT INTO stored (container_id, tenant_id, container, since_us) VALUES (?, ?, ?, ?)",
                (cur.lastrowid, tenant_id, name, int(now * 1_000_000)),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid
    finally:
        db.close()
