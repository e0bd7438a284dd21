"""Users of a tenant: the catalog's side (issue 14), and the migration of keys written before users."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.errors import NoSuchUser, UserExists
from vaultaire.sealing import SecretBox

# The tables of tenants and keys as the code before users wrote them (catalog/sqlite.py at 78f6c56).
BEFORE_USERS = """
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'active',
    created REAL NOT NULL,
    max_bytes INTEGER,
    max_objects INTEGER
);
CREATE TABLE credentials (
    access_key TEXT PRIMARY KEY,
    secret_key TEXT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    created REAL NOT NULL
);
CREATE INDEX credentials_by_tenant ON credentials (tenant_id);
"""


def _catalog(path: Path, box: SecretBox | None = None) -> SQLiteCatalog:
    return SQLiteCatalog(str(path / "catalog.sqlite3"), reactor, box or SecretBox(os.urandom(32)))


@pytest_twisted.ensureDeferred
async def test_keys_written_before_users_become_the_root_users(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "catalog.sqlite3")
    db.executescript(BEFORE_USERS)
    db.execute("INSERT INTO tenants (id, name, created) VALUES ('t1', 'acme', 1.0)")
    db.execute("INSERT INTO credentials VALUES ('AKOLD', 'old-secret', 't1', 2.0)")
    db.commit()
    db.close()
    catalog = _catalog(tmp_path)
    await catalog.start()
    try:
        found = await catalog.credential("AKOLD")
        assert found is not None
        credential, tenant = found
        assert (credential.user, credential.secret_key, tenant.name) == ("", "old-secret", "acme")
        assert await catalog.user_keys("t1", "") == ["AKOLD"]
        assert await catalog.users("t1") == []
    finally:
        await catalog.stop()
    # Opening it again changes nothing more.
    catalog = _catalog(tmp_path)
    await catalog.start()
    try:
        assert await catalog.user_keys("t1", "") == ["AKOLD"]
    finally:
        await catalog.stop()


@pytest_twisted.ensureDeferred
async def test_users_their_policies_and_keys(catalog_factory: Any) -> None:
    catalog = catalog_factory()  # on each backend
    await catalog.start()
    try:
        tenant = await catalog.ensure_tenant("acme")
        reader = await catalog.create_user(tenant.id, "reader", '{"Version": "2012-10-17"}')
        assert reader.id.startswith("AIDA") and reader.policy == '{"Version": "2012-10-17"}'
        with pytest.raises(UserExists):
            await catalog.create_user(tenant.id, "reader", None)
        with pytest.raises(NoSuchUser):
            await catalog.add_credential(tenant.id, "AKNOBODY", "s", "nobody")
        await catalog.add_credential(tenant.id, "AKREADER", "secret", "reader")
        await catalog.add_credential(tenant.id, "AKROOT", "secret")
        found = await catalog.credential("AKREADER")
        assert found is not None and found[0].user == "reader"
        assert await catalog.user_keys(tenant.id, "reader") == ["AKREADER"]
        changed = await catalog.set_user_policy(tenant.id, "reader", None)
        assert changed.policy is None and changed.id == reader.id
        assert await catalog.user(tenant.id, "reader") == changed
        assert [u.name for u in await catalog.users(tenant.id)] == ["reader"]
        await catalog.delete_user(tenant.id, "reader")
        assert await catalog.credential("AKREADER") is None  # its keys went with it
        assert await catalog.credential("AKROOT") is not None
        with pytest.raises(NoSuchUser):
            await catalog.user(tenant.id, "reader")
        again = await catalog.create_user(tenant.id, "reader", None)
        assert again.id != reader.id  # a new user, not the old one's grants
    finally:
        await catalog.stop()


@pytest_twisted.ensureDeferred
async def test_containers_named_carry_their_owner_and_access_documents(catalog_factory: Any) -> None:
    catalog = catalog_factory()  # on each backend
    await catalog.start()
    try:
        a = await catalog.ensure_tenant("a")
        container = await catalog.create_container(a.id, "photos", "local")
        assert [(x.container, x.owner, x.documents) for x in await catalog.containers_named("photos")] == [
            (container, a, ())
        ]
        await catalog.put_setting(container, "policy", "P")
        await catalog.put_setting(container, "acl", "A")
        await catalog.put_setting(container, "cors", "not an access document")
        [found] = await catalog.containers_named("photos")
        assert found.documents == (("acl", "A"), ("policy", "P"))
        assert found.document("policy") == "P" and found.document("ownership") is None
        assert await catalog.containers_named("nothing") == []
    finally:
        await catalog.stop()
