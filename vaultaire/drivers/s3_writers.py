"""The s3 driver's writers: one streamed PUT for a blob of known size, an upstream multipart upload
for a blob of unknown or huge size (bounded parts, never the whole blob in memory)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import treq
from defusedxml.ElementTree import fromstring as safe_fromstring
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from vaultaire import sigv4
from vaultaire.drivers.s3_wire import error_code
from vaultaire.errors import DriverError, DriverUnavailable

if TYPE_CHECKING:
    from vaultaire.drivers.s3 import S3Driver

log = Logger()

MIN_PART_SIZE = 5 * 2**20  # S3's minimum for every part but the last


@implementer(IBodyProducer)
class StreamedBody:
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
        self._body = StreamedBody(driver._reactor, size)
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
            raise self._driver.refused("PUT", response.code, error_code(content))
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
            raise DriverError(f"upstream {self._driver._base} failed to complete an upload: {error_code(content)}")

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
