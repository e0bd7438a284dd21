"""Tests for vaultaire.sigv4 against published vectors and botocore."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultaire import sigv4
from vaultaire.sigv4 import (
    EMPTY_SHA256,
    canonical_query,
    canonical_request,
    canonical_uri,
    chunk_signature,
    presign_url,
    sign_headers,
    signature,
    signing_key,
    string_to_sign,
)
from vaultaire.sigv4_verify import Credentials, SigV4Error, parse_request, verify

SUITE_DIR = Path(__file__).parent / "data" / "sigv4" / "suite"
SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def parse_raw_request(text: str) -> tuple[str, str, str, dict[str, str], bytes]:
    """Split a suite request file into method, raw path, raw query, headers, body.

    Repeated headers are joined with ','; an obs-fold continuation line counts
    as one more value of the header above it (that is how the suite's
    get-header-value-multiline case is canonicalised: value1,value2,value3).
    """
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, rest = lines[0].split(" ", 1)
    target = rest.rsplit(" ", 1)[0]  # the path may contain a literal space
    raw_path, _, raw_query = target.partition("?")
    values: dict[str, list[str]] = {}
    last = ""
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            values[last].append(line.strip())
            continue
        name, _, value = line.partition(":")
        last = name.strip().lower()
        values.setdefault(last, []).append(value.strip())
    headers = {name: ",".join(vals) for name, vals in values.items()}
    return method, raw_path, raw_query, headers, body.encode("utf-8")


SUITE_CASES = sorted(p.stem for p in SUITE_DIR.glob("*.txt"))


def test_suite_is_present() -> None:
    assert len(SUITE_CASES) >= 25


@pytest.mark.parametrize("case", SUITE_CASES)
def test_aws_sigv4_suite(case: str) -> None:
    text = (SUITE_DIR / f"{case}.txt").read_text(encoding="utf-8")
    method, raw_path, raw_query, headers, body = parse_raw_request(text)
    creds = parse_request(method, raw_path, raw_query, headers)
    assert creds is not None
    assert creds.access_key == "AKIDEXAMPLE"
    assert creds.scope == "20150830/us-east-1/service/aws4_request"
    assert creds.amz_date == "20150830T123600Z"
    payload = creds.payload_hash or hashlib.sha256(body).hexdigest()
    creq = canonical_request(method, raw_path, raw_query, headers, creds.signed_headers, payload)
    creq_lines = creq.split("\n")
    assert creq_lines[0] == method
    assert creq_lines[-1] == payload
    assert creq_lines[-2] == ";".join(creds.signed_headers)
    sts = string_to_sign(creds.amz_date, creds.scope, creq)
    assert sts == (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        + hashlib.sha256(creq.encode()).hexdigest()
    )
    key = signing_key(SUITE_SECRET, "20150830", "us-east-1", "service")
    assert signature(key, sts) == creds.signature


def test_suite_canonical_forms() -> None:
    # Pieces of the suite's canonical requests that the signatures above depend on.
    assert canonical_uri("/\u1234") == "/%E1%88%B4"
    assert canonical_uri("/example space/") == "/example%20space/"
    assert canonical_uri("//example//") == "//example//"
    assert canonical_uri("/example1/example2/../..") == "/example1/example2/../.."
    assert canonical_query("Param2=value2&Param1=value1") == "Param1=value1&Param2=value2"
    assert canonical_query("\u1234=bar") == "%E1%88%B4=bar"
    assert (
        canonical_query("Param-3=Value3&Param=Value2&%E1%88%B4=Value1")
        == "%E1%88%B4=Value1&Param=Value2&Param-3=Value3"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/example/..", "/"),
        ("/example1/example2/../..", "/"),
        ("//", "/"),
        ("//example//", "/example/"),
        ("/./", "/"),
        ("/./example", "/example"),
        ("/%20/foo", "/%2520/foo"),
    ],
)
def test_generic_flavour_normalises(raw: str, expected: str) -> None:
    # The "*-normalized" suite cases use this flavour; their signed requests
    # are not vendored (S3 never normalises), so only the path rule is checked.
    assert canonical_uri(raw, normalize=True) == expected


# --------------------------------------------------------------------------
# S3 API reference examples (examplebucket, 20130524T000000Z)

S3_AK = "AKIAIOSFODNN7EXAMPLE"
S3_SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
S3_NOW = datetime(2013, 5, 24, tzinfo=UTC)
S3_HOST = "examplebucket.s3.amazonaws.com"
S3_SCOPE = "20130524/us-east-1/s3/aws4_request"


def _s3_auth(signed: str, sig: str) -> str:
    return f"AWS4-HMAC-SHA256 Credential={S3_AK}/{S3_SCOPE},SignedHeaders={signed},Signature={sig}"


S3_EXAMPLES = {
    "get-object-range": {
        "method": "GET",
        "path": "/test.txt",
        "query": "",
        "headers": {
            "host": S3_HOST,
            "range": "bytes=0-9",
            "x-amz-content-sha256": EMPTY_SHA256,
            "x-amz-date": "20130524T000000Z",
        },
        "signed": "host;range;x-amz-content-sha256;x-amz-date",
        "creq": (
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            f"x-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:20130524T000000Z\n\n"
            f"host;range;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}"
        ),
        "sts_hash": "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
        "sig": "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    },
    "put-object": {
        "method": "PUT",
        "path": "/test%24file.text",
        "query": "",
        "headers": {
            "host": S3_HOST,
            "date": "Fri, 24 May 2013 00:00:00 GMT",
            "x-amz-content-sha256": "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
            "x-amz-date": "20130524T000000Z",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
        },
        "signed": "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        "creq": (
            "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
            "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        ),
        "sts_hash": "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
        "sig": "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    },
    "get-bucket-lifecycle": {
        "method": "GET",
        "path": "/",
        "query": "lifecycle",
        "headers": {
            "host": S3_HOST,
            "x-amz-content-sha256": EMPTY_SHA256,
            "x-amz-date": "20130524T000000Z",
        },
        "signed": "host;x-amz-content-sha256;x-amz-date",
        "creq": None,
        "sts_hash": "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
        "sig": "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    },
    "get-bucket-list-objects": {
        "method": "GET",
        "path": "/",
        "query": "max-keys=2&prefix=J",
        "headers": {
            "host": S3_HOST,
            "x-amz-content-sha256": EMPTY_SHA256,
            "x-amz-date": "20130524T000000Z",
        },
        "signed": "host;x-amz-content-sha256;x-amz-date",
        "creq": None,
        "sts_hash": None,
        "sig": "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    },
}


@pytest.mark.parametrize("name", sorted(S3_EXAMPLES))
def test_s3_reference_examples(name: str) -> None:
    ex = S3_EXAMPLES[name]
    headers = dict(ex["headers"])
    headers["authorization"] = _s3_auth(ex["signed"], ex["sig"])
    creds = parse_request(ex["method"], ex["path"], ex["query"], headers)
    assert creds is not None and not creds.presigned
    creq = canonical_request(ex["method"], ex["path"], ex["query"], headers, creds.signed_headers, creds.payload_hash)
    if ex["creq"] is not None:
        assert creq == ex["creq"]
    sts = string_to_sign(creds.amz_date, creds.scope, creq)
    if ex["sts_hash"] is not None:
        assert sts == f"AWS4-HMAC-SHA256\n20130524T000000Z\n{S3_SCOPE}\n{ex['sts_hash']}"
    got = verify(creds, S3_SK, ex["method"], ex["path"], ex["query"], headers, now=S3_NOW, region="us-east-1")
    assert got == ex["sig"]
    # The client side produces the same signature from the same inputs.
    url = f"https://{S3_HOST}{ex['path']}" + (f"?{ex['query']}" if ex["query"] else "")
    extra = {k: v for k, v in headers.items() if k not in ("authorization", "x-amz-date", "x-amz-content-sha256")}
    added = sign_headers(
        ex["method"], url, extra, headers["x-amz-content-sha256"], S3_AK, S3_SK, "us-east-1", now=S3_NOW
    )
    assert added["authorization"].endswith(f"Signature={ex['sig']}")


def test_s3_presigned_url_example() -> None:
    url = presign_url("GET", f"https://{S3_HOST}/test.txt", S3_AK, S3_SK, "us-east-1", now=S3_NOW, expires=86400)
    assert url == (
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
    parts = urlsplit(url)
    headers = {"host": S3_HOST}
    creds = parse_request("GET", parts.path, parts.query, headers)
    assert creds is not None and creds.presigned and creds.expires == 86400
    assert creds.payload_hash == "UNSIGNED-PAYLOAD"
    creq = canonical_request(
        "GET", parts.path, parts.query, headers, creds.signed_headers, creds.payload_hash, presigned=True
    )
    assert hashlib.sha256(creq.encode()).hexdigest() == (
        "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04"
    )
    assert verify(creds, S3_SK, "GET", parts.path, parts.query, headers, now=S3_NOW + timedelta(hours=1)) == (
        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )


def test_s3_chunked_upload_example() -> None:
    headers = {
        "host": "s3.amazonaws.com",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "content-length": "66824",
    }
    signed = (
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class"
    )
    seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    headers["authorization"] = _s3_auth(signed, seed)
    path = "/examplebucket/chunkObject.txt"
    creds = parse_request("PUT", path, "", headers)
    assert creds is not None
    creq = canonical_request("PUT", path, "", headers, creds.signed_headers, creds.payload_hash)
    assert hashlib.sha256(creq.encode()).hexdigest() == (
        "cee3fed04b70f867d036f722359b0b1f2f0e5dc0efadbc082b76c4c60e316455"
    )
    got_seed = verify(creds, S3_SK, "PUT", path, "", headers, now=S3_NOW)
    assert got_seed == seed
    key = signing_key(S3_SK, "20130524", "us-east-1", "s3")
    expected = [
        (65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
        (1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
        (0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
    ]
    previous = got_seed
    for size, want in expected:
        digest = hashlib.sha256(b"a" * size).hexdigest()
        previous = chunk_signature(key, creds.amz_date, creds.scope, previous, digest)
        assert previous == want


def test_trailer_string_to_sign() -> None:
    trailer = b"x-amz-checksum-crc32c:sOO8/Q==\n"
    sts = sigv4.trailer_string_to_sign("20130524T000000Z", S3_SCOPE, "ab" * 32, trailer)
    assert sts == "\n".join(
        ["AWS4-HMAC-SHA256-TRAILER", "20130524T000000Z", S3_SCOPE, "ab" * 32, hashlib.sha256(trailer).hexdigest()]
    )


# --------------------------------------------------------------------------
# Round trip with botocore, the signer real clients use

RT_AK = "AKIDROUNDTRIP"
RT_SK = "round/trip+secret=key"
RT_REGION = "eu-west-3"
RT_KEYS = [
    "plain.txt",
    "with space.txt",
    "dir/ünïcødé/ключ.bin",
    "a+b.txt",
    "100%.txt",
    "dir//double",
    "trailing/",
    "weird !'()*$&=;:@,[].txt",
    "~tilde-_.",
]
RT_QUERIES = [
    "",
    "acl",
    "a=&b=",
    "k=v1&k=v2&k=v0",
    "prefix=a%20b&delimiter=%2F",
    "uploadId=a%2Bb%2Fc%3D%3D&partNumber=2",
    "list-type=2&continuation-token=%E2%9C%93",
]


def _wire_path(key: str) -> str:
    # botocore's S3 serializer encodes keys with quote(safe='/~').
    return "/bucket/" + quote(key, safe="/~")


def _tampered(
    kind: str, method: str, path: str, query: str, headers: dict[str, str], secret: str
) -> tuple[str, str, dict[str, str], str]:
    headers = dict(headers)
    if kind == "path":
        path = path[:-1] + ("x" if path[-1] != "x" else "y")
    elif kind == "query":
        query = query + "&extra=1" if query else "extra=1"
    elif kind == "header":
        headers["x-amz-meta-color"] = headers["x-amz-meta-color"] + "!"
    elif kind == "secret":
        secret = secret[:-1] + "Y"
    return path, query, headers, secret


TAMPERS = ["path", "query", "header", "secret", "signature"]


def _flip_signature(creds: Credentials) -> Credentials:
    last = creds.signature[-1]
    from attrs import evolve

    return evolve(creds, signature=creds.signature[:-1] + ("0" if last != "0" else "1"))


@pytest.mark.parametrize("query", RT_QUERIES)
@pytest.mark.parametrize("key", RT_KEYS)
def test_botocore_header_auth_round_trip(key: str, query: str) -> None:
    path = _wire_path(key)
    url = f"https://s3.example.test:8443{path}" + (f"?{query}" if query else "")
    body = b"hello world"
    req = AWSRequest(
        method="PUT",
        url=url,
        data=body,
        headers={
            "x-amz-meta-color": "  blue   green ",
            "Content-Type": "text/plain",
            "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest(),
        },
    )
    S3SigV4Auth(BotoCredentials(RT_AK, RT_SK), "s3", RT_REGION).add_auth(req)
    headers = {k.lower(): v for k, v in req.headers.items()}
    headers["host"] = "s3.example.test:8443"
    parts = urlsplit(req.url)
    now = datetime.now(UTC)
    creds = parse_request("PUT", parts.path, parts.query, headers)
    assert creds is not None and creds.access_key == RT_AK
    assert "x-amz-meta-color" in creds.signed_headers
    sig = verify(creds, RT_SK, "PUT", parts.path, parts.query, headers, now=now, region=RT_REGION)
    assert sig == creds.signature
    for kind in TAMPERS:
        t_path, t_query, t_headers, t_secret = _tampered(kind, "PUT", parts.path, parts.query, headers, RT_SK)
        t_creds = _flip_signature(creds) if kind == "signature" else creds
        with pytest.raises(SigV4Error) as info:
            verify(t_creds, t_secret, "PUT", t_path, t_query, t_headers, now=now)
        assert info.value.code == "SignatureDoesNotMatch", kind


@pytest.mark.parametrize("query", RT_QUERIES)
@pytest.mark.parametrize("key", RT_KEYS)
def test_botocore_presigned_round_trip(key: str, query: str) -> None:
    path = _wire_path(key)
    url = f"http://s3.example.test{path}" + (f"?{query}" if query else "")
    req = AWSRequest(method="GET", url=url, headers={"x-amz-meta-color": "blue"})
    S3SigV4QueryAuth(BotoCredentials(RT_AK, RT_SK), "s3", RT_REGION, expires=600).add_auth(req)
    parts = urlsplit(req.url)
    headers = {"host": "s3.example.test", "x-amz-meta-color": "blue"}
    now = datetime.now(UTC)
    creds = parse_request("GET", parts.path, parts.query, headers)
    assert creds is not None and creds.presigned and creds.expires == 600
    assert verify(creds, RT_SK, "GET", parts.path, parts.query, headers, now=now, region=RT_REGION) == creds.signature
    for kind in TAMPERS:
        t_path, t_query, t_headers, t_secret = _tampered(kind, "GET", parts.path, parts.query, headers, RT_SK)
        t_creds = _flip_signature(creds) if kind == "signature" else creds
        with pytest.raises(SigV4Error) as info:
            verify(t_creds, t_secret, "GET", t_path, t_query, t_headers, now=now)
        assert info.value.code == "SignatureDoesNotMatch", kind


@pytest.mark.parametrize("key", RT_KEYS)
def test_own_signers_match_botocore_verification(key: str) -> None:
    """sign_headers/presign_url output is accepted by verify (and so by S3)."""
    now = datetime.now(UTC)
    url = f"https://s3.example.test{_wire_path(key)}?a=&k=v%2Bw"
    added = sign_headers("GET", url, {"x-amz-meta-color": "red"}, EMPTY_SHA256, RT_AK, RT_SK, RT_REGION, now=now)
    headers = {"x-amz-meta-color": "red", **added}
    parts = urlsplit(url)
    creds = parse_request("GET", parts.path, parts.query, headers)
    assert creds is not None
    verify(creds, RT_SK, "GET", parts.path, parts.query, headers, now=now, region=RT_REGION)
    # botocore computes the same signature for the same request.
    req = AWSRequest(
        method="GET",
        url=url,
        headers={"x-amz-meta-color": "red", "X-Amz-Content-SHA256": EMPTY_SHA256, "X-Amz-Date": added["x-amz-date"]},
    )
    req.context["timestamp"] = added["x-amz-date"]
    auth = S3SigV4Auth(BotoCredentials(RT_AK, RT_SK), "s3", RT_REGION)
    sts = auth.string_to_sign(req, auth.canonical_request(req))
    assert auth.signature(sts, req) == creds.signature

    presigned = presign_url(
        "PUT", url, RT_AK, RT_SK, RT_REGION, now=now, expires=60, extra_signed_headers={"content-type": "image/png"}
    )
    p = urlsplit(presigned)
    p_headers = {"host": "s3.example.test", "content-type": "image/png"}
    p_creds = parse_request("PUT", p.path, p.query, p_headers)
    assert p_creds is not None
    verify(p_creds, RT_SK, "PUT", p.path, p.query, p_headers, now=now)
    with pytest.raises(SigV4Error):
        verify(p_creds, RT_SK, "PUT", p.path, p.query, {**p_headers, "content-type": "x/y"}, now=now)


# --------------------------------------------------------------------------
# Errors

NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


def _signed(now: datetime = NOW, region: str = "us-east-1", **extra: str) -> dict[str, str]:
    headers = {"host": "s3.example.test", **extra}
    headers.update(
        sign_headers("GET", "https://s3.example.test/b/k", headers, EMPTY_SHA256, "AK", "SK", region, now=now)
    )
    return headers


def _check(headers: dict[str, str], query: str = "", **kwargs: object) -> str:
    creds = parse_request("GET", "/b/k", query, headers)
    assert creds is not None
    return verify(creds, "SK", "GET", "/b/k", query, headers, **kwargs)  # type: ignore[arg-type]


def _code(fn: object, *args: object, **kwargs: object) -> SigV4Error:
    with pytest.raises(SigV4Error) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    return info.value


def test_anonymous_returns_none() -> None:
    assert parse_request("GET", "/b/k", "versionId=1", {"host": "h"}) is None


def test_sigv2_rejected() -> None:
    err = _code(parse_request, "GET", "/", "", {"authorization": "AWS AK:c2lnbmF0dXJl"})
    assert (err.code, err.message) == ("InvalidRequest", "SigV2 is not supported")
    err = _code(parse_request, "GET", "/", "AWSAccessKeyId=AK&Expires=1&Signature=x", {})
    assert err.code == "InvalidRequest"


def test_skew() -> None:
    headers = _signed()
    assert _check(headers, now=NOW + timedelta(seconds=900))
    err = _code(_check, headers, now=NOW + timedelta(seconds=901))
    assert err.code == "RequestTimeTooSkewed"
    assert err.message == ("The difference between the request time and the current time is too large.")
    assert _code(_check, headers, now=NOW - timedelta(hours=1)).code == "RequestTimeTooSkewed"


def _presigned(expires: int = 3600) -> tuple[str, str]:
    url = presign_url("GET", "https://s3.example.test/b/k", "AK", "SK", "us-east-1", now=NOW, expires=expires)
    parts = urlsplit(url)
    return parts.path, parts.query


def _check_presigned(query: str, now: datetime) -> str:
    headers = {"host": "s3.example.test"}
    creds = parse_request("GET", "/b/k", query, headers)
    assert creds is not None
    return verify(creds, "SK", "GET", "/b/k", query, headers, now=now)


def test_presigned_expiry() -> None:
    _, query = _presigned(60)
    assert _check_presigned(query, NOW + timedelta(seconds=60))
    err = _code(_check_presigned, query, NOW + timedelta(seconds=61))
    assert (err.code, err.message) == ("AccessDenied", "Request has expired")


def test_presigned_not_yet_valid() -> None:
    _, query = _presigned(60)
    assert _check_presigned(query, NOW - timedelta(seconds=900))
    err = _code(_check_presigned, query, NOW - timedelta(seconds=901))
    assert (err.code, err.message) == ("AccessDenied", "Request is not valid yet")


@pytest.mark.parametrize("expires", [604801, 0, -5])
def test_presigned_expires_out_of_range(expires: int) -> None:
    _, query = _presigned(expires)
    assert _code(_check_presigned, query, NOW).code == "AuthorizationQueryParametersError"


def test_presigned_max_week_is_fine() -> None:
    _, query = _presigned(604800)
    assert _check_presigned(query, NOW + timedelta(days=6))


@pytest.mark.parametrize(
    "query",
    [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20240301T120000Z",
        (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20240301%2Fus-east-1%2Fs3"
            "&X-Amz-Date=20240301T120000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host"
            "&X-Amz-Signature=ab"
        ),
        (
            "X-Amz-Algorithm=AWS4-HMAC-SHA1&X-Amz-Credential=AK%2F20240301%2Fus-east-1%2Fs3"
            "%2Faws4_request&X-Amz-Date=20240301T120000Z&X-Amz-Expires=60"
            "&X-Amz-SignedHeaders=host&X-Amz-Signature=ab"
        ),
        (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20240301%2Fus-east-1%2Fs3"
            "%2Faws4_request&X-Amz-Date=20240301T120000Z&X-Amz-Expires=soon"
            "&X-Amz-SignedHeaders=host&X-Amz-Signature=ab"
        ),
        (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20240301%2Fus-east-1%2Fs3"
            "%2Faws4_request&X-Amz-Date=2024-03-01&X-Amz-Expires=60"
            "&X-Amz-SignedHeaders=host&X-Amz-Signature=ab"
        ),
    ],
)
def test_malformed_query(query: str) -> None:
    err = _code(parse_request, "GET", "/b/k", query, {"host": "h"})
    assert err.code == "AuthorizationQueryParametersError"


BASE_AUTH = {
    "Credential": "AK/20240301/us-east-1/s3/aws4_request",
    "SignedHeaders": "host;x-amz-content-sha256;x-amz-date",
    "Signature": "ab" * 32,
}


@pytest.mark.parametrize("missing", ["Credential", "SignedHeaders", "Signature"])
def test_malformed_header_missing_component(missing: str) -> None:
    parts = ", ".join(f"{k}={v}" for k, v in BASE_AUTH.items() if k != missing)
    headers = _signed()
    headers["authorization"] = f"AWS4-HMAC-SHA256 {parts}"
    err = _code(parse_request, "GET", "/b/k", "", headers)
    assert err.code == "AuthorizationHeaderMalformed"
    assert missing in err.message


@pytest.mark.parametrize(
    "credential",
    [
        "AK/20240301/us-east-1/s3",
        "AK/20240301/us-east-1/s3/aws5_request",
        "AK/2024/us-east-1/s3/aws4_request",
        "AK//us-east-1/s3/aws4_request",
    ],
)
def test_malformed_header_bad_scope(credential: str) -> None:
    headers = _signed()
    headers["authorization"] = f"AWS4-HMAC-SHA256 Credential={credential},SignedHeaders=host,Signature={'ab' * 32}"
    assert _code(parse_request, "GET", "/b/k", "", headers).code == "AuthorizationHeaderMalformed"


def test_header_tolerates_spacing() -> None:
    headers = _signed()
    headers["authorization"] = headers["authorization"].replace(", ", ",")
    assert _check(headers, now=NOW)
    headers["authorization"] = headers["authorization"].replace(",", " ,  ")
    assert _check(headers, now=NOW)


def test_wrong_region() -> None:
    headers = _signed(region="us-west-2")
    err = _code(_check, headers, now=NOW, region="us-east-1")
    assert err.code == "AuthorizationHeaderMalformed"
    assert "the region 'us-west-2' is wrong; expecting 'us-east-1'" in err.message
    assert _check(headers, now=NOW)  # no region pinned: any region verifies


def test_wrong_service_and_date() -> None:
    headers = _signed()
    headers["authorization"] = headers["authorization"].replace("/s3/", "/iam/")
    assert _code(_check, headers, now=NOW).code == "AuthorizationHeaderMalformed"
    headers = _signed()
    headers["authorization"] = headers["authorization"].replace("/20240301/", "/20240302/")
    assert _code(_check, headers, now=NOW).code == "AuthorizationHeaderMalformed"


def test_host_must_be_signed() -> None:
    headers = {
        "x-amz-date": "20240301T120000Z",
        "x-amz-content-sha256": EMPTY_SHA256,
        "host": "h",
        "authorization": (
            "AWS4-HMAC-SHA256 Credential=AK/20240301/us-east-1/s3/aws4_request, "
            f"SignedHeaders=x-amz-content-sha256;x-amz-date, Signature={'ab' * 32}"
        ),
    }
    err = _code(_check, headers, now=NOW)
    assert err.code == "AuthorizationHeaderMalformed" and "host" in err.message


def test_missing_content_sha256() -> None:
    headers = _signed()
    del headers["x-amz-content-sha256"]
    err = _code(parse_request, "GET", "/b/k", "", headers)
    assert (err.code, err.message) == (
        "InvalidRequest",
        "Missing required header for this request: x-amz-content-sha256",
    )


def test_bad_content_sha256_value() -> None:
    headers = _signed()
    headers["x-amz-content-sha256"] = "nope"
    assert _code(parse_request, "GET", "/b/k", "", headers).code == "InvalidRequest"


def test_date_header_fallback() -> None:
    headers = {"host": "s3.example.test", "date": "Fri, 01 Mar 2024 12:00:00 GMT"}
    added = sign_headers("GET", "https://s3.example.test/b/k", headers, EMPTY_SHA256, "AK", "SK", "us-east-1", now=NOW)
    del added["x-amz-date"]
    added["authorization"] = added["authorization"].replace(";x-amz-date", "")
    headers.update(added)
    creds = parse_request("GET", "/b/k", "", headers)
    assert creds is not None and creds.amz_date == "20240301T120000Z"
    with pytest.raises(SigV4Error) as info:  # signature changed as we dropped a header
        verify(creds, "SK", "GET", "/b/k", "", headers, now=NOW)
    assert info.value.code == "SignatureDoesNotMatch"


def test_missing_dates() -> None:
    headers = _signed()
    del headers["x-amz-date"]
    assert _code(parse_request, "GET", "/b/k", "", headers).code == "AccessDenied"


def test_both_auth_forms_rejected() -> None:
    _, query = _presigned()
    err = _code(parse_request, "GET", "/b/k", query, _signed())
    assert err.code == "InvalidArgument"  # as S3 answers it, with "Only one auth mechanism allowed"


def test_non_ascii_signature_is_a_mismatch() -> None:
    headers = _signed()
    headers["authorization"] = headers["authorization"][:-1] + "é"
    assert _code(_check, headers, now=NOW).code == "SignatureDoesNotMatch"


# --------------------------------------------------------------------------
# Caching and helpers


def test_signing_key_is_cached() -> None:
    first = signing_key("secret-for-cache-test", "20240301", "us-east-1", "s3")
    hits = signing_key.cache_info().hits
    second = signing_key("secret-for-cache-test", "20240301", "us-east-1", "s3")
    assert second is first
    assert signing_key.cache_info().hits == hits + 1


def test_plus_in_query_is_a_literal_plus() -> None:
    assert canonical_query("a=b+c&a=b%20c") == "a=b%20c&a=b%2Bc"
    assert canonical_query("lifecycle") == "lifecycle="
    assert canonical_query("X-Amz-Signature=x&b=1", exclude_signature=True) == "b=1"


def test_canonical_uri_single_encoding() -> None:
    assert canonical_uri("/b/a%20b/%E2%9C%93") == "/b/a%20b/%E2%9C%93"
    assert canonical_uri("/b/a b/✓") == "/b/a%20b/%E2%9C%93"
    assert canonical_uri("/b/%7e%2f") == "/b/~/"  # decoded once; '/' is then kept
    assert canonical_uri("") == "/"


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64), safe=st.sampled_from(["", "/"]))
def test_uri_encoding_is_what_quote_on_bytes_gives(data: bytes, safe: str) -> None:
    # sigv4._encode replaced quote() for speed; AWS's UriEncode is what quote(bytes) does.
    assert sigv4._encode(data, safe) == quote(data, safe=safe)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("aZ09-._~/;:=%+ ✓"), max_size=40))
def test_a_query_component_is_encoded_as_quote_on_its_utf8_would(text: str) -> None:
    # The shortcuts for unreserved text and for text with only '/' and ';' besides must agree with
    # the byte-by-byte escape (AWS's UriEncode) on everything.
    assert sigv4._encode_component(text) == quote(text.encode("utf-8"), safe="")
    assert sigv4._encode_component("host;x-amz-date") == "host%3Bx-amz-date"
    assert sigv4._encode_component("AKID/20261201/us-east-1/s3/aws4_request") == (
        "AKID%2F20261201%2Fus-east-1%2Fs3%2Faws4_request"
    )
