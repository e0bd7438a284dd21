"""The versioned catalog model: every key holds versions, newest first (vaultaire/catalog/versions.py)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from attrs import evolve
from twisted.internet import reactor

from vaultaire.catalog import versions
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.catalog.versions import valid_version_id
from vaultaire.errors import ContainerNotEmpty, NoSuchArtifact, NoSuchVersion
from vaultaire.model import Artifact, Container, Tenant
from vaultaire.sealing import SecretBox


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


@pytest_twisted.async_yield_fixture
async def opened(catalog_factory: Any) -> AsyncIterator[tuple[SQLiteCatalog, Tenant, Container]]:
    """On each backend (tests/conftest.py catalog_factory)."""
    catalog = catalog_factory(clock=Clock())
    await catalog.start()
    tenant = await catalog.ensure_tenant("t")
    container = await catalog.create_container(tenant.id, "b", "local")
    try:
        yield catalog, tenant, container
    finally:
        await catalog.stop()


def data(container: Container, key: str, locator: str, size: int = 10) -> Artifact:
    return Artifact(container.id, key, locator, size, "0" * 32, 1.0)


async def garbage(catalog: SQLiteCatalog) -> set[str]:
    return {locator for _placement, locator in await catalog.garbage(1000)}


async def every_version(catalog: SQLiteCatalog, container: Container) -> list[tuple[str, str, bool, bool]]:
    page = await catalog.list_versions(container.id, "", "", None, None, 1000)
    return [(v.key, v.locator, v.is_latest, v.delete_marker) for v in page.versions]


@pytest_twisted.ensureDeferred
async def test_unversioned_put_and_delete_replace_the_null_version(opened) -> None:
    catalog, tenant, container = opened
    first = await catalog.put_artifact(data(container, "k", "a"))
    assert first.written is not None and first.written.version_id == "null" and first.removed is None
    second = await catalog.put_artifact(data(container, "k", "b", 7))
    assert second.removed is not None and second.removed.locator == "a"
    assert await garbage(catalog) == {"a"}
    assert (await catalog.tenant_totals(tenant.id)).bytes == 7
    gone = await catalog.delete_artifact(container.id, "k")
    assert gone.written is None and gone.removed is not None and gone.removed.locator == "b"
    assert await catalog.artifact(container.id, "k") is None
    assert await every_version(catalog, container) == []
    assert (await catalog.tenant_totals(tenant.id)).objects == 0


@pytest_twisted.ensureDeferred
async def test_enabled_keeps_every_version_and_counts_its_bytes(opened) -> None:
    catalog, tenant, container = opened
    await catalog.put_artifact(data(container, "k", "before"))  # the null version, from before
    await catalog.put_setting(container, "versioning", "Enabled")
    v1 = (await catalog.put_artifact(data(container, "k", "one"))).written
    v2 = (await catalog.put_artifact(data(container, "k", "two"))).written
    assert v1 is not None and v2 is not None
    assert valid_version_id(v1.version_id) and v1.version_id != v2.version_id
    assert v2.version_id < v1.version_id  # ids sort newest first
    assert await garbage(catalog) == set()
    assert (await catalog.tenant_totals(tenant.id)).bytes == 30
    assert (await catalog.tenant_totals(tenant.id)).objects == 3
    assert await every_version(catalog, container) == [
        ("k", "two", True, False),
        ("k", "one", False, False),
        ("k", "before", False, False),
    ]
    old = await catalog.artifact(container.id, "k", v1.version_id)
    assert old is not None and old.locator == "one" and not old.is_latest
    assert (await catalog.artifact(container.id, "k", "null")).locator == "before"
    assert (await catalog.artifact(container.id, "k")).locator == "two"
    assert await catalog.artifact(container.id, "k", "f" * 32) is None
    # ListObjects sees the current version only.
    page = await catalog.list_artifacts(container.id, "", "", None, 10)
    assert [a.locator for a in page.artifacts] == ["two"]


@pytest_twisted.ensureDeferred
async def test_delete_markers_hide_the_key_and_removing_them_restores_it(opened) -> None:
    catalog, tenant, container = opened
    await catalog.put_setting(container, "versioning", "Enabled")
    v1 = (await catalog.put_artifact(data(container, "k", "one"))).written
    deleted = await catalog.delete_artifact(container.id, "k")
    marker = deleted.written
    assert marker is not None and marker.delete_marker and deleted.removed is None
    current = await catalog.artifact(container.id, "k")
    assert current is not None and current.delete_marker and current.is_latest
    assert (await catalog.list_artifacts(container.id, "", "", None, 10)).artifacts == ()
    # A second delete adds a second marker, as S3 does.
    second = (await catalog.delete_artifact(container.id, "k")).written
    assert second is not None and second.version_id != marker.version_id
    assert await every_version(catalog, container) == [
        ("k", "", True, True),
        ("k", "", False, True),
        ("k", "one", False, False),
    ]
    with pytest.raises(ContainerNotEmpty):
        await catalog.delete_container(container)
    # Removing the current marker leaves the older marker current; removing that restores v1.
    assert (await catalog.delete_version(container.id, "k", second.version_id)).removed == second
    assert (await catalog.artifact(container.id, "k")).version_id == marker.version_id
    await catalog.delete_version(container.id, "k", marker.version_id)
    restored = await catalog.artifact(container.id, "k")
    assert restored is not None and restored.version_id == v1.version_id and restored.locator == "one"
    assert [a.locator for a in (await catalog.list_artifacts(container.id, "", "", None, 10)).artifacts] == ["one"]
    assert await garbage(catalog) == set()  # markers own no blobs


@pytest_twisted.ensureDeferred
async def test_deleting_the_current_version_promotes_the_next_and_frees_only_its_blobs(opened) -> None:
    catalog, tenant, container = opened
    await catalog.put_setting(container, "versioning", "Enabled")
    v1 = (await catalog.put_artifact(data(container, "k", "one", 3))).written
    v2 = (await catalog.put_artifact(data(container, "k", "two", 4))).written
    assert v1 is not None and v2 is not None
    seen: list[Artifact] = []

    def refuse(version: Artifact) -> None:
        seen.append(version)
        raise PermissionError("locked")

    with pytest.raises(PermissionError):
        await catalog.delete_version(container.id, "k", v2.version_id, refuse)
    assert seen[0].version_id == v2.version_id and seen[0].is_latest
    assert (await catalog.artifact(container.id, "k")).locator == "two"
    removed = (await catalog.delete_version(container.id, "k", v2.version_id)).removed
    assert removed is not None and removed.locator == "two"
    assert await garbage(catalog) == {"two"}
    current = await catalog.artifact(container.id, "k")
    assert current is not None and current.version_id == v1.version_id and current.is_latest
    assert (await catalog.tenant_totals(tenant.id)).bytes == 3
    assert (await catalog.delete_version(container.id, "k", "0" * 32)).removed is None
    await catalog.delete_version(container.id, "k", v1.version_id)
    assert await catalog.artifact(container.id, "k") is None
    assert await every_version(catalog, container) == []
    assert (await catalog.tenant_totals(tenant.id)).objects == 0
    await catalog.delete_container(container)


@pytest_twisted.ensureDeferred
async def test_suspended_replaces_the_null_version_and_keeps_the_others(opened) -> None:
    catalog, tenant, container = opened
    await catalog.put_artifact(data(container, "k", "null-1"))
    await catalog.put_setting(container, "versioning", "Enabled")
    v1 = (await catalog.put_artifact(data(container, "k", "v1"))).written
    await catalog.put_setting(container, "versioning", "Suspended")
    put = await catalog.put_artifact(data(container, "k", "null-2"))
    assert put.written is not None and put.written.version_id == "null"
    assert put.removed is not None and put.removed.locator == "null-1"  # the old null version, noncurrent
    assert await every_version(catalog, container) == [("k", "null-2", True, False), ("k", "v1", False, False)]
    # A suspended delete: a null marker replaces the null version, v1 stays.
    deleted = await catalog.delete_artifact(container.id, "k")
    assert deleted.written is not None and deleted.written.version_id == "null" and deleted.written.delete_marker
    assert deleted.removed is not None and deleted.removed.locator == "null-2"
    assert await every_version(catalog, container) == [("k", "", True, True), ("k", "v1", False, False)]
    assert await garbage(catalog) == {"null-1", "null-2"}
    # Writing again replaces the null marker; v1 still there.
    again = await catalog.put_artifact(data(container, "k", "null-3"))
    assert again.removed is not None and again.removed.delete_marker
    assert await every_version(catalog, container) == [("k", "null-3", True, False), ("k", "v1", False, False)]
    assert v1 is not None and (await catalog.artifact(container.id, "k", v1.version_id)).locator == "v1"


@pytest_twisted.ensureDeferred
async def test_amend_by_version_id(opened) -> None:
    catalog, tenant, container = opened
    await catalog.put_setting(container, "versioning", "Enabled")
    v1 = (await catalog.put_artifact(data(container, "k", "one"))).written
    await catalog.put_artifact(data(container, "k", "two"))
    assert v1 is not None
    amended = await catalog.amend_artifact(container.id, "k", v1.version_id, lambda a: evolve(a, tags=(("a", "b"),)))
    assert amended.tags == (("a", "b"),)
    assert (await catalog.artifact(container.id, "k", v1.version_id)).tags == (("a", "b"),)
    assert (await catalog.artifact(container.id, "k")).tags == ()
    with pytest.raises(NoSuchVersion):
        await catalog.amend_artifact(container.id, "k", "0" * 32, lambda a: a)
    marker = (await catalog.delete_artifact(container.id, "k")).written
    assert marker is not None
    with pytest.raises(NoSuchArtifact):
        await catalog.amend_artifact(container.id, "k", None, lambda a: a)
    with pytest.raises(NoSuchArtifact):
        await catalog.amend_artifact(container.id, "k", marker.version_id, lambda a: a)


@pytest_twisted.ensureDeferred
async def test_list_versions_pages_by_key_and_version_markers(opened) -> None:
    catalog, tenant, container = opened
    await catalog.put_setting(container, "versioning", "Enabled")
    for key in ("a", "b/1", "b/2", "c"):
        for n in range(3):
            await catalog.put_artifact(data(container, key, f"{key}#{n}"))
    whole = await catalog.list_versions(container.id, "", "", None, None, 1000)
    assert [v.locator for v in whole.versions][:3] == ["a#2", "a#1", "a#0"]
    walked: list[str] = []
    key_marker = version_marker = None
    while True:
        page = await catalog.list_versions(container.id, "", "", key_marker, version_marker, 2)
        walked += [v.locator for v in page.versions]
        if not page.truncated:
            break
        key_marker, version_marker = page.next_key_marker, page.next_version_id_marker
    assert walked == [v.locator for v in whole.versions]
    rolled = await catalog.list_versions(container.id, "", "/", None, None, 1000)
    assert rolled.prefixes == ("b/",) and {v.key for v in rolled.versions} == {"a", "c"}
    page = await catalog.list_versions(container.id, "", "/", None, None, 4)
    assert page.truncated and page.prefixes == ("b/",) and page.next_key_marker == "b/"
    assert page.next_version_id_marker is None
    after = await catalog.list_versions(container.id, "", "/", "b/", None, 10)
    assert [v.locator for v in after.versions] == ["c#2", "c#1", "c#0"]
    after_key = await catalog.list_versions(container.id, "b/", "", "b/1", None, 10)
    assert [v.locator for v in after_key.versions] == ["b/2#2", "b/2#1", "b/2#0"]
    assert [v.is_latest for v in after_key.versions] == [True, False, False]


# The catalog schema as the code before versioning wrote it (main at c03c493): tables this
# migration touches, and a row as that code stored it.
OLD_SCHEMA = """
CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, status TEXT NOT NULL DEFAULT 'active',
    created REAL NOT NULL, max_bytes INTEGER, max_objects INTEGER);
CREATE TABLE credentials (access_key TEXT PRIMARY KEY, secret_key TEXT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id), created REAL NOT NULL);
CREATE TABLE containers (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL, placement TEXT NOT NULL, created REAL NOT NULL, UNIQUE (tenant_id, name));
CREATE TABLE artifacts (container_id INTEGER NOT NULL, key BLOB NOT NULL, locator TEXT NOT NULL,
    size INTEGER NOT NULL, md5 TEXT NOT NULL, modified REAL NOT NULL, content_type TEXT NOT NULL,
    metadata TEXT NOT NULL, PRIMARY KEY (container_id, key)) WITHOUT ROWID;
CREATE TABLE container_settings (container_id INTEGER NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (container_id, name)) WITHOUT ROWID;
"""
OLD_EXTRA = {
    "meta": [["a", "1"]],
    "headers": [],
    "class": "STANDARD",
    "parts": [],
    "checksum": None,
    "placement": "local",
    "upload": "",
    "sealing": None,
    "tags": [],
    "retention": None,
    "hold": False,
    "acl": "",
}


@pytest_twisted.ensureDeferred
async def test_a_catalog_from_before_versioning_is_migrated_in_place(tmp_path: Path) -> None:
    path = str(tmp_path / "catalog.sqlite3")
    old = sqlite3.connect(path)
    old.executescript(OLD_SCHEMA)
    old.execute("INSERT INTO tenants (id, name, created) VALUES ('t1', 't', 1.0)")
    old.execute("INSERT INTO containers (id, tenant_id, name, placement, created) VALUES (1, 't1', 'b', 'local', 1.0)")
    old.execute(
        "INSERT INTO artifacts VALUES (1, ?, 'old-blob', 5, ?, 1000.0, 'text/plain', ?)",
        (b"k", "1" * 32, json.dumps(OLD_EXTRA)),
    )
    old.commit()
    old.close()
    catalog = SQLiteCatalog(path, reactor, SecretBox(os.urandom(32)), clock=Clock())
    await catalog.start()
    try:
        container = await catalog.container("t1", "b")
        assert container is not None
        found = await catalog.artifact(1, "k")
        assert found is not None and found.version_id == "null" and found.is_latest and found.metadata == (("a", "1"),)
        assert (await catalog.artifact(1, "k", "null")) == found
        assert (await catalog.tenant_totals("t1")).bytes == 5  # totals backfilled from what it holds
        await catalog.put_setting(container, "versioning", "Enabled")
        new = (await catalog.put_artifact(data(container, "k", "new-blob"))).written
        assert new is not None
        assert await every_version(catalog, container) == [
            ("k", "new-blob", True, False),
            ("k", "old-blob", False, False),
        ]
    finally:
        await catalog.stop()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == versions.SCHEMA_VERSION
    check.close()


@pytest_twisted.ensureDeferred
async def test_a_catalog_from_a_newer_vaultaire_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "catalog.sqlite3")
    newer = sqlite3.connect(path)
    newer.execute("PRAGMA user_version = 99")
    newer.close()
    catalog = SQLiteCatalog(path, reactor, SecretBox(os.urandom(32)))
    with pytest.raises(RuntimeError, match="newer Vaultaire"):
        await catalog.start()
    await catalog.stop()
