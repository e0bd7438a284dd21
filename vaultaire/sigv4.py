"""AWS Signature Version 4: canonical requests and signatures, and signing outgoing requests.

One implementation serves both directions so that the server (sigv4_verify.py checks what a
request claims with it) and the upstream driver can never disagree about what a canonical
request is.

Encoding choices (S3 flavour, which is what every S3 SDK produces):

* Path: percent-decode the wire path once, then encode every byte except
  ``A-Za-z0-9-._~/``.  No dot-segment removal and no slash merging: S3 keys
  may legitimately contain ``//``, ``.`` and ``..``.
* Query: split on ``&`` and on the first ``=``, decode with ``unquote`` (not
  ``unquote_plus``) so that a literal ``+`` stays a plus and is re-encoded as
  ``%2B`` -- SDKs (botocore's ``quote(safe='-_.~')``) send spaces as ``%20``,
  never ``+``, and the AWS test suite's post-vanilla-query-nonunreserved case
  signs ``+`` as ``%2B``.  Pairs are sorted by their *encoded* (key, value),
  which is how botocore sorts.

Pure stdlib plus attrs; no Twisted here on purpose, so it can be unit-tested
and reused by a blocking client.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import unquote_to_bytes, urlsplit

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "STREAMING_PAYLOADS",
    "UNSIGNED_PAYLOAD",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "chunk_signature",
    "chunk_string_to_sign",
    "credential_scope",
    "presign_url",
    "sign_headers",
    "signature",
    "signing_key",
    "string_to_sign",
    "trailer_signature",
    "trailer_string_to_sign",
]

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
STREAMING_PAYLOADS: frozenset[str] = frozenset(
    {
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }
)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

# Headers a client must not sign: they are rewritten by proxies and clients.
_UNSIGNABLE = frozenset({"authorization", "user-agent", "expect", "x-amzn-trace-id", "connection"})


# --------------------------------------------------------------------------
# Canonicalisation


# What UriEncode leaves as it is (and percent-decoding too, having no '%'): such a query
# component, most of a presigned URL's, is its own canonical form, with no decode or quote.
# RFC 3986's unreserved characters: what AWS's UriEncode never escapes.
_UNRESERVED_CHARS = string.ascii_letters + string.digits + "-._~"
_UNRESERVED = re.compile(f"[{re.escape(_UNRESERVED_CHARS)}]*")
# The rest of a presigned URL's query: X-Amz-Credential's '/' and X-Amz-SignedHeaders' ';'.
# Two replaces in C cost a fifth of escaping the value byte by byte (a long SignedHeaders
# list, as SSE-C's three signed headers make, took about 3 µs).
_UNRESERVED_SLASH_SEMICOLON = re.compile(f"[{re.escape(_UNRESERVED_CHARS)}/;]*")


def _escapes(safe: str) -> list[str]:
    """For each byte value, what AWS's UriEncode makes of it: A-Za-z0-9-._~ and ``safe`` as they
    are, everything else %XX in upper-case hex (as quote() on bytes does)."""
    kept = set((_UNRESERVED_CHARS + safe).encode("ascii"))
    return [chr(b) if b in kept else f"%{b:02X}" for b in range(256)]


_ESCAPES = {safe: _escapes(safe) for safe in ("", "/")}


def _encode(data: bytes, safe: str) -> str:
    # A table lookup per byte in C: quote() runs a Python step per character, which for the
    # longer values of a presigned URL (X-Amz-SignedHeaders, X-Amz-Credential) cost microseconds.
    # Latin-1 maps each byte to the code point of its value, so every byte is looked up.
    return data.decode("latin-1").translate(_ESCAPES[safe])


def canonical_uri(raw_path: str, *, normalize: bool = False) -> str:
    """Canonical URI of a wire path.

    S3 flavour (default): decode once, re-encode everything but unreserved
    characters and '/'.  ``normalize=True`` is the generic-service flavour
    (RFC 3986 dot-segment removal, empty segments dropped, then the wire path
    encoded again, i.e. double encoding); S3 must never use it.
    """
    if not raw_path:
        return "/"
    if not normalize:
        return _encode(unquote_to_bytes(raw_path), "/")
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    path = "/" + "/".join(segments)
    if raw_path.endswith("/") and path != "/":
        path += "/"
    return _encode(path.encode("utf-8"), "/")


@functools.lru_cache(maxsize=128)
def query_pairs(raw_query: str) -> tuple[tuple[str, str], ...]:
    """Decoded (key, value) pairs in wire order; '+' is kept as a literal plus.

    Cached: parsing the claims and building the canonical query read the same query.
    """
    pairs: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((_decode_component(key), _decode_component(value)))
    return tuple(pairs)


def _decode_component(raw: str) -> str:
    if "%" not in raw:
        # unquote_to_bytes would encode it as UTF-8 and the decode below give it back unchanged
        # (a wire query is read as ISO-8859-1: no surrogates to round-trip).
        return raw
    return unquote_to_bytes(raw).decode("utf-8", "surrogateescape")


def _encode_component(text: str) -> str:
    if _UNRESERVED.fullmatch(text):
        return text
    if _UNRESERVED_SLASH_SEMICOLON.fullmatch(text):
        return text.replace("/", "%2F").replace(";", "%3B")
    return _encode(text.encode("utf-8", "surrogateescape"), "")


def canonical_query(raw_query: str, *, exclude_signature: bool = False) -> str:
    """Canonical query string: decode each pair, re-encode, sort by encoded (key, value).

    A bare key (``?lifecycle``) becomes ``lifecycle=``.  ``exclude_signature``
    drops ``X-Amz-Signature`` (the presigned form signs everything else).
    """
    encoded: list[tuple[str, str]] = []
    for key, value in query_pairs(raw_query):
        if exclude_signature and key == "X-Amz-Signature":
            continue
        encoded.append((_encode_component(key), _encode_component(value)))
    encoded.sort()
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_hash: str,
    *,
    presigned: bool = False,
    normalize: bool = False,
) -> str:
    """The canonical request text.  ``headers`` has lower-case names.

    A signed header absent from ``headers`` canonicalises to an empty value:
    the signature then simply fails to match, which is the honest outcome.
    """
    names = sorted({name.lower() for name in signed_headers})
    # AWS: each value trimmed, runs of spaces collapsed to one (quotes are not special). A list,
    # not a generator: a generator's step per signed header costs more than the line it makes.
    header_lines = "".join([f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in names])
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path, normalize=normalize),
            canonical_query(raw_query, exclude_signature=presigned),
            header_lines,
            ";".join(names),
            payload_hash,
        ]
    )


def credential_scope(date: str, region: str, service: str) -> str:
    """``date/region/service/aws4_request``."""
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(amz_date: str, scope: str, canonical_request: str) -> str:
    """The SigV4 string to sign for a canonical request."""
    # surrogateescape: a header byte that is not UTF-8 is signed as the byte the client sent.
    digest = hashlib.sha256(canonical_request.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


@functools.lru_cache(maxsize=512)
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The derived signing key; cached because it only changes per day/region/service."""
    k_date = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    return _hmac(_hmac(_hmac(k_date, region), service), "aws4_request")


def signature(key: bytes, string_to_sign: str) -> str:
    """Hex HMAC-SHA256 of a string to sign."""
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------
# aws-chunked payloads


def chunk_string_to_sign(amz_date: str, scope: str, previous_signature: str, chunk_sha256_hex: str) -> str:
    """String to sign for one chunk of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body."""
    return f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous_signature}\n{EMPTY_SHA256}\n{chunk_sha256_hex}"


def chunk_signature(key: bytes, amz_date: str, scope: str, previous_signature: str, chunk_sha256_hex: str) -> str:
    """Signature of one chunk, chained from the previous one (the seed first)."""
    return signature(key, chunk_string_to_sign(amz_date, scope, previous_signature, chunk_sha256_hex))


def trailer_string_to_sign(amz_date: str, scope: str, previous_signature: str, trailer: bytes) -> str:
    """String to sign for the trailing headers of a ...-PAYLOAD-TRAILER body."""
    digest = hashlib.sha256(trailer).hexdigest()
    return f"AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{previous_signature}\n{digest}"


def trailer_signature(key: bytes, amz_date: str, scope: str, previous_signature: str, trailer: bytes) -> str:
    """Signature of the trailer block, chained from the last chunk signature."""
    return signature(key, trailer_string_to_sign(amz_date, scope, previous_signature, trailer))


# --------------------------------------------------------------------------
# Client side


def _host_of(url_parts: tuple[str, str]) -> str:
    scheme, netloc = url_parts
    host = netloc.rpartition("@")[2]
    # Clients omit the default port from Host; so must the signature.
    default = {"http": ":80", "https": ":443"}.get(scheme.lower())
    if default and host.endswith(default):
        host = host[: -len(default)]
    return host


def _amz_now(now: datetime) -> str:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).strftime(AMZ_DATE_FORMAT)


def sign_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    payload_hash: str,
    access_key: str,
    secret_key: str,
    region: str,
    *,
    now: datetime,
    service: str = "s3",
) -> dict[str, str]:
    """Headers to add to a request (lower-case names): authorization, x-amz-date,
    x-amz-content-sha256, and host if the caller did not set it.

    ``url`` is the full URL with an already percent-encoded path.  Every header
    passed in is signed, except ones proxies and clients rewrite (user-agent...).
    """
    parts = urlsplit(url)
    amz_date = _amz_now(now)
    lowered = {name.lower(): value for name, value in headers.items()}
    added: dict[str, str] = {}
    if "host" not in lowered:
        added["host"] = _host_of((parts.scheme, parts.netloc))
    added["x-amz-date"] = amz_date
    added["x-amz-content-sha256"] = payload_hash
    lowered.update(added)
    signed = sorted(name for name in lowered if name not in _UNSIGNABLE)
    scope = credential_scope(amz_date[:8], region, service)
    creq = canonical_request(method, parts.path or "/", parts.query, lowered, signed, payload_hash)
    sig = signature(
        signing_key(secret_key, amz_date[:8], region, service),
        string_to_sign(amz_date, scope, creq),
    )
    added["authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={';'.join(signed)}, Signature={sig}"
    )
    return added


def presign_url(
    method: str,
    url: str,
    access_key: str,
    secret_key: str,
    region: str,
    *,
    now: datetime,
    expires: int = 3600,
    service: str = "s3",
    extra_signed_headers: Mapping[str, str] | None = None,
) -> str:
    """A presigned (query-form) URL; signs ``host`` plus ``extra_signed_headers``,
    which the eventual request must then carry with exactly those values."""
    parts = urlsplit(url)
    amz_date = _amz_now(now)
    headers = {name.lower(): value for name, value in (extra_signed_headers or {}).items()}
    headers.setdefault("host", _host_of((parts.scheme, parts.netloc)))
    signed = sorted(headers)
    scope = credential_scope(amz_date[:8], region, service)
    auth_params = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{access_key}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", ";".join(signed)),
    ]
    auth_query = "&".join(f"{k}={_encode_component(v)}" for k, v in auth_params)
    query = f"{parts.query}&{auth_query}" if parts.query else auth_query
    creq = canonical_request(method, parts.path or "/", query, headers, signed, UNSIGNED_PAYLOAD, presigned=True)
    sig = signature(
        signing_key(secret_key, amz_date[:8], region, service),
        string_to_sign(amz_date, scope, creq),
    )
    path = parts.path or "/"
    return f"{parts.scheme}://{parts.netloc}{path}?{query}&X-Amz-Signature={sig}"
