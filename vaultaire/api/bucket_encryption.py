"""Bucket default encryption: Put/Get/DeleteBucketEncryption, SSE-S3 only.

A container whose default is SSE-S3 encrypts every new object that asks for no
encryption of its own (PUT, POST Object, copy target, multipart upload). SSE-KMS
defaults (``aws:kms``, ``aws:kms:dsse``) and bucket keys are refused with 501,
never stored and ignored.
"""

from __future__ import annotations

from vaultaire.api import xmlparse
from vaultaire.api.call import OperationBase, S3Call
from vaultaire.api.errors import S3Error
from vaultaire.api.xmlout import element
from vaultaire.encryption.keys import SSE_S3, Protection
from vaultaire.model import Container

SETTING = "encryption"


def parse(body: bytes) -> str:
    """The default algorithm a ServerSideEncryptionConfiguration asks for (only AES256 is kept)."""
    root = xmlparse.parse(body)
    if _local(root.tag) != "ServerSideEncryptionConfiguration":
        raise S3Error("MalformedXML")
    rules = [child for child in root if _local(child.tag) == "Rule"]
    if len(rules) != 1:
        raise S3Error("MalformedXML")
    algorithm = None
    for child in rules[0]:
        name = _local(child.tag)
        if name == "ApplyServerSideEncryptionByDefault":
            for field in child:
                if _local(field.tag) == "SSEAlgorithm":
                    algorithm = (field.text or "").strip()
                elif _local(field.tag) == "KMSMasterKeyID":
                    raise S3Error("NotImplemented", "SSE-KMS is not implemented by Vaultaire.")
        elif name == "BucketKeyEnabled":
            if (child.text or "").strip().lower() == "true":
                raise S3Error("NotImplemented", "S3 Bucket Keys (for SSE-KMS) are not implemented by Vaultaire.")
        else:
            raise S3Error("MalformedXML")
    if algorithm is None:
        raise S3Error("MalformedXML")
    if algorithm.startswith("aws:kms"):
        raise S3Error("NotImplemented", "SSE-KMS is not implemented by Vaultaire.")
    if algorithm != SSE_S3:
        raise S3Error("MalformedXML")
    return algorithm


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class EncryptionOperations(OperationBase):
    """Put/Get/DeleteBucketEncryption and the default they set."""

    async def get_bucket_encryption(self, call: S3Call) -> bytes:
        container = await self._container(call)
        algorithm = await self.engine.container_setting(call.ctx, container, SETTING)
        if algorithm is None:
            raise S3Error(
                "ServerSideEncryptionConfigurationNotFoundError",
                "The server side encryption configuration was not found",
                BucketName=container.name,
            )
        document = element(
            "ServerSideEncryptionConfiguration",
            element(
                "Rule",
                element("ApplyServerSideEncryptionByDefault", element("SSEAlgorithm", algorithm)),
                element("BucketKeyEnabled", "false"),
            ),
            xmlns=True,
        )
        return self._xml(call, document)

    async def put_bucket_encryption(self, call: S3Call) -> bytes:
        container = await self._container(call)
        body = await self._small_body(call)
        algorithm = parse(body)
        await self.engine.put_container_setting(call.ctx, container, SETTING, algorithm)
        call.set_header("Content-Length", "0")
        return b""

    async def delete_bucket_encryption(self, call: S3Call) -> bytes:
        container = await self._container(call)
        await self.engine.delete_container_setting(call.ctx, container, SETTING)
        call.request.setResponseCode(204)
        return b""

    async def _default_protection(self, call: S3Call, container: Container) -> Protection | None:
        """SSE-S3 when the container's default says so; a request's own headers win (callers check first)."""
        algorithm = await self.engine.container_setting(call.ctx, container, SETTING)
        return Protection(SSE_S3) if algorithm == SSE_S3 else None
