"""Quotas: refused before 100 Continue, mid-stream, at commit; suspension; what counts."""

from __future__ import annotations

import hashlib
import socket
import time

import pytest
import pytest_twisted
from twisted.internet import defer, threads

from tests.postform import BOUNDARY, form, v4_fields
from tests.s3helpers import Server, complete_upload, create_upload, error_code, raw_exchange, signed_head
from vaultaire.errors import QuotaExceeded
from vaultaire.model import Artifact


@pytest_twisted.async_yield_fixture
async def server(tmp_path, catalog_url):
    s = Server(str(tmp_path), catalog_url=catalog_url)  # on each catalog backend
    s.engine.min_part_size = 0
    await s.start("bucket", "forms")
    yield s
    await s.stop()


async def limit(server: Server, max_bytes: int | None, max_objects: int | None = None) -> None:
    await server.catalog.set_quota("default", max_bytes, max_objects)


async def stored(server: Server) -> tuple[int, int]:
    tenant = await server.catalog.tenant("default")
    totals = await server.catalog.tenant_totals(tenant.id)
    return totals.bytes, totals.objects


@pytest_twisted.ensureDeferred
async def test_refused_before_100_continue_and_body_never_read(server):
    await limit(server, 1000)
    port = server.port.getHost().port
    head = signed_head(server, "PUT", "/bucket/big", 1001, {"expect": "100-continue"})
    got = await threads.deferToThread(raw_exchange, port, head, [], True)
    assert got.startswith(b"HTTP/1.1 403"), got
    assert b"100 Continue" not in got and b"<Code>QuotaExceeded</Code>" in got
    assert b"quota of 1000 bytes" in got
    assert server.blob_files() == [] and await stored(server) == (0, 0)
    # What fits is taken, with its 100 Continue.
    head = signed_head(server, "PUT", "/bucket/fits", 1000, {"expect": "100-continue"})
    got = await threads.deferToThread(raw_exchange, port, head, [b"x" * 1000], True)
    assert got.startswith(b"HTTP/1.1 100 Continue") and b"HTTP/1.1 200" in got
    assert await stored(server) == (1000, 1)
    r = await server.request("PUT", "/bucket/one-more", b"y")
    assert r.code == 403 and error_code(r) == "QuotaExceeded"


@pytest_twisted.ensureDeferred
async def test_an_overwrite_counts_only_the_difference(server):
    await limit(server, 1000)
    assert (await server.request("PUT", "/bucket/k", b"a" * 800)).code == 200
    r = await server.request("PUT", "/bucket/k", b"b" * 1000)
    assert r.code == 200, r.body
    assert await stored(server) == (1000, 1)
    r = await server.request("PUT", "/bucket/k", b"c" * 1001)
    assert error_code(r) == "QuotaExceeded"
    assert (await server.request("GET", "/bucket/k")).body == b"b" * 1000  # never lost
    assert (await server.request("DELETE", "/bucket/k")).code == 204
    assert await stored(server) == (0, 0)


def chunked_form_post(port: int, body: bytes) -> bytes:
    """POST a form as Transfer-Encoding: chunked: its size is unknown until it ends."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        head = (
            "POST /forms HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n"
        ).encode()
        s.sendall(head)
        got = b""
        for i in range(0, len(body), 4096):
            piece = body[i : i + 4096]
            try:
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except OSError:
                break  # refused mid-stream: the server stopped reading
        else:
            s.sendall(b"0\r\n\r\n")
        while chunk := s.recv(65536):
            got += chunk
            if b"</Error>" in got or b"HTTP/1.1 2" in got:
                break
        return got
    finally:
        s.close()


@pytest_twisted.ensureDeferred
async def test_chunked_body_refused_mid_stream(server):
    await limit(server, 100_000)
    fields = {"key": "upload.bin", **v4_fields([{"bucket": "forms"}, ["starts-with", "$key", ""]])}
    body = form(fields, b"z" * 300_000)
    got = await threads.deferToThread(chunked_form_post, server.port.getHost().port, body)
    assert got.startswith(b"HTTP/1.1 403"), got[:300]
    assert b"<Code>QuotaExceeded</Code>" in got
    assert (await server.request("HEAD", "/forms/upload.bin")).code == 404
    assert await stored(server) == (0, 0) and server.blob_files() == []
    # Under the quota, the same chunked form goes through.
    small = form(fields, b"z" * 50_000)
    got = await threads.deferToThread(chunked_form_post, server.port.getHost().port, small)
    assert got.startswith(b"HTTP/1.1 204"), got[:300]
    assert await stored(server) == (50_000, 1)


@pytest_twisted.ensureDeferred
async def test_concurrent_uploads_cannot_together_exceed(server):
    await limit(server, 1_000_000)
    body = b"q" * 300_000
    responses = await defer.gatherResults(
        [defer.ensureDeferred(server.request("PUT", f"/bucket/c{i}", body)) for i in range(8)]
    )
    ok = [r for r in responses if r.code == 200]
    refused = [r for r in responses if r.code == 403]
    assert len(ok) + len(refused) == 8 and all(error_code(r) == "QuotaExceeded" for r in refused)
    assert len(ok) == 3  # 3 x 300,000 fit in 1,000,000; a 4th would not
    total, objects = await stored(server)
    assert total == 900_000 and objects == 3


@pytest_twisted.ensureDeferred
async def test_commit_refuses_what_races_past_the_early_checks(server):
    """The transaction's own check: several writers (other processes, say) racing for the last bytes."""
    await limit(server, 1000)
    bucket = await server.catalog.container((await server.catalog.tenant("default")).id, "bucket")

    def artifact(i: int) -> Artifact:
        return Artifact(bucket.id, f"raced-{i}", f"nowhere/{i}", 400, hashlib.md5(b"").hexdigest(), time.time())

    results = await defer.DeferredList([server.catalog.put_artifact(artifact(i)) for i in range(5)])
    committed = [ok for ok, _ in results if ok]
    refused = [f for ok, f in results if not ok]
    assert len(committed) == 2 and all(f.check(QuotaExceeded) for f in refused)
    assert await stored(server) == (800, 2)


@pytest_twisted.ensureDeferred
async def test_parts_and_copies_count(server):
    await limit(server, 1000)
    upload_id = await create_upload(server, "/bucket/mp")
    r = await server.request("PUT", "/bucket/mp", b"1" * 600, query=f"partNumber=1&uploadId={upload_id}")
    assert r.code == 200
    assert await stored(server) == (600, 0)  # a part is stored bytes, not yet an object
    r = await server.request("PUT", "/bucket/mp", b"2" * 600, query=f"partNumber=2&uploadId={upload_id}")
    assert error_code(r) == "QuotaExceeded"
    assert (await server.request("PUT", "/bucket/small", b"s" * 300)).code == 200
    r = await server.request("PUT", "/bucket/copy", headers={"x-amz-copy-source": "/bucket/small"})
    assert error_code(r) == "QuotaExceeded"
    r = await server.request(
        "PUT",
        "/bucket/mp",
        query=f"partNumber=2&uploadId={upload_id}",
        headers={"x-amz-copy-source": "/bucket/small"},
    )
    assert error_code(r) == "QuotaExceeded"
    assert (await server.request("DELETE", "/bucket/mp", query=f"uploadId={upload_id}")).code == 204
    assert await stored(server) == (300, 1)
    r = await server.request("PUT", "/bucket/copy", headers={"x-amz-copy-source": "/bucket/small"})
    assert r.code == 200 and await stored(server) == (600, 2)


@pytest_twisted.ensureDeferred
async def test_completed_upload_keeps_its_bytes_counted_once(server):
    await limit(server, None)
    upload_id = await create_upload(server, "/bucket/mp")
    etags = []
    for n in (1, 2, 3):
        r = await server.request(
            "PUT", "/bucket/mp", bytes([48 + n]) * 100, query=f"partNumber={n}&uploadId={upload_id}"
        )
        etags.append(r.headers.getRawHeaders("etag")[0])
    assert await stored(server) == (300, 0)
    r = await complete_upload(server, "/bucket/mp", upload_id, [(n, etags[n - 1]) for n in (1, 3)])
    assert r.code == 200, r.body
    assert await stored(server) == (200, 1)  # the unchosen part is gone, the others became the object


@pytest_twisted.ensureDeferred
async def test_object_count_quota(server):
    await limit(server, None, max_objects=2)
    assert (await server.request("PUT", "/bucket/a", b"a")).code == 200
    assert (await server.request("PUT", "/bucket/b", b"b")).code == 200
    r = await server.request("PUT", "/bucket/c", b"c")
    assert error_code(r) == "QuotaExceeded" and b"quota of 2 objects" in r.body
    assert (await server.request("PUT", "/bucket/a", b"again")).code == 200  # overwriting adds no object
    assert server.blob_files() and len(server.blob_files()) == 2


@pytest_twisted.ensureDeferred
async def test_suspended_tenant_is_refused_and_keeps_its_data(server):
    assert (await server.request("PUT", "/bucket/keep", b"precious")).code == 200
    await server.catalog.set_tenant_status("default", "suspended")
    for method, path in (("GET", "/bucket/keep"), ("PUT", "/bucket/new"), ("GET", "/"), ("DELETE", "/bucket/keep")):
        r = await server.request(method, path, b"x" if method == "PUT" else b"")
        assert r.code == 403 and error_code(r) == "AccessDenied", (method, path)
    await server.catalog.set_tenant_status("default", "active")
    assert (await server.request("GET", "/bucket/keep")).body == b"precious"


@pytest.mark.parametrize("text,expected", [("5000", 5000), ("10G", 10**10), ("1Ti", 2**40), ("none", None)])
def test_admin_size_syntax(text, expected):
    from vaultaire.admin.quota import limit as parse_limit

    assert parse_limit(text) == expected
