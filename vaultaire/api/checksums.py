"""The additional checksums S3 clients send (x-amz-checksum-*), computed while streaming.

CRC32, SHA1 and SHA256 come from the standard library at C speed; CRC32C and
CRC64NVME from awscrt (AWS's own C runtime, the one botocore uses for them).
Without awscrt a request declaring one of those two is refused with a clear
error instead of being stored unchecked.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable
from typing import Protocol

from attrs import frozen

from vaultaire.api.crc_combine import POLYNOMIALS, crc_combine
from vaultaire.api.errors import S3Error
from vaultaire.model import Part, Upload

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class CRC32:
    """zlib's CRC-32 behind the hashlib interface; zlib releases the GIL too."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


class _AwsCrtCRC:
    """CRC32C or CRC64NVME from awscrt, running value carried between updates."""

    def __init__(self, function: Callable[[bytes, int], int], width: int) -> None:
        self._function = function
        self._width = width
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = self._function(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._width, "big")


def new_hasher(algorithm: str) -> Hasher:
    if algorithm == "crc32":
        return CRC32()
    if algorithm in ("crc32c", "crc64nvme"):
        try:
            from awscrt import checksums as crt
        except ImportError:
            raise S3Error(
                "NotImplemented", f"The checksum algorithm {algorithm.upper()} needs the awscrt package."
            ) from None
        if algorithm == "crc32c":
            return _AwsCrtCRC(crt.crc32c, 4)
        return _AwsCrtCRC(crt.crc64nvme, 8)
    if algorithm in ("sha1", "sha256"):
        return hashlib.new(algorithm)
    raise S3Error("NotImplemented", f"The checksum algorithm {algorithm.upper()} is not supported yet.")


def header_name(algorithm: str) -> str:
    return f"x-amz-checksum-{algorithm}"


def decode_value(algorithm: str, value: str) -> bytes:
    """A checksum as the client sent it (base64), or InvalidRequest."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        raw = b""
    sizes = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}
    if len(raw) != sizes[algorithm]:
        raise S3Error("InvalidRequest", f"Value for {header_name(algorithm)} header is invalid.")
    return raw


def declared(headers: dict[str, str]) -> tuple[str | None, bytes | None, bool]:
    """(algorithm, expected value now or None, value comes in a trailer) from the request headers."""
    trailer = headers.get("x-amz-trailer", "").strip().lower()
    if trailer:
        if not trailer.startswith("x-amz-checksum-") or trailer[len("x-amz-checksum-") :] not in ALGORITHMS:
            raise S3Error("InvalidRequest", f"The trailer {trailer!r} is not a supported checksum header.")
        return trailer[len("x-amz-checksum-") :], None, True
    found = [a for a in ALGORITHMS if header_name(a) in headers]
    if len(found) > 1:
        raise S3Error(
            "InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    if not found:
        return None, None, False
    algorithm = found[0]
    return algorithm, decode_value(algorithm, headers[header_name(algorithm)]), False


def check_stated(headers: dict[str, str], body: bytes) -> str | None:
    """Check a whole small body against its ``x-amz-checksum-*`` header, if it has one.

    Returns the algorithm stated (None: none); a mismatch is BadDigest, as S3 answers.
    """
    algorithm, expected, _trailer = declared(headers)
    if algorithm is not None and expected is not None:
        hasher = new_hasher(algorithm)
        hasher.update(body)
        if hasher.digest() != expected:
            raise S3Error("BadDigest", f"The {algorithm.upper()} you specified did not match the calculated checksum.")
    return algorithm


def multipart_checksum(upload: Upload, parts: list[Part], sent: dict[int, str] | None = None) -> tuple[str, str] | None:
    """The checksum of a completed upload, as S3 defines it, from its parts' checksums.

    COMPOSITE: the algorithm over the concatenated raw part checksums, then "-N".
    FULL_OBJECT (CRCs only): the CRC of the whole content, combined from the parts.
    ``sent`` holds the part checksums the Complete request lists; each must match.
    """
    algorithm = upload.checksum_algorithm
    for part in parts:
        claimed = (sent or {}).get(part.number)
        if claimed is not None and claimed != part.checksum:
            raise S3Error(
                "InvalidPart", f"The checksum of part {part.number} does not match.", PartNumber=str(part.number)
            )
    if algorithm is None or not parts or any(p.checksum is None for p in parts):
        return None
    raw = [decode_value(algorithm, p.checksum or "") for p in parts]
    if upload.checksum_type == "FULL_OBJECT":
        value = int.from_bytes(raw[0], "big")
        for part, piece in zip(parts[1:], raw[1:], strict=True):
            value = crc_combine(algorithm, value, int.from_bytes(piece, "big"), part.size)
        return algorithm, base64.b64encode(value.to_bytes(len(raw[0]), "big")).decode()
    hasher = new_hasher(algorithm)
    hasher.update(b"".join(raw))
    return algorithm, base64.b64encode(hasher.digest()).decode() + f"-{len(parts)}"


# x-amz-checksum-* headers that describe a checksum rather than carry one
_NOT_A_CHECKSUM = frozenset({"x-amz-checksum-type", "x-amz-checksum-algorithm", "x-amz-checksum-mode"})


@frozen
class CompleteClaims:
    """What a CompleteMultipartUpload request states of the whole object, to be verified."""

    algorithm: str | None = None
    value: str | None = None  # base64, "-N" suffix allowed for a composite checksum
    kind: str | None = None  # x-amz-checksum-type
    size: int | None = None  # x-amz-mp-object-size


def complete_claims(headers: dict[str, str]) -> CompleteClaims:
    """The whole-object checksum, checksum type and size a Complete request states."""
    named = [
        n[len("x-amz-checksum-") :] for n in headers if n.startswith("x-amz-checksum-") and n not in _NOT_A_CHECKSUM
    ]
    if len(named) > 1:
        raise S3Error(
            "InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    algorithm = named[0] if named else None
    if algorithm is not None and algorithm not in ALGORITHMS:
        # Stated but not checkable: refused rather than accepted unchecked.
        raise S3Error("NotImplemented", f"The checksum algorithm {algorithm.upper()} is not supported yet.")
    value = headers[header_name(algorithm)].strip() if algorithm is not None else None
    kind = headers.get("x-amz-checksum-type", "").strip().upper() or None
    if kind is not None and kind not in ("COMPOSITE", "FULL_OBJECT"):
        raise S3Error("InvalidRequest", f"Checksum type {kind!r} is not valid.")
    raw_size = headers.get("x-amz-mp-object-size")
    size = None
    if raw_size is not None:
        if not raw_size.strip().isdigit():
            raise S3Error("InvalidRequest", "The x-amz-mp-object-size header must be a non-negative integer.")
        size = int(raw_size)
    return CompleteClaims(algorithm, value, kind, size)


def check_complete(upload: Upload, parts: list[Part], result: tuple[str, str] | None, claims: CompleteClaims) -> None:
    """Refuse a completion whose stated whole-object checksum, type or size does not hold."""
    if claims.size is not None and claims.size != sum(p.size for p in parts):
        raise S3Error(
            "InvalidRequest",
            f"The provided 'x-amz-mp-object-size' header value {claims.size} does not match what was computed.",
        )
    if claims.kind is not None and upload.checksum_type is not None and claims.kind != upload.checksum_type:
        raise S3Error(
            "InvalidRequest",
            f"The upload was created using the {upload.checksum_type} checksum mode. "
            "The complete request must use the same checksum mode.",
        )
    if claims.algorithm is None or claims.value is None:
        return
    if claims.algorithm != upload.checksum_algorithm:
        raise S3Error(
            "InvalidRequest",
            f"The upload was created using a {upload.checksum_algorithm or 'null'} checksum. "
            "The complete request must use the same checksum algorithm.",
        )
    if result is None:  # some part came without a checksum: the whole cannot be known
        raise S3Error("InvalidRequest", f"The {claims.algorithm.upper()} checksum of this upload is not known.")
    computed, _, count = result[1].partition("-")
    claimed, _, claimed_count = claims.value.partition("-")
    decode_value(claims.algorithm, claimed)  # a malformed value is InvalidRequest, as on PutObject
    if claimed != computed or (claimed_count and claimed_count != count):
        raise S3Error(
            "BadDigest", f"The {claims.algorithm.upper()} you specified did not match the calculated checksum."
        )


def checksum_type(algorithm: str, requested: str | None) -> str:
    """S3's rules: CRC64NVME is full-object only; SHA checksums are composite only."""
    kind = (requested or ("FULL_OBJECT" if algorithm == "crc64nvme" else "COMPOSITE")).upper()
    if kind not in ("COMPOSITE", "FULL_OBJECT"):
        raise S3Error("InvalidRequest", f"Checksum type {requested!r} is not valid.")
    if kind == "FULL_OBJECT" and algorithm not in POLYNOMIALS:
        raise S3Error("InvalidRequest", f"The FULL_OBJECT checksum type cannot be used with {algorithm.upper()}.")
    if kind == "COMPOSITE" and algorithm == "crc64nvme":
        raise S3Error("InvalidRequest", "The COMPOSITE checksum type cannot be used with CRC64NVME.")
    return kind
