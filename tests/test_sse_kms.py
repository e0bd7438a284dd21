"""SSE-KMS through the S3 API: named keys kept by Vaultaire, disabled keys, contexts, bucket defaults.

Also the other write path that takes encryption headers (POST Object form fields),
SSE-C part ETags, and what a tampered blob makes the server say.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest_twisted
import treq
from twisted.internet import threads

from tests.logwatch import watching
from tests.postform import BOUNDARY, form, v4_fields
from tests.s3helpers import Server, complete_body, error_code, xml_values
from tests.test_sse import KEY_A, MARKER, body_of, customer, header, no_plaintext_on_disk
from vaultaire.encryption.packages import PACKAGE

MIB = 2**20
SSE = "x-amz-server-side-encryption"
KMS_ID = "x-amz-server-side-encryption-aws-kms-key-id"
CONTEXT = "x-amz-server-side-encryption-context"
BUCKET_KEY = "x-amz-server-side-encryption-bucket-key-enabled"


def kms(key: str | None = None, **extra: str) -> dict[str, str]:
    headers = {SSE: "aws:kms", **extra}
    if key is not None:
        headers[KMS_ID] = key
    return headers


@pytest_twisted.async_yield_fixture
async def server(tmp_path):
    s = Server(str(tmp_path))
    await s.start("bucket", "other")
    yield s
    await s.stop()


async def make_key(server: Server, name: str) -> str:
    """A new KMS key, as ``vaultaire-admin kms create`` makes it; its ARN."""
    source = server.engine.sealed.kms
    key = await source.create(name)
    return source.arn(key)


@pytest_twisted.ensureDeferred
async def test_kms_put_get_head_range_under_a_named_key(server):
    arn = await make_key(server, "app")
    key_id = arn.rsplit("/", 1)[1]
    data = body_of(3 * PACKAGE + 77)
    # Every way S3 lets a request name a key: id, ARN, alias/NAME, and the bare name.
    for n, ref in enumerate([key_id, arn, "alias/app", "app"]):
        r = await server.request("PUT", f"/bucket/k{n}", data, headers=kms(ref))
        assert r.code == 200, r.body
        assert header(r, SSE) == "aws:kms" and header(r, KMS_ID) == arn
        # S3: an SSE-KMS object's ETag is not the MD5 of its plaintext.
        assert header(r, "etag") != f'"{hashlib.md5(data).hexdigest()}"'
    no_plaintext_on_disk(server)
    r = await server.request("GET", "/bucket/k3")
    assert r.code == 200 and r.body == data
    assert header(r, SSE) == "aws:kms" and header(r, KMS_ID) == arn
    r = await server.request("HEAD", "/bucket/k0")
    assert r.code == 200 and header(r, KMS_ID) == arn and header(r, "content-length") == str(len(data))
    r = await server.request("GET", "/bucket/k1", headers={"Range": f"bytes={PACKAGE - 3}-{2 * PACKAGE + 3}"})
    assert r.code == 206 and r.body == data[PACKAGE - 3 : 2 * PACKAGE + 4]


@pytest_twisted.ensureDeferred
async def test_kms_without_a_key_id_uses_the_deployments_aws_s3_key(server):
    r = await server.request("PUT", "/bucket/k", b"default key", headers=kms())
    assert r.code == 200, r.body
    arn = header(r, KMS_ID)
    assert arn and arn.startswith("arn:aws:kms:")
    r = await server.request("PUT", "/bucket/k2", b"again", headers=kms())
    assert header(r, KMS_ID) == arn  # one default key, made once
    (key,) = await server.catalog.kms_keys()
    assert key.name == "aws/s3"
    assert (await server.request("GET", "/bucket/k")).body == b"default key"


@pytest_twisted.ensureDeferred
async def test_kms_errors_are_s3s(server):
    r = await server.request("PUT", "/bucket/k", b"x", headers=kms("no-such-key"))
    assert (r.code, error_code(r)) == (400, "KMS.NotFoundException"), r.body
    r = await server.request("PUT", "/bucket/k", b"x", headers={KMS_ID: "app"})
    assert (r.code, error_code(r)) == (400, "InvalidArgument")
    r = await server.request("PUT", "/bucket/k", b"x", headers={CONTEXT: "e30="})
    assert (r.code, error_code(r)) == (400, "InvalidArgument")
    r = await server.request("PUT", "/bucket/k", b"x", headers=kms(**{CONTEXT: "not base64 json"}))
    assert (r.code, error_code(r)) == (400, "InvalidArgument")
    r = await server.request("PUT", "/bucket/k", b"x", headers=kms(**{CONTEXT: _context({"aws:x": "y"})}))
    assert (r.code, error_code(r)) == (400, "InvalidArgument")
    r = await server.request("PUT", "/bucket/k", b"x", headers={**kms(), **customer(KEY_A)})
    assert (r.code, error_code(r)) == (400, "InvalidArgument")
    # A read that sends SSE headers is refused, as before: nothing here honours them on a GET.
    await server.request("PUT", "/bucket/k", b"x", headers=kms())
    r = await server.request("GET", "/bucket/k", headers=kms())
    assert r.code == 501
    # An SSE-C key is not what opens an SSE-KMS object.
    r = await server.request("GET", "/bucket/k", headers=customer(KEY_A))
    assert (r.code, error_code(r)) == (400, "InvalidRequest")
    assert (await server.request("HEAD", "/bucket/nothing")).code == 404


def _context(document: dict[str, str]) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


@pytest_twisted.ensureDeferred
async def test_a_disabled_key_refuses_reads_and_writes_until_enabled_again(server):
    arn = await make_key(server, "app")
    data = body_of(2 * PACKAGE)
    await server.request("PUT", "/bucket/k", data, headers=kms("app"))
    await server.catalog.set_kms_key_enabled("app", False)

    r = await server.request("GET", "/bucket/k")
    assert (r.code, error_code(r)) == (400, "KMS.DisabledException"), r.body
    assert arn in r.body.decode()
    assert MARKER not in r.body
    r = await server.request("PUT", "/bucket/k2", b"new", headers=kms("app"))
    assert (r.code, error_code(r)) == (400, "KMS.DisabledException")
    r = await server.request("PUT", "/other/copy", headers={"x-amz-copy-source": "/bucket/k"})
    assert (r.code, error_code(r)) == (400, "KMS.DisabledException")
    # HEAD decrypts nothing: S3 answers it with the key disabled too.
    assert (await server.request("HEAD", "/bucket/k")).code == 200

    await server.catalog.set_kms_key_enabled("app", True)
    r = await server.request("GET", "/bucket/k")
    assert r.code == 200 and r.body == data


@pytest_twisted.ensureDeferred
async def test_the_context_binds_the_data_keys_and_is_echoed_on_writes(server):
    await make_key(server, "app")
    r = await server.request("PUT", "/bucket/k", b"in context", headers=kms("app", **{CONTEXT: _context({"a": "1"})}))
    assert r.code == 200, r.body
    echoed = json.loads(base64.b64decode(header(r, CONTEXT)))
    assert echoed == {"a": "1", "aws:s3:arn": "arn:aws:s3:::bucket/k"}
    assert (await server.request("GET", "/bucket/k")).body == b"in context"

    # The context is part of what the data key was wrapped with: a stored context changed
    # (by anyone who can write the catalog) no longer opens it.
    def change(artifact):
        from attrs import evolve

        return evolve(artifact, sealing=evolve(artifact.sealing, context=artifact.sealing.context.replace("1", "2")))

    container = await server.catalog.container((await server.catalog.credential("TESTACCESSKEY"))[1].id, "bucket")
    await server.catalog.amend_artifact(container.id, "k", None, change)
    r = await server.request("GET", "/bucket/k")
    assert r.code == 403 and b"in context" not in r.body


@pytest_twisted.ensureDeferred
async def test_kms_multipart_copy_and_bucket_key(server):
    arn = await make_key(server, "app")
    path = "/bucket/mp"
    r = await server.request("POST", path, query="uploads=", headers=kms("app", **{BUCKET_KEY: "true"}))
    assert r.code == 200 and header(r, KMS_ID) == arn and header(r, BUCKET_KEY) == "true"
    (upload,) = xml_values(r.body, "UploadId")
    bodies = [body_of(5 * MIB), body_of(PACKAGE + 7)]
    etags = []
    for n, b in enumerate(bodies, 1):
        r = await server.request("PUT", path, b, query=f"partNumber={n}&uploadId={upload}")
        assert r.code == 200 and header(r, KMS_ID) == arn, r.body
        assert header(r, "etag") != f'"{hashlib.md5(b).hexdigest()}"'
        etags.append(header(r, "etag"))
    r = await server.request("POST", path, complete_body(zip([1, 2], etags, strict=True)), query=f"uploadId={upload}")
    assert r.code == 200 and header(r, KMS_ID) == arn, r.body
    whole = b"".join(bodies)
    r = await server.request("GET", path)
    assert r.body == whole and header(r, BUCKET_KEY) == "true" and header(r, KMS_ID) == arn
    r = await server.request("GET", path, headers={"Range": f"bytes={5 * MIB - 5}-{5 * MIB + 5}"})
    assert r.body == whole[5 * MIB - 5 : 5 * MIB + 6]

    # KMS -> plain, plain -> KMS, KMS -> SSE-S3
    r = await server.request("PUT", "/other/plain", headers={"x-amz-copy-source": path})
    assert r.code == 200 and header(r, SSE) is None
    r = await server.request("PUT", "/bucket/again", headers={"x-amz-copy-source": "/other/plain", **kms("app")})
    assert r.code == 200 and header(r, KMS_ID) == arn
    r = await server.request("PUT", "/bucket/s3", headers={"x-amz-copy-source": "/bucket/again", SSE: "AES256"})
    assert r.code == 200 and header(r, SSE) == "AES256"
    for key in ("again", "s3"):
        assert (await server.request("GET", f"/bucket/{key}")).body == whole
    # A copy onto itself that asks for another key changes the object: allowed.
    other = await make_key(server, "other")
    r = await server.request("PUT", "/bucket/again", headers={"x-amz-copy-source": "/bucket/again", **kms("other")})
    assert r.code == 200 and header(r, KMS_ID) == other


def encryption_config(algorithm: str, key: str = "", bucket_key: str = "") -> bytes:
    kms_key = f"<KMSMasterKeyID>{key}</KMSMasterKeyID>" if key else ""
    enabled = f"<BucketKeyEnabled>{bucket_key}</BucketKeyEnabled>" if bucket_key else ""
    return (
        '<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule>'
        f"<ApplyServerSideEncryptionByDefault><SSEAlgorithm>{algorithm}</SSEAlgorithm>{kms_key}"
        f"</ApplyServerSideEncryptionByDefault>{enabled}</Rule></ServerSideEncryptionConfiguration>"
    ).encode()


@pytest_twisted.ensureDeferred
async def test_bucket_default_encryption_with_kms(server):
    arn = await make_key(server, "team")
    r = await server.request("PUT", "/bucket", encryption_config("AES256", key="team"), query="encryption=")
    assert (r.code, error_code(r)) == (400, "InvalidArgument")
    r = await server.request("PUT", "/bucket", encryption_config("aws:kms", "alias/team", "true"), query="encryption=")
    assert r.code == 200, r.body
    r = await server.request("GET", "/bucket", query="encryption=")
    assert xml_values(r.body, "SSEAlgorithm") == ["aws:kms"]
    assert xml_values(r.body, "KMSMasterKeyID") == ["alias/team"]
    assert xml_values(r.body, "BucketKeyEnabled") == ["true"]

    data = body_of(PACKAGE + 1)
    r = await server.request("PUT", "/bucket/by-default", data)
    assert header(r, SSE) == "aws:kms" and header(r, KMS_ID) == arn and header(r, BUCKET_KEY) == "true"
    r = await server.request("POST", "/bucket/mp", query="uploads=")
    assert header(r, KMS_ID) == arn
    # A request's own choice wins over the default.
    r = await server.request("PUT", "/bucket/own", data, headers={SSE: "AES256"})
    assert header(r, SSE) == "AES256" and header(r, KMS_ID) is None
    assert (await server.request("GET", "/bucket/by-default")).body == data
    no_plaintext_on_disk(server)
    # The default's key disabled: new objects are refused, as S3 refuses them.
    await server.catalog.set_kms_key_enabled("team", False)
    r = await server.request("PUT", "/bucket/later", data)
    assert (r.code, error_code(r)) == (400, "KMS.DisabledException")


async def post(server: Server, fields: dict[str, str], content: bytes) -> treq.response._Response:
    r = await treq.post(
        server.url + "/bucket",
        data=form(fields, content),
        headers={"Content-Type": [f"multipart/form-data; boundary={BOUNDARY}"]},
        persistent=False,
    )
    r.body = await r.content()
    return r


def post_fields(key: str, extra: dict[str, str]) -> dict[str, str]:
    conditions = [{"bucket": "bucket"}, ["starts-with", "$key", ""]] + [{k: v} for k, v in extra.items()]
    fields = v4_fields(conditions)
    fields.update({"key": key, **extra})
    return fields


@pytest_twisted.ensureDeferred
async def test_post_object_form_fields_ask_for_encryption_as_headers_do(server):
    arn = await make_key(server, "forms")
    data = body_of(PACKAGE + 3)
    r = await post(server, post_fields("s3", {SSE: "AES256"}), data)
    assert r.code in (200, 204), r.body
    assert header(r, SSE) == "AES256"
    r = await post(server, post_fields("kms", {SSE: "aws:kms", KMS_ID: "forms"}), data)
    assert r.code in (200, 204), r.body
    assert header(r, KMS_ID) == arn
    sse_c = {k.replace("key-MD5", "key-md5"): v for k, v in customer(KEY_A).items()}
    r = await post(server, post_fields("c", sse_c), data)
    assert r.code in (200, 204), r.body
    assert header(r, "x-amz-server-side-encryption-customer-algorithm") == "AES256"
    no_plaintext_on_disk(server)
    assert (await server.request("GET", "/bucket/s3")).body == data
    assert (await server.request("GET", "/bucket/kms")).body == data
    assert (await server.request("GET", "/bucket/c")).code == 400
    assert (await server.request("GET", "/bucket/c", headers=customer(KEY_A))).body == data
    # Fields S3 refuses are refused here as they are as headers, and nothing is stored.
    r = await post(server, post_fields("bad", {SSE: "rot13"}), data)
    assert (r.code, error_code(r)) == (400, "InvalidArgument")
    r = await post(server, post_fields("bad", {SSE: "aws:kms", KMS_ID: "missing"}), data)
    assert (r.code, error_code(r)) == (400, "KMS.NotFoundException")
    assert (await server.request("HEAD", "/bucket/bad")).code == 404


@pytest_twisted.ensureDeferred
async def test_sse_c_part_etags_are_not_the_plaintext_md5(server):
    path = "/bucket/mp"
    r = await server.request("POST", path, query="uploads=", headers=customer(KEY_A))
    (upload,) = xml_values(r.body, "UploadId")
    part = body_of(5 * MIB)
    r = await server.request("PUT", path, part, query=f"partNumber=1&uploadId={upload}", headers=customer(KEY_A))
    assert r.code == 200, r.body
    etag = header(r, "etag")
    assert etag != f'"{hashlib.md5(part).hexdigest()}"'
    r = await server.request("PUT", "/bucket/src", part, headers=customer(KEY_A))
    r = await server.request(
        "PUT",
        path,
        query=f"partNumber=2&uploadId={upload}",
        headers={
            "x-amz-copy-source": "/bucket/src",
            **customer(KEY_A),
            **customer(KEY_A, "x-amz-copy-source-server-side-encryption-customer-"),
        },
    )
    assert r.code == 200, r.body
    (copied,) = xml_values(r.body, "ETag")
    assert copied != f'"{hashlib.md5(part).hexdigest()}"'
    r = await server.request("GET", path, query=f"uploadId={upload}")
    assert xml_values(r.body, "ETag") == [etag, copied]
    r = await server.request(
        "POST", path, complete_body([(1, etag), (2, copied)]), query=f"uploadId={upload}", headers=customer(KEY_A)
    )
    assert r.code == 200, r.body
    assert (await server.request("GET", path, headers=customer(KEY_A))).body == part + part


@pytest_twisted.ensureDeferred
async def test_a_tampered_blob_is_a_named_error_not_a_traceback(server):
    data = body_of(4 * PACKAGE)
    await server.request("PUT", "/bucket/k", data, headers={SSE: "AES256"})
    (path,) = server.blob_files()
    with open(path, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 1]))
    with watching() as log:
        r = await server.request("GET", "/bucket/k", headers={"Range": "bytes=0-99"})
    assert (r.code, error_code(r)) == (500, "InternalError")
    assert data[:100] not in r.body
    assert not [e for e in log.events if "log_failure" in e], log.text()
    assert "failed its integrity check" in log.text()
    await threads.deferToThread(server.events.flush)
    with open(os.path.join(server.data, "events", "events.jsonl")) as f:
        events = [json.loads(line) for line in f]
    assert events[-1]["operation"] == "GetObject" and events[-1]["error"] == "StoredBlobTampered"


@pytest_twisted.ensureDeferred
async def test_small_encrypted_objects_open_in_one_piece_ranges_and_tampering_included(server):
    # Under 64 KiB the driver hands the sealed bytes over whole and they are opened at once.
    data = body_of(5000)
    await server.request("PUT", "/bucket/small", data, headers={SSE: "AES256"})
    for _ in range(2):  # the second read finds the data key opened already
        r = await server.request("GET", "/bucket/small")
        assert r.code == 200 and r.body == data
    for start, end in [(0, 0), (100, 4999), (4998, 4999)]:
        r = await server.request("GET", "/bucket/small", headers={"Range": f"bytes={start}-{end}"})
        assert r.code == 206 and r.body == data[start : end + 1], (start, end)
    r = await server.request("GET", "/bucket/small", headers={"Range": "bytes=-7"})
    assert r.body == data[-7:]
    (path,) = server.blob_files()
    with open(path, "r+b") as f:
        f.seek(4000)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x80]))
    with watching() as log:
        r = await server.request("GET", "/bucket/small", headers={"Range": "bytes=0-9"})
    assert (r.code, error_code(r)) == (500, "InternalError") and data[:10] not in r.body
    assert not [e for e in log.events if "log_failure" in e], log.text()
