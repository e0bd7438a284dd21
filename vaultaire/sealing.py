"""Secret keys at rest: sealed with AES-256-GCM under a master key.

SigV4 needs the secret itself to recompute a signature, so secrets cannot be
hashed like passwords; they are encrypted instead. The access key is the
associated data, so a sealed secret copied onto another key's row does not open.
The master key comes from the config (inline or a file) or, by default, from
DATA/master.key, created at first start with mode 0600.

Master keys rotate (``vaultaire-admin master-key rotate``): the key file then
holds several keys, one per line, the newest first. The newest seals; every one
opens, so nothing sealed before stops opening, and ``master-key reseal`` moves
all of it to the newest, after which the older lines can be removed.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vaultaire.config import ConfigError, Settings

SEALED_PREFIX = "v1:"
MASTER_KEY_FILE = "master.key"
_NONCE_BYTES = 12


class SealError(Exception):
    """A sealed secret does not open under this master key."""


class SecretBox:
    """Seals with ``key`` (the newest master key); opens with it or any of ``older``."""

    def __init__(
        self, key: bytes, older: Sequence[bytes] = (), reload: Callable[[], Sequence[bytes]] | None = None
    ) -> None:
        self._set([key, *older])
        self._reload = reload

    def _set(self, keys: Sequence[bytes]) -> None:
        if any(len(k) != 32 for k in keys):
            raise ValueError("the master key must be 32 bytes")
        self._aead = AESGCM(keys[0])
        self._all = [(k, AESGCM(k)) for k in keys]

    def seal(self, secret: str, access_key: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"), access_key.encode("utf-8"))
        return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def _open(self, stored: str, access_key: str) -> tuple[str, bool]:
        """The secret, and whether the newest key sealed it."""
        raw = base64.b64decode(stored[len(SEALED_PREFIX) :])
        for index, (_key, aead) in enumerate(self._all):
            try:
                plain = aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], access_key.encode("utf-8"))
            except InvalidTag:
                continue
            return plain.decode("utf-8"), index == 0
        raise SealError(f"the secret of {access_key} does not open with this master key")

    def open(self, stored: str, access_key: str) -> str:
        if not is_sealed(stored):
            raise SealError(f"the secret of {access_key} is not sealed")
        try:
            return self._open(stored, access_key)[0]
        except SealError:
            if self._reload is None:
                raise
            self._set(list(self._reload()))  # another process rotated the master key and re-sealed
            return self._open(stored, access_key)[0]

    def reseal(self, stored: str, access_key: str) -> str | None:
        """``stored`` sealed by the newest key instead, or None if it already is."""
        secret, newest = self._open(stored, access_key)
        return None if newest else self.seal(secret, access_key)


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


def _decode_keys(text: str, where: str) -> list[bytes]:
    keys = [_decode_key(line, where) for line in text.replace(",", "\n").splitlines() if line.strip()]
    if not keys:
        raise ConfigError(f"{where} holds no master key")
    return keys


def master_key_path(settings: Settings, data_dir: str) -> str | None:
    """The file the master keys are kept in, or None when the config holds them inline."""
    if settings.master_key:
        return None
    return settings.master_key_file or os.path.join(data_dir, MASTER_KEY_FILE)


def load_master_key(settings: Settings, data_dir: str, create: bool) -> bytes:
    """The configured master key (the newest); the data dir's own one, created if ``create`` and missing."""
    return load_master_keys(settings, data_dir, create)[0]


def load_master_keys(settings: Settings, data_dir: str, create: bool) -> list[bytes]:
    """Every master key, the newest (the one that seals) first."""
    if settings.master_key:
        return _decode_keys(settings.master_key, "the config (security.master_key)")
    path = settings.master_key_file or os.path.join(data_dir, MASTER_KEY_FILE)
    try:
        with open(path) as f:
            return _decode_keys(f.read(), path)
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
        return load_master_keys(settings, data_dir, create=False)
    finally:
        os.unlink(staged)
    return [key]


def rotate_master_key(settings: Settings, data_dir: str) -> tuple[bytes, list[bytes]]:
    """Put a new master key first in the key file, keeping the older ones; (new key, all keys)."""
    path = master_key_path(settings, data_dir)
    if path is None:
        raise ConfigError(
            "the master key is in the config (security.master_key): put a new key first there, "
            "separated from the older ones by a comma"
        )
    keys = load_master_keys(settings, data_dir, create=False)
    key = secrets.token_bytes(32)
    _replace(path, [key, *keys])
    return key, [key, *keys]


def _replace(path: str, keys: list[bytes]) -> None:
    """Write the key file anew, durable and whole or not at all."""
    staged = f"{path}.{os.getpid()}.tmp"
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(base64.b64encode(k).decode("ascii") + "\n" for k in keys))
        f.flush()
        os.fsync(f.fileno())
    os.replace(staged, path)
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def master_keys(settings: Settings, data_dir: str) -> tuple[list[bytes], Callable[[], list[bytes]]]:
    """Every master key (made at first start), and how to read them again after a rotation."""
    keys = load_master_keys(settings, data_dir, create=True)
    return keys, lambda: load_master_keys(settings, data_dir, create=False)
