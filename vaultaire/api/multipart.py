"""The multipart operations of the S3 API, mixed into S3Api.

Parts stream to their own blobs like PutObject bodies; completion is one
catalog transaction that turns them into a manifest, so no byte is copied.
"""

from __future__ import annotations

import base64

from vaultaire.api import checksums, encryption, xmlparse
from vaultaire.api.call import OperationBase, S3Call, iso
from vaultaire.api.errors import S3Error
from vaultaire.api.headers import read_conditions, storage_class, stored_headers, write_condition
from vaultaire.api.incoming import IncomingBody, content_md5
from vaultaire.api.object_lock_documents import INTEGRITY_NEEDED
from vaultaire.api.objects import copy_source_version
from vaultaire.api.ranges import resolve_copy_range
from vaultaire.api.tagging import note_tags, request_tags
from vaultaire.api.versioning import echo_version
from vaultaire.api.xmlout import element
from vaultaire.encryption.keys import Protection, protection_of
from vaultaire.engine.conditions import Outcome, evaluate
from vaultaire.errors import DeleteMarkerAddressed, NoSuchUpload
from vaultaire.model import Artifact, ByteRange, Container, Part, Upload

MAX_PARTS = 10_000
MAX_LISTED = 1000
COMPLETE_BODY_LIMIT = 4 * 2**20  # 10,000 parts with checksums


def _bounded_int(q: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = q.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or value > high:
        raise S3Error(
            "InvalidArgument", f"{name} must be an integer from {low} to {high}.", ArgumentName=name, ArgumentValue=raw
        )
    return value


class MultipartOperations(OperationBase):
    """Needs from its host: engine, _container, _xml, _metadata, _owner, _small_body, _echo_checksum."""

    def _upload_id(self, call: S3Call) -> str:
        upload_id = call.target.query.get("uploadId", "")
        if not upload_id:
            raise S3Error("NoSuchUpload", UploadId=upload_id)
        return upload_id

    def _part_number(self, call: S3Call) -> int:
        return _bounded_int(call.target.query, "partNumber", -1, 1, MAX_PARTS)

    def _part_protection(self, call: S3Call, upload: Upload) -> Protection | None:
        """A part is sealed as its upload says; an SSE-C upload's parts each bring the same key."""
        offered = encryption.for_read(call.headers, self._sse_c_secure(call))
        encryption.check_offered(upload.sealing, offered)
        if upload.sealing is None:
            return None
        self.engine.sealed.check(upload.sealing, offered)
        return offered or protection_of(upload.sealing)

    async def _check_complete_key(self, call: S3Call, container: Container, upload_id: str) -> None:
        """An SSE-C key sent with CompleteMultipartUpload (s3transfer sends it) must be the upload's."""
        offered = encryption.for_read(call.headers, self._sse_c_secure(call))
        if offered is None:
            return
        try:
            upload = await self.engine.upload(call.ctx, container, upload_id)
        except NoSuchUpload:
            return  # the completion answers it (a retry of one that happened gets its 200)
        encryption.check_offered(upload.sealing, offered)
        self.engine.sealed.check(upload.sealing, offered)

    async def create_multipart_upload(self, call: S3Call) -> bytes:
        assert call.target.key is not None
        algorithm = call.headers.get("x-amz-checksum-algorithm", "").lower() or None
        kind = None
        if algorithm is not None:
            if algorithm not in checksums.ALGORITHMS:
                raise S3Error("InvalidRequest", f"Checksum algorithm {algorithm!r} is not valid.")
            checksums.new_hasher(algorithm)  # refuses the algorithms Vaultaire cannot compute
            kind = checksums.checksum_type(algorithm, call.headers.get("x-amz-checksum-type"))
        tags = request_tags(call)
        protection = encryption.for_write(call.headers, self._sse_c_secure(call))
        lock_asked = self.lock_requested(call.headers)
        container = await self._container(call)
        protection = protection or await self._default_protection(call, container)
        protection = encryption.for_object(protection, container.name, call.target.key)
        acl = await self._new_object_acl(call, container, call.headers)
        lock = await self.lock_for_write(call, container, lock_asked)
        upload = await self.engine.create_upload(
            call.ctx,
            container,
            call.target.key,
            content_type=call.headers.get("content-type") or "binary/octet-stream",
            metadata=self._metadata(call),
            headers=stored_headers(call.headers),
            storage_class=storage_class(call.headers),
            checksum_algorithm=algorithm,
            checksum_type=kind,
            protection=protection,
            tags=tags,
            acl=acl,
            lock=lock,
        )
        encryption.echo(call, upload.sealing, written=True)
        if algorithm is not None and kind is not None:
            call.set_header("x-amz-checksum-algorithm", algorithm.upper())
            call.set_header("x-amz-checksum-type", kind)
        return self._xml(
            call,
            element(
                "InitiateMultipartUploadResult",
                element("Bucket", container.name),
                element("Key", upload.key),
                element("UploadId", upload.id),
                xmlns=True,
            ),
        )

    async def upload_part(self, call: S3Call) -> bytes:
        assert call.identity is not None
        upload_id = self._upload_id(call)
        number = self._part_number(call)
        incoming = IncomingBody(call.headers, call.identity, call.request.body_length)
        container = await self._container(call)
        upload = await self.engine.upload(call.ctx, container, upload_id)  # NoSuchUpload before 100 Continue
        protection = self._part_protection(call, upload)
        if (upload.retention is not None or upload.legal_hold) and incoming.algorithm is None:
            if content_md5(call.headers) is None:
                # S3: the parts of an upload with Object Lock parameters need an integrity header.
                raise S3Error("InvalidRequest", INTEGRITY_NEEDED)
        algorithm = upload.checksum_algorithm
        if algorithm is not None and incoming.algorithm not in (None, algorithm):
            raise S3Error("InvalidRequest", f"This upload's parts carry {algorithm.upper()} checksums.")
        hashers = dict(incoming.hashers)
        if algorithm is not None and incoming.algorithm is None:
            # The client sent none: compute it, so the completed upload still gets its checksum.
            hashers["part-checksum"] = checksums.new_hasher(algorithm)

        def part_checksum() -> str | None:
            if incoming.algorithm is not None:
                return (incoming.checksum_header() or ("", None))[1]
            if "part-checksum" in hashers:
                return base64.b64encode(hashers["part-checksum"].digest()).decode()
            return None

        raw = call.request.lazy_body()
        part = await self.engine.put_part(
            call.ctx,
            container,
            upload_id,
            number,
            incoming.source(raw),
            hashers=hashers,
            verify=incoming.verify,
            checksum=part_checksum,
            declared_size=incoming.size,
            protection=protection,
        )
        encryption.echo(call, upload.sealing)
        call.set_header("ETag", f'"{part.md5}"')
        call.set_header("Content-Length", "0")
        self._echo_checksum(call, incoming)
        return b""

    async def upload_part_copy(self, call: S3Call) -> bytes:

        upload_id = self._upload_id(call)
        number = self._part_number(call)
        source_bucket, source_key, source_version = copy_source_version(call.headers["x-amz-copy-source"])
        target = await self._container(call)
        source = await self._source_container(call, source_bucket)
        conditions = read_conditions(call.headers, "x-amz-copy-source-")
        wanted_range = call.headers.get("x-amz-copy-source-range")
        offered = encryption.for_read(call.headers, self._sse_c_secure(call), source=True)
        upload = await self.engine.upload(call.ctx, target, upload_id)
        protection = self._part_protection(call, upload)

        def resolve(original: Artifact) -> ByteRange | None:
            encryption.check_offered(original.sealing, offered)
            if evaluate(conditions, original) is not Outcome.PROCEED:
                raise S3Error("PreconditionFailed", Condition="x-amz-copy-source-If-*")
            if wanted_range is None:
                return None
            return resolve_copy_range(wanted_range, original.size)

        try:
            original, part = await self.engine.copy_part(
                call.ctx, source, source_key, target, upload_id, number, resolve, offered, protection, source_version
            )
        except DeleteMarkerAddressed:
            raise S3Error(
                "InvalidRequest",
                "The source of a copy request may not specifically refer to a delete marker by version id.",
            ) from None
        if original.version_id != "null" or source_version is not None:
            call.set_header("x-amz-copy-source-version-id", original.version_id)
        encryption.echo(call, upload.sealing)
        return self._xml(
            call,
            element(
                "CopyPartResult",
                element("LastModified", iso(part.modified)),
                element("ETag", f'"{part.md5}"'),
                xmlns=True,
            ),
        )

    async def complete_multipart_upload(self, call: S3Call) -> bytes:
        upload_id = self._upload_id(call)
        container = await self._container(call)
        condition = write_condition(call.headers)
        body = await self._small_body(call, COMPLETE_BODY_LIMIT)
        chosen, sent_checksums = xmlparse.complete_request(body, MAX_PARTS)
        await self._check_complete_key(call, container, upload_id)
        claims = checksums.complete_claims(call.headers)

        def checksum_of(upload: Upload, parts: list[Part]) -> tuple[str, str] | None:
            result = checksums.multipart_checksum(upload, parts, sent_checksums)
            checksums.check_complete(upload, parts, result, claims)
            return result

        artifact, _parts = await self.engine.complete_upload(
            call.ctx, container, upload_id, chosen, condition, checksum_of, key=call.target.key
        )
        encryption.echo(call, artifact.sealing)
        echo_version(call, artifact)
        self._echo_expiration(call, await self._lifecycle(call, container), artifact)
        note_tags(call, artifact.tags)
        extra = []
        if artifact.checksum is not None:
            algorithm, value = artifact.checksum
            extra = [
                element(f"Checksum{algorithm.upper()}", value),
                element("ChecksumType", "COMPOSITE" if "-" in value else "FULL_OBJECT"),
            ]
        return self._xml(
            call,
            element(
                "CompleteMultipartUploadResult",
                element("Location", f"/{container.name}/{artifact.key}"),
                element("Bucket", container.name),
                element("Key", artifact.key),
                element("ETag", artifact.etag),
                *extra,
                xmlns=True,
            ),
        )

    async def abort_multipart_upload(self, call: S3Call) -> bytes:
        upload_id = self._upload_id(call)
        container = await self._container(call)
        await self.engine.abort_upload(call.ctx, container, upload_id)
        call.request.setResponseCode(204)
        return b""

    async def list_parts(self, call: S3Call) -> bytes:
        upload_id = self._upload_id(call)
        q = call.target.query
        marker = _bounded_int(q, "part-number-marker", 0, 0, MAX_PARTS)
        limit = min(_bounded_int(q, "max-parts", MAX_LISTED, 0, 2**31), MAX_LISTED)
        container = await self._container(call)
        upload, parts = await self.engine.list_parts(call.ctx, container, upload_id, marker, limit + 1)
        truncated = len(parts) > limit
        parts = parts[:limit]
        owner = self._owner(call)
        entries = [
            element(
                "Part",
                element("PartNumber", p.number),
                element("LastModified", iso(p.modified)),
                element("ETag", f'"{p.md5}"'),
                element("Size", p.size),
            )
            for p in parts
        ]
        return self._xml(
            call,
            element(
                "ListPartsResult",
                element("Bucket", container.name),
                element("Key", upload.key),
                element("UploadId", upload.id),
                element("Initiator", *owner.children),
                owner,
                element("StorageClass", upload.storage_class),
                element("PartNumberMarker", marker),
                element("NextPartNumberMarker", parts[-1].number if parts else marker),
                element("MaxParts", limit),
                element("IsTruncated", truncated),
                *entries,
                xmlns=True,
            ),
        )

    async def list_multipart_uploads(self, call: S3Call) -> bytes:
        q = call.target.query
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        key_marker = q.get("key-marker") or None
        id_marker = q.get("upload-id-marker") or None
        limit = min(_bounded_int(q, "max-uploads", MAX_LISTED, 0, 2**31), MAX_LISTED)
        container = await self._container(call)
        uploads, prefixes, truncated = await self.engine.list_uploads(
            call.ctx, container, prefix, delimiter, key_marker, id_marker, limit
        )
        owner = self._owner(call)
        head = [
            element("Bucket", container.name),
            element("KeyMarker", key_marker or ""),
            element("UploadIdMarker", id_marker or ""),
        ]
        if truncated and uploads:
            head += [element("NextKeyMarker", uploads[-1].key), element("NextUploadIdMarker", uploads[-1].id)]
        elif truncated and prefixes:
            head += [element("NextKeyMarker", prefixes[-1]), element("NextUploadIdMarker", "")]
        head += [element("Prefix", prefix), element("MaxUploads", limit), element("IsTruncated", truncated)]
        if delimiter:
            head.append(element("Delimiter", delimiter))
        entries = [
            element(
                "Upload",
                element("Key", u.key),
                element("UploadId", u.id),
                element("Initiator", *owner.children),
                owner,
                element("StorageClass", u.storage_class),
                element("Initiated", iso(u.created)),
            )
            for u in uploads
        ]
        common = [element("CommonPrefixes", element("Prefix", p)) for p in prefixes]
        return self._xml(call, element("ListMultipartUploadsResult", *head, *entries, *common, xmlns=True))
