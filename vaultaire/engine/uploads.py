"""Multipart uploads: parts streamed to blobs of their own, completed by one catalog transaction.

Mixed into Engine (engine.py), on top of the write path (writes.py: ``_write_blob``, the
condition check) and Engine's reads (``open``), which every part and part copy go through:
a part is as durable, checked, metered and sealed as a whole object.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping

from twisted.logger import Logger

from vaultaire.encryption.keys import Protection
from vaultaire.engine.hashing import Hasher, Verifier
from vaultaire.engine.pipe import ChunkSource, reader_source
from vaultaire.engine.quota import nothing_replaced
from vaultaire.engine.sealed import sealed_etag
from vaultaire.engine.writes import WritesEngine
from vaultaire.errors import ConditionalConflict, NoSuchUpload, PreconditionFailed
from vaultaire.model import Artifact, ByteRange, Container, Part, RequestContext, Upload, WriteCondition
from vaultaire.objectlock import LockRequest

log = Logger()


class UploadsEngine(WritesEngine):
    """Mixed into Engine. A part takes the write path an object takes (writes.py)."""

    min_part_size: int

    async def create_upload(
        self,
        ctx: RequestContext,
        container: Container,
        key: str,
        *,
        content_type: str,
        metadata: tuple[tuple[str, str], ...] = (),
        headers: tuple[tuple[str, str], ...] = (),
        storage_class: str = "STANDARD",
        checksum_algorithm: str | None = None,
        checksum_type: str | None = None,
        protection: Protection | None = None,
        tags: tuple[tuple[str, str], ...] = (),
        acl: str = "",
        lock: LockRequest | None = None,
    ) -> Upload:
        """A new multipart upload. Its ``lock`` is fixed now: a default retention counts
        from the upload's initiation, and CompleteMultipartUpload gives it to the version."""
        if self.space is not None:
            await self.space.admit(container.placement, 0)  # an upload whose parts could not land
        created = self._clock()
        upload = Upload(
            id=uuid.uuid4().hex + uuid.uuid4().hex[:8],
            container_id=container.id,
            key=key,
            created=created,
            content_type=content_type,
            metadata=metadata,
            headers=headers,
            storage_class=storage_class,
            checksum_algorithm=checksum_algorithm,
            checksum_type=checksum_type,
            sealing=self.sealed.describe(await self.sealed.prepare(protection, ctx.tenant_id)),
            tags=tags,
            acl=acl,
            retention=lock.retention_at(created) if lock is not None else None,
            legal_hold=lock.legal_hold if lock is not None else None,
        )
        await self.catalog.create_upload(upload)
        return upload

    async def upload(self, ctx: RequestContext, container: Container, upload_id: str) -> Upload:
        return await self.catalog.upload(container.id, upload_id)

    async def put_part(
        self,
        ctx: RequestContext,
        container: Container,
        upload_id: str,
        number: int,
        source: ChunkSource,
        *,
        hashers: Mapping[str, Hasher] | None = None,
        verify: Verifier | None = None,
        checksum: Callable[[], str | None] = lambda: None,
        declared_size: int | None = None,
        protection: Protection | None = None,
    ) -> Part:
        """Stream one part to its own blob; a part sent again replaces (and frees) the old one.

        An encrypted upload's parts each get their own data key (``protection`` is the upload's).

        Callers look the upload up before streaming (the S3 layer must, to answer
        NoSuchUpload before 100 Continue); the commit checks it again in its
        transaction, so an upload aborted meanwhile still refuses the part.
        """
        seal = await self.sealed.new_blob(protection)
        locator, size, md5 = await self._write_blob(
            ctx, container, source, hashers, verify, declared_size, nothing_replaced, seal
        )
        if seal is not None:
            # A part's ETag follows the object's rules (not the plaintext MD5 for SSE-C and SSE-KMS);
            # the upload's completion then lists these and derives the object's from them.
            md5 = sealed_etag(md5, self.sealed.describe(protection), seal.token)
        part = Part(
            upload_id,
            number,
            locator,
            size,
            md5,
            self._clock(),
            checksum(),
            placement=container.placement,
            sealed_key=seal.token if seal is not None else "",
        )
        try:
            replaced = await self.catalog.put_part(container.id, part, intended=True)
        except BaseException:
            # The commit may have happened with its answer lost: withdraw asks the catalog first.
            await self.blobs.withdraw(container.placement, [locator])
            raise
        if replaced is not None:
            # No reader streams a part before its upload completes: it can go now.
            await self.blobs.discard(replaced.placement or container.placement, [replaced.locator])
        return part

    async def copy_part(
        self,
        ctx: RequestContext,
        source: Container,
        source_key: str,
        target: Container,
        upload_id: str,
        number: int,
        resolve: Callable[[Artifact], ByteRange | None],
        offered: Protection | None = None,
        protection: Protection | None = None,
        source_version: str | None = None,
    ) -> tuple[Artifact, Part]:
        """UploadPartCopy: a range of an artifact (its current version, or ``source_version``)
        streamed into a part.

        ``offered`` opens an SSE-C source; ``protection`` is the target upload's."""
        await self.catalog.upload(target.id, upload_id)
        original, wanted, reader = await self.open(ctx, source, source_key, resolve, offered, source_version)
        try:
            part = await self.put_part(
                ctx,
                target,
                upload_id,
                number,
                reader_source(reader),
                declared_size=wanted.length if wanted else original.size,
                protection=protection,
            )
        except BaseException:
            reader.stop()
            raise
        return original, part

    async def list_parts(
        self, ctx: RequestContext, container: Container, upload_id: str, after: int, limit: int
    ) -> tuple[Upload, list[Part]]:
        return await self.catalog.parts(container.id, upload_id, after, limit)

    async def complete_upload(
        self,
        ctx: RequestContext,
        container: Container,
        upload_id: str,
        chosen: list[tuple[int, str]],
        condition: WriteCondition | None = None,
        checksum_of: Callable[[Upload, list[Part]], tuple[str, str] | None] = lambda upload, parts: None,
        key: str | None = None,
    ) -> tuple[Artifact, list[Part]]:
        """One catalog transaction turns the parts into a manifest: no byte is copied.

        With ``key``, a retry of a completion that already happened (its answer lost on
        the way) gets the artifact it made, as S3 answers such a retry with 200.
        """
        try:
            if condition is not None:
                upload = await self.catalog.upload(container.id, upload_id)
                await self._check_condition(container, upload.key, condition)
            try:
                artifact, replaced, picked, unchosen = await self.catalog.complete_upload(
                    container.id, upload_id, chosen, self.min_part_size, self._clock(), condition, checksum_of
                )
            except PreconditionFailed as e:
                raise ConditionalConflict(str(e)) from None
        except NoSuchUpload:
            done = None if key is None else await self._completed(container, key, upload_id, chosen)
            if done is None:
                raise
            return done, []
        # The transaction queued the replaced artifact's and the unchosen parts' blobs.
        await self.blobs.discard_pairs(unchosen)
        if replaced is not None:
            await self.blobs.release(replaced, container)
        return artifact, picked

    async def _completed(
        self, container: Container, key: str, upload_id: str, chosen: list[tuple[int, str]]
    ) -> Artifact | None:
        """The artifact this upload made with exactly these parts, if it is still the key's."""
        current = await self.catalog.artifact(container.id, key)
        if current is None or current.upload_id != upload_id:
            return None
        try:
            digest = hashlib.md5(b"".join(bytes.fromhex(md5) for _number, md5 in chosen)).hexdigest()
        except ValueError:  # an ETag that is not hex names no part of ours
            return None
        return current if current.md5 == f"{digest}-{len(chosen)}" else None

    async def abort_upload(self, ctx: RequestContext, container: Container, upload_id: str) -> None:
        await self.blobs.discard_pairs(await self.catalog.abort_upload(container.id, upload_id))

    async def list_uploads(
        self,
        ctx: RequestContext,
        container: Container,
        prefix: str,
        delimiter: str,
        key_marker: str | None,
        id_marker: str | None,
        limit: int,
    ) -> tuple[list[Upload], list[str], bool]:
        return await self.catalog.list_uploads(container.id, prefix, delimiter, key_marker, id_marker, limit)

    async def expire_uploads(self, max_age: float, batch: int = 500) -> int:
        """Abort uploads older than ``max_age`` seconds and free their parts."""
        expired = 0
        while True:
            stale = await self.catalog.stale_uploads(self._clock() - max_age, batch)
            for upload in stale:
                try:
                    await self.blobs.discard_pairs(await self.catalog.abort_upload(upload.container_id, upload.id))
                    expired += 1
                except NoSuchUpload:
                    pass  # completed or aborted meanwhile
            if len(stale) < batch:
                break
        if expired:
            log.info("expired {n} unfinished multipart uploads", n=expired)
        return expired
