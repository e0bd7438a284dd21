"""Decoding aws-chunked request bodies (Content-Encoding: aws-chunked).

Signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]) carry a
signature chained from the request's seed signature, checked per chunk as
it completes; unsigned ones (STREAMING-UNSIGNED-PAYLOAD-TRAILER) carry only
sizes. Trailers (a checksum, and for signed bodies its signature) follow the
last, empty chunk. Decoded data flows on as it arrives: nothing is held back
beyond the chunk being parsed.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from attrs import frozen
from twisted.internet.defer import Deferred

from vaultaire import sigv4
from vaultaire.api.errors import S3Error, framing_error
from vaultaire.engine import ChunkSource
from vaultaire.errors import IncompleteBody

MAX_LINE = 4096  # a chunk header or trailer line; real ones are under 200 bytes
MAX_TRAILER_BYTES = 16 * 1024  # all trailer lines together; real ones are one checksum and a signature
# Plain hex digits only: int(x, 16) would also take "-1", "+a", " 1" and "1_0", and a
# negative size left the decoder looping forever without consuming a byte.
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
OUTPUT_BATCH = 1024 * 1024
MAX_BODY = 5 * 2**30  # when no decoded length is declared: S3's largest single upload


@frozen
class ChunkSigning:
    """What chained chunk signatures are checked with."""

    key: bytes
    amz_date: str
    scope: str
    seed: str


class AwsChunkedSource:
    """A ChunkSource of decoded bytes over a ChunkSource of aws-chunked bytes."""

    def __init__(self, raw: ChunkSource, signing: ChunkSigning | None, decoded_length: int | None) -> None:
        self._raw = raw
        self._signing = signing
        self._previous = signing.seed if signing else ""
        self._decoded_length = decoded_length
        self._buffer = b""
        self._pos = 0  # parse position in _buffer: slicing the rest off per chunk would be quadratic
        self._state = "header"  # header, data, data-end, trailer, done
        self._remaining = 0
        self._chunk_signature = b""  # bytes: compare_digest refuses non-ASCII str
        self._chunk_hash = hashlib.sha256()
        self._trailer_lines: list[bytes] = []
        self._trailer_bytes = 0
        self._declared = 0  # the sum of the chunk sizes announced so far
        self.trailers: dict[str, str] = {}
        self.decoded = 0

    async def _read(self) -> bytes:
        out: list[bytes] = []
        size = 0
        while self._state != "done" and size < OUTPUT_BATCH:
            progressed = self._parse(out)
            size = sum(map(len, out))
            if self._state == "done" or (out and not progressed):
                break
            if not progressed:
                more = await self._raw.read()
                if not more:
                    raise IncompleteBody("the aws-chunked body ended before its final chunk")
                self._buffer = self._buffer[self._pos :] + more
                self._pos = 0
        data = b"".join(out)
        self.decoded += len(data)
        if self._state == "done" and self._decoded_length is not None and self.decoded != self._decoded_length:
            raise S3Error(
                "IncompleteBody",
                f"x-amz-decoded-content-length says {self._decoded_length} bytes, the chunks carried {self.decoded}.",
            )
        return data

    def read(self) -> Deferred[bytes]:
        return Deferred.fromCoroutine(self._read())

    def _line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n", self._pos)
        if end < 0:
            if len(self._buffer) - self._pos > MAX_LINE:
                raise framing_error("InvalidRequest", "An aws-chunked header line is too long.")
            return None
        line = self._buffer[self._pos : end]
        self._pos = end + 2
        return line

    def _parse(self, out: list[bytes]) -> bool:
        """Consume what the buffer allows; True if anything was consumed."""
        progressed = False
        while True:
            if self._state == "header":
                line = self._line()
                if line is None:
                    return progressed
                progressed = True
                self._start_chunk(line)
            elif self._state == "data":
                if self._pos >= len(self._buffer):
                    return progressed
                piece = self._buffer[self._pos : self._pos + self._remaining]
                self._pos += len(piece)
                self._remaining -= len(piece)
                if self._signing:
                    self._chunk_hash.update(piece)
                out.append(piece)
                progressed = True
                if self._remaining == 0:
                    self._state = "data-end"
            elif self._state == "data-end":
                if len(self._buffer) - self._pos < 2:
                    return progressed
                if self._buffer[self._pos : self._pos + 2] != b"\r\n":
                    raise framing_error("InvalidRequest", "An aws-chunked chunk is longer than its declared size.")
                self._pos += 2
                progressed = True
                self._end_chunk()
                self._state = "header"
            elif self._state == "trailer":
                line = self._line()
                if line is None:
                    return progressed
                progressed = True
                if line == b"":
                    self._finish_trailers()
                    self._state = "done"
                    return True
                self._trailer_bytes += len(line) + 2
                if self._trailer_bytes > MAX_TRAILER_BYTES:
                    raise framing_error("InvalidRequest", "The aws-chunked trailer is too long.")
                self._trailer_lines.append(line)
            else:
                return progressed

    def _start_chunk(self, line: bytes) -> None:
        size_text, _, extension = line.partition(b";")
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise framing_error("IncompleteBody", "An aws-chunked chunk size is not a plain hexadecimal number.")
        size = int(size_text, 16)
        self._declared += size
        limit = self._decoded_length if self._decoded_length is not None else MAX_BODY
        if self._declared > limit:
            # Checked before a byte of it is read: a chunk can never carry more than was declared.
            raise framing_error(
                "IncompleteBody", f"An aws-chunked chunk of {size} bytes overruns the declared length of {limit} bytes."
            )
        if self._signing:
            name, _, value = extension.partition(b"=")
            if name.strip() != b"chunk-signature" or not value:
                raise S3Error("InvalidRequest", "An aws-chunked chunk is missing its chunk-signature.")
            self._chunk_signature = value.strip()
            self._chunk_hash = hashlib.sha256()
        if size == 0:
            self._end_chunk()
            self._state = "trailer"
        else:
            self._remaining = size
            self._state = "data"

    def _end_chunk(self) -> None:
        if not self._signing:
            return
        expected = sigv4.chunk_signature(
            self._signing.key,
            self._signing.amz_date,
            self._signing.scope,
            self._previous,
            self._chunk_hash.hexdigest(),
        )
        if not hmac.compare_digest(expected.encode("ascii"), self._chunk_signature):
            raise S3Error("SignatureDoesNotMatch", "The signature of an aws-chunked chunk does not match.")
        self._previous = expected

    def _finish_trailers(self) -> None:
        signature = None
        signed_part = b""
        for line in self._trailer_lines:
            name, sep, value = line.partition(b":")
            if not sep:
                raise framing_error("InvalidRequest", "An aws-chunked trailer line is malformed.")
            key = name.strip().lower().decode("ascii", "replace")
            if key == "x-amz-trailer-signature":
                signature = value.strip()
                continue
            self.trailers[key] = value.strip().decode("ascii", "replace")
            signed_part += name.strip().lower() + b":" + value.strip() + b"\n"
        if self._signing and self._trailer_lines:
            if signature is None:
                raise S3Error("InvalidRequest", "The aws-chunked trailer is missing its signature.")
            expected = sigv4.trailer_signature(
                self._signing.key, self._signing.amz_date, self._signing.scope, self._previous, signed_part
            )
            if not hmac.compare_digest(expected.encode("ascii"), signature):
                raise S3Error("SignatureDoesNotMatch", "The signature of the aws-chunked trailer does not match.")
