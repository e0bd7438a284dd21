"""The condition keys of a request, as policies name them (lower-cased), from what the request says.

Built only when a policy is evaluated (a root user's request to a bucket without a policy
needs none), and then only the keys the policies in play name (``wanted``). Keys AWS leaves
out when not applicable are left out here too, so that ``Null`` and the ``...IfExists``
operators mean what they mean on S3. The principal's own keys (aws:username, aws:userid,
aws:PrincipalAccount, aws:PrincipalArn, aws:PrincipalType) come from the AccessRequest's
principal, never from here.
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html
https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html#amazons3-policy-keys
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from urllib.parse import parse_qsl

from vaultaire.access.request import Context, Principal
from vaultaire.api.call import S3Call

# Request headers whose value is the condition key of the same name (s3:<header>).
HEADER_KEYS = tuple(
    "s3:" + name
    for name in (
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
        "x-amz-object-ownership",
    )
)
# Condition keys named otherwise than the request header they come from.
RENAMED_HEADER_KEYS = {
    "s3:object-lock-mode": "x-amz-object-lock-mode",
    "s3:object-lock-retain-until-date": "x-amz-object-lock-retain-until-date",
    "s3:object-lock-legal-hold": "x-amz-object-lock-legal-hold",
    "aws:useragent": "user-agent",
    "aws:referer": "referer",
}
# Listing parameters: s3:prefix, s3:delimiter, s3:max-keys (ListObjects*, ListObjectVersions...).
QUERY_KEYS = ("s3:prefix", "s3:delimiter", "s3:max-keys")
_EVERY = frozenset(
    {"aws:securetransport", "aws:currenttime", "aws:epochtime", "aws:sourceip", "s3:signatureversion", "s3:authtype"}
    | set(HEADER_KEYS)
    | set(RENAMED_HEADER_KEYS)
    | set(QUERY_KEYS)
    | {"s3:versionid", "s3:requestobjecttagkeys", "s3:requestobjecttag/", "s3:existingobjecttag/"}
)


def context_of(
    call: S3Call,
    principal: Principal,
    user_id: str,
    *,
    now: float | None = None,
    existing_tags: Iterable[tuple[str, str]] | None = None,
    wanted: Collection[str] | None = None,
) -> Context:
    """The condition keys of ``call``; only those in ``wanted`` (None: every key) are computed."""
    want = _EVERY if wanted is None else _normalised(wanted)
    context = Context()
    request = call.request
    if "aws:securetransport" in want:
        context["aws:securetransport"] = ("true" if request.isSecure() else "false",)
    if "aws:currenttime" in want or "aws:epochtime" in want:
        when = time.time() if now is None else now
        context["aws:currenttime"] = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),)
        context["aws:epochtime"] = (str(int(when)),)
    if "aws:sourceip" in want:
        host = getattr(request.getClientAddress(), "host", None)
        if isinstance(host, str):
            context["aws:sourceip"] = (host,)
    identity = call.identity
    if identity is not None:
        if "s3:signatureversion" in want:
            context["s3:signatureversion"] = (identity.signature_version,)
        if "s3:authtype" in want:
            context["s3:authtype"] = (identity.auth_type,)
    headers = call.headers
    for key in HEADER_KEYS:
        if key in want:
            value = headers.get(key[3:])
            if value is not None:
                context[key] = (value.strip(),)
    for key, header in RENAMED_HEADER_KEYS.items():
        if key in want:
            value = headers.get(header)
            if value is not None:
                context[key] = (value.strip(),)
    query = call.target.query
    for key in QUERY_KEYS:
        if key in want and key[3:] in query:
            context[key] = (query[key[3:]],)
    if "s3:versionid" in want and "versionId" in query:
        context["s3:versionid"] = (query["versionId"],)
    tagging = headers.get("x-amz-tagging")
    if tagging and ("s3:requestobjecttag/" in want or "s3:requestobjecttagkeys" in want):
        tags = parse_qsl(tagging, keep_blank_values=True)
        for key, value in tags:
            context["s3:requestobjecttag/" + key.lower()] = (value,)
        context["s3:requestobjecttagkeys"] = tuple(key for key, _ in tags)
    if existing_tags is not None and "s3:existingobjecttag/" in want:
        for key, value in existing_tags:
            context["s3:existingobjecttag/" + key.lower()] = (value,)
    return context


def _normalised(wanted: Collection[str]) -> frozenset[str]:
    """Tag keys (s3:RequestObjectTag/<key>...) are wanted as their prefix: the request says which tags."""
    out = set()
    for key in wanted:
        for prefix in ("s3:requestobjecttag/", "s3:existingobjecttag/"):
            if key.startswith(prefix):
                key = prefix
        out.add(key)
    return frozenset(out)
