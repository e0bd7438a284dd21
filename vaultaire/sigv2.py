"""AWS Signature Version 2 (HMAC-SHA1) for older clients: header and query forms.

The aws cli's ``s3 presign`` and ``s3cmd --signature-v2`` still produce it.
Only verification lives here; Vaultaire never signs with V2.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl

from attrs import frozen

# Query parameters that are part of the signed resource (as botocore's HmacV1Auth lists them).
SIGNED_SUBRESOURCES = frozenset(
    """accelerate acl cors defaultObjectAcl location logging partNumber policy requestPayment
    torrent versioning versionId versions website uploads uploadId response-content-type
    response-content-language response-expires response-cache-control response-content-disposition
    response-content-encoding delete lifecycle tagging restore storageClass notification replication
    requestPayment analytics metrics inventory select select-type object-lock""".split()
)


class SigV2Error(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@frozen
class V2Claim:
    access_key: str
    signature: str
    expires: int | None  # query form: the epoch second the URL dies
    presigned: bool


def parse(raw_query: str, headers: Mapping[str, str]) -> V2Claim | None:
    """The V2 claim a request makes, or None if it makes none."""
    auth = headers.get("authorization", "")
    if auth.startswith("AWS "):
        access, sep, signature = auth[4:].strip().rpartition(":")
        if not sep or not access or not signature:
            raise SigV2Error(
                "InvalidArgument", "Authorization header is invalid -- one and only one ' ' (space) required"
            )
        return V2Claim(access, signature, None, False)
    if "AWSAccessKeyId=" not in raw_query:
        return None
    params = dict(parse_qsl(raw_query, keep_blank_values=True))
    access, signature, expires = (
        params.get("AWSAccessKeyId", ""),
        params.get("Signature", ""),
        params.get("Expires", ""),
    )
    if not access or not signature or not expires:
        raise SigV2Error(
            "AccessDenied", "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"
        )
    try:
        expiry = int(expires)
    except ValueError:
        raise SigV2Error("AccessDenied", "Expires must be a number of seconds since the epoch") from None
    return V2Claim(access, signature, expiry, True)


def string_to_sign(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], date_or_expires: str) -> str:
    amz = sorted((k, v.strip()) for k, v in headers.items() if k.startswith("x-amz-"))
    amz_lines = "".join(f"{k}:{v}\n" for k, v in amz)
    resource = raw_path
    subresources = []
    for pair in raw_query.split("&") if raw_query else []:
        name, eq, value = pair.partition("=")
        if name in SIGNED_SUBRESOURCES:
            decoded = dict(parse_qsl(pair, keep_blank_values=True)).get(name, "")
            subresources.append((name, decoded if eq else None))
    if subresources:
        subresources.sort()
        resource += "?" + "&".join(n if v is None else f"{n}={v}" for n, v in subresources)
    return (
        "\n".join([method, headers.get("content-md5", ""), headers.get("content-type", ""), date_or_expires])
        + "\n"
        + amz_lines
        + resource
    )


def verify(
    claim: V2Claim,
    secret_key: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    *,
    now: float,
    max_skew: int = 900,
) -> None:
    if claim.presigned:
        assert claim.expires is not None
        if now > claim.expires:
            raise SigV2Error("AccessDenied", "Request has expired")
        when = str(claim.expires)
    else:
        # With x-amz-date present the Date line is signed empty.
        when = "" if "x-amz-date" in headers else headers.get("date", "")
        stamp = headers.get("x-amz-date") or headers.get("date")
        if not stamp:
            raise SigV2Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
        try:
            sent = parsedate_to_datetime(stamp).timestamp()
        except (TypeError, ValueError, OverflowError, IndexError):  # OverflowError: a huge zone offset
            raise SigV2Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header") from None
        if abs(now - sent) > max_skew:
            raise SigV2Error(
                "RequestTimeTooSkewed", "The difference between the request time and the current time is too large."
            )
    # Clients disagree on a bucket's resource: "/bucket" or, as botocore signs it, "/bucket/".
    paths = [raw_path]
    if raw_path.count("/") == 1 and len(raw_path) > 1:
        paths.append(raw_path + "/")
    matched = False
    for path in paths:
        text = string_to_sign(method, path, raw_query, headers, when)
        expected = base64.b64encode(
            hmac.new(secret_key.encode(), text.encode("utf-8", "surrogateescape"), hashlib.sha1).digest()
        ).decode()
        matched = hmac.compare_digest(expected, claim.signature) or matched
    if not matched:
        raise SigV2Error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided."
            " Check your key and signing method.",
        )
