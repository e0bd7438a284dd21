"""Per-container CORS: the ?cors subresource, OPTIONS preflights, headers on actual requests.

A container's rules are an opaque setting to the engine (stored as JSON); a
server-wide default from the config applies to containers without their own.

Nothing here authenticates or authorises anything: a preflight only tells a
browser that it may *send* a request, which must still be signed like any
other; the headers on an actual request only let the page *read* the answer.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.logger import Logger

from vaultaire.api import cors
from vaultaire.api.call import OperationBase, S3Call
from vaultaire.api.errors import S3Error
from vaultaire.model import Tenant

log = Logger()

_NOT_ALLOWED = (
    "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, "
    "request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted "
    "by the resource's CORS spec."
)
_NOT_ENABLED = "CORSResponse: CORS is not enabled for this bucket."


class CorsOperations(OperationBase):
    """Needs from its host: engine, cors_default, _container, _xml, _small_body, _check_body_integrity."""

    cors_default: tuple[cors.Rule, ...]

    # -- GetBucketCors, PutBucketCors, DeleteBucketCors

    async def get_bucket_cors(self, call: S3Call) -> bytes:
        container = await self._container(call)
        document = await self.engine.container_setting(call.ctx, container, cors.SETTING)
        if document is None:
            raise S3Error("NoSuchCORSConfiguration", BucketName=container.name)
        return self._xml(call, cors.to_xml(cors.loads(document)))

    async def put_bucket_cors(self, call: S3Call) -> bytes:
        container = await self._container(call)
        body = await self._small_body(call)
        self._check_body_integrity(call, body)
        rules = cors.parse_xml(body)
        await self.engine.put_container_setting(call.ctx, container, cors.SETTING, cors.dumps(rules))
        call.set_header("Content-Length", "0")
        return b""

    async def delete_bucket_cors(self, call: S3Call) -> bytes:
        container = await self._container(call)
        await self.engine.delete_container_setting(call.ctx, container, cors.SETTING)
        call.request.setResponseCode(204)
        return b""

    # -- which rules apply

    async def _rule_sets(self, call: S3Call, tenant: Tenant | None) -> list[tuple[cors.Rule, ...]]:
        """The rule lists to try in order: the container's own, else the server default.

        Without a tenant (a preflight is unsigned, or a signature failed) every
        tenant's container of that name counts: a grant only lets a browser send
        or read a request that is authenticated on its own, so trying them all
        weakens nothing, and an unsigned request learns nothing a signed one would not.
        """
        bucket = call.target.bucket
        if bucket is None:
            return [self.cors_default] if self.cors_default else []
        documents = await self.engine.settings_by_name(tenant, bucket, cors.SETTING)
        sets = [cors.loads(d) for d in documents if d is not None]
        if (not documents or None in documents) and self.cors_default:
            sets.append(self.cors_default)
        return sets

    # -- OPTIONS: the preflight

    async def cors_preflight(self, call: S3Call) -> bytes:
        origin = call.headers.get("origin")
        if not origin:
            raise S3Error("BadRequest", "Insufficient information. Origin request header needed.")
        method = call.headers.get("access-control-request-method")
        if not method:
            raise S3Error("BadRequest", "Invalid Access-Control-Request-Method: null")
        requested = cors.requested_headers(call.headers.get("access-control-request-headers"))
        target = call.target
        resource_type = "OBJECT" if target.key is not None else "BUCKET" if target.bucket is not None else "SERVICE"
        sets = await self._rule_sets(call, None)
        if not sets:
            raise S3Error("AccessForbidden", _NOT_ENABLED, Method=method, ResourceType=resource_type)
        for rules in sets:
            grant = cors.find(rules, origin, method, requested)
            if grant is not None:
                break
        else:
            raise S3Error("AccessForbidden", _NOT_ALLOWED, Method=method, ResourceType=resource_type)
        for name, value in cors.response_headers(grant, requested).items():
            call.set_header(name, value)
        call.set_header("Vary", cors.PREFLIGHT_VARY)
        call.set_header("Content-Length", "0")
        return b""

    # -- actual requests carrying Origin

    async def apply_cors(self, call: S3Call) -> None:
        """Set the matching rule's headers before the response starts, error responses included.

        Called only for requests with an ``Origin`` header, at most once each;
        a failure here costs the headers, never the request.
        """
        if call.cors_applied or call.operation == "CorsPreflight" or call.request.startedWriting:
            return
        call.cors_applied = True
        origin = call.headers["origin"]
        try:
            sets = await self._rule_sets(call, call.ctx.tenant)
        except CancelledError:
            raise  # the client went away: nothing failed, there is no one to answer
        except Exception:
            log.failure("CORS rules could not be read for {bucket}", bucket=call.target.bucket)
            return
        if not sets or call.request.startedWriting:
            return
        # The answer depends on Origin whenever rules exist, matched or not: caches must know.
        call.set_header("Vary", "Origin")
        method = call.request.method.decode("latin-1").upper()
        for rules in sets:
            grant = cors.find(rules, origin, method)
            if grant is not None:
                for name, value in cors.response_headers(grant).items():
                    call.set_header(name, value)
                return
