"""Header fields filed in one step instead of twisted.web's two: request lines, response fields.

``HTTPChannel.headerReceived`` splits a line, canonicalises and checks its name, checks its
value for NUL, CR and LF, asks whether it frames the body, then hands it to
``Headers.addRawHeader``, which canonicalises the name again and looks for line breaks the
check already ruled out: about twenty Python calls per header, paid by every header of every
request (an SDK sends nine or so; SSE-C adds three). ``store`` does the same checks once and
files the value where ``addRawHeader`` would. Whatever it does not take as ordinary (a header
that frames the body, a malformed line, a Twisted whose ``Headers`` keeps its values in
another shape) it leaves to Twisted's own path, which then also answers 400 where it must.
``replace`` does for a response field what ``Headers.setRawHeaders`` does, with the same result.
"""

from __future__ import annotations

from typing import Any

from twisted.web import http_headers
from twisted.web.http_headers import Headers, InvalidHeaderName

# The headers that decide how the body is framed: Twisted's own path chooses the decoder.
_FRAMING = frozenset({b"Content-Length", b"Transfer-Encoding"})
_FORBIDDEN = b"\x00\r\n"  # RFC 9110 section 5.5: never in a field value


def _name_encoder() -> Any:
    """Twisted's name canonicaliser, if its ``Headers`` files values under the names it makes."""
    encoder = getattr(http_headers, "_nameEncoder", None)
    if encoder is None:
        return None
    probe = Headers()
    probe.addRawHeader(b"x-probe-name", b"value")
    if getattr(probe, "_rawHeaders", None) != {encoder.encode(b"x-probe-name"): [b"value"]}:
        return None
    return encoder


_ENCODER = _name_encoder()


def store(headers: Headers, line: bytes) -> bool:
    """File ``line``'s header in ``headers`` exactly as Twisted would, if it is an ordinary one.

    False: nothing was done, and the line is Twisted's to handle.
    """
    if _ENCODER is None:
        return False
    name, colon, value = line.partition(b":")
    if not colon:
        return False
    try:
        canonical = _ENCODER.encode(name)
    except InvalidHeaderName:
        return False
    if canonical in _FRAMING:
        return False
    value = value.strip(b" \t")
    if len(value.translate(None, _FORBIDDEN)) != len(value):
        return False
    headers._rawHeaders.setdefault(canonical, []).append(value)
    return True


def replace(headers: Headers, name: bytes, value: bytes) -> None:
    """``headers.setRawHeaders(name, [value])``, as one dictionary store (a GET sets ten or so)."""
    if _ENCODER is None:
        headers.setRawHeaders(name, [value])
        return
    if b"\r" in value or b"\n" in value:
        value = b" ".join(value.splitlines())  # as Twisted sanitises: a line break becomes a space
    headers._rawHeaders[_ENCODER.encode(name)] = [value]


class OneStepHeaders:
    """For an ``HTTPChannel`` subclass (listed before it): ordinary header lines filed by ``store``."""

    requests: list[Any]
    maxHeaders: int
    _receivedHeaderCount: int

    def headerReceived(self, line: bytes) -> bool:
        if self._receivedHeaderCount < self.maxHeaders and store(self.requests[-1].requestHeaders, line):
            self._receivedHeaderCount += 1
            return True
        return bool(super().headerReceived(line))  # type: ignore[misc]  # HTTPChannel's, next in the MRO
