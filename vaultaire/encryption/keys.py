"""Data keys: one key and nonce prefix per blob, wrapped by (SSE-C: derived from) a key not stored with it.

SSE-S3 wraps a blob's data key with the deployment's master key (the one that
already seals secret keys: one key hierarchy). Master keys rotate: the newest
wraps new data keys, older ones still open theirs (a wrapped key names its
master key by id), and ``rewrap`` moves a wrapped key to the newest without
touching the blob. SSE-KMS data keys are wrapped by a named KMS key
(``kms.py``), whose own material the master key seals.

SSE-C derives a blob's data key from the customer's key, which is never stored:
keyed BLAKE2b (a PRF) of it with a random salt kept in the token, and a check
value beside the key so that a wrong customer key is told apart from a damaged
blob: one hash per blob opened, where unwrapping ("k1:" tokens, which still
open) built an AES-GCM cipher from the customer key and ran it. Only a MAC of
the customer key is kept (keyed BLAKE2b; older ones HMAC-SHA256), under a key
derived from the master key, so that a later request's key can be checked
before any blob is opened (S3 answers a wrong key with 403 on HEAD too). A data
key of its own per blob, even under one customer key, keeps (key, nonce) pairs
from ever repeating.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence

from attrs import frozen
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vaultaire.model import Sealing

SSE_S3 = "AES256"
SSE_C = "SSE-C"
SSE_KMS = "aws:kms"
_TOKEN = "k1:"  # wrapped: SSE-C data keys of earlier versions (by the customer's key), SSE-S3 ones from before rotation
_MASTER_TOKEN = "k2:"  # k2:<master key id>:<base64>: wrapped by the named master key
_DERIVED_TOKEN = "k3:"  # SSE-C: k3:<base64 of salt and check value>: derived from the customer key
_SALT = 16  # BLAKE2b's own salt parameter
_CHECK = 16
_SSE_C_PERSON = b"vaultaire sse-c"
_PROOF = "b2:"  # an SSE-C key proof made with keyed BLAKE2b; older ones are a bare HMAC-SHA256 in hex
_PROOF_PERSON = b"vaultaire proof"
_NONCE = 12


class WrongKey(Exception):
    """The key given does not open this artifact's data keys (``missing``: none was given)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.missing = why == "missing"


@frozen
class Protection:
    """What a request asks for its new blobs, or offers to read existing ones."""

    mode: str  # SSE_S3, SSE_C or SSE_KMS
    customer_key: bytes = b""  # SSE-C only; never stored
    kms_key: str = ""  # SSE-KMS: the key asked for (an id, alias or ARN; "" the default), later its ARN
    context: str = ""  # SSE-KMS: the encryption context, canonical JSON
    bucket_key: bool = False  # SSE-KMS: an S3 Bucket Key was asked for

    @property
    def key_md5(self) -> str:
        return base64.b64encode(hashlib.md5(self.customer_key).digest()).decode() if self.customer_key else ""


def protection_of(sealing: Sealing) -> Protection:
    """What seals more blobs like ``sealing``'s (an upload's parts); SSE-C's key comes with each request."""
    return Protection(sealing.mode, kms_key=sealing.kms_key, context=sealing.context, bucket_key=sealing.bucket_key)


@frozen
class BlobKey:
    key: bytes
    prefix: bytes


def master_key_id(master_key: bytes) -> str:
    """A short public name of a master key: which one wrapped a data key (not a secret)."""
    return hashlib.sha256(b"vaultaire master key id" + master_key).hexdigest()[:8]


class _Master:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the master key must be 32 bytes")
        self.id = master_key_id(key)
        self.aead = AESGCM(key)  # built once: every SSE-S3 read unwraps a data key with it
        self.proof_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"vaultaire sse-c key proof"
        ).derive(key)

    def prove(self, customer_key: bytes) -> str:
        # Keyed BLAKE2b is a MAC by design (RFC 7693), and a third of what a one-shot HMAC costs
        # under OpenSSL 3, which looks the digest up again on every call; every SSE-C request pays it.
        return hashlib.blake2b(customer_key, key=self.proof_key, person=_PROOF_PERSON, digest_size=32).hexdigest()


class Keyring:
    """Makes and opens the wrapped data keys of blobs.

    ``master_key`` is the newest master key (it wraps every new data key); ``older``
    are retired ones that still open what they wrapped. ``reload`` (if given) returns
    the current list, newest first: it is asked again when a wrapped key names a
    master key this keyring does not know (another process rotated and re-sealed).
    """

    def __init__(
        self,
        master_key: bytes,
        older: Sequence[bytes] = (),
        reload: Callable[[], Sequence[bytes]] | None = None,
    ) -> None:
        self._set([master_key, *older])
        self._reload = reload

    def _set(self, keys: Sequence[bytes]) -> None:
        masters = [_Master(k) for k in keys]
        self._newest = masters[0]
        self._masters = {m.id: m for m in reversed(masters)}  # the newest wins a (2^-32) id clash
        self._order = masters

    @property
    def newest_id(self) -> str:
        return self._newest.id

    @property
    def master_ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self._order)

    def _master(self, kid: str) -> _Master:
        master = self._masters.get(kid)
        if master is None and self._reload is not None:
            try:
                self._set(list(self._reload()))
            except Exception:
                pass  # the keys we have stay; the caller says the data key does not open
            master = self._masters.get(kid)
        if master is None:
            raise WrongKey(f"master key {kid} is not known here")
        return master

    def proof(self, customer_key: bytes) -> str:
        """What proves a later request's customer key is this one (not its plain MD5)."""
        return _PROOF + self._newest.prove(customer_key)

    def _proves(self, customer_key: bytes, proof: str) -> bool:
        # A proof made under a retired master key still holds (the customer key cannot be re-proved).
        if proof.startswith(_PROOF):
            digest = proof[len(_PROOF) :]
            return any(hmac.compare_digest(m.prove(customer_key), digest) for m in self._order)
        # Made before proofs were BLAKE2b: an HMAC-SHA256, in hex.
        return any(
            hmac.compare_digest(hmac.digest(m.proof_key, customer_key, "sha256").hex(), proof) for m in self._order
        )

    def describe(self, protection: Protection) -> Sealing:
        """The artifact's (or upload's) sealing, before its blobs' keys are known."""
        if protection.mode == SSE_C:
            return Sealing(SSE_C, (), self.proof(protection.customer_key), protection.key_md5)
        if protection.mode == SSE_KMS:
            return Sealing(
                SSE_KMS, (), kms_key=protection.kms_key, context=protection.context, bucket_key=protection.bucket_key
            )
        return Sealing(SSE_S3, ())

    def check(self, sealing: Sealing, offered: Protection | None) -> None:
        """Raise WrongKey unless ``offered`` may read an artifact sealed so (SSE-C: the same key)."""
        if sealing.mode != SSE_C:
            return
        if offered is None or offered.mode != SSE_C:
            raise WrongKey("missing")
        if not self._proves(offered.customer_key, sealing.key_proof):
            raise WrongKey("wrong")

    # -- data keys

    def new_key(self) -> BlobKey:
        return BlobKey(secrets.token_bytes(32), secrets.token_bytes(4))

    def new_blob(self, protection: Protection) -> tuple[BlobKey, str]:
        """A fresh data key and prefix, and its wrapped form for the catalog (SSE-S3 and SSE-C)."""
        if protection.mode == SSE_C:
            if not protection.customer_key:
                raise WrongKey("missing")
            salt = secrets.token_bytes(_SALT)
            blob, check = _derive(protection.customer_key, salt)
            return blob, _DERIVED_TOKEN + base64.b64encode(salt + check).decode("ascii")
        blob = self.new_key()
        return blob, self.seal(blob.key + blob.prefix, _SSE_S3_DATA)

    def open_blob(self, mode: str, token: str, offered: Protection | None) -> BlobKey:
        if mode == SSE_C:
            if offered is None or not offered.customer_key:
                raise WrongKey("missing")
            if token.startswith(_DERIVED_TOKEN):
                return _open_derived(offered.customer_key, token[len(_DERIVED_TOKEN) :])
            plain = _unwrap(AESGCM(offered.customer_key), token.removeprefix(_TOKEN), _SSE_C_DATA)
        else:
            plain = self.open(token, _SSE_S3_DATA)
        return BlobKey(plain[:32], plain[32:])

    # -- anything the master key seals: SSE-S3 data keys, KMS key material

    def seal(self, secret: bytes, associated: bytes) -> str:
        """``secret`` wrapped by the newest master key, naming it."""
        return f"{_MASTER_TOKEN}{self._newest.id}:" + _wrap(self._newest.aead, secret, associated)

    def open(self, token: str, associated: bytes) -> bytes:
        if token.startswith(_MASTER_TOKEN):
            kid, _, wrapped = token[len(_MASTER_TOKEN) :].partition(":")
            return _unwrap(self._master(kid).aead, wrapped, associated)
        # Written before master keys had ids: the first master key wrapped it; try each.
        for master in reversed(self._order):
            try:
                return _unwrap(master.aead, token.removeprefix(_TOKEN), associated)
            except WrongKey:
                continue
        raise WrongKey("the data key does not open")

    def needs_rewrap(self, token: str) -> bool:
        return not token.startswith(f"{_MASTER_TOKEN}{self._newest.id}:")

    def rewrap(self, token: str, associated: bytes) -> str | None:
        """``token`` wrapped by the newest master key instead, or None if it already is."""
        if not self.needs_rewrap(token):
            return None
        return self.seal(self.open(token, associated), associated)

    def rewrap_data_key(self, token: str) -> str | None:
        """An SSE-S3 data key's token, re-sealed under the newest master key (None: already is)."""
        return self.rewrap(token, _SSE_S3_DATA)


_SSE_S3_DATA = b"vaultaire sse-s3 data key"
_SSE_C_DATA = b"vaultaire sse-c data key"


def _derive(customer_key: bytes, salt: bytes) -> tuple[BlobKey, bytes]:
    """A blob's data key and nonce prefix, and the check value that tells a wrong customer key.

    Keyed BLAKE2b is a PRF by design (RFC 7693), with a salt and a personalization of its
    own: 52 bytes, of which the key takes 32, the prefix 4 and the check 16. A fresh random
    salt per blob makes every data key new, so nonces (prefix + package index) never repeat
    under one. (HMAC-SHA512 would do as well and costs three times as much here: OpenSSL 3
    looks the digest up again on every one-shot HMAC.)
    """
    block = hashlib.blake2b(key=customer_key, salt=salt, person=_SSE_C_PERSON, digest_size=52).digest()
    return BlobKey(block[:32], block[32:36]), block[36:52]


def _open_derived(customer_key: bytes, encoded: str) -> BlobKey:
    try:
        raw = binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError):
        raise WrongKey("the data key does not open") from None
    if len(raw) != _SALT + _CHECK:
        raise WrongKey("the data key does not open")
    blob, check = _derive(customer_key, raw[:_SALT])
    if not hmac.compare_digest(check, raw[_SALT:]):
        raise WrongKey("the data key does not open")
    return blob


def _wrap(aead: AESGCM, secret: bytes, associated: bytes) -> str:
    nonce = secrets.token_bytes(_NONCE)
    return base64.b64encode(nonce + aead.encrypt(nonce, secret, associated)).decode("ascii")


def _unwrap(aead: AESGCM, wrapped: str, associated: bytes) -> bytes:
    try:
        raw = base64.b64decode(wrapped, validate=True)
        return aead.decrypt(raw[:_NONCE], raw[_NONCE:], associated)
    except (InvalidTag, binascii.Error, ValueError):
        raise WrongKey("the data key does not open") from None
