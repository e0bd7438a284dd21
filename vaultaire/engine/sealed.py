"""The engine's side of encryption at rest: which writer and reader a blob gets.

Drivers see only ciphertext: a new blob's writer seals what the engine's byte
pipe hands it, and a reader opens only the packages a range touches. Sizes
the engine and clients see are plaintext sizes; a driver's are sealed sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool

from vaultaire.drivers.bytes_reader import BytesReader
from vaultaire.drivers.interface import BlobReader, BlobWriter, Driver
from vaultaire.encryption.keys import Keyring, Protection
from vaultaire.encryption.packages import PACKAGE, Opener, Sealer, sealed_range, sealed_size
from vaultaire.encryption.streams import OpeningReader, SealingWriter
from vaultaire.model import Sealing


class Unprotected(Exception):
    """Encryption was asked for but this engine has no keyring."""


class BlobSeal:
    """One new blob's data key: wraps its writer; ``token`` is what the catalog keeps."""

    def __init__(self, keyring: Keyring, protection: Protection, run: Callable[..., Deferred[Any]]) -> None:
        self._key, self.token = keyring.new_blob(protection)
        self._run = run

    @staticmethod
    def stored_size(plain_size: int | None) -> int | None:
        return None if plain_size is None else sealed_size(plain_size)

    def wrap(self, writer: BlobWriter) -> BlobWriter:
        return SealingWriter(writer, Sealer(self._key.key, self._key.prefix), self._run)


class Sealed:
    """Makes BlobSeals and opens sealed blobs for one engine."""

    def __init__(self, keyring: Keyring | None, reactor: Any) -> None:
        self.keyring = keyring
        self._reactor = reactor

    def _run(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), fn, *args)

    def _keyring(self) -> Keyring:
        if self.keyring is None:
            raise Unprotected("this engine has no master key for encryption at rest")
        return self.keyring

    def new_blob(self, protection: Protection | None) -> BlobSeal | None:
        return None if protection is None else BlobSeal(self._keyring(), protection, self._run)

    def describe(self, protection: Protection | None) -> Sealing | None:
        return None if protection is None else self._keyring().describe(protection)

    def check(self, sealing: Sealing | None, offered: Protection | None) -> None:
        """WrongKey unless ``offered`` may read what ``sealing`` protects."""
        if sealing is not None:
            self._keyring().check(sealing, offered)

    async def open_reader(
        self,
        driver: Driver,
        sealing: Sealing,
        token: str,
        locator: str,
        plain_size: int,
        start: int,
        end: int,
        offered: Protection | None,
    ) -> BlobReader:
        """A plaintext reader of bytes ``start..end`` of a sealed blob: only the packages they touch are read."""
        key = self._keyring().open_blob(sealing.mode, token, offered)
        if end < start:
            return BytesReader(b"")  # nothing wanted (an empty artifact): no package need be read
        where = sealed_range(start, end, plain_size)
        last = end // PACKAGE
        inner = await driver.open_reader(locator, where.stored_start, where.stored_end)
        opener = Opener(key.key, key.prefix, plain_size, where.first_package, last)
        return OpeningReader(inner, opener, where.skip, where.length, self._run)
