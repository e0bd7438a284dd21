"""Data keys: one random key and nonce prefix per blob, wrapped by a key that is not stored with it.

SSE-S3 wraps a blob's data key with the deployment's master key (the one that
already seals secret keys: one key hierarchy). SSE-C wraps it with the
customer's key, which is never stored: only an HMAC of it, under a key derived
from the master key, so a later request's key can be checked before any blob is
opened (S3 answers a wrong key with 403 on HEAD too). A random data key per blob,
even under one customer key, keeps (key, nonce) pairs from ever repeating.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from attrs import frozen
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vaultaire.model import Sealing

SSE_S3 = "AES256"
SSE_C = "SSE-C"
_TOKEN = "k1:"
_NONCE = 12


class WrongKey(Exception):
    """The key given does not open this artifact's data keys (``missing``: none was given)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.missing = why == "missing"


@frozen
class Protection:
    """What a request asks for its new blobs, or offers to read existing ones."""

    mode: str  # SSE_S3 or SSE_C
    customer_key: bytes = b""  # SSE-C only; never stored

    @property
    def key_md5(self) -> str:
        return base64.b64encode(hashlib.md5(self.customer_key).digest()).decode() if self.customer_key else ""


@frozen
class BlobKey:
    key: bytes
    prefix: bytes


class Keyring:
    """Makes and opens the wrapped data keys of blobs."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes")
        self._master = AESGCM(master_key)  # built once: every SSE-S3 read unwraps a data key with it
        self._proof_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"vaultaire sse-c key proof"
        ).derive(master_key)

    def proof(self, customer_key: bytes) -> str:
        """What proves a later request's customer key is this one (not its plain MD5)."""
        return hmac.new(self._proof_key, customer_key, hashlib.sha256).hexdigest()

    def describe(self, protection: Protection) -> Sealing:
        """The artifact's (or upload's) sealing, before its blobs' keys are known."""
        if protection.mode == SSE_C:
            return Sealing(SSE_C, (), self.proof(protection.customer_key), protection.key_md5)
        return Sealing(SSE_S3, ())

    def check(self, sealing: Sealing, offered: Protection | None) -> None:
        """Raise WrongKey unless ``offered`` may read an artifact sealed so (SSE-C: the same key)."""
        if sealing.mode != SSE_C:
            return
        if offered is None or offered.mode != SSE_C:
            raise WrongKey("missing")
        if not hmac.compare_digest(self.proof(offered.customer_key), sealing.key_proof):
            raise WrongKey("wrong")

    def _wrapping(self, mode: str, offered: Protection | None) -> tuple[AESGCM, bytes]:
        if mode == SSE_C:
            if offered is None or not offered.customer_key:
                raise WrongKey("missing")
            return AESGCM(offered.customer_key), b"vaultaire sse-c data key"
        return self._master, b"vaultaire sse-s3 data key"

    def new_blob(self, protection: Protection) -> tuple[BlobKey, str]:
        """A fresh data key and prefix, and its wrapped form for the catalog."""
        blob = BlobKey(secrets.token_bytes(32), secrets.token_bytes(4))
        aead, associated = self._wrapping(protection.mode, protection)
        nonce = secrets.token_bytes(_NONCE)
        wrapped = aead.encrypt(nonce, blob.key + blob.prefix, associated)
        return blob, _TOKEN + base64.b64encode(nonce + wrapped).decode("ascii")

    def open_blob(self, mode: str, token: str, offered: Protection | None) -> BlobKey:
        aead, associated = self._wrapping(mode, offered)
        try:
            raw = base64.b64decode(token.removeprefix(_TOKEN), validate=True)
            plain = aead.decrypt(raw[:_NONCE], raw[_NONCE:], associated)
        except (InvalidTag, binascii.Error, ValueError):
            raise WrongKey("the data key does not open") from None
        return BlobKey(plain[:32], plain[32:])
