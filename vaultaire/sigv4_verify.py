"""AWS Signature Version 4, the server's side: what a request claims, parsed and checked.

The claims come from the Authorization header or a presigned URL's query; ``verify``
checks scope, time and expiry, then recomputes the signature with sigv4.py's canonical
request (the one the upstream driver signs with). Errors carry S3's codes and sentences.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from attrs import frozen

from vaultaire.sigv4 import (
    ALGORITHM,
    AMZ_DATE_FORMAT,
    STREAMING_PAYLOADS,
    UNSIGNED_PAYLOAD,
    canonical_request,
    credential_scope,
    query_pairs,
    signature,
    signing_key,
    string_to_sign,
)

__all__ = ["MAX_PRESIGN_EXPIRES", "Credentials", "SigV4Error", "parse_request", "verify"]

MAX_PRESIGN_EXPIRES = 604800  # one week, S3's hard limit
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
    for key, value in query_pairs(raw_query):
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
