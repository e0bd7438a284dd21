"""Bucket-level operations: list, create, head, delete, location, versioning."""

from __future__ import annotations

from vaultaire.api import xmlparse
from vaultaire.api.addressing import check_bucket_name
from vaultaire.api.call import OperationBase, S3Call, iso
from vaultaire.api.xmlout import element


class BucketOperations(OperationBase):
    region: str

    async def list_buckets(self, call: S3Call) -> bytes:
        containers = await self.engine.list_containers(call.ctx)
        buckets = [
            element("Bucket", element("Name", c.name), element("CreationDate", iso(c.created))) for c in containers
        ]
        return self._xml(
            call, element("ListAllMyBucketsResult", self._owner(call), element("Buckets", *buckets), xmlns=True)
        )

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

    async def get_bucket_versioning(self, call: S3Call) -> bytes:
        await self._container(call)
        # Never enabled: S3 answers an empty configuration for such a bucket.
        return self._xml(call, element("VersioningConfiguration", xmlns=True))
