"""AWS Signature Version 4: verify incoming S3 requests, sign outgoing ones.

One implementation serves both directions so that the server and the
upstream driver can never disagree about what a canonical request is.

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
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_to_bytes, urlsplit

from attrs import frozen

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "STREAMING_PAYLOADS",
    "UNSIGNED_PAYLOAD",
    "Credentials",
    "SigV4Error",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "chunk_signature",
    "chunk_string_to_sign",
    "credential_scope",
    "parse_request",
    "presign_url",
    "sign_headers",
    "signature",
    "signing_key",
    "string_to_sign",
    "trailer_signature",
    "trailer_string_to_sign",
    "verify",
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
MAX_PRESIGN_EXPIRES = 604800  # one week, S3's hard limit
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your key and signing method."
)
_HEADER_MALFORMED = "AuthorizationHeaderMalformed"
_QUERY_MALFORMED = "AuthorizationQueryParametersError"
_QUERY_AUTH_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
# Headers a client must not sign: they are rewritten by proxies and clients.
_UNSIGNABLE = frozenset({"authorization", "user-agent", "expect", "x-amzn-trace-id", "connection"})


class SigV4Error(Exception):
    """A SigV4 failure; ``code`` is the S3 error code, ``message`` S3's sentence."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@frozen
class Credentials:
    """What the client claims: parsed from the Authorization header or the query."""

    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    payload_hash: str
    presigned: bool
    expires: int | None

    @property
    def scope(self) -> str:
        """The credential scope string that goes into the string to sign."""
        return credential_scope(self.date, self.region, self.service)


# --------------------------------------------------------------------------
# Canonicalisation


# What UriEncode leaves as it is (and percent-decoding too, having no '%'): such a query
# component, most of a presigned URL's, is its own canonical form, with no decode or quote.
# RFC 3986's unreserved characters: what AWS's UriEncode never escapes.
_UNRESERVED_CHARS = string.ascii_letters + string.digits + "-._~"
_UNRESERVED = re.compile(f"[{re.escape(_UNRESERVED_CHARS)}]*")


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
def _query_pairs(raw_query: str) -> tuple[tuple[str, str], ...]:
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
    return _encode(text.encode("utf-8", "surrogateescape"), "")


def canonical_query(raw_query: str, *, exclude_signature: bool = False) -> str:
    """Canonical query string: decode each pair, re-encode, sort by encoded (key, value).

    A bare key (``?lifecycle``) becomes ``lifecycle=``.  ``exclude_signature``
    drops ``X-Amz-Signature`` (the presigned form signs everything else).
    """
    encoded: list[tuple[str, str]] = []
    for key, value in _query_pairs(raw_query):
        if exclude_signature and key == "X-Amz-Signature":
            continue
        encoded.append((_encode_component(key), _encode_component(value)))
    encoded.sort()
    return "&".join(f"{k}={v}" for k, v in encoded)


def _canonical_header_value(value: str) -> str:
    # AWS: trim, and collapse sequential spaces to one (quotes are not special).
    return " ".join(value.split())


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
    header_lines = "".join(f"{name}:{_canonical_header_value(headers.get(name, ''))}\n" for name in names)
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
# Server side: parse and verify


def _parse_scope(credential: str, code: str, prefix: str) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts):
        raise SigV4Error(
            code,
            f'{prefix}the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
        )
    access_key, date, region, service, terminator = parts
    if terminator != "aws4_request":
        raise SigV4Error(
            code,
            f'{prefix}incorrect terminal "{terminator}". This endpoint uses "aws4_request".',
        )
    if not (len(date) == 8 and date.isdigit()):
        raise SigV4Error(code, f'{prefix}invalid credential date "{date}".')
    return access_key, date, region, service


def _split_signed_headers(value: str, code: str, prefix: str) -> tuple[str, ...]:
    names = tuple(value.split(";"))
    if not value or not all(names):
        raise SigV4Error(code, f"{prefix}SignedHeaders is empty or mal-formed.")
    return tuple(name.lower() for name in names)


def _amz_date_from_headers(headers: Mapping[str, str]) -> str:
    """x-amz-date, or the Date header (ISO basic or RFC 1123) in ISO basic form."""
    value = headers.get("x-amz-date")
    if value is None:
        value = headers.get("date")
        if value is not None and not _AMZ_DATE.fullmatch(value.strip()):
            try:
                parsed = parsedate_to_datetime(value)
                # An offset like +99999999999999999999, or year 9999 -0100, overflows here.
                value = parsed.astimezone(UTC).strftime(AMZ_DATE_FORMAT) if parsed.tzinfo else None
            except (TypeError, ValueError, OverflowError, IndexError):
                value = None
            if value is None:
                raise SigV4Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
    if value is None or not _AMZ_DATE.fullmatch(value.strip()):
        raise SigV4Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
    return value.strip()


def _check_payload_hash(value: str) -> None:
    if value == UNSIGNED_PAYLOAD or value in STREAMING_PAYLOADS or _HEX64.fullmatch(value):
        return
    raise SigV4Error(
        "InvalidRequest",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING- value, or a valid sha256 value.",
    )


def _parse_header_form(auth: str, headers: Mapping[str, str]) -> Credentials:
    prefix = "The authorization header is malformed; "
    fields: dict[str, str] = {}
    rest = auth[len(ALGORITHM) :].strip()
    for component in rest.split(","):
        component = component.strip()
        if not component:
            continue
        name, sep, value = component.partition("=")
        if not sep:
            raise SigV4Error(_HEADER_MALFORMED, f"{prefix}'{component}' is not a key=value pair.")
        fields[name.strip()] = value.strip()
    for required in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(required):
            raise SigV4Error(
                _HEADER_MALFORMED,
                f"{prefix}missing {required}; the authorization header requires three "
                "components: Credential, SignedHeaders, and Signature.",
            )
    access_key, date, region, service = _parse_scope(fields["Credential"], _HEADER_MALFORMED, prefix)
    signed = _split_signed_headers(fields["SignedHeaders"], _HEADER_MALFORMED, prefix)
    amz_date = _amz_date_from_headers(headers)
    payload_hash = headers.get("x-amz-content-sha256")
    if payload_hash is None:
        if service == "s3":
            raise SigV4Error("InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
        # Other services hash the body themselves; "" means "caller supplies it".
        payload_hash = ""
    else:
        payload_hash = payload_hash.strip()
        _check_payload_hash(payload_hash)
    return Credentials(
        access_key=access_key,
        date=date,
        region=region,
        service=service,
        signed_headers=signed,
        signature=fields["Signature"],
        amz_date=amz_date,
        payload_hash=payload_hash,
        presigned=False,
        expires=None,
    )


def _parse_query_form(params: Mapping[str, str]) -> Credentials:
    prefix = "Error parsing the X-Amz-Credential parameter; "
    missing = [name for name in _QUERY_AUTH_PARAMS if not params.get(name)]
    if missing:
        raise SigV4Error(
            _QUERY_MALFORMED,
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            f"X-Amz-Expires parameters (missing: {', '.join(missing)}).",
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise SigV4Error(_QUERY_MALFORMED, f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    access_key, date, region, service = _parse_scope(params["X-Amz-Credential"], _QUERY_MALFORMED, prefix)
    signed = _split_signed_headers(
        params["X-Amz-SignedHeaders"], _QUERY_MALFORMED, "Error parsing X-Amz-SignedHeaders; "
    )
    amz_date = params["X-Amz-Date"]
    if not _AMZ_DATE.fullmatch(amz_date):
        raise SigV4Error(
            _QUERY_MALFORMED,
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
        )
    try:
        expires = int(params["X-Amz-Expires"])
    except ValueError:
        raise SigV4Error(_QUERY_MALFORMED, "X-Amz-Expires should be a number") from None
    payload_hash = params.get("X-Amz-Content-Sha256", UNSIGNED_PAYLOAD)
    _check_payload_hash(payload_hash)
    return Credentials(
        access_key=access_key,
        date=date,
        region=region,
        service=service,
        signed_headers=signed,
        signature=params["X-Amz-Signature"],
        amz_date=amz_date,
        payload_hash=payload_hash,
        presigned=True,
        expires=expires,
    )


def parse_request(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str]) -> Credentials | None:
    """Extract the client's SigV4 claims, or None for an anonymous request.

    ``headers``: lower-case names, repeated values already joined with ','.
    ``raw_path``/``raw_query``: exactly as on the wire (query without '?').
    Only syntax is checked here; ``verify`` does the rest.
    """
    del method, raw_path  # part of the stable signature; not needed to parse
    auth = headers.get("authorization")
    params: dict[str, str] = {}
    for key, value in _query_pairs(raw_query):
        params.setdefault(key, value)  # first wins; duplicates then fail the signature
    query_auth = any(name in params for name in _QUERY_AUTH_PARAMS)
    if "AWSAccessKeyId" in params and "Signature" in params and not query_auth:
        raise SigV4Error("InvalidRequest", "SigV2 is not supported")
    if auth is not None and query_auth:
        raise SigV4Error(
            "InvalidArgument",  # S3's code for this refusal (400), not InvalidRequest
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
        )
    if auth is not None:
        auth = auth.strip()
        if auth.startswith("AWS "):
            raise SigV4Error("InvalidRequest", "SigV2 is not supported")
        if auth.split(" ", 1)[0] != ALGORITHM:
            raise SigV4Error(
                _HEADER_MALFORMED,
                f"The authorization header is malformed; unsupported algorithm "
                f'"{auth.split(" ", 1)[0]}"; only {ALGORITHM} is supported.',
            )
        return _parse_header_form(auth, headers)
    if query_auth:
        return _parse_query_form(params)
    return None


def _parse_amz_date(value: str) -> datetime:
    """``yyyyMMdd'T'HHmmss'Z'`` as a UTC datetime; ValueError if it is not one.

    By position rather than with strptime (whose regex work was ~1% of a small GET's CPU);
    for the fixed-width form both accept and refuse the same strings.
    """
    if len(value) != 16 or not _AMZ_DATE.fullmatch(value):
        raise ValueError(f"not an ISO 8601 basic date-time: {value!r}")
    return datetime(
        int(value[0:4]),
        int(value[4:6]),
        int(value[6:8]),
        int(value[9:11]),
        int(value[11:13]),
        int(value[13:15]),
        tzinfo=UTC,
    )


def verify(
    creds: Credentials,
    secret_key: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    *,
    now: datetime,
    region: str | None = None,
    max_skew: int = 900,
) -> str:
    """Check the request against ``creds``; return the (hex) signature on success.

    The returned signature seeds the aws-chunked chunk-signature chain.
    Scope errors use the form's own code (AuthorizationHeaderMalformed for the
    header, AuthorizationQueryParametersError for presigned URLs), as S3 does.
    """
    code = _QUERY_MALFORMED if creds.presigned else _HEADER_MALFORMED
    prefix = (
        "Error parsing the X-Amz-Credential parameter; "
        if creds.presigned
        else "The authorization header is malformed; "
    )
    if creds.service != "s3":
        raise SigV4Error(code, f'{prefix}incorrect service "{creds.service}". This endpoint belongs to "s3".')
    if region is not None and creds.region != region:
        raise SigV4Error(code, f"{prefix}the region '{creds.region}' is wrong; expecting '{region}'")
    if creds.date != creds.amz_date[:8]:
        raise SigV4Error(
            code,
            f'{prefix}invalid credential date "{creds.date}". This date is not the same as '
            f'X-Amz-Date: "{creds.amz_date[:8]}".',
        )
    if "host" not in creds.signed_headers:
        raise SigV4Error(code, f"{prefix}'host' must be a signed header.")
    try:
        request_time = _parse_amz_date(creds.amz_date)
    except ValueError:
        raise SigV4Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header") from None
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    skew = timedelta(seconds=max_skew)
    if not creds.presigned:
        if abs(now - request_time) > skew:
            raise SigV4Error(
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
            )
    else:
        expires = creds.expires if creds.expires is not None else -1
        if expires < 1:
            raise SigV4Error(_QUERY_MALFORMED, "X-Amz-Expires must be non-negative")
        if expires > MAX_PRESIGN_EXPIRES:
            raise SigV4Error(
                _QUERY_MALFORMED,
                "X-Amz-Expires must be less than a week (in seconds) that is 604800",
            )
        # Compared as timestamps: request_time + expires overflows datetime near year 9999.
        if now.timestamp() > request_time.timestamp() + expires:
            raise SigV4Error("AccessDenied", "Request has expired")
        if request_time - now > skew:
            raise SigV4Error("AccessDenied", "Request is not valid yet")
    creq = canonical_request(
        method,
        raw_path,
        raw_query,
        headers,
        creds.signed_headers,
        creds.payload_hash,
        presigned=creds.presigned,
    )
    key = signing_key(secret_key, creds.date, creds.region, creds.service)
    expected = signature(key, string_to_sign(creds.amz_date, creds.scope, creq))
    # compare_digest wants ASCII; a non-ASCII claim is simply a mismatch.
    claimed = creds.signature.encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(expected.encode("ascii"), claimed):
        raise SigV4Error("SignatureDoesNotMatch", _SIGNATURE_MISMATCH)
    return expected


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
