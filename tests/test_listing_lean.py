"""ListObjects reads only what it shows (catalog/sqlite_listing.py) and renders a page in one
pass (api/listing.py), and says the same as before: keys escaped or URL-encoded, storage
classes, ETags, sizes, dates, pages and common prefixes.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_plus

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st

import vaultaire.catalog.sqlite as sqlite_module
from tests.s3helpers import Server
from vaultaire.api.listing import _url_encode


@pytest_twisted.async_yield_fixture
async def server(tmp_path):
    s = Server(str(tmp_path))
    await s.start("bucket")
    yield s
    await s.stop()


def entries(xml: bytes) -> list[dict[str, str]]:
    text = xml.decode()
    return [
        dict(re.findall(r"<(Key|LastModified|ETag|Size|StorageClass)>(.*?)</\1>", block))
        for block in re.findall(r"<Contents>(.*?)</Contents>", text)
    ]


@pytest_twisted.ensureDeferred
async def test_a_listing_decodes_no_document_and_shows_every_field(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = {
        "plain": ("STANDARD", {}),
        "a&b<c>.txt": ("GLACIER", {}),
        # a metadata value that spells the storage class's JSON must not be taken for it
        "tricky": ("STANDARD_IA", {"x-amz-meta-note": '", "class": "DEEP_ARCHIVE'}),
        "é/ü key+plus": ("REDUCED_REDUNDANCY", {"x-amz-meta-class": "ONEZONE_IA"}),
    }
    for key, (klass, meta) in objects.items():
        r = await server.request("PUT", f"/bucket/{key}", key.encode(), headers={"x-amz-storage-class": klass, **meta})
        assert r.code == 200, r.body

    def whole_artifact(*args: object, **kwargs: object) -> None:
        raise AssertionError("a listing decoded a whole artifact")

    monkeypatch.setattr(sqlite_module, "_artifact", whole_artifact)
    plain = await server.request("GET", "/bucket", query="list-type=2")
    assert plain.code == 200, plain.body
    listed = entries(plain.body)
    assert [e["Key"] for e in listed] == ["a&amp;b&lt;c&gt;.txt", "plain", "tricky", "é/ü key+plus"]
    assert [e["StorageClass"] for e in listed] == ["GLACIER", "STANDARD", "STANDARD_IA", "REDUCED_REDUNDANCY"]
    assert [int(e["Size"]) for e in listed] == [len(k.encode()) for k in sorted(objects)]
    for entry in listed:
        assert re.fullmatch(r'"[0-9a-f]{32}"', entry["ETag"]), entry
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["LastModified"]), entry
    encoded = await server.request("GET", "/bucket", query="list-type=2&encoding-type=url")
    assert [unquote_plus(e["Key"]) for e in entries(encoded.body)] == sorted(objects)
    assert "é%2Fü" not in encoded.body.decode() and "%C3%A9/%C3%BC%20key%2Bplus" in encoded.body.decode()


@pytest_twisted.ensureDeferred
async def test_pages_without_a_delimiter_continue_where_the_last_ended(server: Server) -> None:
    keys = [f"k{i:03d}" for i in range(25)]
    for key in keys:
        assert (await server.request("PUT", f"/bucket/{key}", b"x")).code == 200
    seen: list[str] = []
    query = "list-type=2&max-keys=10"
    for expect_truncated in (True, True, False):
        r = await server.request("GET", "/bucket", query=query)
        body = r.body.decode()
        seen += [e["Key"] for e in entries(r.body)]
        assert f"<IsTruncated>{'true' if expect_truncated else 'false'}</IsTruncated>" in body, body
        if expect_truncated:
            token = re.search(r"<NextContinuationToken>(.*?)</NextContinuationToken>", body)
            assert token is not None
            query = f"list-type=2&max-keys=10&continuation-token={quote(token.group(1), safe='')}"
    assert seen == keys
    exact = await server.request("GET", "/bucket", query="list-type=2&max-keys=25")
    assert "<IsTruncated>false</IsTruncated>" in exact.body.decode() and len(entries(exact.body)) == 25


@given(st.text(max_size=40))
def test_url_encoding_is_quote_with_slash_and_tilde_safe(text: str) -> None:
    assert _url_encode(text) == quote(text, safe="/~")
