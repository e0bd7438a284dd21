"""One S3 request in flight, and the helpers every operation family shares.

Operation modules import this, never ``app.py``: the app imports them.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from typing import TYPE_CHECKING

from twisted.web.server import Request

from vaultaire.access.acl import Acl, PublicAccessBlock
from vaultaire.api import header_lines
from vaultaire.api.addressing import Target
from vaultaire.api.auth import Identity
from vaultaire.api.errors import S3Error
from vaultaire.api.http import S3Request
from vaultaire.api.incoming import IncomingBody, content_md5
from vaultaire.api.xmlout import Element, element, xml_document
from vaultaire.encryption.keys import Protection
from vaultaire.engine import Engine
from vaultaire.model import Artifact, Container, ContainerAccess, RequestContext, Retention
from vaultaire.objectlock import LockRequest
from vaultaire.querystring import form_pairs

if TYPE_CHECKING:
    from vaultaire.lifecycle.rules import Configuration

SMALL_BODY_LIMIT = 64 * 1024  # XML request bodies (CreateBucket configuration)

Handler = Callable[["S3Call"], Awaitable[bytes | None]]


def http_date(ts: float) -> str:
    return _http_date_second(int(ts))


@functools.lru_cache(maxsize=4096)
def _http_date_second(second: int) -> str:
    # Whole seconds, as the format has them; a GET's Last-Modified, formatted once per second written.
    return formatdate(second, usegmt=True)


def iso(ts: float) -> str:
    return _iso_second(int(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    # A listing's objects were mostly written within a few seconds of each other.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


class S3Call:
    """One request in flight: what it targets, who sent it, what it did."""

    __slots__ = (
        "request",
        "target",
        "ctx",
        "identity",
        "operation",
        "headers",
        "bytes_in",
        "cors_applied",
        "access",
        "source_access",
        "denial",
        "event",
    )

    def __init__(self, request: S3Request, target: Target, ctx: RequestContext, headers: dict[str, str]) -> None:
        self.request = request
        self.target = target
        self.ctx = ctx
        self.headers = headers
        self.identity: Identity | None = None
        self.operation = "Unknown"
        self.bytes_in = 0
        self.cors_applied = False
        # Found by the authorization step (vaultaire/api/authorize.py): the container the request
        # names and its copy source's, whichever tenant owns them; and why it was denied, if it was.
        self.access: ContainerAccess | None = None
        self.source_access: ContainerAccess | None = None
        self.denial = ""
        # Fields the operation adds to its event-log line (the tags a write stored...): keep them small.
        self.event: dict[str, object] = {}

    def set_header(self, name: str, value: str) -> None:
        header_lines.replace(self.request.responseHeaders, name.encode("latin-1"), value.encode("utf-8"))


def header_text(raw: bytes) -> str:
    """A header value as text for the operations: UTF-8 when it is (botocore sends UTF-8),
    otherwise ISO-8859-1, HTTP/1.1's reading of bytes outside US-ASCII."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def headers_of(request: Request) -> dict[str, str]:
    """Lower-case names; repeated headers joined with ',' as SigV4 canonicalises them."""
    out: dict[str, str] = {}
    for name, values in request.requestHeaders.getAllRawHeaders():
        # One value, the common case, without a generator and a join: every header of every request passes here.
        text = header_text(values[0]) if len(values) == 1 else ",".join([header_text(v) for v in values])
        out[name.decode("latin-1").lower()] = text
    return out


# The query parameters that carry a query-form signature (SigV4 presigned URLs, SigV2 ones): what
# tells a presigned request apart, and the x-amz-* ones among them that are not headers.
_QUERY_SIGNATURE = frozenset(
    {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Expires"}
    | {"AWSAccessKeyId"}
)
_SIGNATURE_PARAMETERS = frozenset(
    {
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-signature",
        "x-amz-date",
        "x-amz-signedheaders",
        "x-amz-expires",
        "x-amz-security-token",
        "x-amz-content-sha256",  # the query form's payload claim, read by the signature check
    }
)
# S3 takes no additional checksum from a presigned URL's query ("presigned URLs don't support
# CRC32, CRC32C, SHA-1, SHA-256 checksums"): it ignores them, and the AWS JS SDK v3 puts the
# empty body's CRC32 in every presigned PutObject URL by default. Read as headers, they would
# fail every such upload (as on servers that do).
_NOT_FROM_QUERY = ("x-amz-checksum-", "x-amz-sdk-checksum-algorithm")


def with_query_headers(headers: dict[str, str], raw_query: str) -> dict[str, str]:
    """``headers`` plus the ``x-amz-*`` headers a presigned request carries in its query.

    Presigners move ``x-amz-*`` headers into the URL (the AWS JS SDK v3 for SigV4, botocore
    for SigV2), where the signature covers them as part of the query (SigV2: as the amz
    headers of its string to sign, so the signature check must see them too); S3 reads them
    as the headers of the same name. Counted as headers, they are applied where honoured and
    refused where not, never ignored. Only for a query-signed request: elsewhere such a
    parameter is just a query parameter, as on S3. A header and a parameter that disagree
    are refused rather than one chosen silently.
    """
    pairs = form_pairs(raw_query)
    if not any(name in _QUERY_SIGNATURE for name, _ in pairs):
        return headers
    hoisted: dict[str, list[str]] = {}
    for name, value in pairs:
        lower = name.lower()
        if lower.startswith("x-amz-") and lower not in _SIGNATURE_PARAMETERS and not lower.startswith(_NOT_FROM_QUERY):
            hoisted.setdefault(lower, []).append(value)
    if not hoisted:
        return headers
    out = dict(headers)
    for name, values in hoisted.items():
        value = ",".join(values)
        if name in out and out[name] != value:
            raise S3Error(
                "InvalidArgument",
                f"The header {name} and the query parameter of the same name disagree.",
                ArgumentName=name,
                ArgumentValue=value,
            )
        out[name] = value
    return out


def signed_headers_of(request: Request, headers: dict[str, str]) -> dict[str, str]:
    """The headers as the signature checks see them: the bytes the client sent, whatever they
    are (UTF-8, and any other byte as a surrogate that the signers encode back to itself).

    Only values that are not UTF-8 differ from ``headers``, which they would not survive
    into the catalog as they are (SQLite refuses surrogates).
    """
    if "".join(headers.values()).isascii():  # (one pass in C, no generator step per header)
        return headers
    out = dict(headers)  # with the headers a presigned request carries in its query
    for name, values in request.requestHeaders.getAllRawHeaders():
        out[name.decode("latin-1").lower()] = ",".join(v.decode("utf-8", "surrogateescape") for v in values)
    return out


# Operations authenticated inside their handler (a form upload is signed in its body) or not at all.
_NOT_SIGNED_UP_FRONT = frozenset({"PostObject", "CorsPreflight"})


class OperationBase:
    """What every operation family needs from the app: the engine and small shared steps."""

    engine: Engine
    # SSE-C keys over plain HTTP: refused (as S3 does) unless the deployment allows it.
    sse_c_plain_http: bool = False
    # [security] encrypt_all_objects: a new object that asks for no encryption, in a bucket with
    # no default, is SSE-S3 anyway (as S3 has done for every new object since January 2023).
    encrypt_all_objects: bool = False

    def _sse_c_secure(self, call: S3Call) -> bool:
        return self.sse_c_plain_http or bool(call.request.isSecure())

    if TYPE_CHECKING:
        # Shared steps ObjectOperations defines; S3Api mixes every family in, so the others use them too.
        def _metadata(self, call: S3Call) -> tuple[tuple[str, str], ...]: ...

        def _echo_checksum(self, call: S3Call, incoming: IncomingBody) -> None: ...

        def _check_body_integrity(self, call: S3Call, body: bytes) -> None: ...

        # EncryptionOperations (bucket_encryption.py) defines it.
        async def _default_protection(self, call: S3Call, container: Container) -> Protection | None: ...

        # LifecycleOperations (lifecycle_operations.py) defines them: the x-amz-expiration header.
        async def _lifecycle(self, call: S3Call, container: Container) -> Configuration | None: ...

        def _echo_expiration(self, call: S3Call, configuration: Configuration | None, artifact: Artifact) -> None: ...
        # The authorization step (authorize.py), for operations that learn their keys from the body.
        async def authorize(self, call: S3Call) -> None: ...

        async def authorize_key(self, call: S3Call, key: str, version: str | None = None) -> None: ...

        # ACLs, ownership, public access block (acl_operations.py, ownership.py, public_access_block.py).
        async def _ownership(self, call: S3Call, container: Container) -> str: ...

        async def _bucket_acl(self, call: S3Call, container: Container) -> Acl: ...

        async def _public_access_block(self, call: S3Call, container: Container) -> PublicAccessBlock: ...

        async def _new_object_acl(self, call: S3Call, container: Container, headers: Mapping[str, str]) -> str: ...

        def _bucket_creation_acl(self, call: S3Call, ownership: str, block: PublicAccessBlock) -> str: ...
        # ObjectLockOperations (object_lock.py) defines these.
        def lock_requested(self, fields: Mapping[str, str]) -> tuple[Retention | None, bool | None]: ...

        async def lock_for_write(
            self,
            call: S3Call,
            container: Container,
            asked: tuple[Retention | None, bool | None],
            integrity: bool | None = None,
            key: str | None = None,
        ) -> LockRequest | None: ...

        async def lock_headers(self, call: S3Call, artifact: Artifact) -> None: ...

        async def _may(self, call: S3Call, action: str, key: str | None = None) -> bool: ...

        async def delete_guard(
            self, call: S3Call, container: Container, versions: bool = True, key: str | None = None
        ) -> Callable[[Artifact], None] | None: ...

        def lock_settings_at_creation(self) -> dict[str, str]: ...

        async def may_create_locked(self, call: S3Call) -> None: ...

    def _xml(self, call: S3Call, root: Element) -> bytes:
        body = xml_document(root)
        call.set_header("Content-Type", "application/xml")
        call.set_header("Content-Length", str(len(body)))
        return body

    async def _container(self, call: S3Call) -> Container:
        assert call.target.bucket is not None
        if call.access is not None:
            return call.access.container  # found by the authorization step, for whichever tenant
        return await self.engine.container(call.ctx, call.target.bucket)

    async def _source_container(self, call: S3Call, bucket: str) -> Container:
        """A copy's source container, which may be another tenant's (the authorization step allowed it)."""
        if call.source_access is not None and call.source_access.container.name == bucket:
            return call.source_access.container
        return await self.engine.container(call.ctx, bucket)

    def _owner(self, call: S3Call) -> Element:
        tenant = call.ctx.tenant
        assert tenant is not None
        return element("Owner", element("ID", tenant.id), element("DisplayName", tenant.name))

    async def _small_body(self, call: S3Call, limit: int = SMALL_BODY_LIMIT) -> bytes:
        length = call.request.body_length
        if length is not None and length > limit:
            raise S3Error("InvalidRequest", "The request body is too large.")
        pipe = call.request.open_body()
        chunks = []
        total = 0
        while chunk := await pipe.read():
            total += len(chunk)
            if total > limit:
                raise S3Error("InvalidRequest", "The request body is too large.")
            chunks.append(chunk)
        whole = b"".join(chunks)
        # A Content-MD5 is a protection the client asked for, whatever the operation: kept.
        expected = content_md5(call.headers)
        if expected is not None and hashlib.md5(whole).digest() != expected:
            raise S3Error("BadDigest")
        return whole
