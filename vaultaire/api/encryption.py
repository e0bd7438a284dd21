"""Encryption headers: what a request asks for (SSE-S3, SSE-C, SSE-KMS) and what responses say back.

Dual-layer SSE-KMS (``aws:kms:dsse``) is refused with 501 by the table in
``unsupported.py``; every other value here is S3's 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping

from attrs import evolve

from vaultaire.api.call import S3Call
from vaultaire.api.errors import S3Error
from vaultaire.encryption.keys import SSE_C, SSE_KMS, SSE_S3, Protection
from vaultaire.encryption.kms import canonical_context
from vaultaire.model import Sealing

SSE = "x-amz-server-side-encryption"
CUSTOMER = "x-amz-server-side-encryption-customer-"
COPY_CUSTOMER = "x-amz-copy-source-server-side-encryption-customer-"
KMS_KEY = "x-amz-server-side-encryption-aws-kms-key-id"
CONTEXT = "x-amz-server-side-encryption-context"
BUCKET_KEY = "x-amz-server-side-encryption-bucket-key-enabled"

STORED_WITH_SSE_C = (
    "The object was stored using a form of Server Side Encryption. "
    "The correct parameters must be provided to retrieve the object."
)
NOT_APPLICABLE = "The encryption parameters are not applicable to this object."


def _customer(headers: Mapping[str, str], prefix: str, secure: bool) -> Protection | None:
    """The SSE-C key in ``prefix``-algorithm/-key/-key-MD5, checked as S3 checks them."""
    algorithm = headers.get(prefix + "algorithm")
    key = headers.get(prefix + "key")
    key_md5 = headers.get(prefix + "key-md5")
    if algorithm is None and key is None and key_md5 is None:
        return None
    if not secure:
        raise S3Error(
            "InvalidRequest",
            "Requests specifying Server Side Encryption with Customer provided keys must be made over "
            "a secure connection.",
        )
    if algorithm is None:
        raise S3Error(
            "InvalidRequest",
            "Requests specifying Server Side Encryption with Customer provided keys must provide a valid "
            "encryption algorithm.",
        )
    if algorithm != "AES256":
        raise S3Error(
            "InvalidEncryptionAlgorithmError",
            "The Encryption request you specified is not valid. Supported value: AES256.",
            ArgumentName=prefix + "algorithm",
            ArgumentValue=algorithm,
        )
    if key is None:
        raise S3Error(
            "InvalidRequest",
            "Requests specifying Server Side Encryption with Customer provided keys must provide an "
            "appropriate secret key.",
        )
    try:
        raw = binascii.a2b_base64(key, strict_mode=True)  # b64decode(validate=True), without its Python steps
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise S3Error(
            "InvalidArgument",
            "The secret key was invalid for the specified algorithm.",
            ArgumentName=prefix + "key",
            ArgumentValue="null",  # S3 never echoes a key
        )
    if key_md5 is None:
        raise S3Error(
            "InvalidRequest",
            "Requests specifying Server Side Encryption with Customer provided keys must provide the "
            "client calculated MD5 of the secret key.",
        )
    if binascii.b2a_base64(hashlib.md5(raw).digest(), newline=False).decode() != key_md5.strip():
        raise S3Error(
            "InvalidArgument",
            "The calculated MD5 hash of the key did not match the hash that was provided.",
            ArgumentName=prefix + "key-MD5",
            ArgumentValue=key_md5,
        )
    return Protection(SSE_C, raw)


def for_write(headers: Mapping[str, str], secure: bool) -> Protection | None:
    """What a PUT, copy target or CreateMultipartUpload asks for its new blobs."""
    customer = _customer(headers, CUSTOMER, secure)
    asked = headers.get(SSE)
    if asked is not None and customer is not None:
        raise S3Error(
            "InvalidArgument",
            "Server Side Encryption with Customer provided key is incompatible with the encryption method specified",
            ArgumentName=SSE,
            ArgumentValue=asked,
        )
    kms = asked is not None and asked.strip() == SSE_KMS
    for name in (KMS_KEY, CONTEXT):
        if name in headers and not kms:
            raise S3Error(
                "InvalidArgument",
                "Server Side Encryption with AWS KMS managed key requires HTTP header "
                "x-amz-server-side-encryption : aws:kms",
                ArgumentName=name,
                ArgumentValue=headers[name] if name == KMS_KEY else "null",
            )
    bucket_key = _bucket_key(headers)
    if customer is not None:
        return customer
    if asked is None:
        return None
    if kms:
        return Protection(
            SSE_KMS, kms_key=headers.get(KMS_KEY, "").strip(), context=_context(headers), bucket_key=bucket_key
        )
    if asked != SSE_S3:
        # aws:kms:dsse was refused with 501 before this point (unsupported.py); anything else is no method at all.
        raise S3Error(
            "InvalidArgument",
            "The encryption method specified is not supported",
            ArgumentName=SSE,
            ArgumentValue=asked,
        )
    return Protection(SSE_S3)


def _bucket_key(headers: Mapping[str, str]) -> bool:
    value = headers.get(BUCKET_KEY)
    if value is None:
        return False
    if value.strip().lower() not in ("true", "false"):
        raise S3Error(
            "InvalidArgument",
            "Bucket Key header value is not valid",
            ArgumentName=BUCKET_KEY,
            ArgumentValue=value,
        )
    return value.strip().lower() == "true"


def _context(headers: Mapping[str, str]) -> str:
    """The request's encryption context (base64 of a JSON object of strings), canonical; "" if none."""
    raw = headers.get(CONTEXT)
    if raw is None:
        return ""
    try:
        document = json.loads(base64.b64decode(raw.strip(), validate=True).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in document.items()
    ):
        raise S3Error(
            "InvalidArgument",
            "The encryption context is not a base64-encoded JSON object of strings.",
            ArgumentName=CONTEXT,
            ArgumentValue="null",
        )
    if any(k.startswith("aws:") for k in document):
        raise S3Error(
            "InvalidArgument",
            "Encryption context keys cannot start with the reserved prefix aws:",
            ArgumentName=CONTEXT,
            ArgumentValue="null",
        )
    return canonical_context(document)


def for_object(protection: Protection | None, bucket: str, key: str) -> Protection | None:
    """SSE-KMS binds each object's data keys to a context naming it, as S3 does (``aws:s3:arn``:
    the object, or the bucket when an S3 Bucket Key is used)."""
    if protection is None or protection.mode != SSE_KMS:
        return protection
    document = json.loads(protection.context) if protection.context else {}
    document["aws:s3:arn"] = f"arn:aws:s3:::{bucket}" if protection.bucket_key else f"arn:aws:s3:::{bucket}/{key}"
    return evolve(protection, context=canonical_context(document))


def for_read(headers: Mapping[str, str], secure: bool, source: bool = False) -> Protection | None:
    """The customer key a GET, HEAD (or, with ``source``, a copy source) offers."""
    return _customer(headers, COPY_CUSTOMER if source else CUSTOMER, secure)


def check_offered(sealing: Sealing | None, offered: Protection | None, source: bool = False) -> None:
    """S3's 400s for a key missing or not wanted; the engine answers a wrong key (403)."""
    if sealing is not None and sealing.mode == SSE_C and offered is None:
        raise S3Error("InvalidRequest", STORED_WITH_SSE_C)
    if offered is not None and (sealing is None or sealing.mode != SSE_C):
        raise S3Error("InvalidRequest", NOT_APPLICABLE)


def echo(call: S3Call, sealing: Sealing | None, written: bool = False) -> None:
    """The response headers that say how an artifact is encrypted, as S3 sends them
    (``written``: a response to the write that encrypted it, which also carries an SSE-KMS context)."""
    if sealing is None:
        return
    if sealing.mode == SSE_C:
        call.set_header(CUSTOMER + "algorithm", "AES256")
        call.set_header(CUSTOMER + "key-MD5", sealing.key_md5)
    elif sealing.mode == SSE_KMS:
        call.set_header(SSE, SSE_KMS)
        call.set_header(KMS_KEY, sealing.kms_key)
        if sealing.bucket_key:
            call.set_header(BUCKET_KEY, "true")
        if written and sealing.context:
            call.set_header(CONTEXT, base64.b64encode(sealing.context.encode("utf-8")).decode("ascii"))
    else:
        call.set_header(SSE, SSE_S3)
