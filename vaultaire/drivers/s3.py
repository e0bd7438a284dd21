"""The s3 driver: blobs as objects in a bucket of any S3-compatible upstream.

Requests are signed with ``vaultaire.sigv4`` (the code that verifies ours) and
go through treq over one persistent connection pool. Bytes are never held
whole: a blob of known size streams up in one PUT (UNSIGNED-PAYLOAD, the
upstream's TCP window pausing the client's upload), a blob of unknown or
huge size goes up as an upstream multipart upload in bounded parts, and
reads stream the upstream's response body into the consumer with the
consumer's backpressure pausing the upstream connection.

Only requests that can be replayed (no body, or a body held in memory) are
retried, with exponential backoff; a streamed body cannot be sent twice.
An upstream that does not answer is a DriverUnavailable (503 SlowDown for
the client), never a hang: every request has a deadline and every stream an
idle timeout.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import treq
from attrs import frozen
from treq.client import HTTPClient
from twisted.internet import ssl
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectError, ConnectionLost, TimeoutError
from twisted.logger import Logger
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    ResponseFailed,
)
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from vaultaire import sigv4
from vaultaire.drivers.interface import BlobReader
from vaultaire.drivers.s3_reader import S3BlobReader
from vaultaire.drivers.s3_wire import Discard, error_code
from vaultaire.drivers.s3_writers import S3BlobWriter, S3MultipartWriter
from vaultaire.errors import DriverError, DriverUnavailable

log = Logger()

# Network failures worth a retry (and reported as "unavailable", not "broken").
_TRANSIENT = (ConnectError, ConnectionLost, TimeoutError, ResponseFailed, CancelledError)
_RETRY_STATUS = frozenset({500, 502, 503, 504})


class UpstreamRefused(DriverError):
    """The upstream answered, with an error status (kept for callers that care which)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@frozen
class S3DriverConfig:
    """Everything one s3 driver needs, from its ``[drivers.NAME]`` table."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    prefix: str = ""
    # TLS: verify the upstream's certificate (against ca_file if given, else the system roots).
    tls_verify: bool = True
    ca_file: str = ""
    # Blobs of known size up to this go up in one streamed PUT; larger or unknown ones as multipart.
    single_put_max: int = 5 * 2**30
    part_size: int = 16 * 2**20
    # Seconds: a request without an answer, or a stream without progress, fails after this.
    timeout: float = 30.0
    retries: int = 3
    max_connections: int = 16


@implementer(IPolicyForHTTPS)
class _InsecurePolicy:
    """TLS without certificate checks, for upstreams with self-signed certificates when asked for."""

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return ssl.CertificateOptions(verify=False)


def _tls_policy(config: S3DriverConfig) -> IPolicyForHTTPS:
    if not config.tls_verify:
        return _InsecurePolicy()
    if config.ca_file:
        with open(config.ca_file, "rb") as f:
            root = ssl.Certificate.loadPEM(f.read())
        return BrowserLikePolicyForHTTPS(trustRoot=root)
    return BrowserLikePolicyForHTTPS()


class S3Driver:
    """Blobs as objects ``<prefix><locator>`` in one upstream bucket."""

    def __init__(self, config: S3DriverConfig, reactor: Any, name: str = "s3") -> None:
        self.name = name
        self.config = config
        self._reactor = reactor
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = config.max_connections
        self._pool.cachedConnectionTimeout = 30
        agent = Agent(reactor, contextFactory=_tls_policy(config), pool=self._pool, connectTimeout=config.timeout)
        self._http = HTTPClient(agent)
        self._base = config.endpoint.rstrip("/")
        # What /health and the metrics show of this upstream.
        self.stats: dict[str, Any] = {"requests": 0, "errors": 0, "last_error": "", "latency_seconds": 0.0}
        self.up = True

    # -- requests

    def url(self, locator: str | None, query: str = "") -> str:
        path = f"/{quote(self.config.bucket, safe='')}"
        if locator is not None:
            path += "/" + quote(self.config.prefix + locator, safe="/~")
        return self._base + path + (f"?{query}" if query else "")

    def _signed(
        self, method: str, url: str, headers: dict[str, str], payload_hash: str
    ) -> dict[str | bytes, list[str | bytes]]:
        c = self.config
        all_headers = dict(headers)
        all_headers.update(
            sigv4.sign_headers(
                method, url, headers, payload_hash, c.access_key, c.secret_key, c.region, now=datetime.now(UTC)
            )
        )
        return {k: [v] for k, v in all_headers.items()}

    def _note(self, error: str | None, started: float) -> None:
        self.stats["requests"] += 1
        self.stats["latency_seconds"] = round(time.monotonic() - started, 6)
        if error is None:
            self.up = True
        else:
            self.stats["errors"] += 1
            self.stats["last_error"] = error

    async def request(
        self,
        method: str,
        locator: str | None,
        *,
        query: str = "",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        ok: tuple[int, ...] = (200, 204),
        retry: bool = True,
    ) -> Any:
        """Send a replayable request (``body`` held in memory), retrying transient failures
        (no answer, or 5xx) with exponential backoff unless ``retry`` is off: callers turn it
        off for requests that are not idempotent (creating or completing an upload).

        Fires with the response (body not read) when its status is in ``ok``;
        raises DriverError (the upstream refused) or DriverUnavailable.
        """
        url = self.url(locator, query)
        payload = hashlib.sha256(body or b"").hexdigest()
        attempts = 1 + (self.config.retries if retry else 0)
        delay = 0.1
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            try:
                response = await self._http.request(
                    method,
                    url,
                    headers=self._signed(method, url, headers or {}, payload),
                    data=body if body is not None else (b"" if method in ("PUT", "POST") else None),
                    timeout=self.config.timeout,
                    # treq would otherwise read every body into memory before handing it over.
                    unbuffered=True,
                )
            except _TRANSIENT as e:
                self._note(f"{type(e).__name__}", started)
                if attempt == attempts:
                    self.up = False
                    raise DriverUnavailable(
                        f"upstream {self._base} did not answer {method}: {type(e).__name__}"
                    ) from None
            else:
                if response.code in ok:
                    self._note(None, started)
                    return response
                content = await treq.content(response)
                code = error_code(content)
                self._note(f"{response.code} {code}", started)
                if response.code not in _RETRY_STATUS or attempt == attempts:
                    raise self.refused(method, response.code, code)
            await _sleep(self._reactor, delay)
            delay *= 2
        raise AssertionError("unreachable")

    def refused(self, method: str, status: int, code: str) -> DriverError:
        what = f"upstream {self._base} answered {method} with {status} {code}".rstrip()
        if status in _RETRY_STATUS:
            return DriverUnavailable(what)
        return UpstreamRefused(what, status)

    # -- life cycle

    def start(self) -> Deferred[None]:
        async def check() -> None:
            try:
                await self.request("HEAD", None, retry=False)
            except DriverUnavailable:
                raise
            except DriverError as e:
                raise DriverError(
                    f"driver {self.name!r}: bucket {self.config.bucket!r} is not usable on {self._base} ({e});"
                    " create it upstream and check the keys"
                ) from None

        return Deferred.fromCoroutine(check())

    def stop(self) -> Deferred[None]:
        closed: Deferred[None] = self._pool.closeCachedConnections()  # untyped in Twisted
        return closed

    def health(self) -> Deferred[dict[str, object]]:
        async def probe() -> dict[str, object]:
            started = time.monotonic()
            try:
                r = await self.request("HEAD", None, retry=False)
                await treq.content(r)
            except DriverError as e:
                return {"status": "error", "error": str(e), "errors": self.stats["errors"]}
            return {
                "status": "ok",
                "latency_seconds": round(time.monotonic() - started, 6),
                "errors": self.stats["errors"],
            }

        return Deferred.fromCoroutine(probe())

    # -- blobs

    def open_writer(self, locator: str, size_hint: int | None = None) -> S3BlobWriter | S3MultipartWriter:
        if size_hint is not None and size_hint <= self.config.single_put_max:
            return S3BlobWriter(self, locator, size_hint)
        return S3MultipartWriter(self, locator)

    def open_reader(self, locator: str, start: int, end: int) -> Deferred[BlobReader]:
        async def open_() -> BlobReader:
            headers = {"range": f"bytes={start}-{end}"} if end >= start else {}
            try:
                response = await self.request("GET", locator, headers=headers, ok=(200, 206))
            except DriverError as e:
                if isinstance(e, UpstreamRefused) and e.status in (404, 416):
                    raise DriverError(f"blob {locator} is missing or shorter than wanted upstream") from None
                raise
            expected = max(0, end - start + 1)
            if response.length != expected and not (end < start and response.length == 0):
                # A short range (the blob is shorter than the catalog says) is a corrupt replica.
                response.deliverBody(Discard())
                raise DriverError(f"blob {locator} upstream has the wrong size")
            return S3BlobReader(self._reactor, response, expected, self.config.timeout)

        return Deferred.fromCoroutine(open_())

    def delete(self, locator: str) -> Deferred[None]:
        async def delete() -> None:
            r = await self.request("DELETE", locator, ok=(200, 204, 404))
            await treq.content(r)

        return Deferred.fromCoroutine(delete())

    def stat(self, locator: str) -> Deferred[int | None]:
        async def stat() -> int | None:
            r = await self.request("HEAD", locator, ok=(200, 404))
            await treq.content(r)
            if r.code == 404:
                return None
            return int(r.headers.getRawHeaders("content-length", ["0"])[0])

        return Deferred.fromCoroutine(stat())


def _sleep(reactor: Any, seconds: float) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d
