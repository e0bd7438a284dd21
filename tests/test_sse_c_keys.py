"""SSE-C data keys: derived per blob from the customer key and a salt, checked, never stored.

A blob's data key is keyed BLAKE2b of the customer key and a salt: no cipher is
built from the customer key on a read (that was a third of what SSE-C added to a
small GET). Blobs written with the older wrapped keys ("k1:") still open.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vaultaire.encryption import keys as keys_module
from vaultaire.encryption.keys import SSE_C, Keyring, Protection, WrongKey
from vaultaire.model import Sealing


def customer(key: bytes) -> Protection:
    return Protection(SSE_C, key)


def test_a_data_key_opens_with_its_customer_key_and_no_cipher_of_that_key(monkeypatch: pytest.MonkeyPatch) -> None:
    keyring, another = Keyring(os.urandom(32)), Keyring(os.urandom(32))
    key = os.urandom(32)
    blob, token = keyring.new_blob(customer(key))
    assert token.startswith("k3:")
    assert key.hex() not in token and blob.key.hex() not in token

    def no_cipher(_key: bytes) -> AESGCM:
        raise AssertionError("a read built a cipher from the customer key")

    monkeypatch.setattr(keys_module, "AESGCM", no_cipher)
    assert keyring.open_blob(SSE_C, token, customer(key)) == blob
    # Another keyring (another master key, another process) derives the same: nothing is kept.
    assert another.open_blob(SSE_C, token, customer(key)) == blob


def test_every_blob_gets_its_own_data_key_and_prefix_under_one_customer_key() -> None:
    keyring = Keyring(os.urandom(32))
    key = os.urandom(32)
    blobs = [keyring.new_blob(customer(key))[0] for _ in range(200)]
    assert len({b.key for b in blobs}) == 200
    assert all(len(b.key) == 32 and len(b.prefix) == 4 for b in blobs)


def test_a_wrong_or_missing_customer_key_or_a_damaged_token_is_a_wrong_key() -> None:
    keyring = Keyring(os.urandom(32))
    key = os.urandom(32)
    _blob, token = keyring.new_blob(customer(key))
    with pytest.raises(WrongKey) as wrong:
        keyring.open_blob(SSE_C, token, customer(os.urandom(32)))
    assert not wrong.value.missing
    with pytest.raises(WrongKey) as missing:
        keyring.open_blob(SSE_C, token, None)
    assert missing.value.missing
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    for damaged in (flipped, token[:-4], "k3:***", "k3:"):
        with pytest.raises(WrongKey):
            keyring.open_blob(SSE_C, damaged, customer(key))


def test_a_key_wrapped_the_older_way_still_opens() -> None:
    keyring = Keyring(os.urandom(32))
    key = os.urandom(32)
    data_key, prefix = os.urandom(32), os.urandom(4)
    legacy = "k1:" + keys_module._wrap(AESGCM(key), data_key + prefix, keys_module._SSE_C_DATA)
    opened = keyring.open_blob(SSE_C, legacy, customer(key))
    assert (opened.key, opened.prefix) == (data_key, prefix)
    with pytest.raises(WrongKey):
        keyring.open_blob(SSE_C, legacy, customer(os.urandom(32)))


def test_the_proof_still_tells_the_right_key_from_a_wrong_one_across_rotation() -> None:
    old = os.urandom(32)
    key = os.urandom(32)
    sealing = Keyring(old).describe(customer(key))
    rotated = Keyring(os.urandom(32), [old])
    rotated.check(sealing, customer(key))
    with pytest.raises(WrongKey):
        rotated.check(sealing, customer(os.urandom(32)))


def test_a_proof_made_as_an_hmac_before_still_proves_its_key() -> None:
    master = os.urandom(32)
    keyring = Keyring(master)
    key = os.urandom(32)
    assert keyring.proof(key).startswith("b2:")
    legacy = hmac.new(keyring._newest.proof_key, key, hashlib.sha256).hexdigest()
    keyring.check(Sealing(SSE_C, (), legacy, ""), customer(key))
    with pytest.raises(WrongKey):
        keyring.check(Sealing(SSE_C, (), legacy, ""), customer(os.urandom(32)))
