"""Object operations: put, get, head, copy, delete one or many."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import unquote_to_bytes

from vaultaire.api import checksums, encryption, xmlparse
from vaultaire.api.addressing import MAX_KEY_BYTES
from vaultaire.api.call import OperationBase, S3Call, http_date, iso
from vaultaire.api.errors import CODES, S3Error, delete_marker_addressed, from_domain
from vaultaire.api.headers import (
    RESPONSE_OVERRIDES,
    read_conditions,
    storage_class,
    stored_headers,
    user_metadata,
    write_condition,
)
from vaultaire.api.incoming import IncomingBody, content_md5
from vaultaire.api.ranges import resolve_range
from vaultaire.api.tagging import note_tags, request_tags
from vaultaire.api.versioning import echo_version, requested_version
from vaultaire.api.xmlout import element
from vaultaire.engine import CopyPlan
from vaultaire.engine.conditions import Outcome, evaluate
from vaultaire.engine.versioning import valid_version_id
from vaultaire.errors import DeleteMarkerAddressed
from vaultaire.model import Artifact, ByteRange

DELETE_BODY_LIMIT = 2 * 2**20  # 1000 keys of up to 1024 bytes, escaped
MAX_DELETE_KEYS = 1000


def mail_safe(value: str) -> str:
    """A metadata value as S3 returns it: as stored when printable US-ASCII (an RFC 2047
    encoded-word a client sent included), else one RFC 2047 encoded-word of its UTF-8."""
    if all(" " <= c <= "~" or c == "\t" for c in value):
        return value
    return "=?UTF-8?B?" + base64.b64encode(value.encode("utf-8")).decode("ascii") + "?="


class _NotModified(Exception):
    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact


class ObjectOperations(OperationBase):
    def _metadata(self, call: S3Call) -> tuple[tuple[str, str], ...]:
        return user_metadata(call.headers.items())

    async def put_object(self, call: S3Call) -> bytes:
        assert call.target.key is not None and call.identity is not None
        incoming = IncomingBody(call.headers, call.identity, call.request.body_length)
        metadata = self._metadata(call)
        content_type = call.headers.get("content-type") or "binary/octet-stream"
        kept_headers = stored_headers(call.headers)
        klass = storage_class(call.headers)
        condition = write_condition(call.headers)
        tags = request_tags(call)
        protection = encryption.for_write(call.headers, self._sse_c_secure(call))
        lock_asked = self.lock_requested(call.headers)
        container = await self._container(call)
        protection = protection or await self._default_protection(call, container)
        protection = encryption.for_object(protection, container.name, call.target.key)
        acl = await self._new_object_acl(call, container, call.headers)
        integrity = incoming.algorithm is not None or content_md5(call.headers) is not None
        lock = await self.lock_for_write(call, container, lock_asked, integrity)
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
            protection=protection,
            tags=tags,
            acl=acl,
            lock=lock,
        )
        self._echo_expiration(call, await self._lifecycle(call, container), artifact)
        note_tags(call, tags)
        call.set_header("ETag", artifact.etag)
        call.set_header("Content-Length", "0")
        echo_version(call, artifact)
        encryption.echo(call, artifact.sealing, written=True)
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
        call.set_header("Last-Modified", http_date(artifact.modified))
        call.set_header("Content-Type", artifact.content_type)
        call.set_header("Accept-Ranges", "bytes")
        encryption.echo(call, artifact.sealing)
        for name, value in artifact.headers:
            call.set_header(name, value)
        if artifact.storage_class != "STANDARD":
            call.set_header("x-amz-storage-class", artifact.storage_class)
        for name, value in artifact.metadata:
            call.set_header(f"x-amz-meta-{name}", mail_safe(value))
        if artifact.tags:
            call.set_header("x-amz-tagging-count", str(len(artifact.tags)))
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

    async def get_object(self, call: S3Call) -> bytes | None:
        assert call.target.key is not None
        version = requested_version(call)
        container = await self._container(call)
        range_header = call.headers.get("range")
        conditions = read_conditions(call.headers)
        part_number = call.target.query.get("partNumber")
        if part_number is not None and range_header:
            raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter.")
        offered = encryption.for_read(call.headers, self._sse_c_secure(call))
        lifecycle = await self._lifecycle(call, container)

        def decide(artifact: Artifact) -> ByteRange | None:
            # The key before the conditions: S3 tells nothing about an SSE-C object without it.
            # (engine.open checks the key itself before it calls this; a HEAD checks it first.)
            encryption.check_offered(artifact.sealing, offered)
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
                artifact = await self.engine.artifact(call.ctx, container, call.target.key, version)
                self.engine.sealed.check(artifact.sealing, offered)
                wanted = decide(artifact)
                self._artifact_headers(call, artifact)
                await self.lock_headers(call, artifact)
                self._echo_expiration(call, lifecycle, artifact)
                echo_version(call, artifact, version is not None)
                self._length_headers(call, artifact, wanted)
                return b""
            artifact, wanted, reader = await self.engine.open(
                call.ctx, container, call.target.key, decide, offered, version
            )
        except _NotModified as e:
            call.request.setResponseCode(304)
            call.set_header("ETag", e.artifact.etag)
            call.set_header("Last-Modified", http_date(e.artifact.modified))
            echo_version(call, e.artifact, version is not None)
            return b""
        except DeleteMarkerAddressed as e:
            raise delete_marker_addressed(e.marker, call.request.method.decode("latin-1").upper()) from None
        self._artifact_headers(call, artifact)
        try:
            await self.lock_headers(call, artifact)
        except BaseException:
            reader.stop()  # the blob is open already: never leave it so
            raise
        self._echo_expiration(call, lifecycle, artifact)
        echo_version(call, artifact, version is not None)
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
        source_bucket, source_key, source_version = copy_source_version(call.headers["x-amz-copy-source"])
        directive = call.headers.get("x-amz-metadata-directive", "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise S3Error(
                "InvalidArgument",
                "Unknown metadata directive.",
                ArgumentName="x-amz-metadata-directive",
                ArgumentValue=directive,
            )
        tagging = call.headers.get("x-amz-tagging-directive", "COPY").upper()
        if tagging not in ("COPY", "REPLACE"):
            raise S3Error(
                "InvalidArgument",
                "Unknown tagging directive.",
                ArgumentName="x-amz-tagging-directive",
                ArgumentValue=tagging,
            )
        # S3 reads x-amz-tagging only with REPLACE; with COPY the source's tags are the copy's.
        replaced_tags = request_tags(call) if tagging == "REPLACE" else ()
        target = await self._container(call)
        source = await self._source_container(call, source_bucket)
        conditions = read_conditions(call.headers, "x-amz-copy-source-")
        klass = storage_class(call.headers) if "x-amz-storage-class" in call.headers else None
        replaced_metadata = self._metadata(call) if directive == "REPLACE" else ()
        condition = write_condition(call.headers)
        secure = self._sse_c_secure(call)
        protection = encryption.for_write(call.headers, secure)
        offered = encryption.for_read(call.headers, secure, source=True)
        # S3 never copies the source's lock: the copy has its own, or the target bucket's default.
        lock = await self.lock_for_write(call, target, self.lock_requested(call.headers))
        # S3: the copy is encrypted as the request says, else as the target bucket's default.
        explicit = protection is not None
        if protection is None:
            protection = await self._default_protection(call, target)
        protection = encryption.for_object(protection, target.name, call.target.key)
        acl = await self._new_object_acl(call, target, call.headers)  # S3 never copies the source's ACL

        def plan(original: Artifact) -> CopyPlan:
            encryption.check_offered(original.sealing, offered)
            if evaluate(conditions, original) is not Outcome.PROCEED:
                raise S3Error("PreconditionFailed", Condition="x-amz-copy-source-If-*")
            # A noncurrent version copied onto its key is how S3 restores it: not a copy onto itself.
            onto_itself = source.id == target.id and source_key == call.target.key and original.is_latest
            # A copy that asks for encryption, or that the default encrypts differently, changes the object.
            was = original.sealing.mode if original.sealing else None
            same_protection = not explicit and was == (protection.mode if protection else None)
            if onto_itself and directive == "COPY" and klass in (None, original.storage_class) and same_protection:
                raise S3Error(
                    "InvalidRequest",
                    "This copy request is illegal because it is trying to copy an object to itself without "
                    "changing the object's metadata, storage class, website redirect location or encryption "
                    "attributes.",
                )
            copied_tags = replaced_tags if tagging == "REPLACE" else original.tags
            if directive == "REPLACE":
                return CopyPlan(
                    content_type=call.headers.get("content-type") or "binary/octet-stream",
                    metadata=replaced_metadata,
                    headers=stored_headers(call.headers),
                    storage_class=klass or "STANDARD",
                    protection=protection,
                    tags=copied_tags,
                    acl=acl,
                    lock=lock,
                )
            return CopyPlan(
                original.content_type,
                original.metadata,
                original.headers,
                klass or original.storage_class,
                protection,
                copied_tags,
                acl,
                lock,
            )

        try:
            original, copied = await self.engine.copy(
                call.ctx, source, source_key, target, call.target.key, plan, condition, offered, source_version
            )
        except DeleteMarkerAddressed:
            raise S3Error(
                "InvalidRequest",
                "The source of a copy request may not specifically refer to a delete marker by version id.",
            ) from None
        echo_version(call, copied)
        self._echo_expiration(call, await self._lifecycle(call, target), copied)
        if original.version_id != "null" or source_version is not None:
            call.set_header("x-amz-copy-source-version-id", original.version_id)
        encryption.echo(call, copied.sealing, written=True)
        note_tags(call, copied.tags)
        if klass is not None and klass != "STANDARD":
            call.set_header("x-amz-storage-class", klass)
        return self._xml(
            call,
            element(
                "CopyObjectResult",
                element("LastModified", iso(copied.modified)),
                element("ETag", copied.etag),
                xmlns=True,
            ),
        )

    async def delete_objects(self, call: S3Call) -> bytes:
        container = await self._container(call)
        body = await self._small_body(call, DELETE_BODY_LIMIT)
        self._check_body_integrity(call, body)
        quiet, entries = xmlparse.delete_request(body, MAX_DELETE_KEYS)
        # Object Lock: each version's delete checks it in its own transaction.
        guard = await self.delete_guard(call, container, any(version is not None for _key, version in entries))
        results = []
        for key, version in entries:
            if len(key.encode("utf-8")) > MAX_KEY_BYTES:
                results.append(_delete_error(key, "KeyTooLongError", "Your key is too long"))
                continue
            try:
                # S3 decides each key of the batch on its own.
                await self.authorize_key(call, key, version)
                if version is not None:
                    if not valid_version_id(version):
                        # S3 answers each key of a batch: an id that cannot exist is a version that does not.
                        results.append(_delete_error(key, "NoSuchVersion", CODES["NoSuchVersion"][1], version))
                        continue
                    # A bypass is allowed per key (s3:BypassGovernanceRetention on each).
                    key_guard = guard if guard is None else await self.delete_guard(call, container, True, key)
                    change = await self.engine.delete_version(call.ctx, container, key, version, key_guard)
                    # S3: DeleteMarker says whether the version removed was a marker.
                    marker = change.removed if change.removed is not None and change.removed.delete_marker else None
                else:
                    change = await self.engine.delete(call.ctx, container, key)
                    marker = change.written
            except Exception as e:
                error = from_domain(e, container.name, key) or S3Error("InternalError")
                results.append(_delete_error(key, error.code, error.message, version))
                continue
            if not quiet:
                fields = [element("Key", key)]
                if version is not None:
                    fields.append(element("VersionId", version))
                if marker is not None:
                    fields += [element("DeleteMarker", True), element("DeleteMarkerVersionId", marker.version_id)]
                results.append(element("Deleted", *fields))
        return self._xml(call, element("DeleteResult", *results, xmlns=True))

    def _check_body_integrity(self, call: S3Call, body: bytes) -> None:
        """DeleteObjects needs Content-MD5 or an x-amz-checksum-* header, and it must hold."""
        expected_md5 = content_md5(call.headers)
        if expected_md5 is not None and hashlib.md5(body).digest() != expected_md5:
            raise S3Error("BadDigest")
        if checksums.check_stated(call.headers, body) is None and expected_md5 is None:
            raise S3Error("InvalidRequest", "Missing required header for this request: Content-MD5")

    async def delete_object(self, call: S3Call) -> bytes:
        assert call.target.key is not None
        version = requested_version(call)
        container = await self._container(call)
        guard = await self.delete_guard(call, container, version is not None)  # checked in the delete's transaction
        if version is not None:
            # A version that does not exist is deleted already: 204, as S3 answers.
            change = await self.engine.delete_version(call.ctx, container, call.target.key, version, guard)
            call.set_header("x-amz-version-id", version)
            if change.removed is not None and change.removed.delete_marker:
                call.set_header("x-amz-delete-marker", "true")
        else:
            change = await self.engine.delete(call.ctx, container, call.target.key)
            if change.written is not None:  # a delete marker, on a versioned container
                call.set_header("x-amz-delete-marker", "true")
                echo_version(call, change.written, asked=True)
        call.request.setResponseCode(204)
        return b""


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


def copy_source_version(header: str) -> tuple[str, str, str | None]:
    """``/bucket/key`` or ``bucket/key`` (URL-encoded), maybe with ``?versionId=<id>``."""
    path, _, query = header.partition("?")
    version = None
    if query:
        name, _, value = query.partition("=")
        if name != "versionId" or not valid_version_id(value):
            raise S3Error(
                "InvalidArgument",
                "Invalid version id specified",
                ArgumentName="x-amz-copy-source",
                ArgumentValue=header,
            )
        version = value
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
    return bucket, key, version


def _delete_error(key: str, code: str, message: str, version: str | None = None) -> Any:
    fields = [element("Key", key)] + ([element("VersionId", version)] if version is not None else [])
    return element("Error", *fields, element("Code", code), element("Message", message))
