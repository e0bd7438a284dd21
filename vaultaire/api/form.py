"""Streaming multipart/form-data for POST Object: fields read, the file streamed.

Browsers send the form fields first and the file last (S3 requires it). The
fields are small and read into memory, capped; the file part is handed on as
a ChunkSource that ends at the next boundary, so the upload is never held
whole — Twisted's own form parsing would read the whole body into memory.
"""

from __future__ import annotations

import re

from twisted.internet.defer import Deferred

from vaultaire.api.errors import S3Error
from vaultaire.engine import ChunkSource
from vaultaire.errors import IncompleteBody

MAX_FIELDS_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_NAME = re.compile(r'\bname="([^"]*)"', re.IGNORECASE)
_FILENAME = re.compile(r'\bfilename="([^"]*)"', re.IGNORECASE)


def boundary_of(content_type: str) -> bytes:
    if not content_type.lower().startswith("multipart/form-data"):
        raise S3Error("InvalidRequest", "POST requires multipart/form-data encoding.")
    m = _BOUNDARY.search(content_type)
    if not m:
        raise S3Error("MalformedPOSTRequest", "The form has no boundary.")
    return m.group(1).encode("utf-8")  # header values are text decoded from UTF-8 when they are


class FormReader:
    """Reads fields until the file part, then serves the file's bytes via ``read``."""

    def __init__(self, raw: ChunkSource, boundary: bytes) -> None:
        self._raw = raw
        self._delimiter = b"\r\n--" + boundary
        self._buffer = b"\r\n"  # the first boundary has no CRLF before it: pretend it does
        self._eof = False
        self._file_done = False
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_content_type: str | None = None
        self.file_size = 0

    async def _more(self) -> None:
        chunk = await self._raw.read()
        if not chunk:
            self._eof = True
        self._buffer += chunk

    async def _next_delimiter(self) -> int:
        """Where the next boundary starts, reading on (bounded) until one is there."""
        while self._delimiter not in self._buffer:
            if self._eof:
                raise S3Error("MalformedPOSTRequest", "The body of your POST request is not well-formed.")
            if len(self._buffer) > MAX_FIELDS_BYTES:
                raise S3Error("MaxPostPreDataLengthExceeded")
            await self._more()
        return self._buffer.index(self._delimiter)

    async def read_fields(self) -> None:
        """Up to the start of the file part's content; S3Error if there is no file."""
        total = 0
        while True:
            at = await self._next_delimiter()
            self._buffer = self._buffer[at + len(self._delimiter) :]
            while len(self._buffer) < 2 and not self._eof:
                await self._more()
            if self._buffer.startswith(b"--"):
                raise S3Error(
                    "InvalidArgument",
                    "POST requires exactly one file upload per request.",
                    ArgumentName="file",
                    ArgumentValue="0",
                )
            while b"\r\n\r\n" not in self._buffer:
                if self._eof or len(self._buffer) > MAX_HEADER_BYTES:
                    raise S3Error("MalformedPOSTRequest", "The body of your POST request is not well-formed.")
                await self._more()
            head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
            text = head.decode("utf-8", "replace")
            name_match = _NAME.search(text)
            if not name_match:
                raise S3Error("MalformedPOSTRequest", "A form part has no name.")
            name = name_match.group(1)
            if name.lower() == "file":
                filename = _FILENAME.search(text)
                self.filename = filename.group(1) if filename else ""
                for line in text.split("\r\n"):
                    if line.lower().startswith("content-type:"):
                        self.file_content_type = line.split(":", 1)[1].strip()
                return
            # a plain field: its value runs to the next delimiter
            at = await self._next_delimiter()
            value = self._buffer[:at].decode("utf-8", "replace")
            total += len(name) + len(value)
            if total > MAX_FIELDS_BYTES:
                raise S3Error("MaxPostPreDataLengthExceeded")
            self.fields[name.lower()] = value
            self._buffer = self._buffer[at:]

    async def _read(self) -> bytes:
        if self._file_done:
            return b""
        keep = len(self._delimiter)
        while True:
            at = self._buffer.find(self._delimiter)
            if at >= 0:
                data, self._buffer = self._buffer[:at], self._buffer[at:]
                self._file_done = True
                self.file_size += len(data)
                return data
            if len(self._buffer) > keep:
                # everything but a possible partial delimiter at the end is file content
                data, self._buffer = self._buffer[:-keep], self._buffer[-keep:]
                self.file_size += len(data)
                return data
            if self._eof:
                raise IncompleteBody("the form ended inside the file part")
            await self._more()

    def read(self) -> Deferred[bytes]:
        return Deferred.fromCoroutine(self._read())
