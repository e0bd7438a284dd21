"""Put/Get/DeleteBucketLifecycleConfiguration and x-amz-expiration, in process."""

from __future__ import annotations

import base64
import hashlib
from email.utils import parsedate_to_datetime

import pytest_twisted

from tests.placed import server_with_placements
from tests.s3helpers import Server, error_code

CONFIG = b"""<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Rule><ID>logs</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status>
<Expiration><Days>3</Days></Expiration>
<Transition><Days>1</Days><StorageClass>cold</StorageClass></Transition></Rule>
<Rule><ID>uploads</ID><Filter/><Status>Enabled</Status>
<AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>
</LifecycleConfiguration>"""


def md5_header(body: bytes) -> dict[str, str]:
    return {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}


server = server_with_placements("cold")


@pytest_twisted.ensureDeferred
async def test_put_get_delete(server: Server) -> None:
    r = await server.request("GET", "/bucket", query="lifecycle")
    assert (r.code, error_code(r)) == (404, "NoSuchLifecycleConfiguration")
    assert b"<BucketName>bucket</BucketName>" in r.body
    r = await server.request("PUT", "/bucket", CONFIG, query="lifecycle", headers=md5_header(CONFIG))
    assert r.code == 200, r.body
    assert r.headers.getRawHeaders("x-amz-transition-default-minimum-object-size") == ["all_storage_classes_128K"]
    r = await server.request("GET", "/bucket", query="lifecycle")
    assert r.code == 200
    assert b"<ID>logs</ID>" in r.body and b"<StorageClass>cold</StorageClass>" in r.body
    assert b"<DaysAfterInitiation>2</DaysAfterInitiation>" in r.body
    r = await server.request("DELETE", "/bucket", query="lifecycle")
    assert r.code == 204
    r = await server.request("GET", "/bucket", query="lifecycle")
    assert (r.code, error_code(r)) == (404, "NoSuchLifecycleConfiguration")


@pytest_twisted.ensureDeferred
async def test_put_needs_an_integrity_header_and_valid_rules(server: Server) -> None:
    r = await server.request("PUT", "/bucket", CONFIG, query="lifecycle")
    assert (r.code, error_code(r)) == (400, "InvalidRequest")
    bad = CONFIG.replace(b"<Days>3</Days>", b"<Days>0</Days>")
    r = await server.request("PUT", "/bucket", bad, query="lifecycle", headers=md5_header(bad))
    assert (r.code, error_code(r)) == (400, "InvalidArgument")
    unknown = CONFIG.replace(b">cold<", b">GLACIER<")
    r = await server.request("PUT", "/bucket", unknown, query="lifecycle", headers=md5_header(unknown))
    assert (r.code, error_code(r)) == (400, "InvalidStorageClass")
    r = await server.request("PUT", "/bucket", b"<nope", query="lifecycle", headers=md5_header(b"<nope"))
    assert (r.code, error_code(r)) == (400, "MalformedXML")
    r = await server.request("GET", "/bucket", query="lifecycle")
    assert r.code == 404  # nothing was stored
    r = await server.request("PUT", "/nobucket", CONFIG, query="lifecycle", headers=md5_header(CONFIG))
    assert (r.code, error_code(r)) == (404, "NoSuchBucket")


@pytest_twisted.ensureDeferred
async def test_expiration_header_on_put_get_and_head(server: Server) -> None:
    r = await server.request("PUT", "/bucket", CONFIG, query="lifecycle", headers=md5_header(CONFIG))
    assert r.code == 200
    r = await server.request("PUT", "/bucket/logs/a", b"data")
    (header,) = r.headers.getRawHeaders("x-amz-expiration")
    assert header.endswith('rule-id="logs"')
    expiry = header.split('"')[1]
    when = parsedate_to_datetime(expiry)
    assert (when.hour, when.minute, when.second) == (0, 0, 0)  # rounded up to midnight UTC
    for method in ("GET", "HEAD"):
        r = await server.request(method, "/bucket/logs/a")
        assert r.headers.getRawHeaders("x-amz-expiration") == [header]
    r = await server.request("PUT", "/bucket/other", b"data")
    assert r.headers.getRawHeaders("x-amz-expiration") is None
    r = await server.request("DELETE", "/bucket", query="lifecycle")
    r = await server.request("HEAD", "/bucket/logs/a")
    assert r.headers.getRawHeaders("x-amz-expiration") is None  # the cache forgets on delete


@pytest_twisted.ensureDeferred
async def test_expiration_header_on_copy_and_complete(server: Server) -> None:
    r = await server.request("PUT", "/bucket", CONFIG, query="lifecycle", headers=md5_header(CONFIG))
    assert r.code == 200
    assert (await server.request("PUT", "/bucket/src", b"data")).code == 200
    r = await server.request("PUT", "/bucket/logs/copy", headers={"x-amz-copy-source": "/bucket/src"})
    assert r.code == 200 and r.headers.getRawHeaders("x-amz-expiration")[0].endswith('rule-id="logs"')
    r = await server.request("POST", "/bucket/logs/big", query="uploads")
    upload = r.body.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
    r = await server.request("PUT", "/bucket/logs/big", b"part", query=f"partNumber=1&uploadId={upload}")
    etag = r.headers.getRawHeaders("ETag")[0]
    done = (
        f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    ).encode()
    r = await server.request("POST", "/bucket/logs/big", done, query=f"uploadId={upload}")
    assert r.code == 200, r.body
    assert r.headers.getRawHeaders("x-amz-expiration")[0].endswith('rule-id="logs"')
