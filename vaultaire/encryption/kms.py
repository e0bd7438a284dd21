"""SSE-KMS: named keys that wrap data keys, behind an interface an external KMS can implement.

``KeySource`` is all the engine asks of a KMS: resolve what a request names
(an id, ``alias/NAME``, a bare name or an ARN) to a key's ARN, and wrap or
unwrap a data key under it, bound to an encryption context. A disabled key
refuses both, so its objects are unreadable until it is enabled again.

``LocalKeySource`` keeps the keys in the catalog (``vaultaire-admin kms``), each
key's 32 bytes sealed by the master key. An external KMS (HashiCorp Vault
transit: ``encrypt``/``decrypt`` with ``context``; KMIP: Encrypt/Decrypt with a
managed symmetric key) fits the same three calls: its key names are what
``resolve`` returns and stores, its ciphertext is the token, and the context is
passed as its associated data; disabling is the KMS's own.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
import uuid
from collections.abc import Awaitable
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vaultaire.catalog.interface import Catalog
from vaultaire.encryption.keys import Keyring, WrongKey
from vaultaire.errors import KmsKeyDisabled, KmsKeyExists, NoSuchKmsKey
from vaultaire.model import KmsKey

DEFAULT_ALIAS = "aws/s3"  # what S3 uses when aws:kms names no key: created at first use, as on AWS
_TOKEN = "m1:"
_NONCE = 12
_NAME = re.compile(r"^[A-Za-z0-9/_-]{1,256}$")
_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class KeySource(Protocol):
    async def resolve(self, ref: str, tenant_id: str) -> str:
        """The ARN of the enabled key ``ref`` names ("" the default) for this tenant.

        ``NoSuchKmsKey`` if there is none it may use, ``KmsKeyDisabled`` if it is disabled."""

    async def wrap(self, arn: str, secret: bytes, context: str) -> str:
        """``secret`` wrapped by the key, bound to ``context``: the token the catalog keeps."""

    async def unwrap(self, arn: str, token: str, context: str) -> bytes:
        """What ``wrap`` wrapped; ``KmsKeyDisabled``, ``NoSuchKmsKey``, or ``WrongKey`` if it does not open."""


def arn(region: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:000000000000:key/{key_id}"


def key_ref(ref: str) -> str:
    """The id or name a reference means: ``arn:...:key/ID``, ``arn:...:alias/NAME``, ``alias/NAME``, or as is."""
    ref = ref.strip()
    if ref.startswith("arn:"):
        resource = ref.split(":", 5)[-1]
        if resource.startswith("key/"):
            return resource[len("key/") :]
        ref = resource
    return ref.removeprefix("alias/")


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name)) and not _ID.match(name)


def canonical_context(document: dict[str, str]) -> str:
    """One spelling of an encryption context, so the same pairs always bind the same way."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _associated(key_id: str, context: str) -> bytes:
    return b"vaultaire sse-kms data key\0" + key_id.encode() + b"\0" + context.encode("utf-8")


def _material_associated(key_id: str) -> bytes:
    return b"vaultaire kms key material\0" + key_id.encode()


class KeyReads(Protocol):
    """Where a key and its state are looked up: the catalog, or a process's cached reads of it."""

    def kms_key(self, id_or_name: str) -> Awaitable[KmsKey | None]: ...


class LocalKeySource:
    """KMS keys kept in the catalog, their material sealed by the master key.

    ``reads``: where keys are looked up, the catalog unless given. The daemon gives its
    cached reads (catalog/cached.py): every SSE-KMS GET and PUT asks whether its key is
    there and enabled, and the answer kept holds until the catalog's generation moves,
    which a key's change (disabled by the admin tool, say) does in its own transaction.
    """

    def __init__(
        self,
        catalog: Catalog,
        keyring: Keyring,
        region: str = "us-east-1",
        clock: Any = time.time,
        reads: KeyReads | None = None,
    ) -> None:
        self._catalog = catalog
        self._reads: KeyReads = catalog if reads is None else reads
        self._keyring = keyring
        self._region = region
        self._clock = clock
        self._ciphers: dict[str, AESGCM] = {}  # key id -> its cipher: material never changes

    async def create(self, name: str, tenant_id: str = "") -> KmsKey:
        if not valid_name(name):
            raise ValueError(f"a KMS key name is 1-256 letters, digits, '/', '_' or '-', and not a key id: {name!r}")
        key_id = str(uuid.uuid4())
        material = self._keyring.seal(secrets.token_bytes(32), _material_associated(key_id))
        key = KmsKey(key_id, name, material, True, self._clock(), tenant_id)
        await self._catalog.create_kms_key(key)
        return key

    def arn(self, key: KmsKey) -> str:
        return arn(self._region, key.id)

    async def _find(self, ref: str) -> KmsKey:
        key = await self._reads.kms_key(key_ref(ref))
        if key is None:
            raise NoSuchKmsKey(ref)
        return key

    async def resolve(self, ref: str, tenant_id: str) -> str:
        if not ref:
            try:
                key = await self._find(DEFAULT_ALIAS)
            except NoSuchKmsKey:
                try:
                    key = await self.create(DEFAULT_ALIAS)
                except KmsKeyExists:  # another worker made it first
                    key = await self._find(DEFAULT_ALIAS)
        else:
            key = await self._find(ref)
        if key.tenant_id and key.tenant_id != tenant_id:
            raise NoSuchKmsKey(ref)  # another tenant's key: as if it did not exist
        if not key.enabled:
            raise KmsKeyDisabled(self.arn(key))
        return self.arn(key)

    async def _cipher(self, arn_: str) -> tuple[str, AESGCM]:
        key = await self._find(arn_)
        if not key.enabled:
            raise KmsKeyDisabled(arn_)
        cipher = self._ciphers.get(key.id)
        if cipher is None:
            cipher = AESGCM(self._keyring.open(key.material, _material_associated(key.id)))
            self._ciphers[key.id] = cipher
        return key.id, cipher

    async def wrap(self, arn: str, secret: bytes, context: str) -> str:
        key_id, cipher = await self._cipher(arn)
        nonce = secrets.token_bytes(_NONCE)
        sealed = cipher.encrypt(nonce, secret, _associated(key_id, context))
        return _TOKEN + base64.b64encode(nonce + sealed).decode("ascii")

    async def unwrap(self, arn: str, token: str, context: str) -> bytes:
        key_id, cipher = await self._cipher(arn)
        try:
            raw = base64.b64decode(token.removeprefix(_TOKEN), validate=True)
            return cipher.decrypt(raw[:_NONCE], raw[_NONCE:], _associated(key_id, context))
        except (InvalidTag, binascii.Error, ValueError):
            raise WrongKey("the data key does not open under its KMS key") from None

    def rewrap_material(self, key_id: str, sealed: str) -> str | None:
        """A key's material re-sealed under the newest master key (None: it already is)."""
        return self._keyring.rewrap(sealed, _material_associated(key_id))
