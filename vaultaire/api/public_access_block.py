"""Block Public Access: Put/Get/DeletePublicAccessBlock (container setting "public-access-block").

A bucket without the setting blocks everything public (all four switches on), as a new
bucket does on S3 since April 2023 and as every bucket here behaved before public access
existed. Deleting the configuration stores "" (none): S3 then answers
NoSuchPublicAccessBlockConfiguration and nothing is blocked. The deployment's
``[access] public_buckets = false`` turns every switch on for every bucket, whatever
the bucket's own configuration says.
"""

from __future__ import annotations

from vaultaire.access.acl import BLOCK_ALL, BLOCK_NONE, PublicAccessBlock
from vaultaire.api import xmlparse
from vaultaire.api.access_documents import document as access_document
from vaultaire.api.call import OperationBase, S3Call
from vaultaire.api.errors import S3Error
from vaultaire.api.xmlout import Element, element
from vaultaire.model import Container

SETTING = "public-access-block"
NONE_CONFIGURED = ""

_FIELDS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def stored_block(stored: str | None) -> PublicAccessBlock:
    """A bucket's own configuration, from its stored setting."""
    if stored is None:
        return BLOCK_ALL
    if stored == NONE_CONFIGURED:
        return BLOCK_NONE
    return PublicAccessBlock.loads(stored)


def parse(body: bytes) -> PublicAccessBlock:
    """A PublicAccessBlockConfiguration document; a switch it leaves out is off, as on S3."""
    root = xmlparse.parse(body)
    if _local(root.tag) != "PublicAccessBlockConfiguration":
        raise S3Error("MalformedXML")
    values = dict.fromkeys(_FIELDS, False)
    seen: set[str] = set()
    for child in root:
        name = _local(child.tag)
        text = (child.text or "").strip().lower()
        if name not in values or name in seen or text not in ("true", "false") or len(child):
            raise S3Error("MalformedXML")
        seen.add(name)
        values[name] = text == "true"
    return PublicAccessBlock(*(values[name] for name in _FIELDS))


def render(block: PublicAccessBlock) -> Element:
    switches = (
        block.block_public_acls,
        block.ignore_public_acls,
        block.block_public_policy,
        block.restrict_public_buckets,
    )
    return element(
        "PublicAccessBlockConfiguration",
        *(element(name, value) for name, value in zip(_FIELDS, switches, strict=True)),
        xmlns=True,
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class PublicAccessBlockOperations(OperationBase):
    """Put/Get/DeletePublicAccessBlock, and the block every public grant is checked against."""

    # False: the deployment forbids public buckets entirely ([access] public_buckets).
    public_buckets: bool = True

    async def _public_access_block(self, call: S3Call, container: Container) -> PublicAccessBlock:
        """The switches in force for ``container``: its own, and the deployment's on top.

        The policy code asks this before accepting a bucket policy (block_public_policy),
        the decision step before counting public grants (ignore_public_acls,
        restrict_public_buckets), the ACL code before storing a public ACL (block_public_acls).
        """
        own = stored_block(await access_document(self.engine, call, container, SETTING))
        return own if self.public_buckets else own.union(BLOCK_ALL)

    async def get_public_access_block(self, call: S3Call) -> bytes:
        container = await self._container(call)
        stored = await access_document(self.engine, call, container, SETTING)
        if stored == NONE_CONFIGURED:
            raise S3Error("NoSuchPublicAccessBlockConfiguration", BucketName=container.name)
        return self._xml(call, render(stored_block(stored)))

    async def put_public_access_block(self, call: S3Call) -> bytes:
        container = await self._container(call)
        block = parse(await self._small_body(call))
        await self.engine.put_container_setting(call.ctx, container, SETTING, block.dumps())
        call.set_header("Content-Length", "0")
        return b""

    async def delete_public_access_block(self, call: S3Call) -> bytes:
        container = await self._container(call)
        await self.engine.put_container_setting(call.ctx, container, SETTING, NONE_CONFIGURED)
        call.request.setResponseCode(204)
        return b""
