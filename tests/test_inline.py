"""Small objects kept in the catalog, durable with their row in one group commit (engine/inline.py).

Every test looks at where the bytes went (blob files, ``inline_blobs`` rows) as well as at
what S3 answers, so a regression that silently moves small objects back to files, leaves a
row behind or loses one fails here.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import zlib
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults

from tests.s3helpers import ACCESS, Chunks, Server, complete_body, error_code, xml_values
from vaultaire.catalog import inline
from vaultaire.config import ConfigError, build, load_file
from vaultaire.drivers.local import LocalDriver
from vaultaire.encryption.packages import sealed_size
from vaultaire.engine.inline import DEFAULT_INLINE_MAX
from vaultaire.engine.migrate import migrate
from vaultaire.errors import IncompleteBody
from vaultaire.model import RequestContext

LIMIT = DEFAULT_INLINE_MAX
MARKER = b"PLAINTEXT-MARKER-0123456789"
SSE_S3 = {"x-amz-server-side-encryption": "AES256"}


def marked(size: int) -> bytes:
    return (MARKER * (size // len(MARKER) + 1))[:size]


def header(r: Any, name: str) -> str | None:
    values = r.headers.getRawHeaders(name)
    return values[0] if values else None


@pytest_twisted.async_yield_fixture
async def server(tmp_path: Any) -> Any:
    other = LocalDriver(str(tmp_path / "other-blobs"), reactor, name="other")
    s = Server(str(tmp_path), inline_max=LIMIT, placements={"other": other})
    s.engine.min_part_size = 0  # small parts keep the multipart test quick
    await s.start("bucket")
    yield s
    await s.stop()


def rows(server: Server, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(os.path.join(server.data, "catalog.sqlite3"))
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def inline_rows(server: Server) -> dict[str, bytes]:
    return {f"{inline.PREFIX}{i:016x}": bytes(d) for i, d in rows(server, "SELECT id, data FROM inline_blobs")}


def locators(server: Server) -> list[str]:
    """Locators of every data version, current and noncurrent."""
    found = [r[0] for r in rows(server, "SELECT locator FROM artifacts")]
    return found + [r[0] for r in rows(server, "SELECT locator FROM versions WHERE locator != ''")]


@pytest_twisted.ensureDeferred
async def test_a_small_put_is_one_row_with_its_bytes_and_no_blob_file(server: Server) -> None:
    body = os.urandom(4096)
    r = await server.request("PUT", "/bucket/small", body)
    assert r.code == 200, r.body
    assert header(r, "etag") == f'"{hashlib.md5(body).hexdigest()}"'
    assert server.blob_files() == []
    [locator] = locators(server)
    assert inline.is_inline(locator)
    assert inline_rows(server) == {locator: body}
    # Nothing was written ahead of the row: no intent, no garbage.
    assert rows(server, "SELECT count(*) FROM intents") == [(0,)]
    assert rows(server, "SELECT count(*) FROM garbage") == [(0,)]

    r = await server.request("GET", "/bucket/small")
    assert r.code == 200 and r.body == body
    r = await server.request("GET", "/bucket/small", headers={"Range": "bytes=100-199"})
    assert r.code == 206 and r.body == body[100:200]
    r = await server.request("GET", "/bucket/small", headers={"Range": "bytes=-10"})
    assert r.code == 206 and r.body == body[-10:]
    r = await server.request("HEAD", "/bucket/small")
    assert r.code == 200 and header(r, "content-length") == "4096"

    r = await server.request("PUT", "/bucket/empty", b"")
    assert r.code == 200
    r = await server.request("GET", "/bucket/empty")
    assert r.code == 200 and r.body == b""
    assert server.blob_files() == []


@pytest_twisted.ensureDeferred
async def test_the_threshold_is_inclusive_and_larger_objects_are_blob_files(server: Server) -> None:
    at, above = os.urandom(LIMIT), os.urandom(LIMIT + 1)
    assert (await server.request("PUT", "/bucket/at", at)).code == 200
    assert (await server.request("PUT", "/bucket/above", above)).code == 200
    assert list(inline_rows(server).values()) == [at]
    assert len(server.blob_files()) == 1
    assert (await server.request("GET", "/bucket/at")).body == at
    assert (await server.request("GET", "/bucket/above")).body == above


@pytest_twisted.ensureDeferred
async def test_a_small_put_shares_the_one_catalog_transaction_and_makes_no_fsync_of_its_own(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The point of inline objects: a file PUT fsyncs its file and directory and commits an
    intent before its row; an inline PUT only commits its row (the catalog's group commit)."""
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    writes: list[object] = []
    real_write = server.catalog._write
    monkeypatch.setattr(server.catalog, "_write", lambda work: (writes.append(work), real_write(work))[1])

    assert (await server.request("PUT", "/bucket/k", os.urandom(4096))).code == 200
    assert (fsyncs, len(writes)) == ([], 1)

    fsyncs.clear()
    writes.clear()
    assert (await server.request("PUT", "/bucket/big", os.urandom(LIMIT + 1))).code == 200
    assert len(fsyncs) >= 2 and len(writes) == 2  # the file and its directory; the intent and the row


@pytest_twisted.ensureDeferred
async def test_concurrent_small_puts_all_land_whole(server: Server) -> None:
    bodies = {f"c{i}": os.urandom(1000 + i) for i in range(32)}
    answers = await gatherResults(
        [Deferred.fromCoroutine(server.request("PUT", f"/bucket/{k}", b)) for k, b in bodies.items()]
    )
    assert [a.code for a in answers] == [200] * 32
    assert sorted(inline_rows(server).values()) == sorted(bodies.values())
    for key, body in bodies.items():
        assert (await server.request("GET", f"/bucket/{key}")).body == body


@pytest_twisted.ensureDeferred
async def test_overwrites_and_deletes_drop_the_row_in_their_own_transaction(server: Server) -> None:
    first, second = os.urandom(100), os.urandom(200)
    await server.request("PUT", "/bucket/k", first)
    await server.request("PUT", "/bucket/k", second)
    assert list(inline_rows(server).values()) == [second]
    big = os.urandom(LIMIT + 10)
    await server.request("PUT", "/bucket/k", big)  # small -> file
    assert inline_rows(server) == {} and len(server.blob_files()) == 1
    await server.request("PUT", "/bucket/k", first)  # file -> small: the file is freed
    assert list(inline_rows(server).values()) == [first] and server.blob_files() == []
    assert (await server.request("DELETE", "/bucket/k")).code == 204
    assert inline_rows(server) == {}
    # Never queued as garbage: there is nothing for a sweep to do.
    assert rows(server, "SELECT count(*) FROM garbage") == [(0,)]
    await server.sweep()

    # DeleteObjects too.
    await server.request("PUT", "/bucket/a", first)
    await server.request("PUT", "/bucket/b", second)
    doc = b"<Delete><Object><Key>a</Key></Object><Object><Key>b</Key></Object></Delete>"
    md5 = base64.b64encode(hashlib.md5(doc).digest()).decode()
    r = await server.request("POST", "/bucket", doc, query="delete", headers={"Content-MD5": md5})
    assert r.code == 200, r.body
    assert inline_rows(server) == {}


@pytest_twisted.ensureDeferred
async def test_versions_keep_their_rows_until_each_version_is_deleted(server: Server) -> None:
    doc = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
    assert (await server.request("PUT", "/bucket", doc, query="versioning")).code == 200
    old, new = os.urandom(300), os.urandom(400)
    v1 = header(await server.request("PUT", "/bucket/k", old), "x-amz-version-id")
    v2 = header(await server.request("PUT", "/bucket/k", new), "x-amz-version-id")
    assert sorted(inline_rows(server).values()) == sorted([old, new])
    assert (await server.request("GET", "/bucket/k", query=f"versionId={v1}")).body == old
    assert (await server.request("GET", "/bucket/k")).body == new
    assert (await server.request("DELETE", "/bucket/k")).code == 204  # a delete marker: both stay
    assert len(inline_rows(server)) == 2
    assert (await server.request("DELETE", "/bucket/k", query=f"versionId={v1}")).code == 204
    assert list(inline_rows(server).values()) == [new]
    assert (await server.request("DELETE", "/bucket/k", query=f"versionId={v2}")).code == 204
    assert inline_rows(server) == {}


@pytest_twisted.ensureDeferred
async def test_encrypted_small_objects_are_inline_as_ciphertext(server: Server) -> None:
    body = marked(5000)
    r = await server.request("PUT", "/bucket/sse-s3", body, headers=SSE_S3)
    assert r.code == 200, r.body
    key = bytes(range(32))
    customer = {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": base64.b64encode(key).decode(),
        "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(hashlib.md5(key).digest()).decode(),
    }
    r = await server.request("PUT", "/bucket/sse-c", body, headers=customer)
    assert r.code == 200, r.body
    stored = inline_rows(server)
    assert len(stored) == 2 and server.blob_files() == []
    for data in stored.values():
        assert len(data) == sealed_size(len(body)) and MARKER not in data
    # Nor anywhere else in the catalog's files (the database and its write-ahead log).
    for name in ("catalog.sqlite3", "catalog.sqlite3-wal"):
        with open(os.path.join(server.data, name), "rb") as f:
            assert MARKER not in f.read(), name
    r = await server.request("GET", "/bucket/sse-s3")
    assert r.code == 200 and r.body == body and header(r, "x-amz-server-side-encryption") == "AES256"
    r = await server.request("GET", "/bucket/sse-s3", headers={"Range": "bytes=1000-2999"})
    assert r.code == 206 and r.body == body[1000:3000]
    r = await server.request("GET", "/bucket/sse-c", headers=customer)
    assert r.code == 200 and r.body == body
    r = await server.request("GET", "/bucket/sse-c")
    assert r.code == 400  # the customer's key is needed, inline or not


@pytest_twisted.ensureDeferred
async def test_checksums_are_verified_and_kept_and_a_refused_body_leaves_nothing(server: Server) -> None:
    body = os.urandom(2048)
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    r = await server.request("PUT", "/bucket/k", body, headers={"x-amz-checksum-crc32": crc})
    assert r.code == 200, r.body
    r = await server.request("HEAD", "/bucket/k", headers={"x-amz-checksum-mode": "ENABLED"})
    assert header(r, "x-amz-checksum-crc32") == crc
    wrong = base64.b64encode((zlib.crc32(body) ^ 1).to_bytes(4, "big")).decode()
    r = await server.request("PUT", "/bucket/bad", body, headers={"x-amz-checksum-crc32": wrong})
    assert r.code == 400 and error_code(r) == "BadDigest", r.body
    r = await server.request("PUT", "/bucket/bad", body, headers={"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="})
    assert r.code == 400 and error_code(r) == "BadDigest", r.body
    assert len(inline_rows(server)) == 1 and locators(server) == list(inline_rows(server))


@pytest_twisted.ensureDeferred
async def test_a_refused_conditional_write_stores_no_row(server: Server) -> None:
    await server.request("PUT", "/bucket/k", b"first")
    r = await server.request("PUT", "/bucket/k", b"second", headers={"If-None-Match": "*"})
    assert r.code == 412, r.body
    assert list(inline_rows(server).values()) == [b"first"]


@pytest_twisted.ensureDeferred
async def test_a_body_longer_than_announced_is_refused_without_growing_memory(server: Server) -> None:
    found = await server.catalog.credential(ACCESS)
    assert found is not None
    ctx = RequestContext("test", found[1])
    container = await server.engine.container(ctx, "bucket")
    with pytest.raises(IncompleteBody):
        await server.engine.put(
            ctx, container, "liar", Chunks(b"x" * 10, b"y" * 10**6), content_type="a/b", declared_size=10
        )
    assert inline_rows(server) == {} and locators(server) == []


@pytest_twisted.ensureDeferred
async def test_copies_of_small_objects_are_inline_too(server: Server) -> None:
    body = os.urandom(700)
    await server.request("PUT", "/bucket/src", body)
    r = await server.request("PUT", "/bucket/dst", headers={"x-amz-copy-source": "/bucket/src"})
    assert r.code == 200, r.body
    assert sorted(inline_rows(server).values()) == [body, body] and server.blob_files() == []
    assert (await server.request("GET", "/bucket/dst")).body == body


@pytest_twisted.ensureDeferred
async def test_multipart_parts_stay_blob_files(server: Server) -> None:
    r = await server.request("POST", "/bucket/mp", query="uploads")
    [upload] = xml_values(r.body, "UploadId")
    parts = [os.urandom(1000), os.urandom(500)]
    etags = []
    for number, part in enumerate(parts, 1):
        r = await server.request("PUT", "/bucket/mp", part, query=f"partNumber={number}&uploadId={upload}")
        assert r.code == 200, r.body
        etags.append((number, header(r, "etag").strip('"')))
    assert len(server.blob_files()) == 2 and inline_rows(server) == {}
    r = await server.request("POST", "/bucket/mp", complete_body(etags), query=f"uploadId={upload}")
    assert r.code == 200, r.body
    assert (await server.request("GET", "/bucket/mp")).body == b"".join(parts)
    assert inline_rows(server) == {}


@pytest_twisted.ensureDeferred
async def test_migration_moves_inline_objects_to_the_target_driver(server: Server, tmp_path: Any) -> None:
    bodies = {f"k{i}": os.urandom(100 * i) for i in range(1, 6)}
    for key, body in bodies.items():
        await server.request("PUT", f"/bucket/{key}", body, headers=SSE_S3 if key == "k1" else {})
    doc = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
    await server.request("PUT", "/bucket", doc, query="versioning")
    await server.request("PUT", "/bucket/k2", b"newer")  # k2's first version is noncurrent now
    assert len(inline_rows(server)) == 6
    ctx = RequestContext("test", (await server.catalog.credential(ACCESS))[1])  # type: ignore[index]
    container = await server.engine.container(ctx, "bucket")
    report = await migrate(server.engine, container, "other")
    assert report.artifacts_moved == 6
    assert inline_rows(server) == {}
    assert len(os.listdir(tmp_path / "other-blobs" / str(container.id))) > 0
    assert not any(inline.is_inline(loc) for loc in locators(server))
    for key, body in bodies.items():
        r = await server.request("GET", f"/bucket/{key}")
        assert r.code == 200 and r.body == (b"newer" if key == "k2" else body)
    # k2's noncurrent version (the null one, from before versioning) moved as well.
    listing = (await server.request("GET", "/bucket", query="prefix=k2&versions")).body
    got = [
        (await server.request("GET", "/bucket/k2", query=f"versionId={v}")).body
        for v in xml_values(listing, "VersionId")
    ]
    assert sorted(got) == sorted([b"newer", bodies["k2"]])


@pytest_twisted.ensureDeferred
async def test_inline_objects_stay_readable_when_inlining_is_turned_off(server: Server) -> None:
    body = os.urandom(999)
    await server.request("PUT", "/bucket/k", body)
    server.engine.inline_max = 0
    assert (await server.request("GET", "/bucket/k")).body == body
    await server.request("PUT", "/bucket/new", body)
    assert len(server.blob_files()) == 1 and len(inline_rows(server)) == 1
    await server.request("PUT", "/bucket/k", body)  # an overwrite by a file drops the row
    assert inline_rows(server) == {} and len(server.blob_files()) == 2


def test_the_setting_is_read_from_storage_and_bounded(tmp_path: Any) -> None:
    assert build({}, {}).inline_max_bytes == DEFAULT_INLINE_MAX
    path = tmp_path / "vaultaire.toml"
    path.write_text("[storage]\ninline_max_bytes = 0\n")
    assert build(load_file(str(path)), {}).inline_max_bytes == 0
    for bad in ("-1", str(2**20 + 1), '"64k"'):
        path.write_text(f"[storage]\ninline_max_bytes = {bad}\n")
        with pytest.raises(ConfigError, match="inline_max_bytes"):
            build(load_file(str(path)), {})


@pytest_twisted.ensureDeferred
async def test_small_objects_live_in_a_postgresql_catalog_too(tmp_path: Any, postgres: Any) -> None:
    # The shared catalog of many gateways: the bytes are in the database every gateway reads.
    s = Server(str(tmp_path), inline_max=LIMIT, catalog_url=postgres.fresh_database())
    await s.start("bucket")
    try:
        first, second = os.urandom(3000), os.urandom(200)
        assert (await s.request("PUT", "/bucket/k", first)).code == 200
        assert s.blob_files() == []
        r = await s.request("GET", "/bucket/k", headers={"Range": "bytes=10-19"})
        assert r.code == 206 and r.body == first[10:20]
        [old] = [a.locator async for a in _artifacts(s)]
        assert inline.is_inline(old) and await s.catalog.inline_data(old) == first
        assert (await s.request("PUT", "/bucket/k", second)).code == 200
        assert await s.catalog.inline_data(old) is None  # the overwrite dropped the old bytes
        assert (await s.request("GET", "/bucket/k")).body == second
        [new] = [a.locator async for a in _artifacts(s)]
        assert (await s.request("DELETE", "/bucket/k")).code == 204
        assert await s.catalog.inline_data(new) is None
    finally:
        await s.stop()


async def _artifacts(s: Server) -> Any:
    tenant = await s.catalog.tenant("default")
    bucket = await s.catalog.container(tenant.id, "bucket")
    page = await s.catalog.list_artifacts(bucket.id, "", "", None, 1000)
    for artifact in page.artifacts:
        yield artifact
