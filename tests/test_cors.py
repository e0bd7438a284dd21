"""CORS: rule matching, every PutBucketCors error, preflights, headers on actual requests.

Pure tests of vaultaire.api.cors first, then the in-process server (tests/s3helpers.py),
then boto3's put/get/delete_bucket_cors against a real daemon.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq

from tests.postform import BOUNDARY, form, v4_fields
from tests.s3helpers import ACCESS, SECRET, Server, error_code, legacy_container, md5_header, xml_values
from vaultaire.api import cors
from vaultaire.api.cors import Rule
from vaultaire.api.errors import S3Error
from vaultaire.config import ConfigError, build
from vaultaire.service import make_service

APP = "http://app.example.test"

# -- matching


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*", "http://anything.test:8080", True),
        ("*", "", True),
        ("http://app.example.test", "http://app.example.test", True),
        ("http://app.example.test", "http://app.example.test:80", False),
        ("http://*.example.test", "http://a.example.test", True),
        ("http://*.example.test", "http://a.b.example.test", True),
        ("http://*.example.test", "http://example.test", False),
        ("http://*.example.test", "https://a.example.test", False),
        ("http://127.0.0.1:*", "http://127.0.0.1:41234", True),
        ("http://127.0.0.1:*", "http://127.0.0.2:41234", False),
        ("https://*", "https://x", True),
        ("ab*ba", "aba", False),  # head and tail may not overlap
        ("ab*ba", "abba", True),
    ],
)
def test_wildcard_match(pattern: str, value: str, expected: bool) -> None:
    assert cors.wildcard_match(pattern, value) is expected


def test_origins_and_methods_are_case_sensitive_headers_are_not() -> None:
    rule = Rule(origins=("http://App.example.test",), methods=("GET",), headers=("X-Amz-*", "content-type"))
    assert cors.find([rule], "http://app.example.test", "GET") is None
    assert cors.find([rule], "http://App.example.test", "get") is None
    assert cors.find([rule], "http://App.example.test", "GET") is not None
    assert cors.find([rule], "http://App.example.test", "GET", ["x-amz-date", "Content-Type", "X-AMZ-META-A"])
    assert cors.find([rule], "http://App.example.test", "GET", ["authorization"]) is None


def test_requested_headers_need_every_one_allowed() -> None:
    bare = Rule(origins=("*",), methods=("PUT",))
    assert cors.find([bare], APP, "PUT") is not None  # nothing requested, nothing to allow
    assert cors.find([bare], APP, "PUT", ["content-type"]) is None
    star = Rule(origins=("*",), methods=("PUT",), headers=("*",))
    assert cors.find([star], APP, "PUT", ["content-type", "x-amz-anything"]) is not None


def test_first_matching_rule_wins() -> None:
    first = Rule(origins=(APP,), methods=("GET",), id="first", max_age=10)
    second = Rule(origins=("*",), methods=("GET", "PUT"), id="second")
    grant = cors.find([first, second], APP, "GET")
    assert grant is not None and grant.rule.id == "first" and grant.allow_origin == APP
    grant = cors.find([first, second], APP, "PUT")
    assert grant is not None and grant.rule.id == "second" and grant.allow_origin == "*"
    assert cors.find([first, second], APP, "DELETE") is None


def test_response_headers() -> None:
    rule = Rule(origins=(APP,), methods=("GET", "PUT"), expose=("ETag", "x-amz-request-id"), max_age=600)
    grant = cors.find([rule], APP, "PUT", ["content-type"]) or cors.find([rule], APP, "PUT")
    assert grant is not None
    assert cors.response_headers(grant, ["Content-Type"]) == {
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Allow-Methods": "GET, PUT",
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Headers": "content-type",
        "Access-Control-Expose-Headers": "ETag, x-amz-request-id",
        "Access-Control-Max-Age": "600",
    }
    anyone = cors.find([Rule(origins=("*",), methods=("GET",))], APP, "GET")
    assert anyone is not None
    # No credentials with a wildcard origin (browsers would refuse the pair).
    assert cors.response_headers(anyone) == {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET"}


def test_malformed_access_control_request_headers() -> None:
    assert cors.requested_headers(" content-type , X-Amz-Date ") == ["content-type", "X-Amz-Date"]
    assert cors.requested_headers("") == []
    with pytest.raises(S3Error) as e:
        cors.requested_headers("content-type, bad header")
    assert e.value.code == "BadRequest" and e.value.status == 400


# -- PutBucketCors bodies


def config_xml(*rules: str, root: str = "CORSConfiguration") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><{root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        + "".join(f"<CORSRule>{r}</CORSRule>" for r in rules)
        + f"</{root}>"
    ).encode()


MINIMAL = "<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"
FULL = (
    "<ID>web app</ID><AllowedOrigin>http://*.example.test</AllowedOrigin><AllowedOrigin>http://a.test</AllowedOrigin>"
    "<AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod><AllowedHeader>x-amz-*</AllowedHeader>"
    "<AllowedHeader>Content-Type</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds>"
)


def test_parse_full_rule_and_round_trips() -> None:
    rules = cors.parse_xml(config_xml(FULL, MINIMAL))
    assert rules[0] == Rule(
        origins=("http://*.example.test", "http://a.test"),
        methods=("GET", "PUT"),
        headers=("x-amz-*", "Content-Type"),
        expose=("ETag",),
        max_age=3000,
        id="web app",
    )
    assert rules[1] == Rule(origins=("*",), methods=("GET",))
    assert cors.loads(cors.dumps(rules)) == rules
    from vaultaire.api.xmlout import xml_document

    assert cors.parse_xml(xml_document(cors.to_xml(rules))) == rules


def test_a_hundred_rules_are_allowed() -> None:
    assert len(cors.parse_xml(config_xml(*[MINIMAL] * 100))) == 100


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"<CORSConfiguration><CORSRule>", "MalformedXML", None),
        (b"", "MalformedXML", None),
        (config_xml(MINIMAL, root="CorsConfig"), "MalformedXML", None),
        (config_xml(), "MalformedXML", None),
        (config_xml(*[MINIMAL] * 101), "MalformedXML", None),
        (config_xml("<AllowedMethod>GET</AllowedMethod>"), "MalformedXML", None),
        (config_xml("<AllowedOrigin>*</AllowedOrigin>"), "MalformedXML", None),
        (config_xml(MINIMAL + "<AllowedMethods>GET</AllowedMethods>"), "MalformedXML", None),
        (config_xml(MINIMAL + "<MaxAgeSeconds>soon</MaxAgeSeconds>"), "MalformedXML", None),
        (config_xml("<AllowedOrigin></AllowedOrigin><AllowedMethod>GET</AllowedMethod>"), "MalformedXML", None),
        (
            b'<!DOCTYPE x [<!ENTITY a "b">]><CORSConfiguration><CORSRule>' + MINIMAL.encode() + b"</CORSRule>"
            b"</CORSConfiguration>",
            "MalformedXML",
            None,
        ),
        (
            config_xml("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod>"),
            "InvalidRequest",
            "Found unsupported HTTP method in CORS config. Unsupported method is PATCH",
        ),
        (
            config_xml("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>get</AllowedMethod>"),
            "InvalidRequest",
            "Found unsupported HTTP method in CORS config. Unsupported method is get",
        ),
        (
            config_xml("<AllowedOrigin>http://*.*.test</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"),
            "InvalidRequest",
            'AllowedOrigin "http://*.*.test" can not have more than one wildcard.',
        ),
        (
            config_xml("<AllowedOrigin>http://a test</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"),
            "InvalidRequest",
            'AllowedOrigin "http://a test" contains invalid character.',
        ),
        (
            config_xml(MINIMAL + "<AllowedHeader>x-*-*</AllowedHeader>"),
            "InvalidRequest",
            'AllowedHeader "x-*-*" can not have more than one wildcard.',
        ),
        (
            config_xml(MINIMAL + "<AllowedHeader>x:y</AllowedHeader>"),
            "InvalidRequest",
            'AllowedHeader "x:y" contains invalid character.',
        ),
        (
            config_xml(MINIMAL + "<ExposeHeader>x-amz-meta-*</ExposeHeader>"),
            "InvalidRequest",
            'ExposeHeader "x-amz-meta-*" contains wildcard. We currently do not support wildcard for ExposeHeader.',
        ),
        (
            config_xml(MINIMAL + "<ExposeHeader>ETag\r\nX-Injected: 1</ExposeHeader>"),
            "InvalidRequest",
            None,
        ),
        (config_xml(MINIMAL + "<MaxAgeSeconds>-1</MaxAgeSeconds>"), "InvalidRequest", None),
        (config_xml(MINIMAL + f"<ID>{'i' * 256}</ID>"), "InvalidRequest", None),
    ],
)
def test_put_bucket_cors_errors(body: bytes, code: str, message: str | None) -> None:
    with pytest.raises(S3Error) as e:
        cors.parse_xml(body)
    assert e.value.code == code
    assert e.value.status == 400
    if message is not None:
        assert e.value.message == message


# -- the server-wide default from the config file


def test_default_rules_from_config(tmp_path: Path) -> None:
    rules = cors.from_config(
        [
            {"allowed_origins": ["http://127.0.0.1:*"], "allowed_methods": ["GET", "HEAD"], "max_age_seconds": 60},
            {"id": "all", "allowed_origins": ["*"], "allowed_methods": ["GET"], "expose_headers": ["ETag"]},
        ]
    )
    assert rules == (
        Rule(origins=("http://127.0.0.1:*",), methods=("GET", "HEAD"), max_age=60),
        Rule(origins=("*",), methods=("GET",), expose=("ETag",), id="all"),
    )
    settings = build({"cors_rules": [{"allowed_origins": ["*"], "allowed_methods": ["PUT"]}]}, {})
    assert settings.cors_rules == ({"allowed_origins": ["*"], "allowed_methods": ["PUT"]},)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"allowed_origins": ["*"], "allowed_methods": ["PATCH"]}, "Unsupported method is PATCH"),
        ({"allowed_origins": ["*"]}, "needs allowed_origins and allowed_methods"),
        ({"allowed_origins": "*", "allowed_methods": ["GET"]}, "allowed_origins must be a list"),
        ({"allowed_origins": ["*"], "allowed_methods": ["GET"], "methods": ["PUT"]}, "unknown key 'methods'"),
        ({"allowed_origins": ["*"], "allowed_methods": ["GET"], "max_age_seconds": "1"}, "must be an integer"),
        ({"allowed_origins": ["*/*/*"], "allowed_methods": ["GET"]}, "more than one wildcard"),
    ],
)
def test_bad_default_rules_stop_the_daemon_with_one_line(tmp_path: Path, table: dict[str, Any], expected: str) -> None:
    settings = build({"data": str(tmp_path / "data"), "cors_rules": [table]}, {})
    with pytest.raises(ConfigError) as e:
        make_service(settings)
    assert expected in str(e.value) and "[[cors.rules]] number 1" in str(e.value)
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_cors_section_in_the_toml_file(tmp_path: Path) -> None:
    from vaultaire.config import load_file

    path = tmp_path / "v.toml"
    path.write_text('[[cors.rules]]\nallowed_origins = ["https://*.example.com"]\nallowed_methods = ["GET"]\n')
    settings = build(load_file(str(path)), {})
    assert cors.from_config(settings.cors_rules) == (Rule(origins=("https://*.example.com",), methods=("GET",)),)
    path.write_text('[cors]\norigins = ["*"]\n')
    with pytest.raises(ConfigError, match="unknown setting cors.origins"):
        load_file(str(path))


def test_twistd_refuses_a_bad_default_rule_in_one_line(tmp_path: Path) -> None:
    from daemon import ACCESS_KEY, SECRET_KEY, assert_one_line_failure, free_port, run_twistd

    config = tmp_path / "v.toml"
    config.write_text('[[cors.rules]]\nallowed_origins = ["*"]\nallowed_methods = ["GET", "OPTIONS"]\n')
    endpoints = [
        "--listen",
        f"tcp:{free_port()}:interface=127.0.0.1",
        "--ops",
        f"tcp:{free_port()}:interface=127.0.0.1",
    ]
    result = run_twistd(
        ["--config", str(config), "--data", str(tmp_path / "d"), *endpoints],
        tmp_path,
        {"VAULTAIRE_ACCESS_KEY": ACCESS_KEY, "VAULTAIRE_SECRET_KEY": SECRET_KEY},
    )
    assert_one_line_failure(result, "[[cors.rules]] number 1", "Unsupported method is OPTIONS")


# -- in process: the ?cors subresource


async def put_cors(server: Server, bucket: str, *rules: str, access: str = ACCESS, secret: str = SECRET) -> Any:
    body = config_xml(*rules)
    return await server.request(
        "PUT", f"/{bucket}", body, query="cors", headers=md5_header(body), access=access, secret=secret
    )


def rule(origin: str = APP, methods: tuple[str, ...] = ("GET", "PUT", "HEAD"), extra: str = "") -> str:
    return (
        f"<AllowedOrigin>{origin}</AllowedOrigin>"
        + "".join(f"<AllowedMethod>{m}</AllowedMethod>" for m in methods)
        + extra
    )


@pytest_twisted.async_yield_fixture
async def server(tmp_path):
    s = Server(str(tmp_path))
    await s.start("pics", "plain")
    yield s
    await s.stop()


@pytest_twisted.ensureDeferred
async def test_put_get_delete_bucket_cors(server):
    r = await server.request("GET", "/pics", query="cors")
    assert r.code == 404 and error_code(r) == "NoSuchCORSConfiguration"
    assert xml_values(r.body, "BucketName") == ["pics"]
    r = await put_cors(server, "pics", FULL, MINIMAL)
    assert r.code == 200, r.body
    r = await server.request("GET", "/pics", query="cors")
    assert r.code == 200
    assert r.headers.getRawHeaders("content-type") == ["application/xml"]
    assert cors.parse_xml(r.body) == cors.parse_xml(config_xml(FULL, MINIMAL))
    assert xml_values(r.body, "ID") == ["web app"]
    r = await put_cors(server, "pics", MINIMAL)  # a second PUT replaces the whole configuration
    assert r.code == 200
    assert cors.parse_xml((await server.request("GET", "/pics", query="cors")).body) == (
        Rule(origins=("*",), methods=("GET",)),
    )
    r = await server.request("DELETE", "/pics", query="cors")
    assert r.code == 204
    r = await server.request("GET", "/pics", query="cors")
    assert error_code(r) == "NoSuchCORSConfiguration"
    assert (await server.request("DELETE", "/pics", query="cors")).code == 204  # deleting nothing is fine


@pytest_twisted.ensureDeferred
async def test_bucket_cors_errors_over_http(server):
    body = config_xml(MINIMAL)
    r = await server.request("PUT", "/pics", body, query="cors")
    assert r.code == 400 and error_code(r) == "InvalidRequest"
    assert b"Content-MD5" in r.body
    r = await server.request("PUT", "/pics", body, query="cors", headers=md5_header(b"other"))
    assert r.code == 400 and error_code(r) == "BadDigest"
    r = await put_cors(server, "pics", rule(methods=("PATCH",)))
    assert r.code == 400 and error_code(r) == "InvalidRequest"
    assert xml_values(r.body, "Message") == [
        "Found unsupported HTTP method in CORS config. Unsupported method is PATCH"
    ]
    bad = b"<CORSConfiguration>"
    r = await server.request("PUT", "/pics", bad, query="cors", headers=md5_header(bad))
    assert r.code == 400 and error_code(r) == "MalformedXML"
    for method in ("GET", "PUT", "DELETE"):
        r = await server.request(method, "/missing", config_xml(MINIMAL), query="cors", headers=md5_header(body))
        assert r.code == 404 and error_code(r) == "NoSuchBucket", method
    r = await server.request("GET", "/pics", query="cors", sign=False)
    assert r.code == 403 and error_code(r) == "AccessDenied"
    assert error_code(await server.request("GET", "/pics", query="cors")) == "NoSuchCORSConfiguration"


@pytest_twisted.ensureDeferred
async def test_deleting_a_container_deletes_its_cors(server):
    assert (await put_cors(server, "plain", MINIMAL)).code == 200
    assert (await server.request("DELETE", "/plain")).code == 204
    rows = sqlite3.connect(str(Path(server.data) / "catalog.sqlite3")).execute("SELECT * FROM container_settings")
    assert rows.fetchall() == []
    assert (await server.request("PUT", "/plain")).code == 200
    assert error_code(await server.request("GET", "/plain", query="cors")) == "NoSuchCORSConfiguration"


# -- in process: preflights


async def preflight(
    server: Server, path: str, origin: str | None = APP, method: str | None = "PUT", headers: str | None = None
) -> Any:
    hdrs = {}
    if origin is not None:
        hdrs["Origin"] = origin
    if method is not None:
        hdrs["Access-Control-Request-Method"] = method
    if headers is not None:
        hdrs["Access-Control-Request-Headers"] = headers
    return await server.request("OPTIONS", path, headers=hdrs, sign=False)


def header(response: Any, name: str) -> str | None:
    values = response.headers.getRawHeaders(name)
    return None if values is None else ",".join(values)


@pytest_twisted.ensureDeferred
async def test_preflight_answered_from_the_first_matching_rule(server):
    await put_cors(
        server,
        "pics",
        rule("http://*.other.test", ("GET",)),
        rule(
            extra="<AllowedHeader>content-type</AllowedHeader><AllowedHeader>x-amz-*</AllowedHeader>"
            "<ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>120</MaxAgeSeconds>"
        ),
        rule("*", ("DELETE",)),
    )
    r = await preflight(server, "/pics/photo.jpg", headers="Content-Type, X-Amz-Date")
    assert r.code == 200, r.body
    assert r.body == b""
    assert header(r, "Access-Control-Allow-Origin") == APP
    assert header(r, "Access-Control-Allow-Methods") == "GET, PUT, HEAD"
    assert header(r, "Access-Control-Allow-Headers") == "content-type, x-amz-date"
    assert header(r, "Access-Control-Expose-Headers") == "ETag"
    assert header(r, "Access-Control-Max-Age") == "120"
    assert header(r, "Access-Control-Allow-Credentials") == "true"
    assert header(r, "Vary") == "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
    # The query of the request to come (a presigned URL, ?uploads) does not change anything.
    r = await server.request(
        "OPTIONS",
        "/pics/photo.jpg",
        query="uploads&X-Amz-Credential=nobody",
        headers={"Origin": "http://a.other.test", "Access-Control-Request-Method": "GET"},
        sign=False,
    )
    assert r.code == 200 and header(r, "Access-Control-Allow-Methods") == "GET"
    r = await preflight(server, "/pics", origin="http://elsewhere.test", method="DELETE")
    assert r.code == 200 and header(r, "Access-Control-Allow-Origin") == "*"
    assert header(r, "Access-Control-Allow-Credentials") is None


@pytest_twisted.ensureDeferred
async def test_preflight_errors(server):
    r = await preflight(server, "/pics/a", origin=None)
    assert r.code == 400 and error_code(r) == "BadRequest"
    assert xml_values(r.body, "Message") == ["Insufficient information. Origin request header needed."]
    r = await preflight(server, "/pics/a", method=None)
    assert r.code == 400 and error_code(r) == "BadRequest"
    assert xml_values(r.body, "Message") == ["Invalid Access-Control-Request-Method: null"]
    r = await preflight(server, "/pics/a", headers="a b")
    assert r.code == 400 and error_code(r) == "BadRequest"
    # No configuration: CORS is not enabled, for a missing container too (an unsigned request
    # must not learn which names exist).
    for path, kind in (("/pics/a", "OBJECT"), ("/pics", "BUCKET"), ("/missing/a", "OBJECT"), ("/", "SERVICE")):
        r = await preflight(server, path)
        assert r.code == 403 and error_code(r) == "AccessForbidden", path
        assert xml_values(r.body, "Message") == ["CORSResponse: CORS is not enabled for this bucket."]
        assert xml_values(r.body, "Method") == ["PUT"] and xml_values(r.body, "ResourceType") == [kind]
        assert header(r, "Access-Control-Allow-Origin") is None
    await put_cors(server, "pics", rule(extra="<AllowedHeader>content-type</AllowedHeader>"))
    refused = [
        ("http://evil.test", "PUT", None),  # origin
        (APP.upper(), "PUT", None),  # origins are case-sensitive
        (APP, "DELETE", None),  # method
        (APP, "put", None),  # methods are exact
        (APP, "PUT", "content-type, x-amz-date"),  # one header not allowed
    ]
    for origin, method, headers in refused:
        r = await preflight(server, "/pics/a", origin=origin, method=method, headers=headers)
        assert r.code == 403 and error_code(r) == "AccessForbidden", (origin, method, headers)
        assert xml_values(r.body, "Message")[0].startswith("CORSResponse: This CORS request is not allowed.")
        assert xml_values(r.body, "Method") == [method]
        assert header(r, "Access-Control-Allow-Origin") is None
    r = await preflight(server, "/pics/a", headers="CONTENT-TYPE")
    assert r.code == 200


@pytest_twisted.ensureDeferred
async def test_a_preflight_grants_nothing(server):
    await put_cors(server, "pics", rule("*", ("GET", "PUT", "DELETE"), "<AllowedHeader>*</AllowedHeader>"))
    assert (await preflight(server, "/pics/a", headers="authorization")).code == 200
    r = await server.request("PUT", "/pics/a", b"data", headers={"Origin": APP}, sign=False)
    assert r.code == 403 and error_code(r) == "AccessDenied"
    # The refusal is readable by the page, but nothing was written.
    assert header(r, "Access-Control-Allow-Origin") == "*"
    assert error_code(await server.request("GET", "/pics/a")) == "NoSuchKey"
    r = await server.request("PUT", "/pics/a", b"data", headers={"Origin": APP}, secret="wrong-secret-0123456")
    assert r.code == 403 and error_code(r) == "SignatureDoesNotMatch"
    assert header(r, "Access-Control-Allow-Origin") == "*"
    assert error_code(await server.request("GET", "/pics/a")) == "NoSuchKey"


# -- in process: actual requests carrying Origin


@pytest_twisted.ensureDeferred
async def test_actual_requests_get_the_matching_rule_headers(server):
    await put_cors(
        server, "pics", rule(methods=("GET", "PUT"), extra="<ExposeHeader>ETag</ExposeHeader>"), rule("*", ("HEAD",))
    )
    r = await server.request("PUT", "/pics/a.txt", b"hello", headers={"Origin": APP})
    assert r.code == 200
    assert header(r, "Access-Control-Allow-Origin") == APP
    assert header(r, "Access-Control-Expose-Headers") == "ETag"
    assert header(r, "Access-Control-Allow-Methods") == "GET, PUT"
    assert header(r, "Access-Control-Allow-Headers") is None  # a preflight thing only
    assert header(r, "Vary") == "Origin"
    r = await server.request("GET", "/pics/a.txt", headers={"Origin": APP})  # streamed: headers set before
    assert r.body == b"hello" and header(r, "Access-Control-Allow-Origin") == APP
    r = await server.request("HEAD", "/pics/a.txt", headers={"Origin": APP})
    assert r.code == 200 and header(r, "Access-Control-Allow-Origin") == "*"  # the second rule: HEAD
    r = await server.request("GET", "/pics/a.txt", headers={"Origin": "http://evil.test"})
    assert r.code == 200 and r.body == b"hello"  # served: CORS protects the reader, not the bytes
    assert header(r, "Access-Control-Allow-Origin") is None and header(r, "Vary") == "Origin"
    r = await server.request("GET", "/pics/a.txt")
    assert header(r, "Access-Control-Allow-Origin") is None and header(r, "Vary") is None
    r = await server.request("GET", "/plain", headers={"Origin": APP})  # a container without CORS
    assert r.code == 200 and header(r, "Access-Control-Allow-Origin") is None and header(r, "Vary") is None


@pytest_twisted.ensureDeferred
async def test_error_responses_carry_the_headers(server):
    await put_cors(server, "pics", rule())
    r = await server.request("GET", "/pics/missing", headers={"Origin": APP})
    assert r.code == 404 and error_code(r) == "NoSuchKey"
    assert header(r, "Access-Control-Allow-Origin") == APP
    r = await server.request("GET", "/pics/missing", query="versionId=nope", headers={"Origin": APP})
    assert r.code == 400 and header(r, "Access-Control-Allow-Origin") == APP
    r = await server.request("GET", "/pics/a", headers={"Origin": APP}, query="X-Amz-Expires=1")
    # Signed in the header and in the query at once: S3 answers 400 InvalidArgument ("Only one auth
    # mechanism allowed"), before any authentication, and the answer still carries the CORS headers.
    assert (r.code, error_code(r)) == (400, "InvalidArgument") and header(r, "Access-Control-Allow-Origin") == APP


@pytest_twisted.ensureDeferred
async def test_post_object_gets_the_headers(server):
    await put_cors(server, "pics", rule(methods=("POST",)))
    fields = {"key": "form.txt", **v4_fields([{"bucket": "pics"}, {"key": "form.txt"}])}
    r = await treq.post(
        server.url + "/pics",
        data=form(fields, b"from a form"),
        headers={"Content-Type": [f"multipart/form-data; boundary={BOUNDARY}"], "Origin": [APP]},
        persistent=False,
    )
    await r.content()
    assert r.code == 204
    assert r.headers.getRawHeaders("access-control-allow-origin") == [APP]


@pytest_twisted.ensureDeferred
async def test_requests_without_origin_read_nothing_more(server):
    await put_cors(server, "pics", rule())
    calls = []
    real = server.engine.settings_by_name

    async def counting(*args: Any) -> Any:
        calls.append(args)
        return await real(*args)

    server.engine.settings_by_name = counting  # type: ignore[method-assign]
    await server.request("PUT", "/pics/a", b"x")
    await server.request("GET", "/pics/a")
    await server.request("GET", "/pics/missing")
    assert calls == []
    r = await server.request("GET", "/pics/a", headers={"Origin": APP})
    assert header(r, "Access-Control-Allow-Origin") == APP
    assert len(calls) == 1  # one read, however the request ends


@pytest_twisted.ensureDeferred
async def test_tenants_sharing_a_container_name(server):
    """A data directory from before names were unique across tenants may hold one name twice."""
    tenant = await server.engine.ensure_credential("other", "OTHERACCESSKEY", "other-secret-0123456789")
    other = {"access": "OTHERACCESSKEY", "secret": "other-secret-0123456789"}
    legacy_container(server, tenant.id, "pics")
    await put_cors(server, "pics", rule("http://other.test"), **other)
    # Unsigned, a preflight cannot tell the two apart: such a name resolves for no one but its owners.
    assert (await preflight(server, "/pics/a", origin="http://other.test")).code == 403
    assert (await preflight(server, "/pics/a", origin=APP)).code == 403
    # A signed request is answered from its own tenant's container only.
    r = await server.request("GET", "/pics", headers={"Origin": "http://other.test"})
    assert r.code == 200 and header(r, "Access-Control-Allow-Origin") is None
    r = await server.request("GET", "/pics", headers={"Origin": "http://other.test"}, **other)
    assert r.code == 200 and header(r, "Access-Control-Allow-Origin") == "http://other.test"
    assert error_code(await server.request("GET", "/pics", query="cors")) == "NoSuchCORSConfiguration"


# -- in process: the server-wide default


@pytest_twisted.async_yield_fixture
async def defaulted(tmp_path):
    default = cors.from_config(
        [{"allowed_origins": ["http://127.0.0.1:*"], "allowed_methods": ["GET"], "expose_headers": ["ETag"]}]
    )
    s = Server(str(tmp_path), cors_default=default)
    await s.start("own", "inherits")
    yield s
    await s.stop()


@pytest_twisted.ensureDeferred
async def test_server_default_applies_where_a_container_has_none(defaulted):
    local = "http://127.0.0.1:8000"
    await put_cors(defaulted, "own", rule(APP, ("GET", "PUT")))
    r = await preflight(defaulted, "/inherits/a", origin=local, method="GET")
    assert r.code == 200 and header(r, "Access-Control-Allow-Origin") == local
    assert (await preflight(defaulted, "/inherits/a", origin=local, method="PUT")).code == 403
    # The container's own configuration wins, even where the default would allow.
    assert (await preflight(defaulted, "/own/a", origin=local, method="GET")).code == 403
    assert (await preflight(defaulted, "/own/a", origin=APP, method="PUT")).code == 200
    # Missing containers and the service answer from the default (so nothing leaks existence).
    assert (await preflight(defaulted, "/missing/a", origin=local, method="GET")).code == 200
    assert (await preflight(defaulted, "/", origin=local, method="GET")).code == 200
    r = await defaulted.request("GET", "/", headers={"Origin": local})
    assert r.code == 200 and header(r, "Access-Control-Allow-Origin") == local
    r = await defaulted.request("GET", "/missing/a", headers={"Origin": local})
    assert error_code(r) == "NoSuchBucket" and header(r, "Access-Control-Allow-Origin") == local
    r = await defaulted.request("GET", "/own", headers={"Origin": local})
    assert header(r, "Access-Control-Allow-Origin") is None
    # GetBucketCors shows a container's own configuration, never the server's.
    assert error_code(await defaulted.request("GET", "/inherits", query="cors")) == "NoSuchCORSConfiguration"


# -- boto3 against a real daemon


def test_boto3_bucket_cors_round_trip(module_daemon) -> None:
    from botocore.exceptions import ClientError

    s3 = module_daemon.boto3_client()
    s3.create_bucket(Bucket="cors-boto3")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket="cors-boto3")
    assert e.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    rules = [
        {
            "ID": "browser uploads",
            "AllowedHeaders": ["*"],
            "AllowedMethods": ["PUT", "POST", "GET"],
            "AllowedOrigins": ["https://*.example.com"],
            "ExposeHeaders": ["ETag", "x-amz-request-id"],
            "MaxAgeSeconds": 3000,
        },
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]},
    ]
    s3.put_bucket_cors(Bucket="cors-boto3", CORSConfiguration={"CORSRules": rules})
    assert s3.get_bucket_cors(Bucket="cors-boto3")["CORSRules"] == rules
    with pytest.raises(ClientError) as e:
        s3.put_bucket_cors(
            Bucket="cors-boto3",
            CORSConfiguration={"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["http://*.*.com"]}]},
        )
    assert e.value.response["Error"]["Code"] == "InvalidRequest"
    assert s3.get_bucket_cors(Bucket="cors-boto3")["CORSRules"] == rules  # a refused PUT changes nothing
    s3.delete_bucket_cors(Bucket="cors-boto3")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket="cors-boto3")
    assert e.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    s3.delete_bucket(Bucket="cors-boto3")
