"""Bad input gets its S3 client error, never a 500 (issue 21, items 6, 7, 9).

Dates that overflow Python's datetime, metadata names that are not HTTP
tokens, paths that are not UTF-8: each answered 4xx with S3's code, nothing
stored that a later GET could not serve, no traceback or critical log line.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet.threads import deferToThread

from tests.logwatch import watching
from tests.postform import BOUNDARY, form, v4_fields
from tests.s3helpers import ACCESS, REGION, SECRET, Server, error_code, later
from vaultaire import sigv4
from vaultaire.api.redaction import redact_uri

OVERFLOWING_DATES = [
    "Mon, 01 Jan 2026 00:00:00 +99999999999999999999",
    "Fri, 31 Dec 9999 23:59:59 -0100",
    "Mon, 01 Jan 2026 00:00:00 -99999999999999999999",
    "Sat, 01 Jan 0000 00:00:00 +0000",
    "Mon, 99 Xyz 99999999999 99:99:99 GMT",
]


async def send(server: Server, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> treq.response:
    r = await treq.request(
        method,
        (server.url + path).encode(),
        headers={k: [v] for k, v in headers.items()},
        data=body or None,
        persistent=False,
    )
    r.body = await r.content()
    return r


async def post_form(server: Server, fields: dict[str, str], content: bytes) -> treq.response:
    r = await treq.post(
        server.url + "/bucket",
        data=form(fields, content),
        headers={"Content-Type": [f"multipart/form-data; boundary={BOUNDARY}"]},
        persistent=False,
    )
    r.body = await r.content()
    return r


# -- item 6: dates that overflow datetime


@pytest.mark.parametrize("date", OVERFLOWING_DATES)
@pytest_twisted.ensureDeferred
async def test_sigv4_with_an_overflowing_date_header_is_403(server, date):
    headers = {
        "date": date,
        "x-amz-content-sha256": sigv4.UNSIGNED_PAYLOAD,
        "authorization": f"AWS4-HMAC-SHA256 Credential={ACCESS}/20260101/{REGION}/s3/aws4_request, "
        f"SignedHeaders=date;host;x-amz-content-sha256, Signature={'0' * 64}",
    }
    r = await send(server, "GET", "/bucket", headers)
    # "0000" reads as year 2000, and then the credential's date does not match it.
    assert (r.code, error_code(r)) in ((403, "AccessDenied"), (400, "AuthorizationHeaderMalformed")), r.body


@pytest.mark.parametrize("date", OVERFLOWING_DATES)
@pytest_twisted.ensureDeferred
async def test_sigv2_with_an_overflowing_date_is_403(server, date):
    for name in ("date", "x-amz-date"):
        r = await send(server, "GET", "/bucket", {name: date, "authorization": f"AWS {ACCESS}:c2lnbmF0dXJl"})
        assert r.code == 403 and error_code(r) in ("AccessDenied", "RequestTimeTooSkewed"), r.body


@pytest_twisted.ensureDeferred
async def test_presigned_url_dated_at_the_end_of_time_is_403(server):
    url = sigv4.presign_url(
        "GET", server.url + "/bucket", ACCESS, SECRET, REGION, now=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    )
    r = await treq.get(url, persistent=False)
    r.body = await r.content()
    assert (r.code, error_code(r)) == (403, "AccessDenied"), r.body


@pytest.mark.parametrize("date", OVERFLOWING_DATES)
@pytest_twisted.ensureDeferred
async def test_conditional_headers_with_an_overflowing_date_are_not_a_500(server, date):
    assert (await server.request("PUT", "/bucket/k", b"data")).code == 200
    for name in ("if-modified-since", "if-unmodified-since"):
        r = await server.request("GET", "/bucket/k", headers={name: date})
        # Unreadable dates are ignored; readable ones (year 9999, or "0000" read as 2000) apply.
        assert r.code in (200, 304, 412), r.body
    for name in ("x-amz-copy-source-if-modified-since", "x-amz-copy-source-if-unmodified-since"):
        r = await server.request("PUT", "/bucket/copy", headers={"x-amz-copy-source": "/bucket/k", name: date})
        assert r.code in (200, 412), r.body


# -- item 7: user metadata names are HTTP tokens on every write path

BAD_NAMES = ["a b", "\u00fc", "a:b", "a\x01", "", "a(b)"]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest_twisted.ensureDeferred
async def test_post_form_with_an_invalid_metadata_name_is_400_and_stores_nothing(server, name):
    fields = v4_fields([{"bucket": "bucket"}, ["starts-with", "$key", ""], ["starts-with", f"$x-amz-meta-{name}", ""]])
    fields["key"] = "posted"
    fields[f"x-amz-meta-{name}"] = "value"
    r = await post_form(server, fields, b"content")
    assert (r.code, error_code(r)) == (400, "InvalidArgument"), r.body
    assert (await server.request("HEAD", "/bucket/posted")).code == 404
    assert server.blob_files() == []


@pytest_twisted.ensureDeferred
async def test_post_form_metadata_value_with_a_line_break_is_400(server):
    fields = v4_fields([{"bucket": "bucket"}, ["starts-with", "$key", ""], ["starts-with", "$x-amz-meta-a", ""]])
    fields.update({"key": "posted", "x-amz-meta-a": "one\r\nx-injected: two"})
    r = await post_form(server, fields, b"content")
    assert (r.code, error_code(r)) == (400, "InvalidArgument"), r.body
    assert (await server.request("HEAD", "/bucket/posted")).code == 404


@pytest.mark.parametrize("name", [b"x-amz-meta-\xfc", b"x-amz-meta-a(b)", b"x-amz-meta-a/b"])
@pytest.mark.parametrize("operation", ["PutObject", "CopyObject", "CreateMultipartUpload"])
@pytest_twisted.ensureDeferred
async def test_every_write_path_refuses_an_invalid_metadata_name(server, name, operation):
    assert (await server.request("PUT", "/bucket/source", b"data")).code == 200
    path, query, extra = {
        "PutObject": ("/bucket/k", "", {}),
        "CopyObject": ("/bucket/k", "", {"x-amz-copy-source": "/bucket/source", "x-amz-metadata-directive": "REPLACE"}),
        "CreateMultipartUpload": ("/bucket/k", "uploads", {}),
    }[operation]
    method = "POST" if operation == "CreateMultipartUpload" else "PUT"
    body = b"data" if operation == "PutObject" else b""
    url = server.url + path + (f"?{query}=" if query else "")
    headers = {"content-length": str(len(body)), **extra}
    headers.update(
        sigv4.sign_headers(
            method, url, headers, hashlib.sha256(body).hexdigest(), ACCESS, SECRET, REGION, now=datetime.now(UTC)
        )
    )
    head = f"{method} {path}{'?' + query + '=' if query else ''} HTTP/1.1\r\n".encode()
    head += b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
    head += name + b": value\r\n\r\n"
    answer = await deferToThread(exchange, server.port.getHost().port, head + body)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:400]
    listing = await server.request("GET", "/bucket", query="uploads")
    assert b"<Upload>" not in listing.body
    assert (await server.request("HEAD", "/bucket/k")).code == 404


@pytest_twisted.ensureDeferred
async def test_valid_metadata_names_still_round_trip(server):
    headers = {"x-amz-meta-Name_1.x": "v", "x-amz-meta-a-b~c": "w"}
    assert (await server.request("PUT", "/bucket/k", b"d", headers=headers)).code == 200
    r = await server.request("HEAD", "/bucket/k")
    assert r.headers.getRawHeaders("x-amz-meta-name_1.x") == ["v"]
    assert r.headers.getRawHeaders("x-amz-meta-a-b~c") == ["w"]


def exchange(port: int, request: bytes) -> bytes:
    """One request on its own connection; the answer up to the end of its body (Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(request)
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            out += chunk
        head, _, body = out.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body


# -- item 10: hostile XML


def laughs(encoding: str) -> bytes:
    entities = '<!ENTITY a0 "ha">' + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 6))
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?><!DOCTYPE Delete [{entities}]>'
        "<Delete><Object><Key>&a5;</Key></Object></Delete>"
    )
    return text.encode(encoding)


@pytest.mark.parametrize("encoding", ["UTF-8", "UTF-16", "UTF-16-LE", "UTF-16-BE", "UTF-32"])
@pytest_twisted.ensureDeferred
async def test_entity_declarations_are_refused_in_any_encoding(server, encoding):
    body = laughs(encoding)
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    r = await server.request("POST", "/bucket", body, query="delete=", headers={"content-md5": md5})
    assert (r.code, error_code(r)) == (400, "MalformedXML"), r.body[:300]
    assert len(r.body) < 2000


@pytest_twisted.ensureDeferred
async def test_deeply_nested_xml_is_refused(server):
    # Unknown elements are otherwise ignored: only the depth can refuse this one.
    body = b"<Delete><Object><Key>k</Key>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</Object></Delete>"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    r = await server.request("POST", "/bucket", body, query="delete=", headers={"content-md5": md5})
    assert (r.code, error_code(r)) == (400, "MalformedXML"), r.body[:300]


@pytest_twisted.ensureDeferred
async def test_utf16_documents_without_a_dtd_still_parse(server):
    assert (await server.request("PUT", "/bucket/k", b"x")).code == 200
    body = '<?xml version="1.0" encoding="UTF-16"?><Delete><Object><Key>k</Key></Object></Delete>'.encode("utf-16")
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    r = await server.request("POST", "/bucket", body, query="delete=", headers={"content-md5": md5})
    assert r.code == 200, r.body
    assert (await server.request("HEAD", "/bucket/k")).code == 404


# -- item 9: nothing a client does logs a traceback or a critical line


@pytest.mark.parametrize("path", ["/bucket/%ff", "/bucket/a%c0%afb", "/%ff/key", "/bucket/%ed%a0%80"])
@pytest_twisted.ensureDeferred
async def test_a_path_that_is_not_utf8_is_invalid_uri_without_a_traceback(server, path):
    with watching() as log:
        r = await send(server, "GET", path, {})
    assert (r.code, error_code(r)) == (400, "InvalidURI"), r.body
    assert log.bad() == []


def download_and_vanish(port: int, path: str, wanted: int, reset: bool) -> None:
    """Start a GET, read ``wanted`` bytes of it, and go away (with a TCP reset when ``reset``)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    got = 0
    while got < wanted:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += len(chunk)
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def in_thread(fn: Any, *args: Any) -> None:
    """Run blocking client code beside the reactor (which keeps serving), and wait for it."""
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while thread.is_alive():
        assert time.monotonic() < deadline, "the client thread is stuck"
        await later(0.02)


@pytest_twisted.ensureDeferred
async def test_a_client_vanishing_mid_download_logs_nothing(server):
    assert (await server.request("PUT", "/bucket/big", b"x" * (8 * 2**20))).code == 200
    with watching() as log:
        for wanted in (100, 64 * 1024):
            for reset in (False, True):
                path = "/" + server.presign("GET", "/bucket/big").split("/", 3)[3]
                await in_thread(download_and_vanish, server.port.getHost().port, path, wanted, reset)
        # Let the server notice each disconnect and finish its requests.
        for _ in range(100):
            await later(0.05)
            if server.metrics.in_flight._value.get() == 0:
                break
        await later(0.2)
    assert log.bad() == []
    assert (await server.request("GET", "/bucket/big")).body == b"x" * (8 * 2**20)


@pytest_twisted.ensureDeferred
async def test_a_logged_uri_carries_no_signature(server):
    async def broken(call: Any) -> bytes:
        raise RuntimeError("a bug")

    server.api.handlers["GetObject"] = broken
    url = server.presign("GET", "/bucket/k")
    signature = url.split("X-Amz-Signature=")[1]
    with watching() as log:
        r = await treq.get(url, persistent=False)
        await r.content()
    assert r.code == 500
    text = log.text()
    assert "internal error in GetObject" in text and "X-Amz-Signature=REDACTED" in text, text
    assert signature not in text and "TESTACCESSKEY" not in text


def test_redaction_hides_v2_and_v4_signing_parameters():
    uri = b"/b/k?AWSAccessKeyId=AKID&Expires=1&Signature=abc%2B&x-id=GetObject&X-Amz-Security-Token=tok"
    assert redact_uri(uri) == (
        "/b/k?AWSAccessKeyId=REDACTED&Expires=1&Signature=REDACTED&x-id=GetObject&X-Amz-Security-Token=REDACTED"
    )
    assert redact_uri(b"/b/%ff?X-Amz-Credential=a%2Fb") == "/b/%ff?X-Amz-Credential=REDACTED"
