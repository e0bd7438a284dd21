"""The at-rest format of an encrypted blob: AES-256-GCM in independent packages.

A blob's plaintext is cut into packages of ``PACKAGE`` bytes (the last one
shorter, or empty for an empty blob). Each package is sealed on its own, so a
range read decrypts only the packages it touches. The nonce is the blob's
4-byte prefix followed by the package's 8-byte index, and the associated data
says the index and whether the package is the last: a package moved, dropped,
duplicated or cut off, or a stream truncated after a whole package, fails to
open. Every blob has its own data key, so (key, nonce) pairs never repeat.

Pure functions and small stateful coders, no I/O: the engine feeds them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

from attrs import frozen
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PACKAGE = 64 * 1024
TAG = 16
SEALED_PACKAGE = PACKAGE + TAG


class TamperedError(Exception):
    """A package did not open: the stored bytes are not what was written."""


def package_count(plain_size: int) -> int:
    """Packages of a blob of ``plain_size`` bytes (an empty blob still has one)."""
    return max(1, -(-plain_size // PACKAGE))


def sealed_size(plain_size: int) -> int:
    return plain_size + TAG * package_count(plain_size)


@frozen
class SealedRange:
    """Which stored bytes hold a plaintext range, and how to cut the opened packages."""

    first_package: int
    stored_start: int
    stored_end: int  # inclusive
    skip: int  # plaintext bytes to drop from the first opened package
    length: int  # plaintext bytes wanted


def sealed_range(start: int, end: int, plain_size: int) -> SealedRange:
    """The stored bytes to read for plaintext bytes ``start..end`` (inclusive)."""
    if not 0 <= start <= end < plain_size:
        raise ValueError(f"range {start}-{end} is outside a blob of {plain_size} bytes")
    first, last = start // PACKAGE, end // PACKAGE
    stored_end = min((last + 1) * SEALED_PACKAGE, sealed_size(plain_size)) - 1
    return SealedRange(first, first * SEALED_PACKAGE, stored_end, start - first * PACKAGE, end - start + 1)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">Q", index)


def _associated(index: int, last: bool) -> bytes:
    return struct.pack(">QB", index, 1 if last else 0)


_FIRST_INDEX = struct.pack(">Q", 0)
_ONLY_PACKAGE = _associated(0, True)


def open_only_package(aead: AESGCM, prefix: bytes, plain_size: int, sealed: bytes) -> bytes:
    """The plaintext of a blob of one package (``plain_size`` ≤ PACKAGE), stored whole in ``sealed``.

    What ``Opener`` does for such a blob, in one call: most small objects are one package.
    """
    if len(sealed) != plain_size + TAG:
        raise TamperedError("the stored blob does not end where its size says (package 0)")
    try:
        return aead.decrypt(prefix + _FIRST_INDEX, sealed, _ONLY_PACKAGE)
    except InvalidTag:
        raise TamperedError("package 0 of the stored blob does not open") from None


class Sealer:
    """Plaintext in, sealed packages out; holds back at most one package until ``finish``."""

    def __init__(self, key: bytes, prefix: bytes) -> None:
        if len(key) != 32 or len(prefix) != 4:
            raise ValueError("a data key is 32 bytes and a nonce prefix 4")
        self._aead = AESGCM(key)
        self._prefix = prefix
        self._pending = bytearray()
        self._index = 0

    def update(self, data: bytes) -> bytes:
        # Packages are sealed straight from views of the input, the held-back head completed
        # first: copying whole chunks (or cutting a bytearray from the front once per package)
        # costs more than the cipher itself.
        view = memoryview(data)
        out = []
        at = 0
        # Strictly more than one package waiting: the last one may still be the blob's last.
        if self._pending and len(self._pending) + len(view) > PACKAGE:
            at = PACKAGE - len(self._pending)
            out.append(self._seal(bytes(self._pending) + view[:at], last=False))
            self._pending = bytearray()
        while len(view) - at > PACKAGE:
            out.append(self._seal(view[at : at + PACKAGE], last=False))
            at += PACKAGE
        self._pending += view[at:]
        return b"".join(out)

    def finish(self) -> bytes:
        sealed = self._seal(bytes(self._pending), last=True)
        self._pending.clear()
        return sealed

    def _seal(self, plain: bytes | memoryview, *, last: bool) -> bytes:
        index = self._index
        self._index += 1
        return self._aead.encrypt(_nonce(self._prefix, index), plain, _associated(index, last))


class Opener:
    """Sealed packages ``first..last`` in, plaintext out, verified package by package.

    ``last`` defaults to the blob's last package; a range read stops earlier.
    """

    def __init__(
        self,
        key: bytes,
        prefix: bytes,
        plain_size: int,
        first_package: int = 0,
        last_package: int | None = None,
        aead: AESGCM | None = None,
    ) -> None:
        self._aead = aead if aead is not None else AESGCM(key)  # ``aead``: the key's cipher, built already
        self._prefix = prefix
        self._blob_last = package_count(plain_size) - 1
        self._end = self._blob_last if last_package is None else last_package
        if not 0 <= first_package <= self._end <= self._blob_last:
            raise ValueError(f"packages {first_package}-{last_package} are not in a blob of {plain_size} bytes")
        self._index = first_package
        self._pending = bytearray()
        self._buffer = bytearray()  # open_batch's, kept for the next batch

    def update(self, data: bytes) -> bytes:
        return b"".join(self.open_packages(data))

    def open_batch(self, chunks: Sequence[bytes]) -> bytes:
        """The plaintext of consecutive chunks of the stream, as one bytes.

        Packages open into a buffer the opener keeps, copied out once: opening each into a
        bytes of its own costs the zeroing of every new bytes, and joining them a copy anyway.
        """
        most = (len(self._pending) + sum(len(data) for data in chunks)) // SEALED_PACKAGE * PACKAGE
        if len(self._buffer) < most:
            self._buffer = bytearray(most)
        view = memoryview(self._buffer)
        at = 0
        for data in chunks:
            for sealed in self._packages(data):
                self._open_into(sealed, view[at : at + PACKAGE])
                at += PACKAGE
        return bytes(view[:at])

    def open_into(self, sealed: memoryview, out: memoryview) -> int:
        """Open the whole packages in ``sealed`` into ``out``: the plaintext bytes written.

        For a reader that cuts the stored bytes at package boundaries itself (not a
        stream of chunks): ``sealed`` ends with a whole package, or with the last one
        wanted, whose size must then be what the blob's size says. ``check_opened_all``
        then says whether the last one wanted came.
        """
        if self._pending:
            raise ValueError("open_into does not mix with a stream of chunks")
        at = written = 0
        while at < len(sealed):
            size = min(SEALED_PACKAGE, len(sealed) - at)
            if self._index > self._end or (size < SEALED_PACKAGE and (self._index != self._end or size < TAG)):
                raise TamperedError(f"the stored blob does not end where its size says (package {self._index})")
            self._open_into(sealed[at : at + size], out[written : written + size - TAG])
            at += size
            written += size - TAG
        return written

    def check_opened_all(self) -> None:
        """After ``open_into``: a stream that stopped before its last package is tampering."""
        if self._index != self._end + 1:
            raise TamperedError(f"the stored blob does not end where its size says (package {self._index})")

    def open_packages(self, data: bytes) -> list[bytes]:
        """The plaintext of each package ``data`` completes (the stream's final one waits for ``finish``)."""
        return [self._open(sealed) for sealed in self._packages(data)]

    def _packages(self, data: bytes) -> Iterator[bytes | memoryview]:
        """The whole sealed packages ``data`` completes, but the stream's final one; open each before the next."""
        view = memoryview(data)
        at = 0
        if self._pending and len(self._pending) + len(view) >= SEALED_PACKAGE and self._index < self._end:
            at = SEALED_PACKAGE - len(self._pending)
            yield bytes(self._pending) + view[:at]
            self._pending = bytearray()
        while len(view) - at >= SEALED_PACKAGE and self._index < self._end:
            yield view[at : at + SEALED_PACKAGE]
            at += SEALED_PACKAGE
        self._pending += view[at:]
        if self._index == self._end and len(self._pending) > SEALED_PACKAGE:
            raise TamperedError("the stored blob is longer than its size says")

    def finish(self) -> bytes:
        """Open the stream's final package: a stream cut short or grown long is tampering."""
        self._check_final(len(self._pending))
        plain = self._open(bytes(self._pending))
        self._pending.clear()
        return plain

    def open_whole(self, sealed: bytes) -> bytes:
        """The plaintext of all the packages wanted, held whole in ``sealed`` (a small blob or
        range read at once). One package, the common small object, is the cipher's own output:
        no stream of chunks to keep, no copies."""
        if self._index != self._end or self._pending:
            return self.update(sealed) + self.finish()
        self._check_final(len(sealed))
        return self._open(sealed)

    def _check_final(self, size: int) -> None:
        whole = self._end < self._blob_last
        if self._index != self._end or (size != SEALED_PACKAGE if whole else not TAG <= size <= SEALED_PACKAGE):
            raise TamperedError(f"the stored blob does not end where its size says (package {self._index})")

    def _open(self, sealed: bytes | memoryview) -> bytes:
        index = self._index
        associated = _associated(index, index == self._blob_last)
        try:
            plain = self._aead.decrypt(_nonce(self._prefix, index), sealed, associated)
        except InvalidTag:
            raise TamperedError(f"package {index} of the stored blob does not open") from None
        self._index += 1
        return plain

    def _open_into(self, sealed: bytes | memoryview, out: memoryview) -> None:
        index = self._index
        associated = _associated(index, index == self._blob_last)
        try:
            self._aead.decrypt_into(_nonce(self._prefix, index), sealed, associated, out)
        except InvalidTag:
            raise TamperedError(f"package {index} of the stored blob does not open") from None
        self._index += 1
