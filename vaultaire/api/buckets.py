"""Bucket-level operations: list, create, head, delete, location (versioning: api/versioning.py)."""

from __future__ import annotations

from vaultaire.access.acl import BLOCK_ALL, BUCKET_OWNER_ENFORCED
from vaultaire.api import checksums, xmlparse
from vaultaire.api.acl_operations import SETTING as ACL_SETTING
from vaultaire.api.addressing import check_bucket_name
from vaultaire.api.call import OperationBase, S3Call, iso
from vaultaire.api.errors import S3Error
from vaultaire.api.ownership import SETTING as OWNERSHIP_SETTING
from vaultaire.api.ownership import header_value as ownership_header
from vaultaire.api.tagging import SETTING as TAGGING
from vaultaire.api.tagging import create_bucket_tags, setting_of
from vaultaire.api.tokens import decode_token, encode_token
from vaultaire.api.xmlout import element
from vaultaire.errors import ContainerExists
from vaultaire.model import Container
from vaultaire.objectlock import SETTING as LOCK_SETTING

MAX_BUCKETS = 10_000  # S3's ceiling for max-buckets


def _max_buckets(q: dict[str, str]) -> int | None:
    """Without max-buckets S3 lists every bucket in one page; with it, 1 to 10,000 a page."""
    raw = q.get("max-buckets")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_BUCKETS:
        raise S3Error(
            "InvalidArgument",
            f"max-buckets must be an integer from 1 to {MAX_BUCKETS}.",
            ArgumentName="max-buckets",
            ArgumentValue=raw,
        )
    return value


class BucketOperations(OperationBase):
    region: str

    async def list_buckets(self, call: S3Call) -> bytes:
        q = call.target.query
        prefix = q.get("prefix", "")
        limit = _max_buckets(q)
        after = decode_token(q["continuation-token"]) if "continuation-token" in q else None
        region = q.get("bucket-region")
        if region is not None and region != self.region:
            containers = []  # every bucket of this server lives in its one region
        else:
            wanted = None if limit is None else limit + 1
            containers = await self.engine.list_containers(call.ctx, prefix, after, wanted)
        truncated = limit is not None and len(containers) > limit
        if truncated:
            containers = containers[:limit]
        buckets = [
            element(
                "Bucket",
                element("Name", c.name),
                element("CreationDate", iso(c.created)),
                element("BucketRegion", self.region),
            )
            for c in containers
        ]
        tail = []
        if truncated:
            tail.append(element("ContinuationToken", encode_token(containers[-1].name)))
        if "prefix" in q:
            tail.append(element("Prefix", prefix))
        return self._xml(
            call,
            element("ListAllMyBucketsResult", self._owner(call), element("Buckets", *buckets), *tail, xmlns=True),
        )

    async def create_bucket(self, call: S3Call) -> bytes:
        assert call.target.bucket is not None
        check_bucket_name(call.target.bucket)
        body = await self._small_body(call)
        checksums.check_stated(call.headers, body)
        ownership, acl = self._creation_access(call)
        placement = None
        if body.strip():
            constraint = xmlparse.location_constraint(body)
            # The server's own region (what SDKs send by default) means the default placement;
            # any other constraint names a placement, or is refused (InvalidLocationConstraint).
            if constraint and constraint != self.region:
                placement = constraint
        tags = create_bucket_tags(body)
        locked = call.headers.get("x-amz-bucket-object-lock-enabled", "").strip().lower() == "true"
        if locked:
            await self.may_create_locked(call)  # before anything is created
        try:
            created = await self.engine.create_container(call.ctx, call.target.bucket, placement)
        except ContainerExists:
            # S3's legacy answer in us-east-1: creating a bucket you already own (in the same
            # place) succeeds, and create-if-missing scripts rely on it. Elsewhere it is 409.
            if self.region != "us-east-1":
                raise
            existing = await self._container(call)
            if existing.placement != (placement or self.engine.default_placement):
                raise
            # Asking for Object Lock on a bucket that has none is never answered "done".
            if locked and await self.engine.container_setting(call.ctx, existing, LOCK_SETTING) is None:
                raise
        else:
            await self._store_creation_access(call, created, ownership, acl)
            if tags:
                await self.engine.put_container_setting(call.ctx, created, TAGGING, setting_of(tags))
            if locked:
                await self.enable_lock_at_creation(call, created)
        call.set_header("Location", f"/{call.target.bucket}")
        call.set_header("Content-Length", "0")
        return b""

    def _creation_access(self, call: S3Call) -> tuple[str | None, str]:
        """CreateBucket's x-amz-object-ownership (None: the default) and ACL, checked before it creates."""
        raw = call.headers.get("x-amz-object-ownership")
        ownership = None if raw is None else ownership_header(raw)
        # A new bucket blocks public access (public_access_block.py), and the deployment may too.
        acl = self._bucket_creation_acl(call, ownership or BUCKET_OWNER_ENFORCED, BLOCK_ALL)
        return ownership, acl

    async def _store_creation_access(self, call: S3Call, container: Container, ownership: str | None, acl: str) -> None:
        if ownership is not None and ownership != BUCKET_OWNER_ENFORCED:
            await self.engine.put_container_setting(call.ctx, container, OWNERSHIP_SETTING, ownership)
        if acl:
            await self.engine.put_container_setting(call.ctx, container, ACL_SETTING, acl)

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
