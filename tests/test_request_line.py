"""vaultaire/api/request_line.py: the same verdict as Twisted's own request-line parser on any line,
and the one HTTPChannel uses once vaultaire.api.site is imported (the tests of bad input
(test_bad_input.py) send malformed request lines to the daemon)."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from vaultaire.api import site
from vaultaire.api.request_line import parse_request_line

TWISTED = site.TWISTED_REQUEST_LINE_PARSER
assert TWISTED is not None and TWISTED is not parse_request_line


def verdict(parse: Any, line: bytes) -> tuple[bytes, bytes, bytes] | str:
    try:
        return parse(line)  # type: ignore[no-any-return]  # both return the 3-tuple
    except ValueError:
        return "refused"


# Lines near the real ones: a method, a target and a version from parts that are each valid,
# almost valid or not at all, joined by one or more spaces; and arbitrary bytes.
_METHODS = st.sampled_from([b"GET", b"PUT", b"get", b"", b"G(T", b"M-SEARCH", b"\xff", b"!#$%&'*+-.^_`|~"])
_TARGETS = st.one_of(
    st.sampled_from([b"/", b"", b"/a b", b"/k?x=1&y=%2F", b"*", b"http://h/p"]),
    st.binary(max_size=40),
    st.builds(lambda n: b"/" + bytes([n]), st.integers(0, 255)),
)
_VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"http/1.1", b"", b"HTTP/1.1 "])
_LINES = st.one_of(
    st.builds(lambda m, t, v, sep: sep.join((m, t, v)), _METHODS, _TARGETS, _VERSIONS, st.sampled_from([b" ", b"  "])),
    st.binary(max_size=60),
)


@settings(max_examples=3000, deadline=None)
@given(_LINES)
@example(b"GET / HTTP/1.1")
@example(b"GET /" + bytes([176]) + b" HTTP/1.1")  # Twisted's own upper bound, kept
@example(b"GET /" + bytes([177]) + b" HTTP/1.1")
@example(b"GET /\x7f HTTP/1.1")
@example(b" / HTTP/1.1")
@example(b"GET  HTTP/1.1")
def test_every_line_gets_twisteds_verdict(line: bytes) -> None:
    assert verdict(parse_request_line, line) == verdict(TWISTED, line)


def test_it_is_the_parser_of_every_channel_once_the_site_is_imported() -> None:
    from twisted.web import http

    assert http._parseRequestLine is parse_request_line


def test_the_daemon_answers_a_refused_request_line_400_and_a_good_one_as_ever(daemon: Any) -> None:
    import socket

    for line, status in [
        (b"GET /_vaultaire/health HTTP/1.1", b"200"),
        (b"GET /bucket/\x01key HTTP/1.1", b"400"),
        (b"G(T /bucket/key HTTP/1.1", b"400"),
        (b"GET /bucket/key HTTP/2.0", b"400"),
        (b"GET  /bucket/key HTTP/1.1", b"400"),
    ]:
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=20) as s:
            s.sendall(line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        assert answer.split(b" ", 2)[1] == status, (line, answer[:120])
