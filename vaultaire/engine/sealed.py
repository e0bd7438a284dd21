"""The engine's side of encryption at rest: which writer and reader a blob gets.

Drivers see only ciphertext: a new blob's writer seals what the engine's byte
pipe hands it, and a reader opens only the packages a range touches. Sizes
the engine and clients see are plaintext sizes; a driver's are sealed sizes.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from attrs import evolve
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from vaultaire.drivers.bytes_reader import BytesReader
from vaultaire.drivers.interface import BlobReader, BlobWriter, Driver
from vaultaire.encryption.keys import SSE_C, SSE_KMS, SSE_S3, BlobKey, Keyring, Protection
from vaultaire.encryption.kms import KeySource
from vaultaire.encryption.packages import (
    PACKAGE,
    SEALED_PACKAGE,
    TAG,
    Opener,
    Sealer,
    open_only_package,
    sealed_range,
    sealed_size,
)
from vaultaire.encryption.streams import THREAD_MIN, OpeningReader, SealingWriter
from vaultaire.model import Sealing

# Sealed bytes a driver hands over whole that are opened on the reactor thread, not streamed:
# what the streams themselves open without a thread hop, rounded up to whole packages.
INLINE_OPEN_MAX = max(THREAD_MIN, SEALED_PACKAGE)
# Threads that seal and open large chunks: a pool of its own, so the megabyte buffers they
# allocate stay in few malloc arenas (each thread of the reactor's pool would keep its own
# arena of freed buffers: peak RSS +50 MiB during a 1 GiB transfer).
CRYPTO_THREADS = 2
# SSE-S3 data keys kept opened (about 200 bytes each).
OPENED_KEYS = 10_000


class _DaemonThread(threading.Thread):
    """A process that never stops its reactor (a test, a tool) still exits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.daemon = True


class _DaemonThreads(ThreadPool):
    threadFactory = _DaemonThread


_pool: ThreadPool | None = None


def _crypto_pool(reactor: Any) -> ThreadPool:
    """The process' crypto threads, started at the first large chunk, stopped with the reactor."""
    global _pool
    if _pool is None:
        _pool = _DaemonThreads(minthreads=0, maxthreads=CRYPTO_THREADS, name="vaultaire-crypto")
        _pool.start()
        reactor.addSystemEventTrigger("during", "shutdown", _stop_crypto_pool)
    return _pool


def _stop_crypto_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.stop()
        _pool = None


class Unprotected(Exception):
    """Encryption was asked for but this engine has no keyring (or, for SSE-KMS, no key source)."""


class BlobSeal:
    """One new blob's data key: wraps its writer; ``token`` is what the catalog keeps."""

    def __init__(self, key: BlobKey, token: str, run: Callable[..., Deferred[Any]]) -> None:
        self._key, self.token = key, token
        self._run = run

    @staticmethod
    def stored_size(plain_size: int | None) -> int | None:
        return None if plain_size is None else sealed_size(plain_size)

    def wrap(self, writer: BlobWriter) -> BlobWriter:
        return SealingWriter(writer, Sealer(self._key.key, self._key.prefix), self._run)


def sealed_etag(md5: str, sealing: Sealing | None, token: str) -> str:
    """The ETag (hex) S3's rules give a blob of plaintext MD5 ``md5`` sealed so.

    SSE-S3 keeps the plaintext MD5. SSE-C and SSE-KMS do not: it would tell anyone
    who can list the bucket something about content they cannot read. SSE-C's is
    the same for the same bytes under the same key; SSE-KMS's is one per blob.
    """
    if sealing is None or sealing.mode not in (SSE_C, SSE_KMS):
        return md5
    salt = sealing.key_proof if sealing.mode == SSE_C else token
    return hashlib.md5(bytes.fromhex(md5) + salt.encode()).hexdigest()


class Sealed:
    """Makes BlobSeals and opens sealed blobs for one engine."""

    def __init__(self, keyring: Keyring | None, reactor: Any, kms: KeySource | None = None) -> None:
        self.keyring = keyring
        self.kms = kms
        self._reactor = reactor
        # SSE-S3 data keys opened lately, with their ciphers, by wrapped token: a small GET then
        # costs one package's decryption, not an unwrap and two key schedules as well. SSE-C keys
        # are never kept (the customer's key opens them, per request); SSE-KMS ones are not either
        # (each read asks the key source, so a disabled key takes effect at once).
        self._opened: OrderedDict[str, tuple[BlobKey, AESGCM]] = OrderedDict()

    def _run(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self._reactor, _crypto_pool(self._reactor), fn, *args)

    def _keyring(self) -> Keyring:
        if self.keyring is None:
            raise Unprotected("this engine has no master key for encryption at rest")
        return self.keyring

    def _kms(self) -> KeySource:
        if self.kms is None:
            raise Unprotected("this engine has no KMS for SSE-KMS")
        return self.kms

    async def prepare(self, protection: Protection | None, tenant_id: str) -> Protection | None:
        """A request's protection with its KMS key resolved to an enabled key's ARN."""
        if protection is None or protection.mode != SSE_KMS:
            return protection
        return evolve(protection, kms_key=await self._kms().resolve(protection.kms_key, tenant_id))

    async def new_blob(self, protection: Protection | None) -> BlobSeal | None:
        """A fresh data key for one blob, wrapped as ``protection`` (prepared) says."""
        if protection is None:
            return None
        keyring = self._keyring()
        if protection.mode == SSE_KMS:
            key = keyring.new_key()
            token = await self._kms().wrap(protection.kms_key, key.key + key.prefix, protection.context)
            return BlobSeal(key, token, self._run)
        key, token = keyring.new_blob(protection)
        return BlobSeal(key, token, self._run)

    def describe(self, protection: Protection | None) -> Sealing | None:
        return None if protection is None else self._keyring().describe(protection)

    def check(self, sealing: Sealing | None, offered: Protection | None) -> None:
        """WrongKey unless ``offered`` may read what ``sealing`` protects."""
        if sealing is not None:
            self._keyring().check(sealing, offered)

    def _open_master_wrapped(self, token: str) -> tuple[BlobKey, AESGCM]:
        """An SSE-S3 data key and its cipher, from the cache or unwrapped now."""
        opened = self._opened.get(token)
        if opened is not None:
            self._opened.move_to_end(token)
            return opened
        key = self._keyring().open_blob(SSE_S3, token, None)
        opened = self._opened[token] = (key, AESGCM(key.key))
        if len(self._opened) > OPENED_KEYS:
            self._opened.popitem(last=False)
        return opened

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
        aead: AESGCM | None = None
        if sealing.mode == SSE_KMS:
            plain = await self._kms().unwrap(sealing.kms_key, token, sealing.context)
            key = BlobKey(plain[:32], plain[32:])
        elif sealing.mode == SSE_S3:
            key, aead = self._open_master_wrapped(token)
        else:
            key = self._keyring().open_blob(sealing.mode, token, offered)
        if end < start:
            return BytesReader(b"")  # nothing wanted (an empty artifact): no package need be read
        if plain_size <= PACKAGE:
            # One package, as most small objects are: read whole and opened in one call.
            inner = await driver.open_reader(locator, 0, plain_size + TAG - 1)
            if isinstance(inner, BytesReader):
                plain = open_only_package(aead or AESGCM(key.key), key.prefix, plain_size, inner.data)
                # (a whole object: slicing all of a bytes gives the same object, no copy)
                return BytesReader(plain[start : end + 1])
            opener = Opener(key.key, key.prefix, plain_size, 0, 0, aead)
            return OpeningReader(inner, opener, start, end - start + 1, self._run)
        where = sealed_range(start, end, plain_size)
        last = end // PACKAGE
        inner = await driver.open_reader(locator, where.stored_start, where.stored_end)
        opener = Opener(key.key, key.prefix, plain_size, where.first_package, last, aead)
        if isinstance(inner, BytesReader) and len(inner.data) <= INLINE_OPEN_MAX:
            # The driver read it whole already (a small blob or range, from the page cache): open it
            # here and now. The streaming reader's chain of Deferreds costs more than the cipher.
            plain = opener.open_whole(inner.data)
            # (a whole object: slicing all of a bytes gives the same object, no copy)
            return BytesReader(plain[where.skip : where.skip + where.length])
        return OpeningReader(inner, opener, where.skip, where.length, self._run)
