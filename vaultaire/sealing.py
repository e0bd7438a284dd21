"""Secret keys at rest: sealed with AES-256-GCM under a master key.

SigV4 needs the secret itself to recompute a signature, so secrets cannot be
hashed like passwords; they are encrypted instead. The access key is the
associated data, so a sealed secret copied onto another key's row does not open.
The master key comes from the config (inline or a file) or, by default, from
DATA/master.key, created at first start with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vaultaire.config import ConfigError, Settings

SEALED_PREFIX = "v1:"
MASTER_KEY_FILE = "master.key"
_NONCE_BYTES = 12


class SealError(Exception):
    """A sealed secret does not open under this master key."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the master key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, secret: str, access_key: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"), access_key.encode("utf-8"))
        return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: str, access_key: str) -> str:
        if not is_sealed(stored):
            raise SealError(f"the secret of {access_key} is not sealed")
        raw = base64.b64decode(stored[len(SEALED_PREFIX) :])
        try:
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], access_key.encode("utf-8"))
        except InvalidTag:
            raise SealError(f"the secret of {access_key} does not open with this master key") from None
        return plain.decode("utf-8")


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED_PREFIX)


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"the master key in {where} is not base64") from None
    if len(key) != 32:
        raise ConfigError(f"the master key in {where} must be 32 bytes (base64 of 32 random bytes), not {len(key)}")
    return key


def load_master_key(settings: Settings, data_dir: str, create: bool) -> bytes:
    """The configured master key; the data dir's own one, created if ``create`` and missing."""
    if settings.master_key:
        return _decode_key(settings.master_key, "the config (security.master_key)")
    path = settings.master_key_file or os.path.join(data_dir, MASTER_KEY_FILE)
    try:
        with open(path) as f:
            return _decode_key(f.read(), path)
    except FileNotFoundError:
        if settings.master_key_file or not create:
            raise ConfigError(f"master key file {path!r} does not exist") from None
    except OSError as e:
        raise ConfigError(f"master key file {path!r} cannot be read: {e.strerror}") from None
    key = secrets.token_bytes(32)
    staged = f"{path}.{os.getpid()}.tmp"
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(key).decode("ascii") + "\n")
        f.flush()
        os.fsync(f.fileno())
    try:
        # link() fails if the name exists: two processes starting at once agree on one key.
        os.link(staged, path)
    except FileExistsError:
        return load_master_key(settings, data_dir, create=False)
    finally:
        os.unlink(staged)
    return key
