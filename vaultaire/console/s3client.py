"""S3 requests signed with the signed-in user's keys, to the daemon's own S3 endpoint.

Why not call the S3 layer in process: with workers the console lives in the supervisor,
which has no S3 layer, and a real request goes through exactly the path every client's
does (authentication, the authorization step, quotas, metering, the event log), so the
console can never do more than the user's keys may, nor be counted differently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import quote

import treq
from attrs import frozen
from defusedxml.ElementTree import fromstring
from twisted.internet import error
from twisted.internet.defer import CancelledError, FirstError, ensureDeferred, gatherResults
from twisted.web.client import FileBodyProducer, ResponseFailed, ResponseNeverReceived
from twisted.web.iweb import IBodyProducer

from vaultaire import sigv4

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


_STATUS_CODES = {400: "BadRequest", 403: "AccessDenied (403)", 404: "NotFound (404)", 405: "MethodNotAllowed"}


@frozen
class Keys:
    access_key: str
    secret_key: str


@frozen
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names, first value
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> str:
        """The S3 error as one line a person reads: code and message."""
        try:
            root = fromstring(self.body)
            code = root.findtext("Code") or str(self.status)
            message = root.findtext("Message") or ""
        except Exception:
            # A HEAD's error has no body: its status says it all.
            code = _STATUS_CODES.get(self.status, str(self.status))
            message = ""
        return f"{code}: {message}" if message else code

    def xml(self) -> Any:
        return fromstring(self.body)

    @property
    def code(self) -> str:
        """The S3 error code ("" when the body names none)."""
        try:
            return str(fromstring(self.body).findtext("Code") or "")
        except Exception:
            return ""


class S3Unreachable(Exception):
    """The daemon's own S3 endpoint did not answer (not listening, reset, too slow)."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(f"{url}: {why}")
        self.url = url
        self.why = why


# Connections that failed or an answer that never came: the S3 port is down or stuck.
_UNREACHABLE = (
    error.ConnectError,
    error.DNSLookupError,
    error.TimeoutError,
    error.ConnectionLost,
    CancelledError,
    ResponseNeverReceived,
    ResponseFailed,
)

# Seconds the S3 endpoint has to answer a request without a streamed body (a page's reads,
# a setting's change); streamed uploads take as long as their bytes take.
ANSWER_SECONDS = 60.0


def _why(failure: BaseException) -> str:
    if isinstance(failure, error.ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    # treq's timeout cancels the request, which the agent reports as a response never received.
    reasons = [r.value for r in getattr(failure, "reasons", [])]
    if any(isinstance(r, CancelledError | error.TimeoutError) for r in [failure, *reasons]):
        return "no answer in time"
    if isinstance(failure, ResponseNeverReceived | ResponseFailed | error.ConnectionLost):
        return "the connection was closed before the answer"
    return failure.__class__.__name__


class S3Failed(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.error())
        self.reply = reply


def quote_key(key: str) -> str:
    return quote(key.encode("utf-8", "surrogateescape"), safe="/~")


def query_string(query: Sequence[tuple[str, str]]) -> str:
    """Canonically encoded, so the signature's and the sent query are the same string."""
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" if v or k else k for k, v in query)


def object_path(bucket: str, key: str | None = None) -> str:
    path = "/" + quote(bucket, safe="")
    if key is not None:
        path += "/" + quote_key(key)
    return path


class S3Client:
    """Signs and sends; ``base`` gives the S3 endpoint's loopback URL (known once it listens)."""

    def __init__(
        self,
        base: Callable[[], str],
        public: Callable[[], str],
        region: str,
        clock: Callable[[], float],
        http: Any = treq,
    ) -> None:
        self._base = base
        self._public = public
        self.region = region
        self._clock = clock
        self._http = http

    async def call(
        self,
        keys: Keys,
        method: str,
        bucket: str | None = None,
        key: str | None = None,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes | IO[bytes] | None = None,
    ) -> Reply:
        path = object_path(bucket, key) if bucket is not None else "/"
        qs = query_string(query)
        url = self._base() + path + (f"?{qs}" if qs else "")
        all_headers = dict(headers or {})
        data: bytes | IBodyProducer | None
        if body is None:
            data, payload = None, hashlib.sha256(b"").hexdigest()
        elif isinstance(body, bytes):
            data, payload = body, hashlib.sha256(body).hexdigest()
        else:
            # A file (an upload spooled by twisted.web): streamed, its hash unsigned as SDKs do on TLS.
            data, payload = FileBodyProducer(body), sigv4.UNSIGNED_PAYLOAD
        now = datetime.fromtimestamp(self._clock(), UTC)
        all_headers.update(
            sigv4.sign_headers(
                method, url, all_headers, payload, keys.access_key, keys.secret_key, self.region, now=now
            )
        )
        try:
            response = await self._http.request(
                method,
                url,
                headers={k: [v] for k, v in all_headers.items()},
                data=data,
                persistent=False,
                timeout=None if payload == sigv4.UNSIGNED_PAYLOAD else ANSWER_SECONDS,
            )
            content = await treq.content(response)
        except _UNREACHABLE as e:
            raise S3Unreachable(self._base(), _why(e)) from None
        found = {
            name.decode("latin-1").lower(): values[0].decode("latin-1")
            for name, values in response.headers.getAllRawHeaders()
        }
        return Reply(response.code, found, content)

    async def checked(self, keys: Keys, method: str, *args: Any, **kwargs: Any) -> Reply:
        reply = await self.call(keys, method, *args, **kwargs)
        if not reply.ok:
            raise S3Failed(reply)
        return reply

    def presign(self, keys: Keys, bucket: str, key: str, expires: int, query: Sequence[tuple[str, str]] = ()) -> str:
        """A GET the browser (or anyone holding it) can follow, on the public S3 URL."""
        qs = query_string(sorted(query))
        url = self._public() + object_path(bucket, key) + (f"?{qs}" if qs else "")
        now = datetime.fromtimestamp(self._clock(), UTC)
        return sigv4.presign_url("GET", url, keys.access_key, keys.secret_key, self.region, now=now, expires=expires)


async def together(*calls: Coroutine[Any, Any, Any]) -> list[Any]:
    """Requests sent at once, their results in order; the first failure raised as itself."""
    try:
        results: list[Any] = await gatherResults([ensureDeferred(c) for c in calls], consumeErrors=True)
    except FirstError as e:
        e.subFailure.raiseException()
        raise
    return results
