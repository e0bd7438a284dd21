"""The sealed package format: any range of any blob opens to exactly its plaintext; tampering never does."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultaire.encryption.packages import (
    PACKAGE,
    SEALED_PACKAGE,
    TAG,
    Opener,
    Sealer,
    TamperedError,
    open_only_package,
    sealed_range,
    sealed_size,
)

KEY = bytes(range(32))
PREFIX = b"\x01\x02\x03\x04"


def seal(plain: bytes, splits: list[int]) -> bytes:
    sealer = Sealer(KEY, PREFIX)
    out, at = [], 0
    for n in splits:
        out.append(sealer.update(plain[at : at + n]))
        at += n
    out.append(sealer.update(plain[at:]))
    out.append(sealer.finish())
    return b"".join(out)


def open_range(stored: bytes, start: int, end: int, size: int, chunk: int = 7919) -> bytes:
    where = sealed_range(start, end, size)
    opener = Opener(KEY, PREFIX, size, where.first_package, (end // PACKAGE))
    piece = stored[where.stored_start : where.stored_end + 1]
    plain = b"".join(opener.update(piece[i : i + chunk]) for i in range(0, len(piece), chunk)) + opener.finish()
    return plain[where.skip : where.skip + where.length]


sizes = st.one_of(
    st.integers(0, 3), st.sampled_from([PACKAGE - 1, PACKAGE, PACKAGE + 1, 3 * PACKAGE]), st.integers(0, 4 * PACKAGE)
)


@settings(max_examples=60, deadline=None)
@given(size=sizes, splits=st.lists(st.integers(0, 2 * PACKAGE), max_size=5), data=st.data())
def test_any_range_opens_to_its_plaintext_slice(size: int, splits: list[int], data: st.DataObject) -> None:
    plain = os.urandom(size)
    stored = seal(plain, splits)
    assert len(stored) == sealed_size(size)
    if size == 0:
        opener = Opener(KEY, PREFIX, 0)
        assert opener.update(stored) + opener.finish() == b""
        return
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start, size - 1))
    chunk = data.draw(st.integers(1, 3 * SEALED_PACKAGE))
    assert open_range(stored, start, end, size, chunk) == plain[start : end + 1]


def test_plaintext_is_not_in_the_stored_bytes() -> None:
    plain = b"MARKER-" * 50_000
    assert b"MARKER-" not in seal(plain, [])


@pytest.mark.parametrize("where", [0, SEALED_PACKAGE - 1, SEALED_PACKAGE + 5, -1])
def test_one_flipped_byte_is_detected(where: int) -> None:
    plain = os.urandom(2 * PACKAGE + 10)
    stored = bytearray(seal(plain, []))
    stored[where] ^= 0x01
    with pytest.raises(TamperedError):
        open_range(bytes(stored), 0, len(plain) - 1, len(plain))


def test_swapped_dropped_and_truncated_packages_are_detected() -> None:
    size = 3 * PACKAGE + 1
    stored = seal(os.urandom(size), [])
    first, second = stored[:SEALED_PACKAGE], stored[SEALED_PACKAGE : 2 * SEALED_PACKAGE]
    swapped = second + first + stored[2 * SEALED_PACKAGE :]
    dropped = stored[:SEALED_PACKAGE] + stored[2 * SEALED_PACKAGE :]
    for bad in (swapped, dropped, stored[: 3 * SEALED_PACKAGE], stored[:-1], stored + b"x"):
        opener = Opener(KEY, PREFIX, size)
        with pytest.raises(TamperedError):
            opener.update(bad)
            opener.finish()


def test_a_blob_cut_after_a_whole_package_is_detected_even_if_sizes_are_lied_about() -> None:
    # The last-package flag is authenticated: a 2-package blob cut to 1 package does not pass as a 1-package blob.
    stored = seal(os.urandom(PACKAGE + 3), [])
    opener = Opener(KEY, PREFIX, PACKAGE)
    with pytest.raises(TamperedError):
        opener.update(stored[:SEALED_PACKAGE])
        opener.finish()


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 5 * PACKAGE), splits=st.lists(st.integers(0, 3 * SEALED_PACKAGE), max_size=6), data=st.data()
)
def test_batches_open_to_the_same_plaintext_as_chunks(size: int, splits: list[int], data: st.DataObject) -> None:
    plain = os.urandom(size)
    stored = seal(plain, [])
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start, size - 1))
    where = sealed_range(start, end, size)
    piece = stored[where.stored_start : where.stored_end + 1]
    chunks, at = [], 0
    for n in splits:
        chunks.append(piece[at : at + n])
        at += n
    chunks.append(piece[at:])
    opener = Opener(KEY, PREFIX, size, where.first_package, end // PACKAGE)
    # Batches of any grouping of the chunks, through one kept buffer that must not leak between them.
    cut = data.draw(st.integers(0, len(chunks)))
    opened = opener.open_batch(chunks[:cut]) + opener.open_batch(chunks[cut:]) + opener.finish()
    assert opened[where.skip : where.skip + where.length] == plain[start : end + 1]


def open_into_batches(opener: Opener, piece: bytes, batch_packages: int) -> bytes:
    """``piece`` opened with ``open_into``, cut at package boundaries as encryption/direct.py cuts it."""
    out, at = [], 0
    buffer = bytearray(batch_packages * PACKAGE)
    while at < len(piece):
        sealed = memoryview(piece)[at : at + batch_packages * SEALED_PACKAGE]
        n = opener.open_into(sealed, memoryview(buffer))
        out.append(bytes(buffer[:n]))
        at += len(sealed)
    opener.check_opened_all()
    return b"".join(out)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 6 * PACKAGE), batch=st.integers(1, 4), data=st.data())
def test_open_into_at_package_boundaries_opens_any_range(size: int, batch: int, data: st.DataObject) -> None:
    plain = os.urandom(size)
    stored = seal(plain, [])
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start, size - 1))
    where = sealed_range(start, end, size)
    opener = Opener(KEY, PREFIX, size, where.first_package, end // PACKAGE)
    opened = open_into_batches(opener, stored[where.stored_start : where.stored_end + 1], batch)
    assert opened[where.skip : where.skip + where.length] == plain[start : end + 1]


def test_open_into_detects_flipped_swapped_cut_and_overlong_blobs() -> None:
    size = 3 * PACKAGE + 1
    stored = seal(os.urandom(size), [])
    flipped = bytearray(stored)
    flipped[SEALED_PACKAGE + 7] ^= 1
    swapped = stored[SEALED_PACKAGE : 2 * SEALED_PACKAGE] + stored[:SEALED_PACKAGE] + stored[2 * SEALED_PACKAGE :]
    for bad in (bytes(flipped), swapped, stored[:-1], stored[: 3 * SEALED_PACKAGE + TAG - 1], stored + b"x"):
        with pytest.raises(TamperedError):
            open_into_batches(Opener(KEY, PREFIX, size), bad, 2)
    # A whole package cut off the end passes no size check of its own, but the last-package flag fails.
    with pytest.raises(TamperedError):
        open_into_batches(Opener(KEY, PREFIX, size), stored[: 3 * SEALED_PACKAGE], 2)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 3 * PACKAGE), data=st.data())
def test_open_whole_opens_any_range_read_at_once(size: int, data: st.DataObject) -> None:
    # How a small blob (or range) the driver read whole is opened: one package straight from the cipher.
    plain = os.urandom(size)
    stored = seal(plain, [])
    if size == 0:
        assert Opener(KEY, PREFIX, 0).open_whole(stored) == b""
        return
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start, size - 1))
    where = sealed_range(start, end, size)
    opener = Opener(KEY, PREFIX, size, where.first_package, end // PACKAGE)
    opened = opener.open_whole(stored[where.stored_start : where.stored_end + 1])
    assert opened[where.skip : where.skip + where.length] == plain[start : end + 1]


@pytest.mark.parametrize("size", [10, PACKAGE, PACKAGE + 3])
def test_open_whole_detects_a_cut_grown_or_flipped_blob(size: int) -> None:
    stored = seal(os.urandom(size), [])
    flipped = bytearray(stored)
    flipped[3] ^= 1
    # The first package alone, as if it were all: a 2-package blob's first package is not its last.
    first = stored[:SEALED_PACKAGE]
    for bad in (stored[:-1], stored + b"x", bytes(flipped), stored[: TAG - 1]):
        with pytest.raises(TamperedError):
            Opener(KEY, PREFIX, size).open_whole(bad)
    if size > PACKAGE:
        with pytest.raises(TamperedError):
            Opener(KEY, PREFIX, size, 0, 0).open_whole(first + b"x")


@settings(max_examples=50, deadline=None)
@given(size=st.integers(min_value=0, max_value=PACKAGE))
def test_a_blob_of_one_package_opens_in_one_call_as_the_opener_opens_it(size: int) -> None:
    plain = os.urandom(size)
    sealer = Sealer(KEY, PREFIX)
    sealed = sealer.update(plain) + sealer.finish()
    assert open_only_package(AESGCM(KEY), PREFIX, size, sealed) == plain
    for damaged in (sealed[:-1], sealed + b"x", bytes([sealed[0] ^ 1]) + sealed[1:]):
        with pytest.raises(TamperedError):
            open_only_package(AESGCM(KEY), PREFIX, size, damaged)
    if size:  # the same bytes claimed as a shorter blob's
        with pytest.raises(TamperedError):
            open_only_package(AESGCM(KEY), PREFIX, size - 1, sealed[:-1])
