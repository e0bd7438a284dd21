"""The S3 front door: one coarse Klein route, operations dispatched by table.

Every request gets an id, is authenticated, dispatched to one handler, and
ends in exactly one event and one metrics observation, failed ones too.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from typing import Any

from klein import Klein
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from vaultaire.api import unsupported
from vaultaire.api.acl_operations import AclOperations
from vaultaire.api.addressing import parse_target
from vaultaire.api.attributes import AttributesOperations
from vaultaire.api.auth import Authenticator
from vaultaire.api.authorize import AuthorizationStep, PolicyCache
from vaultaire.api.bucket_encryption import EncryptionOperations
from vaultaire.api.bucket_policy import BucketPolicyOperations
from vaultaire.api.buckets import BucketOperations
from vaultaire.api.call import Handler, S3Call, headers_of, signed_headers_of, with_query_headers
from vaultaire.api.cors import Rule as CorsRule
from vaultaire.api.cors_operations import CorsOperations
from vaultaire.api.errors import S3Error, from_domain
from vaultaire.api.http import S3Request
from vaultaire.api.lifecycle_operations import LifecycleOperations
from vaultaire.api.listing import ListingOperations
from vaultaire.api.multipart import MultipartOperations
from vaultaire.api.object_lock import ObjectLockOperations
from vaultaire.api.objects import ObjectOperations
from vaultaire.api.operations import detect
from vaultaire.api.ownership import OwnershipOperations
from vaultaire.api.post_object import PostObjectOperation
from vaultaire.api.public_access_block import PublicAccessBlockOperations
from vaultaire.api.redaction import redact_uri
from vaultaire.api.request_ids import next_request_id
from vaultaire.api.tagging import TaggingOperations
from vaultaire.api.versioning import VersioningOperations
from vaultaire.engine import Engine
from vaultaire.errors import Cancelled
from vaultaire.model import RequestContext
from vaultaire.ops.events import EventLog, make_event
from vaultaire.ops.metering import Meter
from vaultaire.ops.metrics import Metrics
from vaultaire.ops.site import health_document

log = Logger()

# Operations authenticated inside their handler (a form upload is signed in its body) or not at all.
_NOT_SIGNED_UP_FRONT = frozenset({"PostObject", "CorsPreflight"})


class S3Api(
    AuthorizationStep,
    BucketOperations,
    ListingOperations,
    ObjectOperations,
    MultipartOperations,
    PostObjectOperation,
    CorsOperations,
    EncryptionOperations,
    LifecycleOperations,
    VersioningOperations,
    AclOperations,
    OwnershipOperations,
    PublicAccessBlockOperations,
    BucketPolicyOperations,
    TaggingOperations,
    AttributesOperations,
    ObjectLockOperations,
):
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
        sse_c_plain_http: bool = False,
        encrypt_all_objects: bool = False,
        lifecycle_day_seconds: float = 86400.0,
        public_buckets: bool = True,
    ) -> None:
        self.lifecycle_day_seconds = lifecycle_day_seconds
        self.sse_c_plain_http = sse_c_plain_http
        self.encrypt_all_objects = encrypt_all_objects
        self.policies = PolicyCache()
        self.public_buckets = public_buckets
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
            # versioning (api/versioning.py)
            "GetBucketVersioning": self.get_bucket_versioning,
            "PutBucketVersioning": self.put_bucket_versioning,
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
            "GetBucketEncryption": self.get_bucket_encryption,
            "PutBucketEncryption": self.put_bucket_encryption,
            "DeleteBucketEncryption": self.delete_bucket_encryption,
            # lifecycle
            "GetBucketLifecycleConfiguration": self.get_bucket_lifecycle_configuration,
            "PutBucketLifecycleConfiguration": self.put_bucket_lifecycle_configuration,
            "DeleteBucketLifecycle": self.delete_bucket_lifecycle,
            # ACLs, ownership controls, public access block (issue 14)
            "GetBucketAcl": self.get_bucket_acl,
            "PutBucketAcl": self.put_bucket_acl,
            "GetObjectAcl": self.get_object_acl,
            "PutObjectAcl": self.put_object_acl,
            "GetBucketOwnershipControls": self.get_bucket_ownership_controls,
            "PutBucketOwnershipControls": self.put_bucket_ownership_controls,
            "DeleteBucketOwnershipControls": self.delete_bucket_ownership_controls,
            "GetPublicAccessBlock": self.get_public_access_block,
            "PutPublicAccessBlock": self.put_public_access_block,
            "DeletePublicAccessBlock": self.delete_public_access_block,
            # Bucket policies (api/bucket_policy.py)
            "GetBucketPolicy": self.get_bucket_policy,
            "PutBucketPolicy": self.put_bucket_policy,
            "DeleteBucketPolicy": self.delete_bucket_policy,
            "GetBucketPolicyStatus": self.get_bucket_policy_status,
            # Tagging (api/tagging.py) and GetObjectAttributes (api/attributes.py)
            "GetObjectTagging": self.get_object_tagging,
            "PutObjectTagging": self.put_object_tagging,
            "DeleteObjectTagging": self.delete_object_tagging,
            "GetBucketTagging": self.get_bucket_tagging,
            "PutBucketTagging": self.put_bucket_tagging,
            "DeleteBucketTagging": self.delete_bucket_tagging,
            "GetObjectAttributes": self.get_object_attributes,
            # Object Lock
            "GetObjectLockConfiguration": self.get_object_lock_configuration,
            "PutObjectLockConfiguration": self.put_object_lock_configuration,
            "GetObjectRetention": self.get_object_retention,
            "PutObjectRetention": self.put_object_retention,
            "GetObjectLegalHold": self.get_object_legal_hold,
            "PutObjectLegalHold": self.put_object_legal_hold,
        }

    def resource(self) -> Any:
        return _FrontDoor(self, self.app.resource())

    @app.route("/", branch=True, methods=["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"])
    async def _entry(self, request: S3Request) -> bytes | None:
        return await self.handle(request)

    # -- the one path every request takes

    async def handle(self, request: S3Request) -> bytes | None:
        started = self.clock()
        request_id = next_request_id()
        request.setHeader(b"x-amz-request-id", request_id.encode())
        request.setHeader(b"x-amz-id-2", base64.b64encode(request_id.encode()))
        request.setHeader(b"Server", b"Vaultaire")
        if request.path == self.health_path.encode():
            code, document = health_document(self.version, self.started, self.health)
            request.setResponseCode(code)
            request.setHeader(b"Content-Type", b"application/json")
            return document
        ctx = RequestContext(request_id)
        request.notifyFinish().addErrback(lambda _: ctx.cancel())
        call: S3Call | None = None
        method = request.method.decode("latin-1").upper()
        error: S3Error | None = None
        self.metrics.in_flight.inc()
        try:
            try:
                # First: the keys, buckets and settings this request reads are as of now, in every process.
                await self.engine.refresh()
                host = (request.getHeader(b"host") or b"").decode("latin-1")
                target = parse_target(request.uri, host, self.domains)
                call = S3Call(request, target, ctx, headers_of(request))
                call.headers = with_query_headers(call.headers, target.raw_query)
                refused: S3Error | None = None
                try:
                    call.operation = detect(method, target, call.headers)
                except S3Error as e:
                    refused = e  # S3 authenticates first: an anonymous caller learns nothing of what we lack
                if refused is not None or call.operation not in _NOT_SIGNED_UP_FRONT:
                    call.identity = await self.auth.authenticate(
                        method,
                        target.raw_path,
                        target.raw_query,
                        signed_headers_of(request, call.headers),
                        target.v2_path,
                    )
                    if call.identity is not None:
                        ctx.tenant = call.identity.tenant
                    if refused is not None:
                        # An anonymous caller learns nothing of what we lack.
                        raise refused if call.identity is not None else S3Error("AccessDenied")
                    unsupported.refuse(call.operation, call.headers)
                    # Before the handler, so before any byte of a body is read (or 100 Continue sent).
                    await self.authorize(call)
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
                    log.failure(
                        "internal error in {operation} for {uri}",
                        operation=call.operation if call else "?",
                        uri=redact_uri(request.uri),
                    )
                    error = S3Error("InternalError")
                if call is not None and "origin" in call.headers:
                    await self.apply_cors(call)  # so a page can read the error
                body = self._render_error(request, error, call, request_id)
            # Written here rather than by Klein so the event and metrics count these bytes.
            if body and not request.finished and not request._disconnected:
                request.write(body)
        finally:
            self.metrics.in_flight.dec()
            _release_producer(request)
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
        if error.close_connection and request.channel is not None:
            request.setHeader(b"Connection", b"close")
            request.channel.persistent = False
        resource = call.target.resource if call else "/"
        body = error.to_xml(resource, request_id)
        request.responseHeaders.removeHeader(b"Content-Range")
        request.responseHeaders.removeHeader(b"ETag")
        request.setHeader(b"Content-Type", b"application/xml")
        request.setHeader(b"Content-Length", str(len(body)).encode())
        for name, value in error.headers.items():
            request.setHeader(name.encode("latin-1"), value.encode("utf-8"))
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
        event = make_event(
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
            error=(error.event or error.code) if error else None,
        )
        if call is not None:
            _access_fields(event, call)
            if call.event:
                event.update(call.event)
        self.events.emit(event)


def _access_fields(event: dict[str, object], call: S3Call) -> None:
    """Who asked, when it is not the tenant the event is counted for, and why it was denied."""
    identity = call.identity
    if call.denial:
        event["denied"] = call.denial
    if identity is None:
        if call.access is not None or call.denial:
            event["principal"] = "anonymous"
    elif identity.user or (call.ctx.tenant is not None and call.ctx.tenant.id != identity.tenant.id):
        event["principal"] = (
            f"arn:aws:iam::{identity.tenant.id}:user/{identity.user}"
            if identity.user
            else f"arn:aws:iam::{identity.tenant.id}:root"
        )


def _release_producer(request: S3Request) -> None:
    """Unregister a body reader the handler left registered.

    A client that goes away mid-download makes the transport stop the reader,
    which then fails without unregistering itself; Twisted would log a critical
    "Producer was not unregistered" (with the URI, signature and all) when the
    request is finished.
    """
    if request.producer is None:
        return
    if request.channel is not None:
        request.unregisterProducer()
    else:
        request.producer = None


# The methods the one Klein route takes; any other is Klein's (werkzeug's 405), as before.
_ROUTED_METHODS = frozenset({b"GET", b"HEAD", b"PUT", b"POST", b"DELETE", b"OPTIONS", b"PATCH"})


class _FrontDoor(Resource):
    """The S3 path's resource: every request goes straight to the one path.

    The S3 app has one catch-all route, so werkzeug's per-request ``Map.bind``
    and match (and Klein's URL decoding) bought nothing but ~10% of a small
    GET's CPU. Klein keeps only what the route does not take (other methods).
    Its URL decoding also logged a traceback and answered a bare 400 on a
    path that is not UTF-8; the one path answers S3's InvalidURI instead.
    """

    isLeaf = True

    def __init__(self, api: S3Api, klein: Any) -> None:
        super().__init__()
        self._api = api
        self._klein = klein

    def render(self, request: S3Request) -> Any:
        if request.method not in _ROUTED_METHODS:
            return self._klein.render(request)
        d = Deferred.fromCoroutine(self._api.handle(request))
        # As Klein did: a client that goes away cancels what its request still waits for.
        request.notifyFinish().addErrback(lambda _: d.cancel())
        d.addCallback(self._finish, request)
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    @staticmethod
    def _finish(body: bytes | None, request: S3Request) -> None:
        if request.finished or request._disconnected:
            return
        if body:
            request.write(body)
        request.finish()

    @staticmethod
    def _failed(failure: Failure, request: S3Request) -> None:
        if request.finished or request._disconnected:
            if not failure.check(CancelledError, Cancelled):
                log.failure("answering {uri} failed", failure, uri=redact_uri(request.uri))
            return
        # handle() answers every error itself; only a bug of its own ends here (logged there).
        request.processingFailed(failure)


__all__ = ["S3Api"]
