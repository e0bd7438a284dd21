"""Encryption headers: what a request asks for (SSE-S3, SSE-C) and what responses say back.

SSE-KMS (``aws:kms``, ``aws:kms:dsse``) is refused with 501 by the table in
``unsupported.py``; every other value here is S3's 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping

from vaultaire.api.call import S3Call
from vaultaire.api.errors import S3Error
from vaultaire.encryption.keys import SSE_C, SSE_S3, Protection
from vaultaire.model import Sealing

SSE = "x-amz-server-side-encryption"
CUSTOMER = "x-amz-server-side-encryption-customer-"
COPY_CUSTOMER = "x-amz-copy-source-server-side-encryption-customer-"

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
        raw = base64.b64decode(key, validate=True)
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
    if base64.b64encode(hashlib.md5(raw).digest()).decode() != key_md5.strip():
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
    if customer is not None:
        return customer
    if asked is None:
        return None
    if asked != SSE_S3:
        # aws:kms was refused with 501 before this point (unsupported.py); anything else is no method at all.
        raise S3Error(
            "InvalidArgument",
            "The encryption method specified is not supported",
            ArgumentName=SSE,
            ArgumentValue=asked,
        )
    return Protection(SSE_S3)


def for_read(headers: Mapping[str, str], secure: bool, source: bool = False) -> Protection | None:
    """The customer key a GET, HEAD (or, with ``source``, a copy source) offers."""
    return _customer(headers, COPY_CUSTOMER if source else CUSTOMER, secure)


def check_offered(sealing: Sealing | None, offered: Protection | None, source: bool = False) -> None:
    """S3's 400s for a key missing or not wanted; the engine answers a wrong key (403)."""
    if sealing is not None and sealing.mode == SSE_C and offered is None:
        raise S3Error("InvalidRequest", STORED_WITH_SSE_C)
    if offered is not None and (sealing is None or sealing.mode != SSE_C):
        raise S3Error("InvalidRequest", NOT_APPLICABLE)


def echo(call: S3Call, sealing: Sealing | None) -> None:
    """The response headers that say how an artifact is encrypted, as S3 sends them."""
    if sealing is None:
        return
    if sealing.mode == SSE_C:
        call.set_header(CUSTOMER + "algorithm", "AES256")
        call.set_header(CUSTOMER + "key-MD5", sealing.key_md5)
    else:
        call.set_header(SSE, SSE_S3)
