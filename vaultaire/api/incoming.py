"""What must hold of an upload body (PutObject, UploadPart) and how it is decoded.

Everything here is decided from the headers alone, before ``100 Continue``:
the size limit, the digests to compute, and whether the body is aws-chunked.
The checks themselves run in ``verify`` once the last byte has been hashed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping

from twisted.internet.defer import Deferred

from vaultaire import sigv4
from vaultaire.api import checksums
from vaultaire.api.auth import Identity
from vaultaire.api.chunked import AwsChunkedSource, ChunkSigning
from vaultaire.api.errors import S3Error
from vaultaire.engine import ChunkSource, Hasher

MAX_PUT_SIZE = 5 * 2**30


def content_md5(headers: Mapping[str, str]) -> bytes | None:
    value = headers.get("content-md5")
    if value is None:
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise S3Error("InvalidDigest")
    return digest


def signed_payload_sha256(mode: str) -> bytes | None:
    """The SHA-256 the client signed for a plain body, or None when it signed none."""
    if mode == sigv4.UNSIGNED_PAYLOAD or mode in sigv4.STREAMING_PAYLOADS:
        return None
    try:
        digest = bytes.fromhex(mode)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise S3Error(
            "InvalidArgument",
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-* or a SHA-256 hex digest.",
            ArgumentName="x-amz-content-sha256",
            ArgumentValue=mode,
        )
    return digest


class _Capped:
    """A body of unknown size, refused once it passes ``limit`` bytes."""

    def __init__(self, source: ChunkSource, limit: int) -> None:
        self._source = source
        self._limit = limit
        self._seen = 0

    def read(self) -> Deferred[bytes]:
        def count(data: bytes) -> bytes:
            self._seen += len(data)
            if self._seen > self._limit:
                raise S3Error("EntityTooLarge", MaxSizeAllowed=str(self._limit))
            return data

        return self._source.read().addCallback(count)


class IncomingBody:
    def __init__(self, headers: Mapping[str, str], identity: Identity, body_length: int | None) -> None:
        self.identity = identity
        self.mode = identity.payload_hash
        self.streaming = self.mode in sigv4.STREAMING_PAYLOADS
        self.size = self._size(headers, body_length)
        self.expected_md5 = content_md5(headers)
        self.expected_sha256 = signed_payload_sha256(self.mode)
        self.algorithm, self.expected_checksum, self.checksum_in_trailer = checksums.declared(dict(headers))
        self.hashers: dict[str, Hasher] = {}
        if self.algorithm is not None:
            self.hashers["checksum"] = checksums.new_hasher(self.algorithm)
        if self.expected_sha256 is not None:
            self.hashers["payload-sha256"] = hashlib.sha256()
        self._chunked: AwsChunkedSource | None = None

    def _size(self, headers: Mapping[str, str], length: int | None) -> int | None:
        """The size the stored bytes will have, checked against S3's single-PUT limit.

        None for a plain ``Transfer-Encoding: chunked`` body (``curl -T -``): its
        size is known only at its end, so it is counted as it streams (quota
        included) and capped at the same limit.
        """
        if length is None and not self.streaming:
            return None
        size = length or 0
        if self.streaming:
            # Clients send aws-chunked with Transfer-Encoding: chunked and no
            # Content-Length; the decoded size is the one that counts.
            decoded = headers.get("x-amz-decoded-content-length")
            if decoded is None or not decoded.isdigit():
                raise S3Error("MissingContentLength", "aws-chunked bodies need x-amz-decoded-content-length.")
            size = int(decoded)
        if size > MAX_PUT_SIZE:
            raise S3Error("EntityTooLarge", ProposedSize=str(size), MaxSizeAllowed=str(MAX_PUT_SIZE))
        return size

    def source(self, raw: ChunkSource) -> ChunkSource:
        """The decoded bytes of the raw body."""
        if self.size is None:
            return _Capped(raw, MAX_PUT_SIZE)
        if not self.streaming:
            return raw
        signing = None
        if self.mode != "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
            i = self.identity
            signing = ChunkSigning(i.signing_key, i.amz_date, i.scope, i.signature)
        self._chunked = AwsChunkedSource(raw, signing, self.size)
        return self._chunked

    def verify(self, digests: Mapping[str, bytes]) -> None:
        if self.expected_md5 is not None and digests["md5"] != self.expected_md5:
            raise S3Error("BadDigest")
        if self.expected_sha256 is not None and digests["payload-sha256"] != self.expected_sha256:
            raise S3Error("XAmzContentSHA256Mismatch")
        if self.algorithm is None:
            return
        expected = self.expected_checksum
        if self.checksum_in_trailer:
            name = checksums.header_name(self.algorithm)
            sent = self._chunked.trailers.get(name) if self._chunked else None
            if sent is None:
                raise S3Error("InvalidRequest", f"The trailer {name} is missing.")
            expected = checksums.decode_value(self.algorithm, sent)
        if digests["checksum"] != expected:
            raise S3Error(
                "BadDigest", f"The {self.algorithm.upper()} you specified did not match the calculated checksum."
            )

    def checksum_header(self) -> tuple[str, str] | None:
        """The checksum to echo in the response, as S3 does."""
        if self.algorithm is None:
            return None
        value = base64.b64encode(self.hashers["checksum"].digest()).decode()
        return checksums.header_name(self.algorithm), value
