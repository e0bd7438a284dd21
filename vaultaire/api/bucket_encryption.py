"""Bucket default encryption: Put/Get/DeleteBucketEncryption, SSE-S3 or SSE-KMS.

A container whose default says so encrypts every new object that asks for no
encryption of its own (PUT, POST Object, copy target, multipart upload): with
SSE-S3, or with SSE-KMS under the key it names (the deployment's ``aws/s3`` key
when it names none) and S3 Bucket Keys as it says. Dual-layer SSE-KMS
(``aws:kms:dsse``) is refused with 501, never stored and ignored.
"""

from __future__ import annotations

import json

from attrs import frozen

from vaultaire.api import xmlparse
from vaultaire.api.call import OperationBase, S3Call
from vaultaire.api.errors import S3Error
from vaultaire.api.xmlout import element
from vaultaire.encryption.keys import SSE_KMS, SSE_S3, Protection
from vaultaire.model import Container

SETTING = "encryption"


@frozen
class Default:
    """A container's default encryption, as its configuration says it."""

    algorithm: str  # AES256 or aws:kms
    kms_key: str = ""  # KMSMasterKeyID as given ("" the default key)
    bucket_key: bool = False

    def stored(self) -> str:
        # A plain SSE-S3 default stays the bare word older versions stored.
        if self.algorithm == SSE_S3 and not self.kms_key and not self.bucket_key:
            return SSE_S3
        return json.dumps({"algorithm": self.algorithm, "key": self.kms_key, "bucket_key": self.bucket_key})

    @classmethod
    def load(cls, stored: str) -> Default:
        if not stored.startswith("{"):
            return cls(stored)
        document = json.loads(stored)
        return cls(document["algorithm"], document.get("key", ""), bool(document.get("bucket_key", False)))

    def protection(self) -> Protection:
        if self.algorithm == SSE_KMS:
            return Protection(SSE_KMS, kms_key=self.kms_key, bucket_key=self.bucket_key)
        return Protection(SSE_S3)


def parse(body: bytes) -> Default:
    """The default a ServerSideEncryptionConfiguration asks for."""
    root = xmlparse.parse(body)
    if _local(root.tag) != "ServerSideEncryptionConfiguration":
        raise S3Error("MalformedXML")
    rules = [child for child in root if _local(child.tag) == "Rule"]
    if len(rules) != 1:
        raise S3Error("MalformedXML")
    algorithm = None
    kms_key = ""
    bucket_key = False
    for child in rules[0]:
        name = _local(child.tag)
        if name == "ApplyServerSideEncryptionByDefault":
            for field in child:
                if _local(field.tag) == "SSEAlgorithm":
                    algorithm = (field.text or "").strip()
                elif _local(field.tag) == "KMSMasterKeyID":
                    kms_key = (field.text or "").strip()
        elif name == "BucketKeyEnabled":
            text = (child.text or "").strip().lower()
            if text not in ("true", "false"):
                raise S3Error("MalformedXML")
            bucket_key = text == "true"
        else:
            raise S3Error("MalformedXML")
    if algorithm is None:
        raise S3Error("MalformedXML")
    if algorithm.startswith("aws:kms:dsse"):
        raise S3Error("NotImplemented", "Dual-layer SSE-KMS is not implemented by Vaultaire.")
    if algorithm not in (SSE_S3, SSE_KMS):
        raise S3Error("MalformedXML")
    if kms_key and algorithm != SSE_KMS:
        raise S3Error(
            "InvalidArgument",
            "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or aws:kms:dsse",
            ArgumentName="ApplyServerSideEncryptionByDefault",
        )
    return Default(algorithm, kms_key, bucket_key)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# The bucket default a deployment with ``encrypt_all_objects`` gives every bucket without its own.
DEPLOYMENT_DEFAULT = Default(SSE_S3).stored()


class EncryptionOperations(OperationBase):
    """Put/Get/DeleteBucketEncryption and the default they set."""

    async def get_bucket_encryption(self, call: S3Call) -> bytes:
        container = await self._container(call)
        stored = await self.engine.container_setting(call.ctx, container, SETTING)
        if stored is None and self.encrypt_all_objects:
            stored = DEPLOYMENT_DEFAULT  # what every new object here gets: say so, as S3 does
        if stored is None:
            raise S3Error(
                "ServerSideEncryptionConfigurationNotFoundError",
                "The server side encryption configuration was not found",
                BucketName=container.name,
            )
        default = Default.load(stored)
        by_default = [element("SSEAlgorithm", default.algorithm)]
        if default.kms_key:
            by_default.append(element("KMSMasterKeyID", default.kms_key))
        document = element(
            "ServerSideEncryptionConfiguration",
            element(
                "Rule",
                element("ApplyServerSideEncryptionByDefault", *by_default),
                element("BucketKeyEnabled", "true" if default.bucket_key else "false"),
            ),
            xmlns=True,
        )
        return self._xml(call, document)

    async def put_bucket_encryption(self, call: S3Call) -> bytes:
        container = await self._container(call)
        body = await self._small_body(call)
        default = parse(body)
        await self.engine.put_container_setting(call.ctx, container, SETTING, default.stored())
        call.set_header("Content-Length", "0")
        return b""

    async def delete_bucket_encryption(self, call: S3Call) -> bytes:
        container = await self._container(call)
        await self.engine.delete_container_setting(call.ctx, container, SETTING)
        call.request.setResponseCode(204)
        return b""

    async def _default_protection(self, call: S3Call, container: Container) -> Protection | None:
        """The container's default, if any; a request's own headers win (callers check first)."""
        stored = await self.engine.container_setting(call.ctx, container, SETTING)
        if stored is None:
            return Protection(SSE_S3) if self.encrypt_all_objects else None
        return Default.load(stored).protection()
