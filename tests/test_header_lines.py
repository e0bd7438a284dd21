"""Header lines filed in one step (api/header_lines.py) come out exactly as twisted.web files them.

Every line, ordinary or not, is fed to a plain ``HTTPChannel`` and to one with ``OneStepHeaders``:
both must keep the same headers, refuse the same lines with 400, and frame the body the same way.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.web import http

from vaultaire.api import header_lines
from vaultaire.api.header_lines import OneStepHeaders


class _Recording(http.HTTPChannel):
    """Keeps each request's headers as they stand when the head ends, and answers nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[tuple[bytes, list[bytes]]]] = []
        self.bodies: list[bytes] = []

    def allHeadersReceived(self) -> None:
        request = self.requests[-1]
        self.seen.append(sorted((name, list(values)) for name, values in request.requestHeaders.getAllRawHeaders()))
        super().allHeadersReceived()

    def allContentReceived(self) -> None:
        request = self.requests[-1]
        request.content.seek(0)
        self.bodies.append(request.content.read())
        self.requests.pop()
        self.length = 0
        self._receivedHeaderCount = 0
        self._receivedHeaderSize = 0
        self._HTTPChannel__first_line = 1
        self._transferDecoder = None


class _Fast(OneStepHeaders, _Recording):
    pass


def _feed(channel_class: type[_Recording], data: bytes) -> tuple[Any, ...]:
    channel = channel_class()
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(data)
    return channel.seen, channel.bodies, transport.value(), transport.disconnecting


def _same(data: bytes) -> None:
    assert _feed(_Fast, data) == _feed(_Recording, data), data


_NAME = st.one_of(
    st.sampled_from([b"Host", b"x-amz-date", b"X-AMZ-META-a", b"content-length", b"Transfer-Encoding", b"Expect"]),
    st.binary(max_size=12),
)
_VALUE = st.one_of(st.sampled_from([b"", b" 5 ", b"chunked", b"a\x00b", b"\tv\t", b"x\ry"]), st.binary(max_size=16))


@settings(max_examples=400, deadline=None)
@given(lines=st.lists(st.tuples(_NAME, st.sampled_from([b":", b": ", b"", b" :"]), _VALUE), max_size=5))
def test_any_header_lines_are_filed_or_refused_as_twisted_does(lines: list[tuple[bytes, bytes, bytes]]) -> None:
    head = b"".join(name + colon + value + b"\r\n" for name, colon, value in lines if b"\n" not in name + value)
    _same(b"POST /b/k HTTP/1.1\r\n" + head + b"\r\n" + b"hello")


def test_repeated_and_framing_headers_and_the_header_limit() -> None:
    _same(b"PUT /b/k HTTP/1.1\r\nHost: h\r\nx-amz-meta-a: 1\r\nX-Amz-Meta-A: 2\r\nContent-Length: 5\r\n\r\nhello")
    _same(b"PUT /b/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    _same(b"PUT /b/k HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello")
    _same(b"GET /b/k HTTP/1.1\r\nBad Name: v\r\n\r\n")
    _same(b"GET /b/k HTTP/1.1\r\nNo-Colon\r\n\r\n")
    many = b"".join(b"x-h-%d: v\r\n" % i for i in range(http.HTTPChannel.maxHeaders + 1))
    _same(b"GET /b/k HTTP/1.1\r\n" + many + b"\r\n")
    assert b"400" in _feed(_Fast, b"GET /b/k HTTP/1.1\r\n" + many + b"\r\n")[2]


def test_ordinary_headers_skip_twisteds_second_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    added: list[bytes] = []
    real = http.Headers.addRawHeader
    monkeypatch.setattr(http.Headers, "addRawHeader", lambda self, n, v: added.append(n) or real(self, n, v))
    seen, bodies, _written, _closing = _feed(
        _Fast, b"PUT /b/k HTTP/1.1\r\nHost: h\r\nx-amz-date: d\r\nContent-Length: 2\r\n\r\nhi"
    )
    assert added == [b"Content-Length"]  # only the framing header went Twisted's way
    assert seen == [[(b"Content-Length", [b"2"]), (b"Host", [b"h"]), (b"X-Amz-Date", [b"d"])]]
    assert bodies == [b"hi"]


def test_a_twisted_that_files_headers_otherwise_keeps_its_own_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(header_lines, "_ENCODER", None)
    _same(b"GET /b/k HTTP/1.1\r\nHost: h\r\nx-amz-date: d\r\n\r\n")
    assert header_lines.store(http.Headers(), b"Host: h") is False


@settings(max_examples=300, deadline=None)
@given(name=_NAME, value=st.one_of(_VALUE, st.sampled_from([b"a\r\nb", b"a\nb\rc", b"\r\n", b"x\r\n"])))
def test_a_response_field_is_replaced_as_set_raw_headers_replaces_it(name: bytes, value: bytes) -> None:
    ours, twisteds = http.Headers({b"X-Old": [b"1"]}), http.Headers({b"X-Old": [b"1"]})
    for headers, put in ((ours, header_lines.replace), (twisteds, lambda h, n, v: h.setRawHeaders(n, [v]))):
        try:
            put(headers, name, value)
            put(headers, b"x-old", value)
        except Exception as error:
            headers._rawHeaders[b"error"] = [type(error).__name__.encode()]
    assert ours._rawHeaders == twisteds._rawHeaders
