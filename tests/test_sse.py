"""Encryption at rest through the S3 API: SSE-S3 and SSE-C on every path that takes them.

Drivers must only ever see ciphertext: the blob files are read back and searched
for the plaintext; a flipped byte must fail the read, never return other bytes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3

import pytest_twisted
import treq
from twisted.internet import reactor

from tests.postform import BOUNDARY, form, v4_fields
from tests.s3helpers import Server, complete_body, error_code, xml_values
from vaultaire.drivers.local import LocalDriver
from vaultaire.encryption.packages import PACKAGE, sealed_size
from vaultaire.engine.migrate import migrate

MIB = 2**20
SSE_S3 = {"x-amz-server-side-encryption": "AES256"}
MARKER = b"PLAINTEXT-MARKER-0123456789"


def body_of(size: int) -> bytes:
    """Recognisable plaintext: the marker repeated, so any leak of it is found on disk."""
    return (MARKER * (size // len(MARKER) + 1))[:size]


def customer(key: bytes, prefix: str = "x-amz-server-side-encryption-customer-") -> dict[str, str]:
    return {
        prefix + "algorithm": "AES256",
        prefix + "key": base64.b64encode(key).decode(),
        prefix + "key-MD5": base64.b64encode(hashlib.md5(key).digest()).decode(),
    }


KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


def header(r, name: str) -> str | None:
    values = r.headers.getRawHeaders(name)
    return values[0] if values else None


@pytest_twisted.async_yield_fixture
async def server(tmp_path):
    s = Server(str(tmp_path))
    await s.start("bucket", "other")
    yield s
    await s.stop()


def no_plaintext_on_disk(server: Server) -> None:
    files = server.blob_files()
    assert files
    for path in files:
        with open(path, "rb") as f:
            assert MARKER not in f.read(), path


@pytest_twisted.ensureDeferred
async def test_sse_s3_put_get_head_range_and_the_disk_holds_only_ciphertext(server):
    data = body_of(3 * PACKAGE + 1234)
    r = await server.request("PUT", "/bucket/k", data, headers=SSE_S3)
    assert r.code == 200, r.body
    assert header(r, "x-amz-server-side-encryption") == "AES256"
    assert header(r, "etag") == f'"{hashlib.md5(data).hexdigest()}"'  # S3: SSE-S3 ETag is the plaintext MD5
    (path,) = server.blob_files()
    assert os.path.getsize(path) == sealed_size(len(data))
    no_plaintext_on_disk(server)

    r = await server.request("GET", "/bucket/k")
    assert r.code == 200 and r.body == data
    assert header(r, "x-amz-server-side-encryption") == "AES256"
    r = await server.request("HEAD", "/bucket/k")
    assert r.code == 200 and header(r, "content-length") == str(len(data))
    assert header(r, "x-amz-server-side-encryption") == "AES256"
    for start, end in [(0, 0), (PACKAGE - 1, PACKAGE), (PACKAGE + 5, 2 * PACKAGE + 9), (len(data) - 3, len(data) - 1)]:
        r = await server.request("GET", "/bucket/k", headers={"Range": f"bytes={start}-{end}"})
        assert r.code == 206 and r.body == data[start : end + 1], (start, end)
    r = await server.request("GET", "/bucket/k", headers={"Range": "bytes=-10"})
    assert r.body == data[-10:]
    r = await server.request("GET", "/bucket/k", query="partNumber=1")
    assert r.code == 206 and r.body == data


@pytest_twisted.ensureDeferred
async def test_sse_s3_empty_object(server):
    r = await server.request("PUT", "/bucket/empty", b"", headers=SSE_S3)
    assert r.code == 200
    r = await server.request("GET", "/bucket/empty")
    assert r.code == 200 and r.body == b"" and header(r, "x-amz-server-side-encryption") == "AES256"


@pytest_twisted.ensureDeferred
async def test_plain_objects_stay_plain_and_say_nothing(server):
    r = await server.request("PUT", "/bucket/plain", b"hello")
    assert header(r, "x-amz-server-side-encryption") is None
    r = await server.request("GET", "/bucket/plain")
    assert r.body == b"hello" and header(r, "x-amz-server-side-encryption") is None


@pytest_twisted.ensureDeferred
async def test_dsse_stays_not_implemented_and_unknown_methods_are_invalid(server):
    r = await server.request("PUT", "/bucket/k", b"x", headers={"x-amz-server-side-encryption": "aws:kms:dsse"})
    assert r.code == 501 and error_code(r) == "NotImplemented"
    r = await server.request("PUT", "/bucket/k", b"x", headers={"x-amz-server-side-encryption": "rot13"})
    assert r.code == 400 and error_code(r) == "InvalidArgument"
    # An operation that does not encrypt yet must not accept the header and ignore it.
    r = await server.request("GET", "/bucket/k", headers=SSE_S3)
    assert r.code == 501
    assert server.blob_files() == []


@pytest_twisted.ensureDeferred
async def test_sse_s3_multipart_each_part_its_own_sealed_blob(server):
    path = "/bucket/mp"
    r = await server.request("POST", path, query="uploads=", headers=SSE_S3)
    assert r.code == 200 and header(r, "x-amz-server-side-encryption") == "AES256"
    (upload,) = xml_values(r.body, "UploadId")
    bodies = [body_of(5 * MIB), body_of(5 * MIB)[::-1], body_of(PACKAGE + 7)]
    etags = []
    for n, b in enumerate(bodies, 1):
        r = await server.request("PUT", path, b, query=f"partNumber={n}&uploadId={upload}")
        assert r.code == 200, r.body
        assert header(r, "x-amz-server-side-encryption") == "AES256"
        etags.append(header(r, "etag"))
    done = complete_body(zip([1, 2, 3], etags, strict=True))
    r = await server.request("POST", path, done, query=f"uploadId={upload}")
    assert r.code == 200, r.body
    assert header(r, "x-amz-server-side-encryption") == "AES256"
    whole = b"".join(bodies)
    r = await server.request("GET", path)
    assert r.body == whole and header(r, "x-amz-server-side-encryption") == "AES256"
    start, end = 5 * MIB - 100, 10 * MIB + 100  # across all three parts
    r = await server.request("GET", path, headers={"Range": f"bytes={start}-{end}"})
    assert r.body == whole[start : end + 1]
    r = await server.request("GET", path, query="partNumber=2")
    assert r.body == bodies[1]
    assert len(server.blob_files()) == 3
    no_plaintext_on_disk(server)


@pytest_twisted.ensureDeferred
async def test_copy_between_encrypted_and_plain(server):
    data = body_of(2 * PACKAGE + 17)
    await server.request("PUT", "/bucket/enc", data, headers=SSE_S3)
    await server.request("PUT", "/bucket/plain", data)
    # encrypted source -> plain target (no header), plain -> encrypted, encrypted -> encrypted
    r = await server.request("PUT", "/other/a", headers={"x-amz-copy-source": "/bucket/enc"})
    assert r.code == 200 and header(r, "x-amz-server-side-encryption") is None
    r = await server.request("PUT", "/other/b", headers={"x-amz-copy-source": "/bucket/plain", **SSE_S3})
    assert r.code == 200 and header(r, "x-amz-server-side-encryption") == "AES256"
    r = await server.request("PUT", "/other/c", headers={"x-amz-copy-source": "/bucket/enc", **SSE_S3})
    assert r.code == 200
    for key, encrypted in (("a", False), ("b", True), ("c", True)):
        r = await server.request("GET", f"/other/{key}")
        assert r.body == data
        assert (header(r, "x-amz-server-side-encryption") == "AES256") is encrypted
    # Encrypting an object in place is a change S3 allows as a copy onto itself.
    r = await server.request("PUT", "/bucket/plain", headers={"x-amz-copy-source": "/bucket/plain", **SSE_S3})
    assert r.code == 200, r.body
    r = await server.request("GET", "/bucket/plain")
    assert r.body == data and header(r, "x-amz-server-side-encryption") == "AES256"
    # UploadPartCopy from an encrypted source into an encrypted upload
    r = await server.request("POST", "/other/mp", query="uploads=", headers=SSE_S3)
    (upload,) = xml_values(r.body, "UploadId")
    r = await server.request(
        "PUT",
        "/other/mp",
        query=f"partNumber=1&uploadId={upload}",
        headers={"x-amz-copy-source": "/bucket/enc", "x-amz-copy-source-range": "bytes=10-99999"},
    )
    assert r.code == 200, r.body
    (etag,) = xml_values(r.body, "ETag")
    r = await server.request("POST", "/other/mp", complete_body([(1, etag)]), query=f"uploadId={upload}")
    assert r.code == 200, r.body
    r = await server.request("GET", "/other/mp")
    assert r.body == data[10:100000]


@pytest_twisted.ensureDeferred
async def test_a_flipped_byte_fails_the_read_never_returns_other_bytes(server):
    data = body_of(4 * PACKAGE)
    await server.request("PUT", "/bucket/k", data, headers=SSE_S3)
    (path,) = server.blob_files()
    with open(path, "r+b") as f:
        f.seek(2 * (PACKAGE + 16) + 100)  # inside the third package
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 1]))
    # A range inside the untouched first package still reads.
    r = await server.request("GET", "/bucket/k", headers={"Range": "bytes=0-99"})
    assert r.body == data[:100]
    # A range inside the flipped package fails before any header.
    r = await server.request("GET", "/bucket/k", headers={"Range": f"bytes={2 * PACKAGE}-{2 * PACKAGE + 10}"})
    assert r.code == 500
    # A whole read has sent its headers by then: the connection is cut short, never wrong bytes.
    try:
        r = await server.request("GET", "/bucket/k")
    except Exception:
        pass  # the connection was cut: treq says the response was incomplete
    else:
        assert r.code != 200 or (len(r.body) < len(data) and data.startswith(r.body))


@pytest_twisted.ensureDeferred
async def test_sse_c_put_get_head_with_the_key_only(server):
    data = body_of(PACKAGE + 99)
    r = await server.request("PUT", "/bucket/c", data, headers=customer(KEY_A))
    assert r.code == 200, r.body
    assert header(r, "x-amz-server-side-encryption-customer-algorithm") == "AES256"
    assert (
        header(r, "x-amz-server-side-encryption-customer-key-md5")
        == customer(KEY_A)["x-amz-server-side-encryption-customer-key-MD5"]
    )
    etag = header(r, "etag")
    assert etag != f'"{hashlib.md5(data).hexdigest()}"'  # S3: not the plaintext MD5 for SSE-C
    no_plaintext_on_disk(server)
    r = await server.request("GET", "/bucket/c", headers=customer(KEY_A))
    assert r.code == 200 and r.body == data and header(r, "etag") == etag
    r = await server.request("GET", "/bucket/c", headers={"Range": "bytes=5-70000", **customer(KEY_A)})
    assert r.body == data[5:70001]
    r = await server.request("HEAD", "/bucket/c", headers=customer(KEY_A))
    assert r.code == 200 and header(r, "x-amz-server-side-encryption-customer-algorithm") == "AES256"
    # Missing key: 400; wrong key: 403 (GET and HEAD alike, as S3 answers).
    r = await server.request("GET", "/bucket/c")
    assert (r.code, error_code(r)) == (400, "InvalidRequest")
    r = await server.request("HEAD", "/bucket/c")
    assert r.code == 400
    r = await server.request("GET", "/bucket/c", headers=customer(KEY_B))
    assert (r.code, error_code(r)) == (403, "AccessDenied")
    r = await server.request("HEAD", "/bucket/c", headers=customer(KEY_B))
    assert r.code == 403
    # A key offered for an object that has none is a mistake too.
    await server.request("PUT", "/bucket/plain", b"clear")
    r = await server.request("GET", "/bucket/plain", headers=customer(KEY_A))
    assert (r.code, error_code(r)) == (400, "InvalidRequest")


@pytest_twisted.ensureDeferred
async def test_sse_c_bad_headers_are_s3s_400s(server):
    good = customer(KEY_A)
    key_header = "x-amz-server-side-encryption-customer-key"
    md5 = "x-amz-server-side-encryption-customer-key-MD5"
    cases = [
        ({**good, md5: customer(KEY_B)[md5]}, "InvalidArgument"),
        ({k: v for k, v in good.items() if k != md5}, "InvalidRequest"),
        ({**good, "x-amz-server-side-encryption-customer-algorithm": "DES"}, "InvalidEncryptionAlgorithmError"),
        ({**good, "x-amz-server-side-encryption-customer-key": base64.b64encode(b"short").decode()}, "InvalidArgument"),
        # Not base64: a character outside the alphabet, data after the padding, a key in Latin-1.
        ({**good, "x-amz-server-side-encryption-customer-key": "!" + good[key_header][1:]}, "InvalidArgument"),
        ({**good, "x-amz-server-side-encryption-customer-key": good[key_header] + "AAAA"}, "InvalidArgument"),
        ({**good, "x-amz-server-side-encryption-customer-key": "é" + good[key_header][1:]}, "InvalidArgument"),
        ({**good, **SSE_S3}, "InvalidArgument"),
    ]
    for headers, code in cases:
        r = await server.request("PUT", "/bucket/c", b"x", headers=headers)
        assert (r.code, error_code(r)) == (400, code), (headers, r.body)
    assert server.blob_files() == []


@pytest_twisted.ensureDeferred
async def test_sse_c_over_plain_http_is_refused_unless_allowed(tmp_path):
    strict = Server(str(tmp_path), sse_c_plain_http=False)
    await strict.start("bucket")
    try:
        r = await strict.request("PUT", "/bucket/c", b"x", headers=customer(KEY_A))
        assert (r.code, error_code(r)) == (400, "InvalidRequest")
        assert b"secure connection" in r.body
        assert (await strict.request("PUT", "/bucket/s", b"x", headers=SSE_S3)).code == 200
    finally:
        await strict.stop()


@pytest_twisted.ensureDeferred
async def test_sse_c_copy_and_multipart(server):
    data = body_of(2 * PACKAGE + 3)
    await server.request("PUT", "/bucket/c", data, headers=customer(KEY_A))
    source_a = customer(KEY_A, "x-amz-copy-source-server-side-encryption-customer-")
    source_b = customer(KEY_B, "x-amz-copy-source-server-side-encryption-customer-")
    r = await server.request("PUT", "/other/x", headers={"x-amz-copy-source": "/bucket/c"})
    assert r.code == 400
    r = await server.request("PUT", "/other/x", headers={"x-amz-copy-source": "/bucket/c", **source_b})
    assert r.code == 403
    # SSE-C source -> SSE-C target under another key, -> SSE-S3, -> plain
    r = await server.request(
        "PUT", "/other/x", headers={"x-amz-copy-source": "/bucket/c", **source_a, **customer(KEY_B)}
    )
    assert r.code == 200, r.body
    assert header(r, "x-amz-server-side-encryption-customer-algorithm") == "AES256"
    r = await server.request("GET", "/other/x", headers=customer(KEY_B))
    assert r.body == data
    r = await server.request("PUT", "/other/y", headers={"x-amz-copy-source": "/bucket/c", **source_a, **SSE_S3})
    assert r.code == 200
    assert (await server.request("GET", "/other/y")).body == data
    # Multipart under one customer key: every part must bring it.
    r = await server.request("POST", "/other/mp", query="uploads=", headers=customer(KEY_A))
    assert r.code == 200 and header(r, "x-amz-server-side-encryption-customer-algorithm") == "AES256"
    (upload,) = xml_values(r.body, "UploadId")
    part = body_of(5 * MIB)
    r = await server.request("PUT", "/other/mp", part, query=f"partNumber=1&uploadId={upload}")
    assert r.code == 400
    r = await server.request("PUT", "/other/mp", part, query=f"partNumber=1&uploadId={upload}", headers=customer(KEY_B))
    assert r.code == 403
    r = await server.request("PUT", "/other/mp", part, query=f"partNumber=1&uploadId={upload}", headers=customer(KEY_A))
    assert r.code == 200, r.body
    e1 = header(r, "etag")
    r = await server.request(
        "PUT",
        "/other/mp",
        query=f"partNumber=2&uploadId={upload}",
        headers={"x-amz-copy-source": "/bucket/c", **source_a, **customer(KEY_A)},
    )
    assert r.code == 200, r.body
    (e2,) = xml_values(r.body, "ETag")
    done = complete_body([(1, e1), (2, e2)])
    r = await server.request("POST", "/other/mp", done, query=f"uploadId={upload}", headers=customer(KEY_B))
    assert (r.code, error_code(r)) == (403, "AccessDenied")  # a key sent with the completion must be the upload's
    r = await server.request("POST", "/other/mp", done, query=f"uploadId={upload}", headers=customer(KEY_A))
    assert r.code == 200, r.body
    assert header(r, "x-amz-server-side-encryption-customer-algorithm") == "AES256"
    r = await server.request("GET", "/other/mp", headers=customer(KEY_A))
    assert r.body == part + data
    assert (await server.request("GET", "/other/mp", headers=customer(KEY_B))).code == 403
    no_plaintext_on_disk(server)


@pytest_twisted.ensureDeferred
async def test_a_data_directory_from_before_encryption_still_works(tmp_path):
    key = os.urandom(32)
    old = Server(str(tmp_path), master_key=key)
    await old.start("bucket")
    await old.request("PUT", "/bucket/plain", b"written before")
    r = await old.request("POST", "/bucket/mp", query="uploads=")
    (upload,) = xml_values(r.body, "UploadId")
    r = await old.request("PUT", "/bucket/mp", body_of(5 * MIB), query=f"partNumber=1&uploadId={upload}")
    e1 = header(r, "etag")
    await old.stop()
    # Make the catalog what an older version wrote: no sealed_key column, no sealing in the JSON.
    db = sqlite3.connect(os.path.join(str(tmp_path), "catalog.sqlite3"))
    with db:
        db.execute("ALTER TABLE parts DROP COLUMN sealed_key")
        db.execute("UPDATE artifacts SET metadata = json_remove(metadata, '$.sealing')")
        db.execute("UPDATE uploads SET extra = json_remove(extra, '$.sealing')")
    db.close()

    new = Server(str(tmp_path), master_key=key)
    await new.start()
    try:
        r = await new.request("GET", "/bucket/plain")
        assert r.body == b"written before" and header(r, "x-amz-server-side-encryption") is None
        r = await new.request("PUT", "/bucket/mp", b"tail", query=f"partNumber=2&uploadId={upload}")
        e2 = header(r, "etag")
        r = await new.request("POST", "/bucket/mp", complete_body([(1, e1), (2, e2)]), query=f"uploadId={upload}")
        assert r.code == 200, r.body
        assert (await new.request("GET", "/bucket/mp")).body == body_of(5 * MIB) + b"tail"
        assert (await new.request("PUT", "/bucket/enc", b"new", headers=SSE_S3)).code == 200
        assert (await new.request("GET", "/bucket/enc")).body == b"new"
    finally:
        await new.stop()


def encryption_config(algorithm: str, bucket_key: str | None = None) -> bytes:
    key = f"<BucketKeyEnabled>{bucket_key}</BucketKeyEnabled>" if bucket_key else ""
    return (
        '<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule>'
        f"<ApplyServerSideEncryptionByDefault><SSEAlgorithm>{algorithm}</SSEAlgorithm>"
        f"</ApplyServerSideEncryptionByDefault>{key}</Rule></ServerSideEncryptionConfiguration>"
    ).encode()


@pytest_twisted.ensureDeferred
async def test_bucket_default_encryption_sse_s3(server):
    r = await server.request("GET", "/bucket", query="encryption=")
    assert (r.code, error_code(r)) == (404, "ServerSideEncryptionConfigurationNotFoundError")
    r = await server.request("PUT", "/bucket", encryption_config("aws:kms:dsse"), query="encryption=")
    assert r.code == 501
    r = await server.request("PUT", "/bucket", encryption_config("DES"), query="encryption=")
    assert (r.code, error_code(r)) == (400, "MalformedXML")
    r = await server.request("PUT", "/bucket", encryption_config("AES256", "false"), query="encryption=")
    assert r.code == 200, r.body
    r = await server.request("GET", "/bucket", query="encryption=")
    assert r.code == 200 and xml_values(r.body, "SSEAlgorithm") == ["AES256"]

    data = body_of(PACKAGE + 1)
    r = await server.request("PUT", "/bucket/by-default", data)
    assert header(r, "x-amz-server-side-encryption") == "AES256"
    r = await server.request("POST", "/bucket/mp", query="uploads=")
    assert header(r, "x-amz-server-side-encryption") == "AES256"
    await server.request("PUT", "/other/plain", data)
    r = await server.request("PUT", "/bucket/copied", headers={"x-amz-copy-source": "/other/plain"})
    assert r.code == 200 and header(r, "x-amz-server-side-encryption") == "AES256"
    # A request's own SSE-C key wins over the default.
    r = await server.request("PUT", "/bucket/own-key", data, headers=customer(KEY_A))
    assert header(r, "x-amz-server-side-encryption") is None
    assert header(r, "x-amz-server-side-encryption-customer-algorithm") == "AES256"
    for key in ("by-default", "copied"):
        r = await server.request("GET", f"/bucket/{key}")
        assert r.body == data and header(r, "x-amz-server-side-encryption") == "AES256"
    no_plaintext_on_disk_except(server, {"other"})

    r = await server.request("DELETE", "/bucket", query="encryption=")
    assert r.code == 204
    r = await server.request("PUT", "/bucket/after", b"plain again")
    assert header(r, "x-amz-server-side-encryption") is None


def no_plaintext_on_disk_except(server: Server, containers: set[str]) -> None:
    """Blob files of every container but those named hold no plaintext (ids from the catalog)."""
    db = sqlite3.connect(os.path.join(server.data, "catalog.sqlite3"))
    try:
        skip = {str(row[0]) for row in db.execute("SELECT id, name FROM containers") if row[1] in containers}
    finally:
        db.close()
    blobs = os.path.join(server.data, "blobs")
    for path in server.blob_files():
        if os.path.relpath(path, blobs).split(os.sep)[0] in skip:
            continue
        with open(path, "rb") as f:
            assert MARKER not in f.read(), path


@pytest_twisted.ensureDeferred
async def test_post_object_follows_the_bucket_default(server):
    r = await server.request("PUT", "/bucket", encryption_config("AES256"), query="encryption=")
    assert r.code == 200
    fields = v4_fields([{"bucket": "bucket"}, ["starts-with", "$key", ""]])
    fields["key"] = "posted"
    r = await treq.post(
        server.url + "/bucket",
        data=form(fields, body_of(1000)),
        headers={"Content-Type": [f"multipart/form-data; boundary={BOUNDARY}"]},
        persistent=False,
    )
    await r.content()
    assert r.code in (200, 204), r.code
    r = await server.request("GET", "/bucket/posted")
    assert r.body == body_of(1000) and header(r, "x-amz-server-side-encryption") == "AES256"
    no_plaintext_on_disk(server)


@pytest_twisted.ensureDeferred
async def test_migration_moves_ciphertext_whole(tmp_path):
    cold = LocalDriver(str(tmp_path / "cold"), reactor)
    s = Server(str(tmp_path / "hot"), placements={"cold": cold})
    await s.start("bucket")
    try:
        single = body_of(3 * PACKAGE + 5)
        await s.request("PUT", "/bucket/single", single, headers=SSE_S3)
        await s.request("PUT", "/bucket/c", single, headers=customer(KEY_A))
        r = await s.request("POST", "/bucket/mp", query="uploads=", headers=SSE_S3)
        (upload,) = xml_values(r.body, "UploadId")
        parts = [body_of(5 * MIB), body_of(PACKAGE + 3)]
        etags = []
        for n, b in enumerate(parts, 1):
            r = await s.request("PUT", "/bucket/mp", b, query=f"partNumber={n}&uploadId={upload}")
            etags.append(header(r, "etag"))
        tenant = (await s.catalog.credential("TESTACCESSKEY"))[1]
        container = await s.catalog.container(tenant.id, "bucket")
        report = await migrate(s.engine, container, "cold")
        assert report.artifacts_moved == 2 and report.parts_moved == 2
        await s.sweep()
        assert s.blob_files() == []  # nothing left on the old placement
        r = await s.request(
            "POST", "/bucket/mp", complete_body(zip([1, 2], etags, strict=True)), query=f"uploadId={upload}"
        )
        assert r.code == 200, r.body
        assert (await s.request("GET", "/bucket/single")).body == single
        assert (await s.request("GET", "/bucket/c", headers=customer(KEY_A))).body == single
        r = await s.request("GET", "/bucket/mp", headers={"Range": f"bytes={5 * MIB - 9}-{5 * MIB + 9}"})
        assert r.body == b"".join(parts)[5 * MIB - 9 : 5 * MIB + 10]
        for dirpath, _dirs, files in os.walk(str(tmp_path / "cold")):
            for name in files:
                with open(os.path.join(dirpath, name), "rb") as f:
                    assert MARKER not in f.read()
    finally:
        await s.stop()
