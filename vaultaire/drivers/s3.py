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
from collections import deque
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote
from xml.etree import ElementTree

import treq
from attrs import frozen
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring
from treq.client import HTTPClient
from twisted.internet import ssl
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import ConnectError, ConnectionLost, TimeoutError
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    ResponseDone,
    ResponseFailed,
)
from twisted.web.iweb import IBodyProducer, IPolicyForHTTPS
from zope.interface import implementer

from vaultaire import sigv4
from vaultaire.drivers.interface import BlobReader
from vaultaire.errors import DriverError, DriverUnavailable

log = Logger()

# Network failures worth a retry (and reported as "unavailable", not "broken").
_TRANSIENT = (ConnectError, ConnectionLost, TimeoutError, ResponseFailed, CancelledError)
_RETRY_STATUS = frozenset({500, 502, 503, 504})
MIN_PART_SIZE = 5 * 2**20  # S3's minimum for every part but the last
READ_AHEAD = 2 * 2**20  # bytes a reader takes from the upstream while its consumer is paused


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


def _error_code(body: bytes) -> str:
    try:
        # An upstream is a server on the network like any other: no DTDs, no entities.
        root = safe_fromstring(body, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException):
        return ""
    for child in root:
        if child.tag.rpartition("}")[2] == "Code":
            return child.text or ""
    return ""


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
                code = _error_code(content)
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
                response.deliverBody(_Discard())
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


def _body_producer(protocol: Protocol | None) -> IPushProducer | None:
    """The transport ``deliverBody`` gave a body protocol: a push producer (Twisted's
    TransportProxyProducer) that its ``transport: ITransport`` annotation does not say."""
    if protocol is None or protocol.transport is None:
        return None
    return cast(IPushProducer, protocol.transport)


class _Discard(Protocol):
    """Takes an unwanted response body by closing its connection, not by reading it."""

    def connectionMade(self) -> None:
        producer = _body_producer(self)
        assert producer is not None
        producer.stopProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        pass


# -- writing


@implementer(IBodyProducer)
class _StreamedBody:
    """The request body of a streamed PUT: the writer pushes, the upstream connection pauses it."""

    def __init__(self, reactor: Any, length: int) -> None:
        self._reactor = reactor
        self.length = length
        self.consumer: IConsumer | None = None
        self.paused = False
        self.ready: Deferred[None] = Deferred()  # fires once the connection is up and wants the body
        self.finished: Deferred[None] = Deferred()
        self._resumed: Deferred[None] | None = None

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        self.consumer = consumer
        # Not at once: the writer would run on (even commit) inside Twisted's call to
        # startProducing, before the client has hooked up the Deferred returned here.
        self._reactor.callLater(0, self._go)
        return self.finished

    def _go(self) -> None:
        if not self.ready.called:
            self.ready.callback(None)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self._resumed is not None:
            d, self._resumed = self._resumed, None
            d.callback(None)

    def stopProducing(self) -> None:
        self.fail(DriverUnavailable("the upstream connection went away during the upload"))

    def fail(self, error: Exception) -> None:
        for d in (self.ready, self._resumed):
            if d is not None and not d.called:
                d.errback(error)
        self._resumed = None

    def resumed(self) -> Deferred[None]:
        if not self.paused:
            return succeed(None)
        if self._resumed is None:
            self._resumed = Deferred()
        return self._resumed


class S3BlobWriter:
    """A blob of known size: one PUT whose body streams as the chunks arrive."""

    def __init__(self, driver: S3Driver, locator: str, size: int) -> None:
        self._driver = driver
        self._locator = locator
        self._size = size
        self._written = 0
        self._body = _StreamedBody(driver._reactor, size)
        self._response: Deferred[Any] | None = None
        self._error: Exception | None = None
        self._committed = False
        self._held = b""  # the last byte, sent only at commit
        self._started = time.monotonic()

    def _send(self) -> None:
        d = self._driver
        url = d.url(self._locator)
        headers = d._signed("PUT", url, {}, sigv4.UNSIGNED_PAYLOAD)
        self._started = time.monotonic()
        # No request timeout here: the upload lasts as long as the client sends.
        # Progress is watched instead (_watch), and the answer gets a deadline at commit.
        self._response = d._http.request("PUT", url, headers=headers, data=self._body, unbuffered=True)
        self._response.addErrback(self._request_failed)

    def _request_failed(self, failure: Failure) -> Failure:
        error = self._as_driver_error(failure)
        self._error = error
        self._body.fail(error)
        return Failure(error)

    def _as_driver_error(self, failure: Failure) -> Exception:
        if isinstance(failure.value, DriverError):
            return failure.value
        self._driver._note(type(failure.value).__name__, self._started)
        self._driver.up = False
        return DriverUnavailable(f"upstream {self._driver._base} failed during a PUT: {type(failure.value).__name__}")

    def _watch(self, waiting: Deferred[None]) -> None:
        """A paused upload that never resumes is a stalled upstream: give up after the timeout."""

        def stalled() -> None:
            if not waiting.called and self._response is not None:
                self._response.cancel()

        call = self._driver._reactor.callLater(self._driver.config.timeout, stalled)

        def done(result: Any) -> Any:
            if call.active():
                call.cancel()
            return result

        waiting.addBoth(done)

    async def _write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        if self._written + len(self._held) + len(data) > self._size:
            raise DriverError(f"blob is longer than the {self._size} bytes announced")
        if self._written + len(data) == self._size:
            # The upstream stores the object as soon as the announced length has arrived,
            # so the last byte waits for commit: an abort (a bad digest, say) must leave nothing.
            self._held, data = data[-1:], data[:-1]
        if data:
            await self._send_bytes(data)

    async def _send_bytes(self, data: bytes) -> None:
        if self._response is None:
            self._send()
        if not self._body.ready.called:
            self._watch(self._body.ready)
        await self._body.ready
        assert self._body.consumer is not None
        self._body.consumer.write(data)
        self._written += len(data)
        waiting = self._body.resumed()
        if not waiting.called:
            self._watch(waiting)
        await waiting

    def write(self, data: bytes) -> Deferred[None]:
        return Deferred.fromCoroutine(self._write(data))

    async def _commit(self) -> None:
        if self._error is not None:
            raise self._error
        if self._written + len(self._held) != self._size:
            raise DriverError(f"blob has {self._written + len(self._held)} bytes, {self._size} were announced")
        if self._response is None:
            self._send()
            await self._body.ready
        assert self._response is not None and self._body.consumer is not None
        if self._held:
            self._body.consumer.write(self._held)
            self._written += len(self._held)
            self._held = b""
        self._body.finished.callback(None)
        deadline = self._driver._reactor.callLater(self._driver.config.timeout, self._response.cancel)
        try:
            response = await self._response
        finally:
            if deadline.active():
                deadline.cancel()
        content = await treq.content(response)
        if response.code != 200:
            self._driver._note(f"{response.code}", self._started)
            raise self._driver.refused("PUT", response.code, _error_code(content))
        self._driver._note(None, self._started)
        self._committed = True

    def commit(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._commit())

    def abort(self) -> Deferred[None]:
        self._held = b""
        if self._committed:
            return succeed(None)
        # Cutting the connection before the announced length was sent leaves nothing upstream.
        # The body producer failing is how Twisted's client is told to do that (it aborts the
        # connection and never returns it to the pool).
        if self._response is not None:
            self._response.addErrback(lambda f: None)
            if not self._body.finished.called:
                self._body.finished.errback(DriverError("upload aborted"))
                self._body.finished.addErrback(lambda f: None)  # the request may never have started
        return succeed(None)


class S3MultipartWriter:
    """A blob of unknown size: an upstream multipart upload, one bounded part in flight
    while the next fills, so memory stays at about two parts whatever the blob's size."""

    def __init__(self, driver: S3Driver, locator: str) -> None:
        self._driver = driver
        self._locator = locator
        self._part_size = max(MIN_PART_SIZE, driver.config.part_size)
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._upload_id: str | None = None
        self._etags: list[str] = []
        self._inflight: Deferred[None] | None = None
        self._done = False

    async def _create(self) -> str:
        # Not retried: a second CreateMultipartUpload would leave the first one dangling.
        r = await self._driver.request("POST", self._locator, query="uploads=", retry=False)
        root = safe_fromstring(await treq.content(r), forbid_dtd=True)
        for child in root:
            if child.tag.rpartition("}")[2] == "UploadId" and child.text:
                return child.text
        raise DriverError(f"upstream {self._driver._base} sent no UploadId")

    async def _upload_part(self, number: int, data: bytes) -> None:
        assert self._upload_id is not None
        query = f"partNumber={number}&uploadId={quote(self._upload_id, safe='')}"
        r = await self._driver.request("PUT", self._locator, query=query, body=data)
        await treq.content(r)
        etag = (r.headers.getRawHeaders("etag") or [""])[0]
        self._etags[number - 1] = etag

    async def _flush(self, last: bool) -> None:
        if self._inflight is not None:
            await self._inflight  # one part at a time: memory stays bounded
            self._inflight = None
        if not self._buffered and not (last and not self._etags):
            return
        data = b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        if self._upload_id is None:
            self._upload_id = await self._create()
        self._etags.append("")
        d = Deferred.fromCoroutine(self._upload_part(len(self._etags), data))
        if last:
            await d
        else:
            self._inflight = d

    async def _write(self, data: bytes) -> None:
        self._buffer.append(bytes(data))
        self._buffered += len(data)
        if self._buffered >= self._part_size:
            await self._flush(last=False)

    def write(self, data: bytes) -> Deferred[None]:
        return Deferred.fromCoroutine(self._write(data))

    async def _commit(self) -> None:
        self._done = True
        if self._upload_id is None:
            # It all fit in one part: a plain PUT of what is held, retried like any replayable request.
            data = b"".join(self._buffer)
            self._buffer, self._buffered = [], 0
            r = await self._driver.request("PUT", self._locator, body=data)
            await treq.content(r)
            return
        await self._flush(last=True)
        parts = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>" for n, etag in enumerate(self._etags, 1)
        )
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        query = f"uploadId={quote(self._upload_id, safe='')}"
        r = await self._driver.request("POST", self._locator, query=query, body=body, retry=False)
        content = await treq.content(r)
        # S3 may answer 200 with an error document when completion fails late.
        if b"<Error>" in content:
            raise DriverError(f"upstream {self._driver._base} failed to complete an upload: {_error_code(content)}")

    def commit(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._commit())

    async def _abort(self) -> None:
        self._done = True
        self._buffer, self._buffered = [], 0
        if self._inflight is not None:
            try:
                await self._inflight
            except Exception:
                pass
        if self._upload_id is not None:
            query = f"uploadId={quote(self._upload_id, safe='')}"
            try:
                r = await self._driver.request("DELETE", self._locator, query=query, ok=(200, 204, 404))
                await treq.content(r)
            except DriverError:
                log.warn(
                    "could not abort upstream upload of {locator}; the upstream's expiry will", locator=self._locator
                )

    def abort(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._abort())


# -- reading


@implementer(IPushProducer)
class S3BlobReader:
    """The upstream response body, pushed into the consumer.

    While the consumer is paused, up to READ_AHEAD bytes more are taken from the
    upstream and held, and only then is the upstream connection paused: the
    consumer's pauses are short and frequent (every time the client socket's buffer
    fills), and pausing the upstream on each would leave both connections idle in
    turn. Memory per reader stays under READ_AHEAD plus one read.
    """

    def __init__(self, reactor: Any, response: Any, expected: int, timeout: float) -> None:
        self._reactor = reactor
        self._response = response
        self._expected = expected
        self._timeout = timeout
        self._consumer: IConsumer | None = None
        self._protocol: _BodyReceiver | None = None
        self._written = 0
        self._paused = False
        self._upstream_paused = False
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self._end: Failure | None = None  # the upstream has finished; delivered once held bytes are
        self._done: Deferred[int] = Deferred()
        self._last = 0.0
        self._watchdog: Any = None

    def stream_to(self, consumer: IConsumer) -> Deferred[int]:
        self._consumer = consumer
        consumer.registerProducer(self, True)
        self._protocol = _BodyReceiver(self)
        self._last = self._reactor.seconds()
        self._watchdog = self._reactor.callLater(self._timeout, self._check)
        self._response.deliverBody(self._protocol)
        if self._upstream_paused:
            # deliverBody resumes the connection once it has handed over what it
            # buffered, even if we paused it meanwhile: pause it again.
            self._pause_upstream()
        return self._done

    def _pause_upstream(self) -> None:
        self._upstream_paused = True
        if (producer := _body_producer(self._protocol)) is not None:
            producer.pauseProducing()

    def _resume_upstream(self) -> None:
        self._upstream_paused = False
        if (producer := _body_producer(self._protocol)) is not None:
            producer.resumeProducing()

    # upstream side

    def received(self, data: bytes) -> None:
        if self._consumer is None:
            return
        self._last = self._reactor.seconds()
        if self._paused or self._held:
            self._held.append(data)
            self._held_bytes += len(data)
            if self._held_bytes >= READ_AHEAD:
                self._pause_upstream()
            return
        self._written += len(data)
        self._consumer.write(data)

    def ended(self, reason: Failure) -> None:
        self._end = reason
        if not self._held:
            self._finish()

    def _finish(self) -> None:
        self._cancel_watchdog()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.unregisterProducer()
        if self._done.called:
            return
        assert self._end is not None
        if self._end.check(ResponseDone) and self._written == self._expected:
            self._done.callback(self._written)
        else:
            self._done.errback(
                DriverUnavailable(f"upstream read ended after {self._written} of {self._expected} bytes")
            )

    # an upstream that sends nothing for `timeout` while we wait for it has stalled

    def _check(self) -> None:
        self._watchdog = None
        if self._consumer is None:
            return
        waiting_for_upstream = not self._paused and not self._upstream_paused
        idle = self._reactor.seconds() - self._last
        if waiting_for_upstream and idle >= self._timeout:
            if (producer := _body_producer(self._protocol)) is not None:
                producer.stopProducing()
            return
        if not waiting_for_upstream:
            self._last = self._reactor.seconds()  # a slow client is not a stalled upstream
        self._watchdog = self._reactor.callLater(max(0.1, self._timeout - idle), self._check)

    def _cancel_watchdog(self) -> None:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None

    # consumer side

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while self._held and not self._paused and self._consumer is not None:
            data = self._held.popleft()
            self._held_bytes -= len(data)
            self._written += len(data)
            self._consumer.write(data)
        if self._paused or self._consumer is None:
            return
        if self._end is not None:
            self._finish()
        elif self._upstream_paused:
            self._last = self._reactor.seconds()
            self._resume_upstream()

    def stopProducing(self) -> None:
        self.stop()

    def stop(self) -> None:
        self._cancel_watchdog()
        self._consumer = None
        self._held.clear()
        self._held_bytes = 0
        if not self._done.called:
            self._done.errback(DriverError("reader stopped before the end"))
            self._done.addErrback(lambda f: None)
        if (producer := _body_producer(self._protocol)) is not None:
            producer.stopProducing()
        elif self._protocol is None:
            self._response.deliverBody(_Discard())


class _BodyReceiver(Protocol):
    def __init__(self, reader: S3BlobReader) -> None:
        self._reader = reader

    def dataReceived(self, data: bytes) -> None:
        self._reader.received(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._reader.ended(reason)
