"""Writes: a new artifact's bytes streamed to a durable blob (or kept for the catalog), then committed.

The engine owns the order of a write: stream to a staged blob, verify the digests, make
the blob durable, commit the catalog, and only then free what the commit replaced; a
refused or failed write withdraws its blob (deleted once the catalog confirms that no
commit referenced it). Copies go the same way, read from the source.
Mixed into Engine (engine.py).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from attrs import evolve, frozen
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from vaultaire.catalog import inline
from vaultaire.catalog.cached import CachedReads
from vaultaire.catalog.interface import Catalog
from vaultaire.drivers.interface import BlobReader, BlobWriter, Driver
from vaultaire.encryption.keys import Protection
from vaultaire.engine.blobs import BlobKeeper
from vaultaire.engine.hashing import Hasher, HashingLine, Verifier
from vaultaire.engine.inline import InlineStore, InlineWriter, takes_inline
from vaultaire.engine.pipe import ChunkSource, reader_source
from vaultaire.engine.quota import QuotaGuard, Reservation, nothing_replaced
from vaultaire.engine.sealed import BlobSeal, Sealed, sealed_etag
from vaultaire.engine.space import SpaceGuard
from vaultaire.errors import (
    ConditionalConflict,
    IncompleteBody,
    NoSuchArtifact,
    PreconditionFailed,
)
from vaultaire.model import (
    Artifact,
    ByteRange,
    Container,
    RequestContext,
    WriteCondition,
)
from vaultaire.objectlock import LockRequest

log = Logger()


@frozen
class CopyPlan:
    """What a copy carries over or replaces."""

    content_type: str
    metadata: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    storage_class: str
    protection: Protection | None = None  # how the copy is encrypted (None: plaintext)
    tags: tuple[tuple[str, str], ...] = ()  # the copy's object tags
    acl: str = ""  # the copy's ACL (vaultaire.access.acl, serialized); S3 never copies the source's
    lock: LockRequest | None = None  # Object Lock of the copy (never the source's: S3 does not copy it)


class WritesEngine:
    """Mixed into Engine."""

    catalog: Catalog
    blobs: BlobKeeper
    sealed: Sealed
    space: SpaceGuard | None
    quota: QuotaGuard
    reads: CachedReads
    inline: InlineStore
    inline_max: int
    _clock: Callable[[], float]
    _reactor: Any
    _driver: Callable[[Container], Driver]
    # Engine's read of the copy's source.
    open: Callable[..., Awaitable[tuple[Artifact, ByteRange | None, BlobReader]]]

    def _inline_writer(self, container: Container, size: int | None, seal: BlobSeal | None) -> InlineWriter | None:
        """A writer into memory when this upload's bytes go to the catalog, else None."""
        if self.inline_max <= 0 or size is None or size > self.inline_max:
            return None
        if not takes_inline(self._driver(container)):
            return None
        stored = seal.stored_size(size) if seal is not None else size
        assert stored is not None
        return InlineWriter(stored)

    async def put(
        self,
        ctx: RequestContext,
        container: Container,
        key: str,
        source: ChunkSource,
        *,
        content_type: str,
        metadata: tuple[tuple[str, str], ...] = (),
        headers: tuple[tuple[str, str], ...] = (),
        storage_class: str = "STANDARD",
        condition: WriteCondition | None = None,
        hashers: Mapping[str, Hasher] | None = None,
        verify: Verifier | None = None,
        keep_checksum: tuple[str, str] | None = None,
        declared_size: int | None = None,
        protection: Protection | None = None,
        tags: tuple[tuple[str, str], ...] = (),
        acl: str = "",
        lock: LockRequest | None = None,
    ) -> Artifact:
        """Stream ``source`` into a new blob and commit it under ``key``.

        With ``protection`` the blob is encrypted at rest under a fresh data key.
        With ``lock`` the new version carries its Object Lock retention and legal hold
        from its first commit (a default retention counts from its creation time).

        ``keep_checksum`` is (algorithm, hasher name): that hasher's digest is
        stored with the artifact as its checksum.

        A refused digest, a short body or a cancelled request aborts the blob:
        nothing is committed and nothing is left on the driver.

        Conditions and quota are checked before the first read of ``source``,
        so a lazily opened request body is refused before ``100 Continue``.
        """
        if condition is not None:
            # Refuse early when it is already clear; the commit checks again atomically.
            await self._check_condition(container, key, condition)

        async def replaced_size() -> int:
            # Only the null version is replaced; with versioning on, the current one stays (and counts).
            if await self.reads.setting(container, "versioning") == "Enabled":
                return 0
            current = await self.catalog.artifact(container.id, key)
            return current.size if current is not None and current.version_id == "null" else 0

        protection = await self.sealed.prepare(protection, ctx.tenant_id)
        seal = await self.sealed.new_blob(protection)
        kept = self._inline_writer(container, declared_size, seal)
        locator, size, md5 = await self._write_blob(
            ctx, container, source, hashers, verify, declared_size, replaced_size, seal, kept
        )
        sealing = self.sealed.describe(protection)
        md5 = sealed_etag(md5, sealing, seal.token if seal is not None else "")
        checksum = None
        if keep_checksum is not None and hashers is not None:
            algorithm, name = keep_checksum
            checksum = (algorithm, base64.b64encode(hashers[name].digest()).decode())
        created = self._clock()
        artifact = Artifact(
            container_id=container.id,
            key=key,
            locator=locator,
            size=size,
            md5=md5,
            modified=created,
            content_type=content_type,
            metadata=metadata,
            headers=headers,
            storage_class=storage_class,
            checksum=checksum,
            placement=container.placement,
            sealing=None if sealing is None or seal is None else evolve(sealing, keys=(seal.token,)),
            tags=tags,
            acl=acl,
            retention=lock.retention_at(created) if lock is not None else None,
            legal_hold=lock.legal_hold if lock is not None else None,
        )
        try:
            if kept is None:
                change = await self.catalog.put_artifact(artifact, condition, intended=True)
            else:
                change = await self.catalog.put_inline_artifact(artifact, kept.data, condition)
        except PreconditionFailed:
            await self.blobs.withdraw(container.placement, [locator])
            raise ConditionalConflict(key) from None
        except BaseException:
            # The commit may have happened with its answer lost: withdraw asks the catalog first.
            await self.blobs.withdraw(container.placement, [locator])
            raise
        if change.removed is not None:
            await self.blobs.release(change.removed, container)
        assert change.written is not None
        return change.written

    async def _write_blob(
        self,
        ctx: RequestContext,
        container: Container,
        source: ChunkSource,
        hashers: Mapping[str, Hasher] | None,
        verify: Verifier | None,
        declared_size: int | None,
        replacing: Callable[[], Awaitable[int]] = nothing_replaced,
        seal: BlobSeal | None = None,
        kept: InlineWriter | None = None,
    ) -> tuple[str, int, str]:
        """Stream into a new durable blob; (locator, size, md5 hex). Aborted on any failure.
        With ``kept``, the bytes go there instead, for the catalog to store with the row."""
        if self.space is not None:
            # Inline bytes too: they land on the catalog's disk, refused below its reserve alike.
            await self.space.admit(container.placement, declared_size)
        reservation = await self.quota.reserve(ctx.tenant, declared_size, replacing)
        try:
            return await self._stream_blob(container, source, hashers, verify, reservation, declared_size, seal, kept)
        finally:
            if reservation is not None:
                reservation.release()

    async def _stream_blob(
        self,
        container: Container,
        source: ChunkSource,
        hashers: Mapping[str, Hasher] | None,
        verify: Verifier | None,
        reservation: Reservation | None,
        declared_size: int | None = None,
        seal: BlobSeal | None = None,
        kept: InlineWriter | None = None,
    ) -> tuple[str, int, str]:
        """Stream into a new blob (encrypted by ``seal``, hashed as plaintext).
        ``declared_size`` (the Content-Length the client announced) goes to the
        driver: one that needs it up front (a streamed upstream PUT) uses it.
        A body of any other size is refused here, before the commit, whatever the driver."""
        writer: BlobWriter
        if kept is not None:
            # Bytes for the catalog: nothing reaches a driver, so no intent needs recording.
            locator = inline.new_locator()
            writer = kept if seal is None else seal.wrap(kept)
        else:
            blob = uuid.uuid4().hex
            locator = f"{container.id}/{blob[:2]}/{blob}"
            driver = self._driver(container)
            # Durable before the driver sees a byte: a crash from here on leaves an intent the
            # sweep turns into garbage, never a blob the catalog does not know.
            await self.blobs.intend(container.placement, [locator])
            try:
                if seal is None:
                    writer = driver.open_writer(locator, declared_size)
                else:
                    writer = seal.wrap(driver.open_writer(locator, seal.stored_size(declared_size)))
            except BaseException:
                await self.blobs.withdraw(container.placement, [locator])
                raise
        md5 = hashlib.md5()
        all_hashers: dict[str, Hasher] = {"md5": md5, **(hashers or {})}
        size = 0

        hashing = HashingLine(self._reactor, all_hashers.values())
        writing: Deferred[None] | None = None
        try:
            while True:
                chunk = await source.read()
                if not chunk:
                    break
                size += len(chunk)
                if reservation is not None:
                    reservation.grow(size)
                # One write at a time reaches the driver; the next chunk is read meanwhile.
                if writing is not None:
                    await writing
                writing = writer.write(chunk)
                await hashing.add(chunk)
            if writing is not None:
                await writing
            await hashing.done()
            if declared_size is not None and size != declared_size:
                # Before anything is committed: a short body must never replace what the key holds.
                raise IncompleteBody(f"{size} bytes arrived, {declared_size} were announced")
            if verify is not None:
                verify({name: hasher.digest() for name, hasher in all_hashers.items()})
            await writer.commit()
        except BaseException:
            hashing.drop()
            if writing is not None:
                try:
                    await writing  # the driver sees its abort only after its last write
                except Exception:
                    pass  # the abort below is the answer to it
            try:
                await writer.abort()
            except Exception as e:
                # Whatever the driver kept, withdraw deletes or queues it.
                log.info("aborting blob {locator} failed ({error})", locator=locator, error=str(e))
            await self.blobs.withdraw(container.placement, [locator])
            raise
        return locator, size, md5.hexdigest()

    async def _check_condition(self, container: Container, key: str, condition: WriteCondition) -> None:
        current = await self.catalog.artifact(container.id, key)
        if condition.must_not_exist and current is not None:
            raise PreconditionFailed("the key exists")
        if (condition.must_exist or condition.etag_must_be is not None) and current is None:
            # S3: If-Match on a missing key is 404 NoSuchKey, not 412.
            raise NoSuchArtifact("the key does not exist")
        if condition.etag_must_be is not None and current is not None and current.md5 != condition.etag_must_be:
            raise PreconditionFailed("the key does not have the expected ETag")

    async def copy(
        self,
        ctx: RequestContext,
        source: Container,
        source_key: str,
        target: Container,
        target_key: str,
        plan: Callable[[Artifact], CopyPlan],
        condition: WriteCondition | None = None,
        offered: Protection | None = None,
        source_version: str | None = None,
    ) -> tuple[Artifact, Artifact]:
        """Stream an artifact (its current version, or ``source_version``) into a new one (same
        or other container); returns (source, copy).

        ``offered`` is the source's customer key (SSE-C); the plan says the copy's protection.

        ``plan`` sees the source artifact first and decides the copy's
        metadata, or raises (a failed copy-source condition, say).
        """
        original, _, reader = await self.open(ctx, source, source_key, lambda a: None, offered, source_version)
        try:
            decided = plan(original)
        except BaseException:
            reader.stop()
            raise
        try:
            copied = await self.put(
                ctx,
                target,
                target_key,
                reader_source(reader),
                content_type=decided.content_type,
                metadata=decided.metadata,
                headers=decided.headers,
                storage_class=decided.storage_class,
                condition=condition,
                declared_size=original.size,
                protection=decided.protection,
                tags=decided.tags,
                acl=decided.acl,
                lock=decided.lock,
            )
        except BaseException:
            reader.stop()  # refused before reading (a condition, the quota): release the source blob
            raise
        return original, copied
