"""Master-key rotation: a new key seals new data keys, older ones still open, and a re-seal moves
every wrapped key (SSE-S3 data keys, SSE-KMS key material, secret keys) to the newest without
rewriting a byte of any blob; ``vaultaire-admin kms`` manages the SSE-KMS keys."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.s3helpers import Server, complete_body, error_code, xml_values
from tests.test_sse import KEY_A, body_of, customer, header
from vaultaire.encryption import keys as keys_module
from vaultaire.encryption.keys import SSE_S3, Keyring, Protection, WrongKey, master_key_id
from vaultaire.encryption.packages import PACKAGE

ADMIN = os.path.join(os.path.dirname(sys.executable), "vaultaire-admin")
MIB = 2**20


def admin(data: Path, *args: str) -> dict | list:
    result = subprocess.run([ADMIN, "--data", str(data), "--json", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def blob_digests(data: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(data / "blobs"):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[path] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_keyring_old_keys_open_new_key_seals_and_rewrap_moves_tokens() -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = Keyring(old)
    key, token = before.new_blob(Protection(SSE_S3))
    assert token.startswith(f"k2:{master_key_id(old)}:")
    rotated = Keyring(new, [old])
    assert rotated.open_blob(SSE_S3, token, None) == key
    fresh = rotated.rewrap_data_key(token)
    assert fresh is not None and fresh.startswith(f"k2:{master_key_id(new)}:")
    assert rotated.rewrap_data_key(fresh) is None  # already under the newest
    assert Keyring(new).open_blob(SSE_S3, fresh, None) == key  # the old key is no longer needed
    with pytest.raises(WrongKey):
        Keyring(new).open_blob(SSE_S3, token, None)
    # A token from before master keys had ids ("k1:", wrapped by the one master key) still opens.
    legacy = "k1:" + keys_module._wrap(AESGCM(old), key.key + key.prefix, keys_module._SSE_S3_DATA)
    assert rotated.open_blob(SSE_S3, legacy, None) == key
    assert rotated.rewrap_data_key(legacy) is not None
    # A process that has not seen the rotation reads the key file again when it meets the new key.
    stale = Keyring(old, reload=lambda: [new, old])
    assert stale.open_blob(SSE_S3, fresh, None) == key
    # SSE-C keys proved under the old master key still prove after the rotation.
    customer_key = os.urandom(32)
    sealing = before.describe(Protection("SSE-C", customer_key))
    rotated.check(sealing, Protection("SSE-C", customer_key))
    with pytest.raises(WrongKey):
        rotated.check(sealing, Protection("SSE-C", os.urandom(32)))


@pytest_twisted.ensureDeferred
async def test_rotate_and_reseal_with_the_admin_tool_rewrites_no_blob(tmp_path: Path) -> None:
    first = os.urandom(32)
    (tmp_path / "master.key").write_text(base64.b64encode(first).decode() + "\n")
    s = Server(str(tmp_path), master_key=first)
    await s.start("bucket")
    data = body_of(2 * PACKAGE + 5)
    try:
        await s.engine.sealed.kms.create("app")
        assert (
            await s.request("PUT", "/bucket/s3", data, headers={"x-amz-server-side-encryption": "AES256"})
        ).code == 200
        r = await s.request(
            "PUT",
            "/bucket/kms",
            data,
            headers={"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": "app"},
        )
        assert r.code == 200, r.body
        assert (await s.request("PUT", "/bucket/c", data, headers=customer(KEY_A))).code == 200
        r = await s.request("POST", "/bucket/mp", query="uploads=", headers={"x-amz-server-side-encryption": "AES256"})
        (upload,) = xml_values(r.body, "UploadId")
        r = await s.request("PUT", "/bucket/mp", body_of(MIB), query=f"partNumber=1&uploadId={upload}")
        etag = header(r, "etag")
    finally:
        await s.stop()

    names = [k["name"] for k in admin(tmp_path, "kms", "list")]
    assert names == ["app"]
    created = admin(tmp_path, "kms", "create", "later")
    assert created["enabled"] and created["arn"].endswith(created["id"])
    assert admin(tmp_path, "kms", "disable", "later")["enabled"] is False

    digests = blob_digests(tmp_path)
    rotated = admin(tmp_path, "master-key", "rotate")
    lines = (tmp_path / "master.key").read_text().split()
    assert len(lines) == 2 and base64.b64decode(lines[1]) == first
    newest = base64.b64decode(lines[0])
    assert rotated["newest"] == master_key_id(newest)
    counts = admin(tmp_path, "master-key", "reseal")
    assert counts["artifacts"] == 1 and counts["parts"] == 1, counts  # SSE-S3 only: SSE-C and KMS are not its
    assert counts["kms_keys"] == 2 and counts["secrets"] == 1, counts
    assert admin(tmp_path, "master-key", "reseal")["artifacts"] == 0  # nothing left to move
    assert blob_digests(tmp_path) == digests  # not one byte of a blob rewritten

    with sqlite3.connect(tmp_path / "catalog.sqlite3") as db:
        (extra,) = db.execute("SELECT metadata FROM artifacts WHERE key = ?", (b"s3",)).fetchone()
    assert json.loads(extra)["sealing"]["keys"][0].startswith(f"k2:{master_key_id(newest)}:")

    # Only the new master key: everything it now seals reads (SSE-C aside, whose proofs need the older).
    s = Server(str(tmp_path), master_key=newest)
    await s.start()
    try:
        assert (await s.request("GET", "/bucket/s3")).body == data
        assert (await s.request("GET", "/bucket/kms")).body == data
        r = await s.request("POST", "/bucket/mp", complete_body([(1, etag)]), query=f"uploadId={upload}")
        assert r.code == 200, r.body
        assert (await s.request("GET", "/bucket/mp")).body == body_of(MIB)
        r = await s.request(
            "PUT",
            "/bucket/k2",
            b"x",
            headers={"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": "later"},
        )
        assert (r.code, error_code(r)) == (400, "KMS.DisabledException")
        s.engine.sealed.keyring = Keyring(newest, [first])
        assert (await s.request("GET", "/bucket/c", headers=customer(KEY_A))).body == data
    finally:
        await s.stop()
