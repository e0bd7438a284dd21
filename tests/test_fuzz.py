"""A seeded fuzz of the whole request path (issue 21, "Tests that stay").

A few thousand requests, each a random mix of bad headers, signatures,
dates, keys, queries, XML bodies, chunked and aws-chunked framing and POST
forms, go over real sockets to the real stack (in process). Whatever they
are, the daemon must answer no 5xx but 501 and 503, log no traceback and no
critical line, and the objects stored before must read back byte-identical.

Seeded: a failure names its seed and request number, and replays exactly.
Set VAULTAIRE_FUZZ_SEED / VAULTAIRE_FUZZ_REQUESTS to explore further.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import socket
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import pytest_twisted

from tests.logwatch import watching
from tests.postform import v4_fields
from tests.s3helpers import ACCESS, REGION, SECRET, Server, later
from vaultaire import sigv4

SEED = int(os.environ.get("VAULTAIRE_FUZZ_SEED", "20260121"))
REQUESTS = int(os.environ.get("VAULTAIRE_FUZZ_REQUESTS", "3000"))
CLIENTS = 4
ANSWER_TIMEOUT = 20.0  # a request whose body is complete must be answered well within this
STALL_PATIENCE = 3.0  # how long a client waits on a request whose framing may be incomplete

KEEP = {
    "small": b"kept bytes",
    "empty": b"",
    "binary": bytes(range(256)) * 300,
    "dir/nested key ü": b"nested" * 1000,
}
MULTIPART_PARTS = [b"A" * (5 * 2**20), b"tail part"]

BAD_DATES = [
    "Mon, 01 Jan 2026 00:00:00 +99999999999999999999",
    "Fri, 31 Dec 9999 23:59:59 -0100",
    "Sat, 01 Jan 0000 00:00:00 GMT",
    "yesterday",
    "99991231T235959Z",
    "00000000T000000Z",
    "20260101T000000",
    "",
]
KEY_PIECES = [
    "k",
    "a/b",
    "a//b",
    "dir/",
    "..",
    "%ff",
    "%c0%af",
    "%00",
    "%2e%2e/%2e%2e",
    "ü",
    "😀",
    "%",
    "%zz",
    "?",
    "#",
    "x" * 1100,
    " ",
    "+",
    "%0d%0a",
]
QUERY_PIECES = [
    "acl",
    "ownershipControls",
    "publicAccessBlock",
    "tagging",
    "policy",
    "uploads",
    "delete",
    "cors",
    "versioning",
    "location",
    "versions",
    "list-type=2",
    "max-keys=-1",
    "max-keys=99999999999999999999",
    "max-keys=abc",
    "prefix=%ff",
    "delimiter=%c0",
    "continuation-token=%%%",
    "continuation-token=AAAA",
    "start-after=\u00ff",
    "marker=x",
    "partNumber=0",
    "partNumber=10001",
    "partNumber=abc",
    "partNumber=1",
    "uploadId=nope",
    "uploadId=",
    "versionId=null",
    "versionId=abc",
    "response-content-type=a%0d%0ab",
    "response-cache-control=%ff",
    "encoding-type=url",
    "encoding-type=bogus",
    "max-parts=-5",
    "part-number-marker=x",
    "max-uploads=1e9",
    "key-marker=%ff",
    "upload-id-marker=x",
    "x-id=GetObject",
    "=",
    "&&",
    "a=b=c",
]
HEADERS = [
    ("content-md5", ["", "not base64", base64.b64encode(b"x" * 16).decode(), "===="]),
    ("x-amz-content-sha256", ["", "UNSIGNED-PAYLOAD", "zz", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "0" * 64]),
    ("range", ["bytes=0-0", "bytes=-1", "bytes=5-1", "bytes=99999999999999999999-", "bytes=a-b", "bytes=0-1,3-4"]),
    ("if-match", ["*", '"x"', "", "\x7f"]),
    ("if-none-match", ["*", '"x"', "x"]),
    ("if-modified-since", BAD_DATES),
    ("if-unmodified-since", BAD_DATES),
    ("x-amz-copy-source", ["", "/", "fuzz", "/fuzz/k", "/keep/small", "%ff/%ff", "/keep/small?versionId=x"]),
    ("x-amz-copy-source-range", ["bytes=0-0", "bytes=9-1", "x"]),
    ("x-amz-metadata-directive", ["COPY", "REPLACE", "bogus"]),
    ("x-amz-meta-ok", ["v", "ü", "x" * 3000]),
    ("x-amz-storage-class", ["STANDARD", "GLACIER", "BOGUS", ""]),
    ("x-amz-checksum-crc32", ["AAAAAA==", "zz", ""]),
    ("x-amz-checksum-sha256", ["x", base64.b64encode(b"y" * 32).decode()]),
    ("x-amz-checksum-algorithm", ["CRC32", "MD5", "bogus"]),
    ("x-amz-sdk-checksum-algorithm", ["CRC32C", "bogus"]),
    ("x-amz-trailer", ["x-amz-checksum-crc32", "bogus"]),
    ("x-amz-decoded-content-length", ["-1", "0", "5", "99999999999999999999", "x"]),
    ("content-encoding", ["aws-chunked", "gzip", "aws-chunked,gzip"]),
    ("content-type", ["text/plain", "multipart/form-data", "multipart/form-data; boundary=", "\u00ff"]),
    ("expect", ["100-continue", "bogus"]),
    ("x-amz-date", BAD_DATES),
    ("date", BAD_DATES),
    ("origin", ["http://example.com", "", "\u00ff"]),
    ("access-control-request-method", ["GET", "BOGUS"]),
    ("x-amz-checksum-mode", ["ENABLED", "x"]),
    ("x-amz-copy-source-if-modified-since", BAD_DATES),
]
# Headers asking for what Vaultaire does not do (501) or asserting another owner (403): in category "headers" only.
ASKING = [
    ("x-amz-acl", ["private", "public-read", "bogus", "log-delivery-write"]),
    ("x-amz-grant-read", ['uri="http://acs.amazonaws.com/groups/global/AllUsers"', 'id="x', "emailAddress=a@b", ""]),
    ("x-amz-object-ownership", ["ObjectWriter", "bogus"]),
    ("x-amz-server-side-encryption", ["AES256", "aws:kms"]),
    ("x-amz-server-side-encryption-customer-algorithm", ["AES256"]),
    ("x-amz-object-lock-mode", ["COMPLIANCE"]),
    ("x-amz-tagging", ["a=b", ""]),
    ("x-amz-expected-bucket-owner", ["123", ""]),
    ("x-amz-bucket-object-lock-enabled", ["true", "false"]),
]
XML_ROOTS = [
    "Delete",
    "CompleteMultipartUpload",
    "CreateBucketConfiguration",
    "CORSConfiguration",
    "AccessControlPolicy",
    "OwnershipControls",
    "PublicAccessBlockConfiguration",
]


class Fuzzer:
    """Builds request number ``n`` of a seeded run (independent of the others, so any one replays alone)."""

    def __init__(self, seed: int, port: int, upload_id: str) -> None:
        self.seed = seed
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.upload_id = upload_id

    def request(self, n: int) -> tuple[bytes, str, str, bool]:
        """(raw request, category, what it was for a failure message, whether its framing may be incomplete).

        Corrupted HTTP chunked framing can leave a body the server must wait
        for (a chunk size of 2**80, a trailer never ended): such a request may
        stall until the client gives up, like any incomplete body.
        """
        rnd = random.Random(f"{self.seed}/{n}")
        category = rnd.choice(["headers", "signature", "key", "query", "xml", "chunked", "aws-chunked", "form"])
        method = rnd.choice(["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "GET", "PUT"])
        method = {"xml": rnd.choice(["POST", "PUT", "POST"]), "aws-chunked": "PUT", "form": "POST"}.get(
            category, method
        )
        bucket = rnd.choice(["fuzz"] * 6 + ["keep"] * 3 + ["nosuch", "Bad_Name", "", "a" * 70, "%ff"])
        if bucket == "keep" and method not in ("GET", "HEAD", "OPTIONS"):
            bucket = "fuzz"  # stored objects must be able to stay byte-identical: no signed writes to keep
        key = rnd.choice([None, "k", "k", "obj"] + ([self._key(rnd)] if category == "key" else []))
        if bucket == "keep" and rnd.random() < 0.5:
            key = rnd.choice(list(KEEP) + ["mp"])
        path = "/" + bucket
        if key is not None:
            path += "/" + (key if category == "key" else quote(key, safe="/"))
        query = self._query(rnd, category)
        headers: dict[str, str] = {}
        for _ in range(rnd.randint(0, 3 if category != "headers" else 8)):
            name, values = rnd.choice(HEADERS + ASKING if category == "headers" else HEADERS)
            headers[name] = rnd.choice(values)
        body = b""
        framing = "length"
        may_stall = False
        if method in ("PUT", "POST") or rnd.random() < 0.1:
            body = rnd.choice([b"", b"x", rnd.randbytes(rnd.randint(0, 3000))])
        if category == "headers":
            for _ in range(rnd.randint(0, 3)):
                headers[self._token(rnd)] = self._garbage_text(rnd)
        elif category == "xml":
            body = self._xml(rnd)
            query = rnd.choice(["delete=", f"uploadId={self.upload_id}", "cors=", "", "uploads="])
            if rnd.random() < 0.7:
                headers["content-md5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
        elif category == "chunked":
            framing = "chunked"
            body, may_stall = self._http_chunked(rnd, body or rnd.randbytes(rnd.randint(0, 2000)))
        elif category == "aws-chunked":
            headers["content-encoding"] = "aws-chunked"
        elif category == "form":
            key, query = None, ""
            path = "/" + bucket
            boundary = rnd.choice(["B", "xyz", "", "a" * 80])
            headers["content-type"] = f"multipart/form-data; boundary={boundary}"
            body = self._form(rnd, boundary)
        target = quote(path, safe="/%") if category != "key" else path
        target = target or "/"
        url_path = target + (f"?{query}" if query else "")
        mode = rnd.choice(["sign", "sign", "sign", "none", "wrong-secret", "mangled", "v2", "presign"])
        if category == "signature":
            mode = rnd.choice(["none", "wrong-secret", "mangled", "v2", "presign", "presign-mangled", "sign"])
        if category == "aws-chunked":
            payload = rnd.choice(["STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"])
            data = rnd.randbytes(rnd.randint(0, 3000))
            headers.setdefault("x-amz-decoded-content-length", str(len(data)))
        else:
            payload = rnd.choice([hashlib.sha256(body).hexdigest(), sigv4.UNSIGNED_PAYLOAD, "0" * 64])
        sign_headers = {k: v for k, v in headers.items() if k not in ("x-amz-date", "date")}
        url_path, auth = self._authorise(rnd, mode, method, url_path, sign_headers, payload)
        headers.update(auth)
        if category == "aws-chunked":
            body = self._aws_chunked(rnd, data, payload, headers)
            framing = rnd.choice(["length", "chunked"])
            if framing == "chunked":
                body, _ = self._http_chunked(rnd, body, valid=True)
        lines = [f"{method} {url_path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k != "host"]
        if framing == "chunked":
            lines.append("Transfer-Encoding: chunked")
        elif body or method in ("PUT", "POST"):
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        return head + body, category, f"{method} {url_path[:120]} {mode} {category}", may_stall

    # -- pieces

    def _key(self, rnd: random.Random) -> str:
        return "".join(rnd.choice(KEY_PIECES) for _ in range(rnd.randint(1, 4)))

    def _query(self, rnd: random.Random, category: str) -> str:
        count = rnd.randint(0, 4 if category == "query" else 1)
        parts = [rnd.choice(QUERY_PIECES) for _ in range(count)]
        if category == "query" and rnd.random() < 0.3:
            parts.append(f"uploadId={self.upload_id}")
        return "&".join(parts)

    def _token(self, rnd: random.Random) -> str:
        return rnd.choice(["x-amz-meta-", "x-amz-", "x-", ""]) + "".join(
            rnd.choice("abcdefghijklmnopqrstuvwxyz-_.~") for _ in range(rnd.randint(1, 20))
        )

    def _garbage_text(self, rnd: random.Random) -> str:
        return "".join(
            chr(rnd.choice([rnd.randint(0x20, 0x7E), rnd.randint(0x80, 0xFF)])) for _ in range(rnd.randint(0, 60))
        )

    def _xml(self, rnd: random.Random) -> bytes:
        root = rnd.choice(XML_ROOTS)
        inner = rnd.choice(
            [
                "<Object><Key>k</Key></Object>" * rnd.randint(0, 3),
                "<Quiet>true</Quiet><Object><Key>obj</Key><VersionId>x</VersionId></Object>",
                "<Part><PartNumber>1</PartNumber><ETag>x</ETag></Part>",
                "<Part><PartNumber>99999999999999999999</PartNumber><ETag>x</ETag></Part>",
                "<Part><PartNumber>-1</PartNumber></Part>",
                "<LocationConstraint>nowhere</LocationConstraint>",
                "<CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin></CORSRule>",
                "<CORSRule><AllowedMethod>BOGUS</AllowedMethod><MaxAgeSeconds>-1</MaxAgeSeconds></CORSRule>",
                "<a>" * 100 + "</a>" * 100,
                "&lol;",
                "<![CDATA[x]]>",
                '<AccessControlList><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                'xsi:type="Group"><URI>x</URI></Grantee><Permission>READ</Permission></Grant></AccessControlList>',
                "<Owner><ID></ID></Owner><AccessControlList><Grant/></AccessControlList>",
                "<Rule><ObjectOwnership>ObjectWriter</ObjectOwnership></Rule>",
                "<BlockPublicAcls>maybe</BlockPublicAcls>",
            ]
        )
        doc = f"<{root}>{inner}</{root}>"
        prolog = rnd.choice(
            [
                "",
                '<?xml version="1.0" encoding="UTF-8"?>',
                '<?xml version="1.0" encoding="UTF-16"?>',
                '<!DOCTYPE x [<!ENTITY lol "lol">]>',
                '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY lol SYSTEM "file:///etc/passwd">]>',
            ]
        )
        encoding = "utf-16" if "UTF-16" in prolog else "utf-8"
        raw = (prolog + doc).encode(encoding)
        if rnd.random() < 0.3:
            at = rnd.randint(0, len(raw))
            raw = raw[:at] + rnd.randbytes(rnd.randint(0, 10)) + raw[at + rnd.randint(0, 5) :]
        return raw

    def _http_chunked(self, rnd: random.Random, data: bytes, valid: bool = False) -> tuple[bytes, bool]:
        out, at = b"", 0
        while at < len(data):
            size = rnd.randint(1, 700)
            piece = data[at : at + size]
            at += size
            out += f"{len(piece):x}".encode() + b"\r\n" + piece + b"\r\n"
        out += b"0\r\n\r\n"
        if not valid and rnd.random() < 0.5:
            bad = rnd.choice(
                [b"-1\r\n", b"zz\r\n", b"ffffffffffffffffffff\r\n", b"5\r\nab\r\n", b"\r\n\r\n", b"1;x=" + b"y" * 5000]
            )
            at = rnd.randint(0, len(out))
            out = out[:at] + bad + out[at:]
            return out, True
        return out, False

    def _aws_chunked(self, rnd: random.Random, data: bytes, mode: str, headers: dict[str, str]) -> bytes:
        signed = mode.startswith("STREAMING-AWS4")
        seed = headers.get("authorization", "").rpartition("Signature=")[2] or "0" * 64
        amz_date = headers.get("x-amz-date", "20260101T000000Z")
        key = sigv4.signing_key(SECRET, amz_date[:8], REGION, "s3")
        scope = sigv4.credential_scope(amz_date[:8], REGION, "s3")
        out, previous, at = b"", seed, 0
        pieces = []
        while at < len(data):
            size = rnd.randint(1, 1500)
            pieces.append(data[at : at + size])
            at += size
        for piece in pieces + [b""]:
            ext = b""
            if signed:
                previous = sigv4.chunk_signature(key, amz_date, scope, previous, hashlib.sha256(piece).hexdigest())
                ext = b";chunk-signature=" + previous.encode()
            out += f"{len(piece):x}".encode() + ext + b"\r\n" + piece + (b"\r\n" if piece else b"")
        out += b"\r\n"
        if rnd.random() < 0.6:
            bad = rnd.choice(
                [b"-1", b"+1", b" 1", b"\xff", b"\r\n", b"ffffffffffffffff", b"0;chunk-signature=\xff\r\n"]
            )
            at = rnd.randint(0, len(out))
            out = out[:at] + bad + out[at + rnd.randint(0, 4) :]
        return out

    def _form(self, rnd: random.Random, boundary: str) -> bytes:
        fields = {"key": rnd.choice(["posted", "${filename}", "", "x" * 1100])}
        if rnd.random() < 0.5:
            conditions: list[Any] = [
                ["starts-with", "$key", ""],
                ["content-length-range", 0, rnd.choice([0, 100, 10**6])],
            ]
            fields.update(v4_fields(conditions))
        for _ in range(rnd.randint(0, 4)):
            name = rnd.choice(
                ["policy", "x-amz-signature", "x-amz-credential", "acl", "x-amz-meta-a b", "x-amz-meta-ü", "tagging"]
            )
            fields[name] = rnd.choice(["", "e30=", "garbage", base64.b64encode(b'{"conditions":[]}').decode()])
        out = b""
        for name, value in fields.items():
            out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'.encode()
        out += rnd.randbytes(rnd.randint(0, 500)) + f"\r\n--{boundary}--\r\n".encode()
        if rnd.random() < 0.4:
            at = rnd.randint(0, len(out))
            out = out[:at] + rnd.randbytes(rnd.randint(0, 20)) + out[at + rnd.randint(0, 10) :]
        return out

    def _authorise(
        self, rnd: random.Random, mode: str, method: str, url_path: str, headers: dict[str, str], payload: str
    ) -> tuple[str, dict[str, str]]:
        url = f"http://{self.host}{url_path}"
        now = datetime.now(UTC) + timedelta(seconds=rnd.choice([0] * 10 + [-3600, 86400 * 400]))
        try:
            if mode in ("sign", "wrong-secret", "mangled"):
                secret = SECRET if mode != "wrong-secret" else "wrong"
                auth = sigv4.sign_headers(method, url, headers, payload, ACCESS, secret, REGION, now=now)
                if mode == "mangled":
                    value = auth["authorization"]
                    cut = rnd.randint(0, len(value))
                    auth["authorization"] = value[:cut] + self._garbage_text(rnd)[:10] + value[cut + 3 :]
                return url_path, auth
            if mode in ("presign", "presign-mangled"):
                signed = sigv4.presign_url(method, url, ACCESS, SECRET, REGION, now=now, expires=rnd.choice([1, 300]))
                path = signed.split(self.host, 1)[1]
                if mode == "presign-mangled":
                    cut = rnd.randint(len(path) // 2, len(path))
                    path = path[:cut] + rnd.choice(["%ff", "&X-Amz-Expires=-1", "&X-Amz-Date=x", "Z"]) + path[cut:]
                return path, {}
            if mode == "v2":
                return url_path, {
                    "authorization": f"AWS {ACCESS}:{self._garbage_text(rnd)[:30]}",
                    "date": rnd.choice(BAD_DATES),
                }
        except (ValueError, UnicodeError):
            pass
        return url_path, {}


def exchange(port: int, request: bytes, may_stall: bool) -> tuple[bytes | None, bool, str, bool]:
    """(the answer's status line or None, whether the server closed in time, its S3 error code,
    whether the client gave up waiting and closed its side first)."""
    with socket.create_connection(("127.0.0.1", port), timeout=STALL_PATIENCE if may_stall else ANSWER_TIMEOUT) as sock:
        try:
            sock.sendall(request)
        except OSError:
            pass  # an early answer and a close while we were still sending: read what came back
        out = b""
        gave_up = False
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if not may_stall or gave_up:
                    return _status(out), False, _code(out), gave_up
                # The body may be incomplete: end it, as a client that gives up does; the server must close.
                gave_up = True
                sock.settimeout(ANSWER_TIMEOUT)
                sock.shutdown(socket.SHUT_WR)
                continue
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        return _status(out), True, _code(out), gave_up


def _status(answer: bytes) -> bytes | None:
    """The final status line (after any interim 100 Continue)."""
    while answer.startswith(b"HTTP/1.1 100"):
        answer = answer.partition(b"\r\n\r\n")[2]
    return answer.split(b"\r\n", 1)[0] or None


def _code(answer: bytes) -> str:
    return answer.split(b"<Code>", 1)[1].split(b"</Code>", 1)[0].decode() if b"<Code>" in answer else ""


def run_clients(fuzzer: Fuzzer, count: int, results: list[Any]) -> None:
    lock = threading.Lock()
    numbers = iter(range(count))

    def client() -> None:
        while True:
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            raw, category, what, may_stall = fuzzer.request(n)
            status, closed, code, gave_up = exchange(fuzzer.port, raw, may_stall)
            with lock:
                results.append((n, category, what, status, closed, code, gave_up))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest_twisted.async_yield_fixture
async def server(tmp_path):
    s = Server(str(tmp_path))
    await s.start("keep", "fuzz")
    yield s
    await s.stop()


async def store_keepers(server: Server) -> tuple[str, bytes]:
    for key, data in KEEP.items():
        r = await server.request("PUT", f"/keep/{key}", data)
        assert r.code == 200, r.body
    r = await server.request("POST", "/keep/mp", query="uploads=")
    upload = r.body.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
    etags = []
    for number, part in enumerate(MULTIPART_PARTS, 1):
        r = await server.request("PUT", "/keep/mp", part, query=f"partNumber={number}&uploadId={upload}")
        etags.append(r.headers.getRawHeaders("etag")[0])
    body = "".join(f"<Part><PartNumber>{i}</PartNumber><ETag>{e}</ETag></Part>" for i, e in enumerate(etags, 1))
    r = await server.request(
        "POST",
        "/keep/mp",
        f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode(),
        query=f"uploadId={upload}",
    )
    assert r.code == 200, r.body
    # An upload left open in the fuzz bucket, for CompleteMultipartUpload and UploadPart to hit.
    r = await server.request("POST", "/fuzz/open", query="uploads=")
    return r.body.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode(), b"".join(MULTIPART_PARTS)


@pytest.mark.timeout(600)
@pytest_twisted.ensureDeferred
async def test_fuzzed_requests_never_get_a_5xx_a_traceback_or_touch_stored_objects(server):
    open_upload, multipart = await store_keepers(server)
    fuzzer = Fuzzer(SEED, server.port.getHost().port, open_upload)
    results: list[Any] = []
    started = time.monotonic()
    with watching() as log:
        thread = threading.Thread(target=run_clients, args=(fuzzer, REQUESTS, results), daemon=True)
        thread.start()
        while thread.is_alive():
            await later(0.05)
        await later(0.5)
    elapsed = time.monotonic() - started

    histogram = Counter()
    by_category: Counter[str] = Counter()
    failures = []
    codes: Counter[str] = Counter()
    for n, category, what, status, closed, error, gave_up in sorted(results):
        codes[error or "-"] += 1
        if os.environ.get("VAULTAIRE_FUZZ_VERBOSE"):
            print(n, what, status, error)
        code = status.split(b" ")[1].decode() if status and status.count(b" ") >= 1 else "no answer"
        if gave_up and code == "no answer":
            code = "incomplete body, client gave up"
        histogram[code] += 1
        by_category[category] += 1
        if code.startswith("5") and code not in ("501", "503"):
            failures.append(f"#{n} {what}: {status!r}")
        if code == "no answer" or not closed:
            failures.append(
                f"#{n} {what}: {'no answer' if code == 'no answer' else 'not closed'} within {ANSWER_TIMEOUT} s"
            )
    print(f"\nfuzz seed={SEED} requests={len(results)} in {elapsed:.1f} s")
    print("status histogram:", dict(sorted(histogram.items())))
    print("categories:", dict(sorted(by_category.items())))
    print("error codes:", dict(codes.most_common()))
    assert len(results) == REQUESTS
    assert not failures, f"seed {SEED}:\n" + "\n".join(failures[:30])
    assert log.bad() == [], "\n".join(log.bad()[:5])

    # Nothing stored before moved by a byte.
    for key, data in KEEP.items():
        r = await server.request("GET", f"/keep/{key}")
        assert (r.code, hashlib.sha256(r.body).hexdigest()) == (200, hashlib.sha256(data).hexdigest()), key
    r = await server.request("GET", "/keep/mp")
    assert r.code == 200 and r.body == multipart
    listing = await server.request("GET", "/keep", query="list-type=2")
    keys = sorted(k.decode() for k in listing.body.split(b"<Key>")[1:] for k in [k.split(b"</Key>")[0]])
    assert keys == sorted([*KEEP, "mp"])
    assert (await server.request("GET", "/_vaultaire/health", sign=False)).code == 200
