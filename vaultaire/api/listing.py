"""ListObjects and ListObjectsV2 (ListObjectVersions: api/versioning.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from vaultaire.api.call import OperationBase, S3Call, iso
from vaultaire.api.errors import S3Error
from vaultaire.api.tokens import decode_token, encode_token
from vaultaire.api.xmlout import Raw, element, rendered

MAX_LIST_KEYS = 1000


class ListingOperations(OperationBase):
    async def list_objects(self, call: S3Call) -> bytes:
        container = await self._container(call)
        q = call.target.query
        v2 = call.operation == "ListObjectsV2"
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter", "")
        max_keys = _max_keys(q)
        encoding = _encoding(q)
        if v2:
            token = q.get("continuation-token")
            after = decode_token(token) if token is not None else q.get("start-after") or None
        else:
            after = q.get("marker") or None
        page = await self.engine.list_listed(call.ctx, container, prefix, delimiter, after, max_keys)

        def enc(text: str) -> str:
            return _url_encode(text) if encoding == "url" else text

        fetch_owner = (not v2) or q.get("fetch-owner") == "true"
        owner = rendered(self._owner(call)) if fetch_owner else ""
        # URL-encoded keys hold no markup; ETags (hex digests) and storage classes (a fixed
        # set, checked on the way in) are the server's own: only raw keys need escaping.
        key_text = _url_encode if encoding == "url" else escape
        # One string for the whole page: per entry, one format.
        contents = Raw(
            "".join(
                [
                    f"<Contents><Key>{key_text(a.key)}</Key><LastModified>{iso(a.modified)}</LastModified>"
                    f"<ETag>{a.etag}</ETag><Size>{a.size}</Size>"
                    f"<StorageClass>{a.storage_class}</StorageClass>{owner}</Contents>"
                    for a in page.artifacts
                ]
            )
        )
        prefixes = [element("CommonPrefixes", element("Prefix", enc(p))) for p in page.prefixes]
        head = [element("Name", container.name), element("Prefix", enc(prefix))]
        if v2:
            if "continuation-token" in q:
                head.append(element("ContinuationToken", q["continuation-token"]))
            if "start-after" in q:
                head.append(element("StartAfter", enc(q["start-after"])))
            head.append(element("KeyCount", len(page.artifacts) + len(prefixes)))
        else:
            head.append(element("Marker", enc(q.get("marker", ""))))
        head.append(element("MaxKeys", max_keys))
        head += _listing_flags(delimiter, encoding, page.truncated, enc)
        if page.truncated and page.next_marker is not None:
            if v2:
                head.append(element("NextContinuationToken", encode_token(page.next_marker)))
            elif delimiter:
                head.append(element("NextMarker", enc(page.next_marker)))
        return self._xml(call, element("ListBucketResult", *head, contents, *prefixes, xmlns=True))


def _listing_flags(delimiter: str, encoding: str | None, truncated: bool, enc: Callable[[str], str]) -> list[Any]:
    """The Delimiter, EncodingType and IsTruncated elements every listing carries."""
    flags = [element("Delimiter", enc(delimiter))] if delimiter else []
    if encoding:
        flags.append(element("EncodingType", encoding))
    flags.append(element("IsTruncated", truncated))
    return flags


def _max_keys(q: Mapping[str, str]) -> int:
    try:
        max_keys = int(q.get("max-keys", str(MAX_LIST_KEYS)))
        if max_keys < 0:
            raise ValueError
    except ValueError:
        raise S3Error(
            "InvalidArgument",
            "Provided max-keys not an integer or within integer range",
            ArgumentName="max-keys",
            ArgumentValue=q.get("max-keys", ""),
        ) from None
    return min(max_keys, MAX_LIST_KEYS)


def _encoding(q: Mapping[str, str]) -> str | None:
    encoding = q.get("encoding-type")
    if encoding not in (None, "url"):
        raise S3Error(
            "InvalidArgument",
            "Invalid Encoding Method specified in Request",
            ArgumentName="encoding-type",
            ArgumentValue=encoding or "",
        )
    return encoding


# What quote(text, safe="/~") leaves as it is: a key made only of these is its own encoding.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.\-/~]*")


def _url_encode(text: str) -> str:
    # encoding-type=url: SDKs decode with unquote_plus, so '+' must travel as %2B.
    if _UNRESERVED.fullmatch(text):
        return text  # most keys: no need for quote's work
    return quote(text, safe="/~")
