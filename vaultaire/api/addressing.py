"""From the raw request target to (container name, key, query): path-style S3 addressing.

Keys are opaque: the path is split once after the bucket and percent-decoded
exactly once, so ``a//b``, ``dir/``, ``%``, ``+`` and spaces survive.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from attrs import frozen

from vaultaire.api.errors import S3Error
from vaultaire.names import valid_bucket_name
from vaultaire.querystring import form_pairs

MAX_KEY_BYTES = 1024


@frozen
class Target:
    """What a request addresses, decoded, plus the raw pieces SigV4 needs."""

    bucket: str | None
    key: str | None
    query: dict[str, str]
    raw_path: str
    raw_query: str
    # SigV2 signs "/bucket/key" even when the bucket came from the Host header.
    v2_path: str = ""

    @property
    def resource(self) -> str:
        """The Resource element of an error."""
        if self.bucket is None:
            return "/"
        if self.key is None:
            return f"/{self.bucket}"
        return f"/{self.bucket}/{self.key}"


def bucket_from_host(host: str, domains: tuple[str, ...]) -> str | None:
    """Virtual-hosted style: ``bucket.s3.example.com`` under a configured base domain."""
    name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else ""
    for domain in domains:
        if name.endswith("." + domain) and len(name) > len(domain) + 1:
            return name[: -len(domain) - 1]
    return None


def parse_target(uri: bytes, host: str = "", domains: tuple[str, ...] = ()) -> Target:
    raw = uri.decode("latin-1")
    if not raw.startswith("/"):
        # absolute-form (http://host/path) as proxies send it
        m = re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*(/.*)?$", raw)
        if not m:
            raise S3Error("InvalidURI")
        raw = m.group(1) or "/"
    raw_path, _, raw_query = raw.partition("?")
    try:
        query = dict(form_pairs(raw_query, strict=True))
    except (UnicodeDecodeError, ValueError):
        raise S3Error("InvalidURI") from None
    virtual = bucket_from_host(host, domains) if domains else None
    if virtual is not None:
        key = _decode(raw_path[1:]) if len(raw_path) > 1 else None
        _check_key(key)
        return Target(virtual, key, query, raw_path, raw_query, f"/{virtual}{raw_path}")
    rest = raw_path[1:]
    if not rest:
        return Target(None, None, query, raw_path, raw_query, raw_path)
    raw_bucket, slash, raw_key = rest.partition("/")
    bucket = _decode(raw_bucket)
    key = _decode(raw_key) if slash and raw_key else None
    _check_key(key)
    return Target(bucket, key, query, raw_path, raw_query, raw_path)


def _check_key(key: str | None) -> None:
    if key is not None and len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", Size=str(len(key.encode("utf-8"))), MaxSizeAllowed=str(MAX_KEY_BYTES))


def _decode(raw: str) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI") from None  # S3: "Couldn't parse the specified URI."


def check_bucket_name(name: str) -> None:
    """S3's bucket naming rules for new buckets (existing ones are only looked up)."""
    if not valid_bucket_name(name):
        raise S3Error("InvalidBucketName", BucketName=name)
