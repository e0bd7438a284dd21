"""POST Object: a browser form uploads straight to a bucket with a signed policy.

The form's fields are read first (they carry the signature, so the body must
be accepted before anyone is known); the file part then streams to the
engine like a PUT body, counted against the policy's content-length-range.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from twisted.internet.defer import Deferred

from vaultaire.api import checksums, encryption, post_policy, unsupported
from vaultaire.api.addressing import MAX_KEY_BYTES
from vaultaire.api.auth import Authenticator
from vaultaire.api.call import OperationBase, S3Call
from vaultaire.api.errors import S3Error
from vaultaire.api.form import FormReader, boundary_of
from vaultaire.api.headers import STORED_HEADERS, storage_class, user_metadata
from vaultaire.api.tagging import note_tags, parse_document
from vaultaire.api.versioning import echo_version
from vaultaire.api.xmlout import element
from vaultaire.engine import ChunkSource


class _Bounded:
    """Passes a ChunkSource through, refusing more bytes than the policy allows."""

    def __init__(self, source: ChunkSource, maximum: int | None) -> None:
        self._source = source
        self._maximum = maximum
        self.size = 0

    def read(self) -> Deferred[bytes]:
        def count(data: bytes) -> bytes:
            self.size += len(data)
            if self._maximum is not None and self.size > self._maximum:
                raise S3Error(
                    "EntityTooLarge",
                    "Your proposed upload exceeds the maximum allowed size",
                    MaxSizeAllowed=str(self._maximum),
                )
            return data

        return self._source.read().addCallback(count)


def _declared_checksum(fields: dict[str, str]) -> tuple[str | None, bytes | None]:
    """The x-amz-checksum-* field of a form: verified against the file, never just accepted."""
    for name in fields:
        if name.startswith("x-amz-checksum-") and name[len("x-amz-checksum-") :] not in checksums.ALGORITHMS:
            if name not in ("x-amz-checksum-algorithm", "x-amz-checksum-type"):
                raise S3Error("NotImplemented", f"The checksum field {name} is not supported yet.")
    algorithm, expected, _trailer = checksums.declared({k: v for k, v in fields.items() if k != "x-amz-trailer"})
    if algorithm is not None:
        checksums.new_hasher(algorithm)  # refuses what cannot be computed here, before the file streams
    return algorithm, expected


class PostObjectOperation(OperationBase):
    """Needs from its host: engine, auth, clock, _container, _xml."""

    auth: Authenticator
    clock: Callable[[], float]

    async def post_object(self, call: S3Call) -> bytes:
        assert call.target.bucket is not None
        boundary = boundary_of(call.headers.get("content-type", ""))
        form = FormReader(call.request.open_body(), boundary)
        await form.read_fields()
        fields = dict(form.fields)
        fields["bucket"] = call.target.bucket
        identity = await self.auth.authenticate_post(fields, call.target.bucket)
        call.identity = identity
        call.ctx.tenant = identity.tenant if identity is not None else None
        unsupported.refuse_form(fields)
        key = fields.get("key")
        if not key:
            raise S3Error("InvalidArgument", "Bucket POST must contain a field named 'key'.", ArgumentName="key")
        # S3 checks the policy's key conditions against the key with ${filename} filled in.
        key = fields["key"] = key.replace("${filename}", form.filename or "")
        await self.authorize(call)  # the bucket (and its owner) only: the key is checked next
        await self.authorize_key(call, key)
        # An anonymous form has no policy to hold it to: the bucket's grant alone decides (above).
        size = post_policy.SizeRange(0, 5 * 2**30)  # an anonymous form: S3's 5 GB POST limit
        if identity is not None:
            size = post_policy.check(post_policy.decode(fields["policy"]), fields, self.clock())
        algorithm, expected = _declared_checksum(fields)
        # The form's x-amz-server-side-encryption* fields are the headers of a PUT, checked alike.
        protection = encryption.for_write(fields, self._sse_c_secure(call))
        lock_asked = self.lock_requested(fields)
        container = await self._container(call)
        protection = protection or await self._default_protection(call, container)
        protection = encryption.for_object(protection, container.name, key)
        # A form has no Content-MD5: S3 asks none of POST Object, whatever its lock.
        lock = await self.lock_for_write(call, container, lock_asked, key=key)
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise S3Error("KeyTooLongError")
        # The form's acl field is its x-amz-acl (S3 takes no grant fields in a form).
        acl = await self._new_object_acl(call, container, {"x-amz-acl": fields["acl"]} if "acl" in fields else {})
        metadata = user_metadata(fields.items())
        # S3's form field is a whole Tagging document, not the header's query form.
        tags = parse_document(fields["tagging"]) if "tagging" in fields else ()
        if tags and not await self._may(call, "s3:PutObjectTagging", key):
            raise S3Error("AccessDenied")  # as a PUT with x-amz-tagging (access/actions.py also_required)
        kept = tuple((n, fields[n]) for n in STORED_HEADERS if n in fields)
        content_type = fields.get("content-type") or form.file_content_type or "binary/octet-stream"
        source = _Bounded(form, size.maximum)

        hashers = {"checksum": checksums.new_hasher(algorithm)} if algorithm is not None else {}

        def verify(digests: Any) -> None:
            if source.size < size.minimum:
                raise S3Error(
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed size",
                    MinSizeAllowed=str(size.minimum),
                )
            if algorithm is not None and digests["checksum"] != expected:
                raise S3Error(
                    "BadDigest", f"The {algorithm.upper()} you specified did not match the calculated checksum."
                )

        artifact = await self.engine.put(
            call.ctx,
            container,
            key,
            source,
            content_type=content_type,
            metadata=metadata,
            headers=kept,
            storage_class=storage_class(fields),
            hashers=hashers,
            verify=verify,
            keep_checksum=(algorithm, "checksum") if algorithm is not None else None,
            protection=protection,
            tags=tags,
            acl=acl,
            lock=lock,
        )
        note_tags(call, tags)
        encryption.echo(call, artifact.sealing, written=True)
        location = f"/{container.name}/{quote(key)}"
        echo_version(call, artifact)
        redirect = fields.get("success_action_redirect") or fields.get("redirect")
        if redirect:
            query = urlencode({"bucket": container.name, "key": key, "etag": artifact.etag})
            call.request.setResponseCode(303)
            call.set_header("Location", redirect + ("&" if "?" in redirect else "?") + query)
            return b""
        call.set_header("ETag", artifact.etag)
        call.set_header("Location", location)
        status = fields.get("success_action_status", "204")
        if status == "201":
            call.request.setResponseCode(201)
            return self._xml(
                call,
                element(
                    "PostResponse",
                    element("Location", location),
                    element("Bucket", container.name),
                    element("Key", key),
                    element("ETag", artifact.etag),
                ),
            )
        call.request.setResponseCode(200 if status == "200" else 204)
        return b""
