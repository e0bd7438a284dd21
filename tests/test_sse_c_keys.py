"""SSE-C data keys: derived per blob from the customer key and a salt, checked, never stored.

A blob's data key is keyed BLAKE2b of the customer key and a salt: no cipher is
built from the customer key on a read (that was a third of what SSE-C added to a
small GET). Blobs written with the older wrapped keys ("k1:") still open.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3

import pytest
import pytest_twisted
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.s3helpers import Server
from tests.test_sse import KEY_A, KEY_B
from tests.test_sse import customer as customer_headers
from vaultaire.encryption import keys as keys_module
from vaultaire.encryption.keys import SSE_C, BlobKey, Keyring, Protection, WrongKey
from vaultaire.encryption.packages import PACKAGE
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


def stored_tokens(server: Server) -> list[str]:
    """Every data key token the catalog holds, of every version."""
    db = sqlite3.connect(os.path.join(server.data, "catalog.sqlite3"))
    try:
        rows = db.execute("SELECT metadata FROM artifacts UNION ALL SELECT metadata FROM versions")
        extras = [json.loads(row[0]) for row in rows]
    finally:
        db.close()
    return [token for extra in extras if extra.get("sealing") for token in extra["sealing"]["keys"]]


@pytest_twisted.ensureDeferred
async def test_objects_stored_with_wrapped_keys_and_hmac_proofs_still_read(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Written as the previous version wrote SSE-C objects: data keys wrapped by an AES-GCM cipher of
    # the customer key ("k1:"), the key proved by a bare HMAC-SHA256.
    def legacy_new_blob(self: Keyring, protection: Protection) -> tuple[BlobKey, str]:
        blob = self.new_key()
        wrapped = keys_module._wrap(AESGCM(protection.customer_key), blob.key + blob.prefix, keys_module._SSE_C_DATA)
        return blob, "k1:" + wrapped

    def legacy_proof(self: Keyring, customer_key: bytes) -> str:
        return hmac.new(self._newest.proof_key, customer_key, hashlib.sha256).hexdigest()

    data = os.urandom(PACKAGE + 1000)
    with monkeypatch.context() as old_code:
        old_code.setattr(Keyring, "new_blob", legacy_new_blob)
        old_code.setattr(Keyring, "proof", legacy_proof)
        r = await server.request("PUT", "/bucket/old", data, headers=customer_headers(KEY_A))
        assert r.code == 200, r.body
    tokens = stored_tokens(server)
    assert tokens and all(t.startswith("k1:") for t in tokens), tokens
    r = await server.request("GET", "/bucket/old", headers=customer_headers(KEY_A))
    assert (r.code, r.body) == (200, data)
    r = await server.request("GET", "/bucket/old", headers={"Range": "bytes=100-70000", **customer_headers(KEY_A)})
    assert (r.code, r.body) == (206, data[100:70001])
    r = await server.request("HEAD", "/bucket/old", headers=customer_headers(KEY_B))
    assert r.code == 403
    # Written now: a derived key and a BLAKE2b proof, the same answers.
    await server.request("PUT", "/bucket/new", data, headers=customer_headers(KEY_A))
    assert any(t.startswith("k3:") for t in stored_tokens(server))
    assert (await server.request("GET", "/bucket/new", headers=customer_headers(KEY_A))).body == data
    assert (await server.request("HEAD", "/bucket/new", headers=customer_headers(KEY_B))).code == 403
