"""Versions through the whole stack in process: migration moves every version, POST Object
answers its version, quotas count noncurrent versions, garbage waits for a version's delete."""

from __future__ import annotations

import pytest_twisted

from tests.postform import form, post, v4_fields
from tests.s3helpers import Server, error_code, xml_values
from vaultaire.drivers.memory import MemoryDriver
from vaultaire.engine.migrate import migrate

VERSIONING = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"


async def enable(server: Server, bucket: str) -> None:
    r = await server.request("PUT", f"/{bucket}", VERSIONING, query="versioning=")
    assert r.code == 200, r.body


@pytest_twisted.async_yield_fixture
async def served(tmp_path):
    cold = MemoryDriver("cold")
    s = Server(str(tmp_path), placements={"cold": cold})
    await s.start("bucket", "forms")
    yield s, cold
    await s.stop()


@pytest_twisted.ensureDeferred
async def test_migration_moves_every_version(served) -> None:
    server, cold = served
    await enable(server, "bucket")
    ids = []
    for n in range(3):
        r = await server.request("PUT", "/bucket/k", f"body-{n}".encode())
        ids.append(r.headers.getRawHeaders("x-amz-version-id")[0])
    await server.request("DELETE", "/bucket/gone")  # a marker alone: nothing to move
    await server.request("PUT", "/bucket/other", b"x")
    container = await server.engine.catalog.container((await server.catalog.tenant("default")).id, "bucket")
    report = await migrate(server.engine, container, "cold")
    assert report.artifacts_moved == 4  # three versions of k, one of other
    page = await server.catalog.list_versions(container.id, "", "", None, None, 100)
    assert {v.placement for v in page.versions if not v.delete_marker} == {"cold"}
    assert len(cold.blobs) == 4
    for n, version in enumerate(ids):
        r = await server.request("GET", "/bucket/k", query=f"versionId={version}")
        assert r.code == 200 and r.body == f"body-{n}".encode()
    await server.sweep()
    assert server.blob_files() == []  # the local copies are freed, every one


@pytest_twisted.ensureDeferred
async def test_post_object_answers_the_version_it_made(served) -> None:
    server, _cold = served
    await enable(server, "forms")
    fields = {"key": "up.txt", **v4_fields([{"bucket": "forms"}, {"key": "up.txt"}])}
    r = await post(server, form(fields, b"hello"))
    assert r.code == 204
    version = r.headers.getRawHeaders("x-amz-version-id")[0]
    got = await server.request("GET", "/forms/up.txt", query=f"versionId={version}")
    assert got.body == b"hello"


@pytest_twisted.ensureDeferred
async def test_quota_counts_noncurrent_versions(served) -> None:
    server, _cold = served
    await enable(server, "bucket")
    await server.catalog.set_quota("default", 2500, None)
    server.engine.quota._reserved.clear()
    tenant = await server.catalog.tenant("default")
    for _ in range(2):
        r = await server.request("PUT", "/bucket/k", b"z" * 1000)
        assert r.code == 200
    # Unversioned, this overwrite would fit (it replaces 1000 bytes); versioned, the old ones stay.
    r = await server.request("PUT", "/bucket/k", b"z" * 1000)
    assert (r.code, error_code(r)) == (403, "QuotaExceeded")
    assert (await server.catalog.tenant_totals(tenant.id)).bytes == 2000
    # A delete marker frees nothing; deleting a version does.
    await server.request("DELETE", "/bucket/k")
    r = await server.request("GET", "/bucket", query="versions=")
    oldest = xml_values(r.body, "VersionId")[-1]
    r = await server.request("DELETE", "/bucket/k", query=f"versionId={oldest}")
    assert r.code == 204
    assert (await server.catalog.tenant_totals(tenant.id)).bytes == 1000
    assert (await server.request("PUT", "/bucket/k", b"z" * 1000)).code == 200


@pytest_twisted.ensureDeferred
async def test_a_version_s_blobs_are_freed_only_when_that_version_is_deleted(served) -> None:
    server, _cold = served
    await enable(server, "bucket")
    await server.request("PUT", "/bucket/k", b"one")
    await server.request("PUT", "/bucket/k", b"two")
    await server.request("DELETE", "/bucket/k")
    await server.sweep()
    assert len(server.blob_files()) == 2
    r = await server.request("GET", "/bucket", query="versions=")
    for version in xml_values(r.body, "VersionId"):
        assert (await server.request("DELETE", "/bucket/k", query=f"versionId={version}")).code == 204
    await server.sweep()
    assert server.blob_files() == []
    assert (await server.request("DELETE", "/bucket")).code == 204
