"""The condition keys of a request, as policies name them (lower-cased), from what the request says.

Built only when a policy is evaluated (a root user's request to a bucket without a policy
needs none). Keys AWS leaves out when not applicable are left out here too, so that
``Null`` and the ``...IfExists`` operators mean what they mean on S3.
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html
https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html#amazons3-policy-keys
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from urllib.parse import parse_qsl

from vaultaire.access.request import Principal
from vaultaire.api.call import S3Call

# Request headers whose value is the condition key of the same name (s3:<header>).
_HEADER_KEYS = (
    "x-amz-acl",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-copy-source",
    "x-amz-metadata-directive",
    "x-amz-storage-class",
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
    "x-amz-content-sha256",
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
)
# Listing parameters: s3:prefix, s3:delimiter, s3:max-keys (ListObjects*, ListObjectVersions...).
_QUERY_KEYS = ("prefix", "delimiter", "max-keys")


def context_of(
    call: S3Call,
    principal: Principal,
    user_id: str,
    *,
    now: float | None = None,
    existing_tags: Iterable[tuple[str, str]] | None = None,
) -> dict[str, tuple[str, ...]]:
    """The condition keys of ``call`` made by ``principal`` (``user_id``: its aws:userid)."""
    request = call.request
    when = time.time() if now is None else now
    address = request.getClientAddress()
    context: dict[str, tuple[str, ...]] = {
        "aws:securetransport": ("true" if request.isSecure() else "false",),
        "aws:currenttime": (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),),
        "aws:epochtime": (str(int(when)),),
    }
    host = getattr(address, "host", None)
    if isinstance(host, str):
        context["aws:sourceip"] = (host,)
    if not principal.anonymous:
        context["aws:principalaccount"] = (principal.tenant_id,)
        context["aws:principalarn"] = (principal.arn,)
        context["aws:userid"] = (user_id,)
        context["aws:principaltype"] = ("User" if principal.user else "Account",)
        if principal.user:
            context["aws:username"] = (principal.user,)
    else:
        context["aws:principaltype"] = ("Anonymous",)
    identity = call.identity
    if identity is not None:
        context["s3:signatureversion"] = (identity.signature_version,)
        context["s3:authtype"] = (identity.auth_type,)
    headers = call.headers
    for name in _HEADER_KEYS:
        value = headers.get(name)
        if value is not None:
            context["s3:" + name] = (value.strip(),)
    query = call.target.query
    for name in _QUERY_KEYS:
        if name in query:
            context["s3:" + name] = (query[name],)
    if "versionId" in query:
        context["s3:versionid"] = (query["versionId"],)
    tagging = headers.get("x-amz-tagging")
    if tagging:
        tags = parse_qsl(tagging, keep_blank_values=True)
        for key, value in tags:
            context["s3:requestobjecttag/" + key.lower()] = (value,)
        context["s3:requestobjecttagkeys"] = tuple(key for key, _ in tags)
    if existing_tags is not None:
        for key, value in existing_tags:
            context["s3:existingobjecttag/" + key.lower()] = (value,)
    return context
