"""The S3 front door: one coarse Klein route, operations dispatched by table.

Every request gets an id, is authenticated, dispatched to one handler, and
ends in exactly one event and one metrics observation, failed ones too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from klein import Klein
from twisted.logger import Logger
from twisted.web.server import Request

from vaultaire.api import checksums, xmlparse
from vaultaire.api.addressing import MAX_KEY_BYTES, Target, check_bucket_name, parse_target
from vaultaire.api.auth import Authenticator, Identity
from vaultaire.api.cors import Rule as CorsRule
from vaultaire.api.cors_operations import CorsOperations
from vaultaire.api.errors import S3Error, from_domain
from vaultaire.api.headers import (
    RESPONSE_OVERRIDES,
    read_conditions,
    storage_class,
    stored_headers,
    write_condition,
)
from vaultaire.api.http import S3Request
from vaultaire.api.incoming import IncomingBody, content_md5
from vaultaire.api.multipart import MultipartOperations
from vaultaire.api.operations import detect
from vaultaire.api.post_object import PostObjectOperation
from vaultaire.api.ranges import resolve_range
from vaultaire.api.xmlout import element, xml_document
from vaultaire.engine import CopyPlan, Engine
from vaultaire.engine.conditions import Outcome, evaluate
from vaultaire.errors import Cancelled
from vaultaire.model import Artifact, ByteRange, Container, RequestContext
from vaultaire.ops.events import EventLog, make_event
from vaultaire.ops.metering import Meter
from vaultaire.ops.metrics import Metrics
from vaultaire.ops.site import health_document

log = Logger()

MAX_PUT_SIZE = 5 * 2**30
MAX_METADATA_BYTES = 2048
MAX_LIST_KEYS = 1000
SMALL_BODY_LIMIT = 64 * 1024  # XML request bodies (CreateBucket configuration)
DELETE_BODY_LIMIT = 2 * 2**20  # 1000 keys of up to 1024 bytes, escaped
MAX_DELETE_KEYS = 1000

Handler = Callable[["S3Call"], Awaitable[bytes | None]]


def _http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


class _NotModified(Exception):
    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact


class S3Call:
    """One request in flight: what it targets, who sent it, what it did."""

    __slots__ = ("request", "target", "ctx", "identity", "operation", "headers", "bytes_in", "cors_applied")

    def __init__(self, request: S3Request, target: Target, ctx: RequestContext, headers: dict[str, str]) -> None:
        self.request = request
        self.target = target
        self.ctx = ctx
        self.headers = headers
        self.identity: Identity | None = None
        self.operation = "Unknown"
        self.bytes_in = 0
        self.cors_applied = False

    def set_header(self, name: str, value: str) -> None:
        self.request.setHeader(name.encode("latin-1"), value.encode("utf-8"))


def _headers_of(request: Request) -> dict[str, str]:
    """Lower-case names; repeated headers joined with ',' as SigV4 canonicalises them."""
    out: dict[str, str] = {}
    for name, values in request.requestHeaders.getAllRawHeaders():
        out[name.decode("latin-1").lower()] = ",".join(v.decode("latin-1") for v in values)
    return out


# Operations authenticated inside their handler (a form upload is signed in its body) or not at all.
_NOT_SIGNED_UP_FRONT = frozenset({"PostObject", "CorsPreflight"})


class S3Api(MultipartOperations, PostObjectOperation, CorsOperations):
    """The Klein application serving the S3 protocol for one engine."""

    app = Klein()
    app.url_map.merge_slashes = False  # keys like a//b must reach us untouched

    def __init__(
        self,
        engine: Engine,
        authenticator: Authenticator,
        events: EventLog,
        metrics: Metrics,
        *,
        region: str,
        health_path: str,
        version: str,
        started: float,
        health: Callable[[], Mapping[str, object]] | None = None,
        domains: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
        meter: Meter | None = None,
        cors_default: tuple[CorsRule, ...] = (),
    ) -> None:
        self.meter = meter
        self.domains = domains
        self.cors_default = cors_default
        self.health = health
        self.engine = engine
        self.auth = authenticator
        self.events = events
        self.metrics = metrics
        self.region = region
        self.health_path = health_path
        self.version = version
        self.started = started
        self.clock = clock
        self.handlers: dict[str, Handler] = {
            "ListBuckets": self.list_buckets,
            "CreateBucket": self.create_bucket,
            "HeadBucket": self.head_bucket,
            "DeleteBucket": self.delete_bucket,
            "GetBucketLocation": self.get_bucket_location,
            "ListObjects": self.list_objects,
            "ListObjectsV2": self.list_objects,
            "PutObject": self.put_object,
            "GetObject": self.get_object,
            "HeadObject": self.get_object,
            "DeleteObject": self.delete_object,
            "CopyObject": self.copy_object,
            "DeleteObjects": self.delete_objects,
            "GetBucketVersioning": self.get_bucket_versioning,
            "ListObjectVersions": self.list_object_versions,
            "CreateMultipartUpload": self.create_multipart_upload,
            "UploadPart": self.upload_part,
            "UploadPartCopy": self.upload_part_copy,
            "CompleteMultipartUpload": self.complete_multipart_upload,
            "AbortMultipartUpload": self.abort_multipart_upload,
            "ListParts": self.list_parts,
            "ListMultipartUploads": self.list_multipart_uploads,
            "PostObject": self.post_object,
            "GetBucketCors": self.get_bucket_cors,
            "PutBucketCors": self.put_bucket_cors,
            "DeleteBucketCors": self.delete_bucket_cors,
            "CorsPreflight": self.cors_preflight,
        }

    def resource(self) -> Any:
        return self.app.resource()

    @app.route("/", branch=True, methods=["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"])
    async def _entry(self, request: S3Request) -> bytes | None:
        return await self.handle(request)

    # -- the one path every request takes

    async def handle(self, request: S3Request) -> bytes | None:
        started = self.clock()
        request_id = secrets.token_hex(8).upper()
        request.setHeader(b"x-amz-request-id", request_id.encode())
        request.setHeader(b"x-amz-id-2", base64.b64encode(request_id.encode()))
        request.setHeader(b"Server", b"Vaultaire")
        if request.path == self.health_path.encode():
            code, body = health_document(self.version, self.started, self.health)
            request.setResponseCode(code)
            request.setHeader(b"Content-Type", b"application/json")
            return body
        ctx = RequestContext(request_id)
        request.notifyFinish().addErrback(lambda _: ctx.cancel())
        call: S3Call | None = None
        method = request.method.decode("latin-1").upper()
        error: S3Error | None = None
        self.metrics.in_flight.inc()
        try:
            try:
                host = (request.getHeader(b"host") or b"").decode("latin-1")
                target = parse_target(request.uri, host, self.domains)
                call = S3Call(request, target, ctx, _headers_of(request))
                call.operation = detect(method, target, call.headers)
                if call.operation not in _NOT_SIGNED_UP_FRONT:
                    call.identity = await self.auth.authenticate(
                        method, target.raw_path, target.raw_query, call.headers, target.v2_path
                    )
                    ctx.tenant = call.identity.tenant
                    if "origin" in call.headers:  # before the handler: a GET streams its headers out
                        await self.apply_cors(call)
                body = await self.handlers[call.operation](call)
                if "origin" in call.headers:
                    await self.apply_cors(call)  # POST Object: the tenant is known only now
            except BaseException as e:
                error = from_domain(e, call.target.bucket if call else None, call.target.key if call else None)
                if error is None:
                    if ctx.cancelled or isinstance(e, Cancelled):
                        raise
                    log.failure("internal error in {operation}", operation=call.operation if call else "?")
                    error = S3Error("InternalError")
                if call is not None and "origin" in call.headers:
                    await self.apply_cors(call)  # so a page can read the error
                body = self._render_error(request, error, call, request_id)
            # Written here rather than by Klein so the event and metrics count these bytes.
            if body and not request.finished and not request._disconnected:
                request.write(body)
        finally:
            self.metrics.in_flight.dec()
            self._record(request, call, method, started, request_id, error)
        return None

    def _render_error(self, request: S3Request, error: S3Error, call: S3Call | None, request_id: str) -> bytes | None:
        if request.finished or request._disconnected:
            return None
        if request.startedWriting:
            # Headers are gone already: all we can do is cut the stream short.
            request.loseConnection()
            return None
        request.setResponseCode(error.status)
        resource = call.target.resource if call else "/"
        body = error.to_xml(resource, request_id)
        request.responseHeaders.removeHeader(b"Content-Range")
        request.responseHeaders.removeHeader(b"ETag")
        request.setHeader(b"Content-Type", b"application/xml")
        request.setHeader(b"Content-Length", str(len(body)).encode())
        return body

    def _record(
        self,
        request: S3Request,
        call: S3Call | None,
        method: str,
        started: float,
        request_id: str,
        error: S3Error | None,
    ) -> None:
        duration = self.clock() - started
        operation = call.operation if call else "Unknown"
        status = request.code if not request._disconnected or request.finished else 499
        bytes_in = request.body.received if request.body is not None else 0
        tenant = call.ctx.tenant.name if call and call.ctx.tenant else None
        self.metrics.observe(operation, status, duration, bytes_in, request.bytes_out)
        if self.meter is not None and call is not None and call.ctx.tenant is not None:
            self.meter.record(call.ctx.tenant, call.target.bucket, method, operation, request.bytes_out, bytes_in)
        self.events.emit(
            make_event(
                time=started,
                request_id=request_id,
                tenant=tenant,
                operation=operation,
                container=call.target.bucket if call else None,
                key=call.target.key if call else None,
                bytes_in=bytes_in,
                bytes_out=request.bytes_out,
                status=status,
                duration=duration,
                error=error.code if error else None,
            )
        )

    # -- service and containers

    def _xml(self, call: S3Call, root: Any) -> bytes:
        body = xml_document(root)
        call.set_header("Content-Type", "application/xml")
        call.set_header("Content-Length", str(len(body)))
        return body

    async def _container(self, call: S3Call) -> Container:
        assert call.target.bucket is not None
        return await self.engine.container(call.ctx, call.target.bucket)

    def _owner(self, call: S3Call) -> Any:
        tenant = call.ctx.tenant
        assert tenant is not None
        return element("Owner", element("ID", tenant.id), element("DisplayName", tenant.name))

    async def list_buckets(self, call: S3Call) -> bytes:
        containers = await self.engine.list_containers(call.ctx)
        buckets = [
            element("Bucket", element("Name", c.name), element("CreationDate", _iso(c.created))) for c in containers
        ]
        return self._xml(
            call, element("ListAllMyBucketsResult", self._owner(call), element("Buckets", *buckets), xmlns=True)
        )

    async def _small_body(self, call: S3Call, limit: int = SMALL_BODY_LIMIT) -> bytes:
        length = call.request.body_length
        if length is not None and length > limit:
            raise S3Error("InvalidRequest", "The request body is too large.")
        body = call.request.open_body()
        chunks = []
        total = 0
        while chunk := await body.read():
            total += len(chunk)
            if total > limit:
                raise S3Error("InvalidRequest", "The request body is too large.")
            chunks.append(chunk)
        return b"".join(chunks)

    async def create_bucket(self, call: S3Call) -> bytes:
        assert call.target.bucket is not None
        check_bucket_name(call.target.bucket)
        body = await self._small_body(call)
        placement = None
        if body.strip():
            constraint = xmlparse.location_constraint(body)
            # The server's own region (what SDKs send by default) means the default placement;
            # any other constraint names a placement, or is refused (InvalidLocationConstraint).
            if constraint and constraint != self.region:
                placement = constraint
        await self.engine.create_container(call.ctx, call.target.bucket, placement)
        call.set_header("Location", f"/{call.target.bucket}")
        call.set_header("Content-Length", "0")
        return b""

    async def head_bucket(self, call: S3Call) -> bytes:
        await self._container(call)
        call.set_header("x-amz-bucket-region", self.region)
        call.set_header("Content-Length", "0")
        return b""

    async def delete_bucket(self, call: S3Call) -> bytes:
        assert call.target.bucket is not None
        await self.engine.delete_container(call.ctx, call.target.bucket)
        call.request.setResponseCode(204)
        return b""

    async def get_bucket_location(self, call: S3Call) -> bytes:
        container = await self._container(call)
        if container.placement != self.engine.default_placement:
            return self._xml(call, element("LocationConstraint", container.placement, xmlns=True))
        # On the default placement: the region, which S3 answers as empty for us-east-1.
        region = "" if self.region == "us-east-1" else self.region
        return self._xml(call, element("LocationConstraint", region, xmlns=True))

    async def list_objects(self, call: S3Call) -> bytes:
        container = await self._container(call)
        q = call.target.query
        v2 = call.operation == "ListObjectsV2"
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter", "")
        max_keys = _max_keys(q)
        encoding = _encoding(q)
        if v2:
            token = q.get("continuation-token")
            after = _decode_token(token) if token is not None else q.get("start-after") or None
        else:
            after = q.get("marker") or None
        page = await self.engine.list_artifacts(call.ctx, container, prefix, delimiter, after, max_keys)

        def enc(text: str) -> str:
            return _url_encode(text) if encoding == "url" else text

        fetch_owner = (not v2) or q.get("fetch-owner") == "true"
        contents = [
            element(
                "Contents",
                element("Key", enc(a.key)),
                element("LastModified", _iso(a.modified)),
                element("ETag", a.etag),
                element("Size", a.size),
                element("StorageClass", "STANDARD"),
                self._owner(call) if fetch_owner else None,
            )
            for a in page.artifacts
        ]
        prefixes = [element("CommonPrefixes", element("Prefix", enc(p))) for p in page.prefixes]
        head = [element("Name", container.name), element("Prefix", enc(prefix))]
        if v2:
            if "continuation-token" in q:
                head.append(element("ContinuationToken", q["continuation-token"]))
            if "start-after" in q:
                head.append(element("StartAfter", enc(q["start-after"])))
            head.append(element("KeyCount", len(contents) + len(prefixes)))
        else:
            head.append(element("Marker", enc(q.get("marker", ""))))
        head.append(element("MaxKeys", max_keys))
        head += _listing_flags(delimiter, encoding, page.truncated, enc)
        if page.truncated and page.next_marker is not None:
            if v2:
                head.append(element("NextContinuationToken", _encode_token(page.next_marker)))
            elif delimiter:
                head.append(element("NextMarker", enc(page.next_marker)))
        return self._xml(call, element("ListBucketResult", *head, *contents, *prefixes, xmlns=True))

    # -- artifacts

    def _metadata(self, call: S3Call) -> tuple[tuple[str, str], ...]:
        meta = sorted((k[len("x-amz-meta-") :], v) for k, v in call.headers.items() if k.startswith("x-amz-meta-"))
        size = sum(len(k.encode()) + len(v.encode()) for k, v in meta)
        if size > MAX_METADATA_BYTES:
            raise S3Error(
                "MetadataTooLarge",
                f"Your metadata headers are {size} bytes; at most {MAX_METADATA_BYTES} are allowed.",
                MaxSizeAllowed=str(MAX_METADATA_BYTES),
            )
        return tuple(meta)

    async def put_object(self, call: S3Call) -> bytes:
        assert call.target.key is not None and call.identity is not None
        incoming = IncomingBody(call.headers, call.identity, call.request.body_length)
        metadata = self._metadata(call)
        content_type = call.headers.get("content-type") or "binary/octet-stream"
        kept_headers = stored_headers(call.headers)
        klass = storage_class(call.headers)
        condition = write_condition(call.headers)
        container = await self._container(call)
        raw = call.request.lazy_body()  # 100 Continue only once the engine's checks have passed
        artifact = await self.engine.put(
            call.ctx,
            container,
            call.target.key,
            incoming.source(raw),
            content_type=content_type,
            metadata=metadata,
            headers=kept_headers,
            storage_class=klass,
            condition=condition,
            hashers=incoming.hashers,
            verify=incoming.verify,
            keep_checksum=(incoming.algorithm, "checksum") if incoming.algorithm else None,
            declared_size=incoming.size,
        )
        incoming.check_size(artifact.size)
        call.set_header("ETag", artifact.etag)
        call.set_header("Content-Length", "0")
        self._echo_checksum(call, incoming)
        if klass != "STANDARD":
            call.set_header("x-amz-storage-class", klass)
        return b""

    def _echo_checksum(self, call: S3Call, incoming: IncomingBody) -> None:
        echoed = incoming.checksum_header()
        if echoed is not None:
            call.set_header(*echoed)

    def _artifact_headers(self, call: S3Call, artifact: Artifact) -> None:
        call.set_header("ETag", artifact.etag)
        call.set_header("Last-Modified", _http_date(artifact.modified))
        call.set_header("Content-Type", artifact.content_type)
        call.set_header("Accept-Ranges", "bytes")
        for name, value in artifact.headers:
            call.set_header(name, value)
        if artifact.storage_class != "STANDARD":
            call.set_header("x-amz-storage-class", artifact.storage_class)
        for name, value in artifact.metadata:
            call.set_header(f"x-amz-meta-{name}", value)
        if artifact.checksum and call.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
            # Only the whole object has this checksum: not a range or a part of it.
            if "range" not in call.headers and "partNumber" not in call.target.query:
                algorithm, value = artifact.checksum
                call.set_header(checksums.header_name(algorithm), value)
                call.set_header("x-amz-checksum-type", "COMPOSITE" if "-" in value else "FULL_OBJECT")
        if call.operation == "GetObject":
            for parameter, header in RESPONSE_OVERRIDES.items():
                if parameter in call.target.query:
                    call.set_header(header, call.target.query[parameter])

    def _check_version(self, call: S3Call) -> None:
        """Containers are unversioned: only the ``null`` version exists."""
        version = call.target.query.get("versionId")
        if version is not None and version != "null":
            raise S3Error(
                "InvalidArgument", "Invalid version id specified", ArgumentName="versionId", ArgumentValue=version
            )

    async def get_object(self, call: S3Call) -> bytes | None:
        assert call.target.key is not None
        self._check_version(call)
        container = await self._container(call)
        range_header = call.headers.get("range")
        conditions = read_conditions(call.headers)
        part_number = call.target.query.get("partNumber")
        if part_number is not None and range_header:
            raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter.")

        def decide(artifact: Artifact) -> ByteRange | None:
            outcome = evaluate(conditions, artifact)
            if outcome is Outcome.FAILED:
                raise S3Error("PreconditionFailed", Condition="If-Match")
            if outcome is Outcome.NOT_MODIFIED:
                raise _NotModified(artifact)
            if part_number is not None:
                return _part_range(artifact, part_number)
            return resolve_range(range_header, artifact.size)

        try:
            if call.operation == "HeadObject":
                artifact = await self.engine.artifact(call.ctx, container, call.target.key)
                wanted = decide(artifact)
                self._artifact_headers(call, artifact)
                self._length_headers(call, artifact, wanted)
                return b""
            artifact, wanted, reader = await self.engine.open(call.ctx, container, call.target.key, decide)
        except _NotModified as e:
            call.request.setResponseCode(304)
            call.set_header("ETag", e.artifact.etag)
            call.set_header("Last-Modified", _http_date(e.artifact.modified))
            return b""
        self._artifact_headers(call, artifact)
        self._length_headers(call, artifact, wanted)
        call.ctx.on_cancel(reader.stop)
        await reader.stream_to(call.request)
        return b""

    def _length_headers(self, call: S3Call, artifact: Artifact, wanted: Any) -> None:
        if artifact.parts and "partNumber" in call.target.query:
            call.set_header("x-amz-mp-parts-count", str(len(artifact.parts)))
        if wanted is None:
            call.set_header("Content-Length", str(artifact.size))
            return
        call.request.setResponseCode(206)
        call.set_header("Content-Range", f"bytes {wanted.start}-{wanted.end}/{artifact.size}")
        call.set_header("Content-Length", str(wanted.length))

    async def copy_object(self, call: S3Call) -> bytes:
        assert call.target.key is not None and call.target.bucket is not None
        source_bucket, source_key = _copy_source(call.headers["x-amz-copy-source"])
        directive = call.headers.get("x-amz-metadata-directive", "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise S3Error(
                "InvalidArgument",
                "Unknown metadata directive.",
                ArgumentName="x-amz-metadata-directive",
                ArgumentValue=directive,
            )
        target = await self._container(call)
        source = await self.engine.container(call.ctx, source_bucket)
        conditions = read_conditions(call.headers, "x-amz-copy-source-")
        klass = storage_class(call.headers) if "x-amz-storage-class" in call.headers else None
        replaced_metadata = self._metadata(call) if directive == "REPLACE" else ()
        condition = write_condition(call.headers)

        def plan(original: Artifact) -> CopyPlan:
            if evaluate(conditions, original) is not Outcome.PROCEED:
                raise S3Error("PreconditionFailed", Condition="x-amz-copy-source-If-*")
            onto_itself = source.id == target.id and source_key == call.target.key
            if onto_itself and directive == "COPY" and klass in (None, original.storage_class):
                raise S3Error(
                    "InvalidRequest",
                    "This copy request is illegal because it is trying to copy an object to itself without "
                    "changing the object's metadata, storage class, website redirect location or encryption "
                    "attributes.",
                )
            if directive == "REPLACE":
                return CopyPlan(
                    content_type=call.headers.get("content-type") or "binary/octet-stream",
                    metadata=replaced_metadata,
                    headers=stored_headers(call.headers),
                    storage_class=klass or "STANDARD",
                )
            return CopyPlan(original.content_type, original.metadata, original.headers, klass or original.storage_class)

        _original, copied = await self.engine.copy(
            call.ctx, source, source_key, target, call.target.key, plan, condition
        )
        if klass is not None and klass != "STANDARD":
            call.set_header("x-amz-storage-class", klass)
        return self._xml(
            call,
            element(
                "CopyObjectResult",
                element("LastModified", _iso(copied.modified)),
                element("ETag", copied.etag),
                xmlns=True,
            ),
        )

    async def delete_objects(self, call: S3Call) -> bytes:
        container = await self._container(call)
        body = await self._small_body(call, DELETE_BODY_LIMIT)
        self._check_body_integrity(call, body)
        quiet, entries = xmlparse.delete_request(body, MAX_DELETE_KEYS)
        results = []
        for key, version in entries:
            if version is not None and version != "null":
                results.append(_delete_error(key, "NoSuchVersion", "The specified version does not exist."))
                continue
            if len(key.encode("utf-8")) > MAX_KEY_BYTES:
                results.append(_delete_error(key, "KeyTooLongError", "Your key is too long"))
                continue
            try:
                await self.engine.delete(call.ctx, container, key)
            except Exception as e:
                error = from_domain(e, container.name, key) or S3Error("InternalError")
                results.append(_delete_error(key, error.code, error.message))
                continue
            if not quiet:
                results.append(element("Deleted", element("Key", key)))
        return self._xml(call, element("DeleteResult", *results, xmlns=True))

    def _check_body_integrity(self, call: S3Call, body: bytes) -> None:
        """DeleteObjects needs Content-MD5 or an x-amz-checksum-* header, and it must hold."""
        expected_md5 = content_md5(call.headers)
        algorithm, expected, _trailer = checksums.declared(call.headers)
        if expected_md5 is None and algorithm is None:
            raise S3Error("InvalidRequest", "Missing required header for this request: Content-MD5")
        if expected_md5 is not None and hashlib.md5(body).digest() != expected_md5:
            raise S3Error("BadDigest")
        if algorithm is not None and expected is not None:
            hasher = checksums.new_hasher(algorithm)
            hasher.update(body)
            if hasher.digest() != expected:
                raise S3Error(
                    "BadDigest", f"The {algorithm.upper()} you specified did not match the calculated checksum."
                )

    async def get_bucket_versioning(self, call: S3Call) -> bytes:
        await self._container(call)
        # Never enabled: S3 answers an empty configuration for such a bucket.
        return self._xml(call, element("VersioningConfiguration", xmlns=True))

    async def list_object_versions(self, call: S3Call) -> bytes:
        """Unversioned containers: every artifact is its own ``null`` version."""
        container = await self._container(call)
        q = call.target.query
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        max_keys = _max_keys(q)
        encoding = _encoding(q)
        marker = q.get("key-marker") or None
        if marker is not None and q.get("version-id-marker") not in (None, "", "null"):
            raise S3Error(
                "InvalidArgument",
                "Invalid version id specified",
                ArgumentName="version-id-marker",
                ArgumentValue=q.get("version-id-marker", ""),
            )
        page = await self.engine.list_artifacts(call.ctx, container, prefix, delimiter, marker, max_keys)

        def enc(text: str) -> str:
            return _url_encode(text) if encoding == "url" else text

        versions = [
            element(
                "Version",
                element("Key", enc(a.key)),
                element("VersionId", "null"),
                element("IsLatest", True),
                element("LastModified", _iso(a.modified)),
                element("ETag", a.etag),
                element("Size", a.size),
                element("StorageClass", a.storage_class),
                self._owner(call),
            )
            for a in page.artifacts
        ]
        prefixes = [element("CommonPrefixes", element("Prefix", enc(p))) for p in page.prefixes]
        head = [
            element("Name", container.name),
            element("Prefix", enc(prefix)),
            element("KeyMarker", enc(marker or "")),
            element("VersionIdMarker", q.get("version-id-marker", "")),
            element("MaxKeys", max_keys),
        ]
        head += _listing_flags(delimiter, encoding, page.truncated, enc)
        if page.truncated and page.next_marker is not None:
            head += [element("NextKeyMarker", enc(page.next_marker)), element("NextVersionIdMarker", "null")]
        return self._xml(call, element("ListVersionsResult", *head, *versions, *prefixes, xmlns=True))

    async def delete_object(self, call: S3Call) -> bytes:
        assert call.target.key is not None
        self._check_version(call)
        container = await self._container(call)
        await self.engine.delete(call.ctx, container, call.target.key)
        call.request.setResponseCode(204)
        return b""


def _listing_flags(delimiter: str, encoding: str | None, truncated: bool, enc: Callable[[str], str]) -> list[Any]:
    """The Delimiter, EncodingType and IsTruncated elements every listing carries."""
    flags = [element("Delimiter", enc(delimiter))] if delimiter else []
    if encoding:
        flags.append(element("EncodingType", encoding))
    flags.append(element("IsTruncated", truncated))
    return flags


def _part_range(artifact: Artifact, raw: str) -> ByteRange | None:
    """The bytes of part ``raw`` (GET/HEAD ?partNumber=N); a plain artifact is its own part 1."""
    count = len(artifact.parts) or 1
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise S3Error(
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive",
            ArgumentName="partNumber",
            ArgumentValue=raw,
        )
    number = int(raw)
    if number > count:
        raise S3Error("InvalidPartNumber", PartNumberRequested=raw, ActualPartCount=str(count))
    if not artifact.parts:
        return ByteRange(0, artifact.size - 1) if artifact.size else None
    start = sum(size for _loc, size in artifact.parts[: number - 1])
    return ByteRange(start, start + artifact.parts[number - 1][1] - 1)


def _max_keys(q: Mapping[str, str]) -> int:
    try:
        max_keys = int(q.get("max-keys", str(MAX_LIST_KEYS)))
        if max_keys < 0:
            raise ValueError
    except ValueError:
        raise S3Error(
            "InvalidArgument",
            "Provided max-keys not an integer or within integer range",
            ArgumentName="max-keys",
            ArgumentValue=q.get("max-keys", ""),
        ) from None
    return min(max_keys, MAX_LIST_KEYS)


def _encoding(q: Mapping[str, str]) -> str | None:
    encoding = q.get("encoding-type")
    if encoding not in (None, "url"):
        raise S3Error(
            "InvalidArgument",
            "Invalid Encoding Method specified in Request",
            ArgumentName="encoding-type",
            ArgumentValue=encoding or "",
        )
    return encoding


def _url_encode(text: str) -> str:
    # encoding-type=url: SDKs decode with unquote_plus, so '+' must travel as %2B.
    return quote(text, safe="/~")


def _copy_source(header: str) -> tuple[str, str]:
    """``/bucket/key`` or ``bucket/key`` (URL-encoded, maybe ``?versionId=null``)."""
    path, _, query = header.partition("?")
    if query and query not in ("versionId=null",):
        raise S3Error(
            "InvalidArgument", "Invalid version id specified", ArgumentName="x-amz-copy-source", ArgumentValue=header
        )
    try:
        decoded = unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        decoded = ""
    bucket, _, key = decoded.lstrip("/").partition("/")
    if not bucket or not key:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            ArgumentName="x-amz-copy-source",
            ArgumentValue=header,
        )
    return bucket, key


def _delete_error(key: str, code: str, message: str) -> Any:
    return element("Error", element("Key", key), element("Code", code), element("Message", message))


def _encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode("utf-8")).decode("ascii")


def _decode_token(token: str) -> str:
    try:
        return base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError):
        raise S3Error(
            "InvalidArgument",
            "The continuation token provided is incorrect",
            ArgumentName="continuation-token",
            ArgumentValue=token,
        ) from None


__all__ = ["S3Api"]
