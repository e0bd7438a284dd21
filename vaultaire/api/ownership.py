"""Object ownership: Put/Get/DeleteBucketOwnershipControls (container setting "ownership").

BucketOwnerEnforced (ACLs disabled: the bucket owner owns every object, only private
ACLs are accepted) is what a bucket without the setting has, as a new bucket has on
S3 since 2023 and as every bucket here behaved before ACLs existed. Deleting the
controls stores "" (none configured): S3 then answers OwnershipControlsNotFoundError
and the bucket behaves as ObjectWriter, ACLs enabled.
"""

from __future__ import annotations

from vaultaire.access.acl import BUCKET_OWNER_ENFORCED, OBJECT_WRITER, OWNERSHIPS
from vaultaire.api import xmlparse
from vaultaire.api.access_documents import document as access_document
from vaultaire.api.call import OperationBase, S3Call
from vaultaire.api.errors import S3Error
from vaultaire.api.xmlout import element
from vaultaire.model import Container

SETTING = "ownership"
NONE_CONFIGURED = ""


def effective(stored: str | None) -> str:
    """The ownership a bucket behaves by, from its stored setting."""
    if stored is None:
        return BUCKET_OWNER_ENFORCED
    return stored or OBJECT_WRITER


def parse(body: bytes) -> str:
    """The one ObjectOwnership an OwnershipControls document names."""
    root = xmlparse.parse(body)
    if _local(root.tag) != "OwnershipControls":
        raise S3Error("MalformedXML")
    rules = [child for child in root if _local(child.tag) == "Rule"]
    if len(rules) != 1 or len(root) != 1:
        raise S3Error("MalformedXML")
    values = [(field.text or "").strip() for field in rules[0] if _local(field.tag) == "ObjectOwnership"]
    if len(values) != 1 or len(rules[0]) != 1 or values[0] not in OWNERSHIPS:
        raise S3Error("MalformedXML")
    return values[0]


def header_value(raw: str) -> str:
    """CreateBucket's ``x-amz-object-ownership``."""
    value = raw.strip()
    if value not in OWNERSHIPS:
        raise S3Error(
            "InvalidArgument",
            "Invalid x-amz-object-ownership header",
            ArgumentName="x-amz-object-ownership",
            ArgumentValue=raw,
        )
    return value


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class OwnershipOperations(OperationBase):
    """Put/Get/DeleteBucketOwnershipControls, and the ownership other operations obey."""

    async def _ownership(self, call: S3Call, container: Container) -> str:
        return effective(await access_document(self.engine, call, container, SETTING))

    async def get_bucket_ownership_controls(self, call: S3Call) -> bytes:
        container = await self._container(call)
        stored = await access_document(self.engine, call, container, SETTING)
        if stored == NONE_CONFIGURED:
            raise S3Error("OwnershipControlsNotFoundError", BucketName=container.name)
        document = element(
            "OwnershipControls",
            element("Rule", element("ObjectOwnership", effective(stored))),
            xmlns=True,
        )
        return self._xml(call, document)

    async def put_bucket_ownership_controls(self, call: S3Call) -> bytes:
        container = await self._container(call)
        ownership = parse(await self._small_body(call))
        if ownership == BUCKET_OWNER_ENFORCED:
            # S3: a bucket ACL granting anything to anyone else must go before ACLs are disabled.
            acl = await self._bucket_acl(call, container)
            if not acl.is_private_to(container.tenant_id):
                raise S3Error("InvalidBucketAclWithObjectOwnership")
        await self.engine.put_container_setting(call.ctx, container, SETTING, ownership)
        call.set_header("Content-Length", "0")
        return b""

    async def delete_bucket_ownership_controls(self, call: S3Call) -> bytes:
        container = await self._container(call)
        await self.engine.put_container_setting(call.ctx, container, SETTING, NONE_CONFIGURED)
        call.request.setResponseCode(204)
        return b""
