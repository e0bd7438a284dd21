"""The lean GET path (issue 18): what each saving removed stays removed, and answers stay the same."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.web.test.requesthelper import DummyRequest
from werkzeug.routing import Map

from tests.s3helpers import Server, error_code
from vaultaire.api.call import headers_of


@pytest_twisted.ensureDeferred
async def test_s3_requests_skip_werkzeug_routing(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # The S3 app has one catch-all route: binding and matching werkzeug's map per request was pure cost.
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("werkzeug's Map.bind ran for an S3 request")

    monkeypatch.setattr(Map, "bind", refuse)
    r = await server.request("PUT", "/bucket/a//b/", b"hello")
    assert r.code == 200, r.body
    r = await server.request("GET", "/bucket/a//b/")
    assert (r.code, r.body) == (200, b"hello")
    r = await server.request("HEAD", "/bucket/a//b/")
    assert (r.code, r.headers.getRawHeaders("content-length")) == (200, ["5"])
    r = await server.request("GET", "/bucket/missing")
    assert (r.code, error_code(r)) == (404, "NoSuchKey")


@pytest_twisted.ensureDeferred
async def test_s3_requests_skip_twisted_query_and_path_parse(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # twisted.web parsed every query into request.args and percent-decoded every path segment into
    # postpath; the S3 layer does both itself, so that was done twice per request.
    from twisted.web import http as twisted_http
    from twisted.web import server as twisted_server

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("twisted.web decoded what the S3 layer decodes")

    r = await server.request("PUT", "/bucket/a b%", b"x")
    assert r.code == 200, r.body
    monkeypatch.setattr(twisted_http, "parse_qs", refuse)
    monkeypatch.setattr(twisted_server, "unquote", refuse)
    r = await server.request("GET", "/bucket/a b%", query="response-content-type=text%2Fplain")
    assert (r.code, r.body, r.headers.getRawHeaders("content-type")) == (200, b"x", ["text/plain"])
    r = await server.request("GET", "/bucket", query="list-type=2&prefix=a%20")
    assert r.code == 200 and b"<Key>a b%</Key>" in r.body


def test_date_header_formatted_once_a_second() -> None:
    from twisted.web.http import datetimeToString

    from vaultaire.api.http import DateHeader

    now = [1_700_000_000.25]
    header = DateHeader(lambda: now[0])
    first = header()
    assert first == datetimeToString(1_700_000_000) == b"Tue, 14 Nov 2023 22:13:20 GMT"
    now[0] = 1_700_000_000.99
    assert header() is first
    now[0] = 1_700_000_001.0
    assert header() == b"Tue, 14 Nov 2023 22:13:21 GMT"


@pytest_twisted.ensureDeferred
async def test_responses_carry_a_current_date(server: Server) -> None:
    from email.utils import parsedate_to_datetime
    from time import time

    r = await server.request("GET", "/bucket/missing")
    (date,) = r.headers.getRawHeaders("date")
    assert abs(parsedate_to_datetime(date).timestamp() - time()) < 5
    assert r.headers.getRawHeaders("server") == ["Vaultaire"]


def test_event_time_formats_each_second_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime
    import types

    from vaultaire.ops import events

    def reference(ts: float) -> str:
        seconds, ms = divmod(int(ts * 1000), 1000)
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
        return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms:03d}Z"

    formatted: list[float] = []

    class Counting(datetime.datetime):
        @classmethod
        def fromtimestamp(cls, ts: float, tz: Any = None) -> Any:  # type: ignore[override]
            formatted.append(ts)
            return datetime.datetime.fromtimestamp(ts, tz=tz)

    monkeypatch.setattr(events, "datetime", types.SimpleNamespace(datetime=Counting, UTC=datetime.UTC))
    stamps = [1_800_000_000 + i * 0.013 for i in range(300)]  # ~4 seconds, 300 events
    stamps += [1_800_000_000.5, 1_799_999_999.9996, 1_800_000_003.0]  # back in time, .9996, again
    assert [events.format_time(ts) for ts in stamps] == [reference(ts) for ts in stamps]
    assert len(formatted) <= 7


def test_amz_date_parse_agrees_with_strptime() -> None:
    import random
    from datetime import UTC, datetime

    from vaultaire.sigv4 import AMZ_DATE_FORMAT
    from vaultaire.sigv4_verify import _AMZ_DATE, _parse_amz_date

    rng = random.Random(18)
    samples = ["20260229T000000Z", "20240229T235959Z", "00000101T000000Z", "99991231T235959Z", "20261301T000000Z"]
    samples += ["20260230T000000Z", "20260101T240000Z", "20260101T006000Z", "20260101T000060Z", "20260101T000061Z"]
    samples += ["2026010T0000000Z", "20260101T000000", "20260101t000000Z", " 20260101T000000Z", "٢٠٢٦0101T000000Z"]
    for _ in range(3000):
        digits = "".join(rng.choice("0123456789") for _ in range(14))
        samples.append(f"{digits[:8]}T{digits[8:]}Z")
        samples.append(f"20{rng.randint(0, 99):02d}{rng.randint(0, 13):02d}{rng.randint(0, 32):02d}T{digits[8:]}Z")

    def reference(value: str) -> datetime | None:
        try:
            return datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            return None

    def fast(value: str) -> datetime | None:
        try:
            return _parse_amz_date(value)
        except ValueError:
            return None

    # Only the form parse_request lets through reaches the parser (strptime also takes a lower-case
    # "t", which no request ever gets this far with); on that form both agree, and the rest is refused.
    form = [s for s in samples if _AMZ_DATE.fullmatch(s)]
    assert len(form) > 6000
    assert [fast(s) for s in form] == [reference(s) for s in form]
    assert all(fast(s) is None for s in samples if not _AMZ_DATE.fullmatch(s))


@pytest_twisted.ensureDeferred
async def test_signed_requests_parse_the_query_once(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # Addressing, presigned header hoisting and the unsigned-header check each parsed the same query,
    # and SigV4 parsed it twice more (claims, canonical query); each now parses it once per request.
    import _strptime

    import treq

    from vaultaire import querystring, sigv4

    r = await server.request("PUT", "/bucket/k", b"data")
    assert r.code == 200, r.body
    url = server.presign("GET", "/bucket/k")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("strptime parsed x-amz-date")

    monkeypatch.setattr(_strptime, "_strptime_datetime", refuse)
    form_misses = querystring._pairs.cache_info().misses
    sigv4_misses = sigv4.query_pairs.cache_info().misses
    response = await treq.get(url, persistent=False)
    assert (response.code, await response.content()) == (200, b"data")
    assert querystring._pairs.cache_info().misses == form_misses + 1
    assert sigv4.query_pairs.cache_info().misses == sigv4_misses + 1
    r = await server.request("GET", "/bucket/k")  # header-signed: x-amz-date parsed without strptime too
    assert (r.code, r.body) == (200, b"data")


def test_tenant_metrics_look_their_series_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import generate_latest

    from vaultaire.ops.metrics import Metrics

    metrics = Metrics(tenant_label_limit=1)
    metrics.observe_tenant("alice", "b", 0, 10)
    metrics.tenant_label.allow(["alice"])

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("labels() looked up a series already seen")

    for counter in (metrics.tenant_requests, metrics.tenant_bytes_in, metrics.tenant_bytes_out):
        monkeypatch.setattr(counter, "labels", refuse)
    metrics.observe_tenant("alice", "b", 5, 20)
    monkeypatch.undo()
    metrics.observe_tenant("bob", "a", 7, 0)  # past the cap: counted as _other
    text = generate_latest(metrics.registry).decode()
    assert 'vaultaire_tenant_requests_total{class="b",tenant="alice"} 2.0' in text
    assert 'vaultaire_tenant_bytes_sent_total{tenant="alice"} 30.0' in text
    assert 'vaultaire_tenant_bytes_received_total{tenant="alice"} 5.0' in text
    assert 'vaultaire_tenant_requests_total{class="a",tenant="_other"} 1.0' in text
    assert 'vaultaire_tenant_bytes_received_total{tenant="_other"} 7.0' in text


def _random_queries(seed: int, count: int) -> list[str]:
    import random

    rng = random.Random(seed)
    alphabet = ["a", "Z", "0", "-", "_", ".", "~", "+", "=", "&", "%", "%2F", "%2f", "%20", "%C3%A9", "%FF", "%E9"]
    alphabet += ["%4", "%zz", " ", "é", "/", ";", "?", "*", "X-Amz-Signature", "x-amz-meta-a", "\x7f", "ÿ"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(count)]


def test_query_fast_paths_decode_as_urllib_and_sigv4_did() -> None:
    from urllib.parse import parse_qsl, quote, unquote_to_bytes

    from vaultaire import sigv4
    from vaultaire.querystring import form_pairs

    def reference_canonical(raw: str, exclude_signature: bool) -> str:
        encoded = []
        for part in raw.split("&"):
            if not part:
                continue
            key, _, value = part.partition("=")
            k = unquote_to_bytes(key).decode("utf-8", "surrogateescape")
            v = unquote_to_bytes(value).decode("utf-8", "surrogateescape")
            if exclude_signature and k == "X-Amz-Signature":
                continue
            encoded.append(tuple(quote(s.encode("utf-8", "surrogateescape"), safe="") for s in (k, v)))
        encoded.sort()
        return "&".join(f"{k}={v}" for k, v in encoded)

    for raw in _random_queries(18, 5000):
        assert form_pairs(raw) == tuple(parse_qsl(raw, keep_blank_values=True)), raw
        try:
            strict = tuple(parse_qsl(raw, keep_blank_values=True, errors="strict"))
        except UnicodeDecodeError:
            with pytest.raises(UnicodeDecodeError):
                form_pairs(raw, strict=True)
        else:
            assert form_pairs(raw, strict=True) == strict, raw
        for exclude in (False, True):
            assert sigv4.canonical_query(raw, exclude_signature=exclude) == reference_canonical(raw, exclude), raw


def test_a_connection_asks_for_its_own_address_once() -> None:
    # twisted.web's Request asks its channel for the host on every request: a getsockname each.
    from twisted.internet.testing import StringTransport

    from vaultaire.api.site import S3Channel

    asked: list[int] = []

    class Counting(StringTransport):
        def getHost(self) -> Any:
            asked.append(1)
            return super().getHost()

    channel = S3Channel()
    channel.transport = Counting()
    hosts = [channel.getHost() for _ in range(3)]
    assert hosts == [channel.transport.getHost()] * 3
    assert len(asked) == 2  # the channel's first request, and this assertion's own


def test_last_modified_is_formatted_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    import random
    from email.utils import formatdate

    from vaultaire.api import call

    formatted: list[float] = []

    def counting(ts: float, usegmt: bool = False) -> str:
        formatted.append(ts)
        return formatdate(ts, usegmt=usegmt)

    call._http_date_second.cache_clear()
    monkeypatch.setattr(call, "formatdate", counting)
    stamps = [1_800_000_000 + i * 0.01 for i in range(300)] + [random.uniform(0, 4e9) for _ in range(200)]
    assert [call.http_date(ts) for ts in stamps] == [formatdate(ts, usegmt=True) for ts in stamps]
    assert len(formatted) <= 3 + 200
    call._http_date_second.cache_clear()  # nothing made with the counting stand-in stays cached


def test_request_headers_are_read_as_utf8_or_latin1_and_repeats_joined() -> None:
    request = DummyRequest([b""])
    request.requestHeaders.addRawHeader(b"X-Amz-Meta-Town", "Zürich".encode())
    request.requestHeaders.addRawHeader(b"X-Amz-Meta-Old", "café".encode("latin-1"))
    request.requestHeaders.addRawHeader(b"X-Amz-Meta-List", b"a")
    request.requestHeaders.addRawHeader(b"X-Amz-Meta-List", b"b")
    assert headers_of(request) == {"x-amz-meta-town": "Zürich", "x-amz-meta-old": "café", "x-amz-meta-list": "a,b"}
