"""Copy, batch delete, conditions, stored headers and versioning reads, in process."""

from __future__ import annotations

import base64
import hashlib
import time
from email.utils import formatdate

import pytest
import pytest_twisted

from tests.s3helpers import ACCESS, Server, error_code, md5_header, xml_values
from vaultaire.model import RequestContext


@pytest_twisted.async_yield_fixture
async def server(tmp_path, upstream):
    s = Server(str(tmp_path), upstream=upstream)
    await s.start("bucket", "other")
    yield s
    await s.stop()


@pytest_twisted.ensureDeferred
async def test_copy_within_and_across_containers(server):
    await server.request("PUT", "/bucket/src key", b"payload", headers={"x-amz-meta-a": "1", "Content-Type": "text/x"})
    r = await server.request("PUT", "/other/dst", headers={"x-amz-copy-source": "/bucket/src%20key"})
    assert r.code == 200, r.body
    assert xml_values(r.body, "ETag") == [f'"{hashlib.md5(b"payload").hexdigest()}"']
    r = await server.request("GET", "/other/dst")
    assert r.body == b"payload"
    assert r.headers.getRawHeaders("x-amz-meta-a") == ["1"] and r.headers.getRawHeaders("content-type") == ["text/x"]
    r = await server.request(
        "PUT",
        "/bucket/copy2",
        headers={"x-amz-copy-source": "bucket/src%20key", "x-amz-metadata-directive": "REPLACE", "x-amz-meta-b": "2"},
    )
    assert r.code == 200
    r = await server.request("HEAD", "/bucket/copy2")
    assert r.headers.getRawHeaders("x-amz-meta-b") == ["2"] and r.headers.getRawHeaders("x-amz-meta-a") is None
    assert len(server.blob_files()) == 3


@pytest_twisted.ensureDeferred
async def test_copy_onto_itself(server):
    await server.request("PUT", "/bucket/k", b"data", headers={"x-amz-meta-v": "1"})
    r = await server.request("PUT", "/bucket/k", headers={"x-amz-copy-source": "/bucket/k"})
    assert (r.code, error_code(r)) == (400, "InvalidRequest")
    r = await server.request(
        "PUT",
        "/bucket/k",
        headers={"x-amz-copy-source": "/bucket/k", "x-amz-metadata-directive": "REPLACE", "x-amz-meta-v": "2"},
    )
    assert r.code == 200
    r = await server.request("GET", "/bucket/k")
    assert r.body == b"data" and r.headers.getRawHeaders("x-amz-meta-v") == ["2"]
    await server.sweep()
    assert len(server.blob_files()) == 1  # the replaced blob was freed


@pytest_twisted.ensureDeferred
async def test_copy_errors_and_source_conditions(server):
    await server.request("PUT", "/bucket/k", b"data")
    etag = '"' + hashlib.md5(b"data").hexdigest() + '"'
    r = await server.request("PUT", "/bucket/c", headers={"x-amz-copy-source": "/bucket/missing"})
    assert (r.code, error_code(r)) == (404, "NoSuchKey")
    r = await server.request("PUT", "/bucket/c", headers={"x-amz-copy-source": "/nobucket/k"})
    assert (r.code, error_code(r)) == (404, "NoSuchBucket")
    r = await server.request("PUT", "/bucket/c", headers={"x-amz-copy-source": "justbucket"})
    assert (r.code, error_code(r)) == (400, "InvalidArgument")
    r = await server.request(
        "PUT", "/bucket/c", headers={"x-amz-copy-source": "/bucket/k", "x-amz-copy-source-if-match": '"nope"'}
    )
    assert (r.code, error_code(r)) == (412, "PreconditionFailed")
    r = await server.request(
        "PUT", "/bucket/c", headers={"x-amz-copy-source": "/bucket/k", "x-amz-copy-source-if-none-match": etag}
    )
    assert (r.code, error_code(r)) == (412, "PreconditionFailed")
    r = await server.request(
        "PUT", "/bucket/c", headers={"x-amz-copy-source": "/bucket/k", "x-amz-copy-source-if-match": etag}
    )
    assert r.code == 200


@pytest_twisted.ensureDeferred
async def test_delete_objects(server):
    for k in ("a", "b", "c"):
        await server.request("PUT", f"/bucket/{k}", b"x")
    body = (
        b"<Delete><Object><Key>a</Key></Object><Object><Key>b</Key><VersionId>null</VersionId></Object>"
        b"<Object><Key>missing</Key></Object><Object><Key>c</Key><VersionId>v123</VersionId></Object></Delete>"
    )
    r = await server.request("POST", "/bucket", body, query="delete=", headers=md5_header(body))
    assert r.code == 200, r.body
    assert xml_values(r.body, "Key") == ["a", "b", "missing", "c"]
    assert xml_values(r.body, "Code") == ["NoSuchVersion"]
    r = await server.request("GET", "/bucket", query="list-type=2")
    assert xml_values(r.body, "Key") == ["c"]
    quiet = b"<Delete><Quiet>true</Quiet><Object><Key>c</Key></Object></Delete>"
    r = await server.request("POST", "/bucket", quiet, query="delete=", headers=md5_header(quiet))
    assert r.code == 200 and b"<Deleted>" not in r.body
    await server.sweep()
    assert server.blob_files() == []


@pytest.mark.parametrize(
    "body,headers,code",
    [
        (b"<Delete><Object><Key>a</Key></Object></Delete>", {}, "InvalidRequest"),
        (
            b"<Delete><Object><Key>a</Key></Object></Delete>",
            {"Content-MD5": base64.b64encode(b"0" * 16).decode()},
            "BadDigest",
        ),
        (b"<Delete><Object></Object></Delete>", None, "MalformedXML"),
        (b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>", None, "MalformedXML"),
        (b'<!DOCTYPE d [<!ENTITY x "y">]><Delete><Object><Key>&x;</Key></Object></Delete>', None, "MalformedXML"),
        (b"<Delete", None, "MalformedXML"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_delete_objects_errors(server, body, headers, code):
    r = await server.request(
        "POST", "/bucket", body, query="delete=", headers=md5_header(body) if headers is None else headers
    )
    assert (r.code, error_code(r)) == (400, code)


@pytest_twisted.ensureDeferred
async def test_conditional_reads(server):
    await server.request("PUT", "/bucket/k", b"data")
    etag = '"' + hashlib.md5(b"data").hexdigest() + '"'
    past, future = formatdate(time.time() - 3600, usegmt=True), formatdate(time.time() + 3600, usegmt=True)
    cases = [
        ({"If-Match": etag}, 200),
        ({"If-Match": '"other"'}, 412),
        ({"If-Match": "*"}, 200),
        ({"If-None-Match": etag}, 304),
        ({"If-None-Match": '"other"'}, 200),
        ({"If-Modified-Since": future}, 304),
        ({"If-Modified-Since": past}, 200),
        ({"If-Unmodified-Since": past}, 412),
        ({"If-Unmodified-Since": future}, 200),
        # S3's precedence: If-Match true wins over If-Unmodified-Since false ...
        ({"If-Match": etag, "If-Unmodified-Since": past}, 200),
        # ... and If-None-Match false wins over If-Modified-Since true.
        ({"If-None-Match": '"other"', "If-Modified-Since": future}, 200),
        ({"If-Modified-Since": "not a date"}, 200),
    ]
    for headers, status in cases:
        for method in ("GET", "HEAD"):
            r = await server.request(method, "/bucket/k", headers=headers)
            assert r.code == status, (method, headers)
            if status == 304:
                assert r.body == b"" and r.headers.getRawHeaders("etag") == [etag]
            if status == 412 and method == "GET":
                assert error_code(r) == "PreconditionFailed"


@pytest_twisted.ensureDeferred
async def test_conditional_writes(server):
    r = await server.request("PUT", "/bucket/once", b"first", headers={"If-None-Match": "*"})
    assert r.code == 200
    r = await server.request("PUT", "/bucket/once", b"second", headers={"If-None-Match": "*"})
    assert (r.code, error_code(r)) == (412, "PreconditionFailed")
    etag = '"' + hashlib.md5(b"first").hexdigest() + '"'
    r = await server.request("PUT", "/bucket/once", b"third", headers={"If-Match": '"stale"'})
    assert (r.code, error_code(r)) == (412, "PreconditionFailed")
    r = await server.request("PUT", "/bucket/once", b"third", headers={"If-Match": etag})
    assert r.code == 200
    r = await server.request("GET", "/bucket/once")
    assert r.body == b"third"
    r = await server.request("PUT", "/bucket/absent", b"x", headers={"If-Match": etag})
    assert (r.code, error_code(r)) == (404, "NoSuchKey")  # as S3 answers If-Match on a missing key
    await server.sweep()
    assert len(server.blob_files()) == 1


@pytest_twisted.ensureDeferred
async def test_concurrent_create_only_writes_have_one_winner(server):
    from twisted.internet.defer import ensureDeferred, gatherResults

    results = await gatherResults(
        [
            ensureDeferred(server.request("PUT", "/bucket/race", f"w{i}".encode(), headers={"If-None-Match": "*"}))
            for i in range(8)
        ]
    )
    codes = sorted(r.code for r in results)
    # one winner; the others fail on arrival (412) or, if they passed that check while the
    # winner was still uploading, at their own commit (409 ConditionalRequestConflict)
    assert codes[0] == 200 and codes.count(200) == 1
    assert set(codes[1:]) <= {409, 412}
    assert len(server.blob_files()) == 1


@pytest_twisted.ensureDeferred
async def test_stored_headers_overrides_and_storage_class(server):
    headers = {
        "Content-Encoding": "gzip",
        "Content-Disposition": 'attachment; filename="a.txt"',
        "Content-Language": "fr",
        "Cache-Control": "max-age=60",
        "Expires": "Thu, 01 Dec 2033 16:00:00 GMT",
        "x-amz-storage-class": "STANDARD_IA",
    }
    r = await server.request("PUT", "/bucket/h", b"x", headers=headers)
    assert r.code == 200 and r.headers.getRawHeaders("x-amz-storage-class") == ["STANDARD_IA"]
    r = await server.request("HEAD", "/bucket/h")
    for name, value in headers.items():
        if name != "Content-Encoding":  # treq decodes content and drops this header
            assert r.headers.getRawHeaders(name) == [value], name
    container = await server.engine.container(
        RequestContext("t", (await server.engine.credential(ACCESS))[1]), "bucket"
    )
    stored = await server.catalog.artifact(container.id, "h")
    assert ("content-encoding", "gzip") in stored.headers
    r = await server.request(
        "GET", "/bucket/h", query="response-content-type=text%2Fplain&response-cache-control=no-cache"
    )
    assert r.headers.getRawHeaders("content-type") == ["text/plain"]
    assert r.headers.getRawHeaders("cache-control") == ["no-cache"]
    # Listings say the class each artifact was stored with, as HEAD does (V1 and V2 alike).
    for query in ("list-type=2", ""):
        r = await server.request("GET", "/bucket", query=query)
        assert xml_values(r.body, "Key") == ["h"] and xml_values(r.body, "StorageClass") == ["STANDARD_IA"], query
    r = await server.request("PUT", "/bucket/h2", b"x", headers={"x-amz-storage-class": "FANCY"})
    assert (r.code, error_code(r)) == (400, "InvalidStorageClass")


@pytest_twisted.ensureDeferred
async def test_versioning_reads_on_unversioned_containers(server):
    for k in ("a", "d/b", "d/c"):
        await server.request("PUT", f"/bucket/{k}", b"x")
    r = await server.request("GET", "/bucket", query="versioning=")
    assert r.code == 200 and b"<VersioningConfiguration" in r.body and b"<Status>" not in r.body
    r = await server.request("GET", "/bucket", query="versions=&delimiter=%2F")
    assert xml_values(r.body, "Key") == ["a"] and xml_values(r.body, "VersionId") == ["null"]
    assert xml_values(r.body, "Prefix") == ["", "d/"]  # the request's (empty) prefix, then the common one
    r = await server.request("GET", "/bucket", query="versions=&max-keys=1")
    assert xml_values(r.body, "IsTruncated") == ["true"] and xml_values(r.body, "NextKeyMarker") == ["a"]
    r = await server.request("GET", "/bucket", query="versions=&key-marker=a")
    assert xml_values(r.body, "Key") == ["d/b", "d/c"]  # strictly after the key marker
    r = await server.request("GET", "/bucket/a", query="versionId=null")
    assert r.code == 200 and r.body == b"x"
    r = await server.request("GET", "/bucket/a", query="versionId=abc")
    assert (r.code, error_code(r)) == (400, "InvalidArgument")
    r = await server.request("DELETE", "/bucket/a", query="versionId=null")
    assert r.code == 204
    assert (await server.request("HEAD", "/bucket/a")).code == 404


@pytest_twisted.ensureDeferred
async def test_virtual_hosted_style_addressing(tmp_path):
    import hmac
    from email.utils import formatdate

    from tests.s3helpers import SECRET

    s = Server(str(tmp_path / "vh"), domains=("s3.test",))
    await s.start()
    try:
        port = s.port.getHost().port
        host = {"Host": f"photos.s3.test:{port}"}
        assert (await s.request("PUT", "/", headers=host)).code == 200
        r = await s.request("PUT", "/a//b c", b"virtual", headers=host)
        assert r.code == 200, r.body
        r = await s.request("GET", "/photos/a//b c")  # the same artifact, path style
        assert r.body == b"virtual"
        r = await s.request("GET", "/", headers=host, query="list-type=2")
        assert xml_values(r.body, "Key") == ["a//b c"] and xml_values(r.body, "Name") == ["photos"]
        # the base domain alone is path style; SigV2 signs /bucket/key for virtual hosts
        r = await s.request("GET", "/photos/a//b c", headers={"Host": f"s3.test:{port}"})
        assert r.body == b"virtual"
        date = formatdate(usegmt=True)
        sig = base64.b64encode(
            hmac.new(SECRET.encode(), f"GET\n\n\n{date}\n/photos/a%2F%2Fb%20c".encode(), "sha1").digest()
        )
        import treq

        r = await treq.get(
            s.url + "/a%2F%2Fb%20c",
            headers={"Host": host["Host"], "Date": date, "Authorization": f"AWS {ACCESS}:{sig.decode()}"},
            persistent=False,
        )
        assert r.code == 200 and await r.content() == b"virtual"
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_conditional_write_that_loses_a_race_is_a_conflict(server):
    from twisted.internet.defer import ensureDeferred

    from vaultaire.api.errors import from_domain
    from vaultaire.engine.pipe import BytePipe
    from vaultaire.errors import ConditionalConflict
    from vaultaire.model import WriteCondition

    _credential, tenant = await server.engine.credential(ACCESS)
    ctx = RequestContext("race", tenant)
    container = await server.engine.container(ctx, "bucket")
    pipe = BytePipe(lambda: None, lambda: None)
    slow = ensureDeferred(
        server.engine.put(ctx, container, "race", pipe, content_type="x", condition=WriteCondition(must_not_exist=True))
    )
    pipe.feed(b"slow writer")
    assert (await server.request("PUT", "/bucket/race", b"fast writer")).code == 200
    pipe.finish()
    with pytest.raises(ConditionalConflict) as raised:
        await slow
    error = from_domain(raised.value, "bucket", "race")
    assert (error.status, error.code) == (409, "ConditionalRequestConflict")
    assert (await server.request("GET", "/bucket/race")).body == b"fast writer"
    assert len(server.blob_files()) == 1
