"""Who is asking: SigV4 (header or presigned) to a tenant, or an S3 error."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

from attrs import frozen

from vaultaire import sigv2, sigv4, sigv4_verify
from vaultaire.api.errors import S3Error
from vaultaire.model import Credential, Tenant
from vaultaire.querystring import form_pairs

# access key -> (credential, tenant) or None
CredentialLookup = Callable[[str], Awaitable["tuple[Credential, Tenant] | None"]]

# x-amz-* headers a presigned request may carry unsigned, as S3 allows.
_UNSIGNED_ALLOWED = frozenset({"x-amz-content-sha256"})


def headers_not_signed(claimed: sigv4_verify.Credentials, raw_query: str, headers: Mapping[str, str]) -> list[str]:
    """The x-amz-* headers of a presigned SigV4 request its signer did not sign.

    Such a URL allows what its signed headers and query say; the holder adding an x-amz-*
    header (tags, an ACL, a copy source, a lock) would be asking for more, which S3 refuses
    with AccessDenied. A header that repeats a query parameter of the URL (a presigner's
    hoisted header, which the query signs) is signed.
    """
    in_query = {name.lower() for name, _ in form_pairs(raw_query)}
    return sorted(
        name
        for name in headers
        if name.startswith("x-amz-")
        and name not in claimed.signed_headers
        and name not in in_query
        and name not in _UNSIGNED_ALLOWED
    )


@frozen
class Identity:
    tenant: Tenant
    access_key: str
    # The verified request signature: aws-chunked bodies chain their chunk signatures from it.
    signature: str
    # What the client says of the payload: a hex SHA-256, UNSIGNED-PAYLOAD or a STREAMING-* mode.
    payload_hash: str
    # For chaining aws-chunked signatures (SigV4 only).
    amz_date: str = ""
    scope: str = ""
    signing_key: bytes = b""
    user: str = ""  # the user of the tenant the key acts for; "" is the tenant's root user
    # How the request was signed (condition keys s3:signatureversion and s3:authType).
    signature_version: str = "AWS4-HMAC-SHA256"
    auth_type: str = "REST-HEADER"


class Authenticator:
    def __init__(self, lookup: CredentialLookup, region: str, max_skew: int, clock: Callable[[], float]) -> None:
        self._lookup = lookup
        self._region = region
        self._max_skew = max_skew
        self._clock = clock

    async def authenticate(
        self, method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], v2_path: str = ""
    ) -> Identity | None:
        """The verified identity, or None for a request that carries no signature at all (anonymous:
        the authorization step decides what it may do)."""
        try:
            v2 = sigv2.parse(raw_query, headers)
        except sigv2.SigV2Error as e:
            raise S3Error(e.code, e.message) from None
        if v2 is not None:
            return await self._authenticate_v2(v2, method, v2_path or raw_path, raw_query, headers)
        try:
            claimed = sigv4_verify.parse_request(method, raw_path, raw_query, headers)
        except sigv4_verify.SigV4Error as e:
            raise S3Error(e.code, e.message) from None
        if claimed is None:
            return None
        credential, tenant = await self._credential(claimed.access_key)
        now = datetime.fromtimestamp(self._clock(), tz=UTC)
        right_region = self._accepts(claimed.region)
        try:
            signature = sigv4_verify.verify(
                claimed,
                credential.secret_key,
                method,
                raw_path,
                raw_query,
                headers,
                now=now,
                region=claimed.region if right_region else self._region,
                max_skew=self._max_skew,
            )
        except sigv4_verify.SigV4Error as e:
            if e.code == "SignatureDoesNotMatch":
                raise S3Error(e.code, e.message, AWSAccessKeyId=claimed.access_key) from None
            if not right_region:
                # Clients (s3cmd at its defaults, SDKs) read <Region> to retry in the right one.
                raise S3Error(e.code, e.message, Region=self._region) from None
            raise S3Error(e.code, e.message) from None
        if claimed.presigned and (unsigned := headers_not_signed(claimed, raw_query, headers)):
            raise S3Error(
                "AccessDenied",
                "There were headers present in the request which were not signed",
                HeadersNotSigned=", ".join(unsigned),
            )
        key = sigv4.signing_key(credential.secret_key, claimed.date, claimed.region, claimed.service)
        return Identity(
            tenant,
            claimed.access_key,
            signature,
            claimed.payload_hash,
            claimed.amz_date,
            claimed.scope,
            key,
            user=credential.user,
            auth_type="REST-QUERY-STRING" if claimed.presigned else "REST-HEADER",
        )

    def _accepts(self, region: str) -> bool:
        """The configured region, or "US": S3's old name of us-east-1, s3cmd's default."""
        return region == self._region or (region == "US" and self._region == "us-east-1")

    async def _credential(self, access_key: str) -> tuple[Credential, Tenant]:
        # Keys are printable ASCII; anything else (bytes that were not UTF-8, say) names none.
        if not (access_key.isascii() and access_key.isprintable()):
            raise S3Error("InvalidAccessKeyId", AWSAccessKeyId=access_key)
        found = await self._lookup(access_key)
        if found is None:
            raise S3Error("InvalidAccessKeyId", AWSAccessKeyId=access_key)
        credential, tenant = found
        if tenant.status != "active":
            raise S3Error("AccessDenied", "The account behind this access key is suspended.")
        return credential, tenant

    async def _authenticate_v2(
        self, claim: sigv2.V2Claim, method: str, raw_path: str, raw_query: str, headers: Mapping[str, str]
    ) -> Identity:
        credential, tenant = await self._credential(claim.access_key)
        try:
            sigv2.verify(
                claim,
                credential.secret_key,
                method,
                raw_path,
                raw_query,
                headers,
                now=self._clock(),
                max_skew=self._max_skew,
            )
        except sigv2.SigV2Error as e:
            raise S3Error(e.code, e.message) from None
        # V2 never signs the payload.
        return Identity(
            tenant,
            claim.access_key,
            claim.signature,
            sigv4.UNSIGNED_PAYLOAD,
            user=credential.user,
            signature_version="AWS",
            auth_type="REST-QUERY-STRING" if claim.presigned else "REST-HEADER",
        )

    async def authenticate_post(self, fields: Mapping[str, str], bucket: str) -> Identity | None:
        """A POST Object form: the signature covers the base64 policy document itself.

        None for an anonymous form (no policy, no signature): as S3, it is then up to the
        bucket's policy or ACL whether anyone may write there."""
        policy = fields.get("policy")
        signs = ("x-amz-signature", "x-amz-credential", "signature", "awsaccesskeyid")
        if policy is None and not any(fields.get(name) for name in signs):
            return None
        if policy is None:
            raise S3Error("InvalidArgument", "Bucket POST must contain a field named 'policy'.", ArgumentName="policy")
        v4 = ("x-amz-algorithm", "x-amz-credential", "x-amz-signature")
        wanted = v4 if any(name in fields for name in v4) else ("awsaccesskeyid", "signature")
        for name in wanted:
            if not fields.get(name):
                # A signed form missing part of its signature is malformed (400), as in S3.
                shown = {"awsaccesskeyid": "AWSAccessKeyId", "signature": "Signature"}.get(name, name)
                raise S3Error(
                    "InvalidArgument",
                    f"Bucket POST must contain a field named '{shown}'. "
                    "If it is specified, please check the order of the fields.",
                    ArgumentName=shown,
                    ArgumentValue="",
                )
        if "x-amz-signature" in fields:
            if fields.get("x-amz-algorithm") != sigv4.ALGORITHM:
                raise S3Error("InvalidArgument", "x-amz-algorithm must be AWS4-HMAC-SHA256.")
            parts = fields.get("x-amz-credential", "").split("/")
            if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
                raise S3Error("InvalidArgument", "x-amz-credential is malformed.")
            access_key, date, region = parts[0], parts[1], parts[2]
            if not self._accepts(region):
                raise S3Error(
                    "AuthorizationHeaderMalformed",
                    f"the region '{region}' is wrong; expecting '{self._region}'",
                    Region=self._region,
                )
            credential, tenant = await self._credential(access_key)
            key = sigv4.signing_key(credential.secret_key, date, region, "s3")
            expected = sigv4.signature(key, policy)
            sent = fields["x-amz-signature"]
        else:
            access_key = fields["awsaccesskeyid"]
            credential, tenant = await self._credential(access_key)
            expected = base64.b64encode(
                hmac.new(credential.secret_key.encode(), policy.encode(), hashlib.sha1).digest()
            ).decode()
            sent = fields["signature"]
        # As bytes: compare_digest refuses a str with non-ASCII characters (a form field can hold anything).
        if not hmac.compare_digest(expected.encode("ascii"), sent.encode("utf-8", "surrogateescape")):
            raise S3Error(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
                AWSAccessKeyId=access_key,
            )
        return Identity(
            tenant,
            access_key,
            sent,
            sigv4.UNSIGNED_PAYLOAD,
            user=credential.user,
            signature_version="AWS4-HMAC-SHA256" if "x-amz-signature" in fields else "AWS",
            auth_type="POST",
        )
