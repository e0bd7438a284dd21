"""S3 versioning: Put/GetBucketVersioning, ListObjectVersions, and the version id of a request.

A container's versioning is never enabled (the default), Enabled or Suspended;
the catalog applies it (vaultaire/catalog/versions.py). MFA delete is refused
with 501: it is a protection this server does not give.
"""

from __future__ import annotations

from vaultaire.api import xmlparse
from vaultaire.api.call import OperationBase, S3Call, iso
from vaultaire.api.errors import S3Error
from vaultaire.api.listing import _encoding, _listing_flags, _max_keys, _url_encode
from vaultaire.api.xmlout import element
from vaultaire.engine.versioning import STATES, valid_version_id
from vaultaire.model import Artifact

NULL = "null"


def _invalid(name: str, value: str) -> S3Error:
    return S3Error("InvalidArgument", "Invalid version id specified", ArgumentName=name, ArgumentValue=value)


def check_version_id(value: str, name: str = "versionId") -> str:
    """A version id a client sent: 400 InvalidArgument unless it could be one of ours."""
    if value == "":
        raise S3Error("InvalidArgument", "Version id cannot be the empty string", ArgumentName=name, ArgumentValue="")
    if not valid_version_id(value):
        raise _invalid(name, value)
    return value


def requested_version(call: S3Call) -> str | None:
    """The ``?versionId=`` of a GET, HEAD or DELETE (checked), or None."""
    value = call.target.query.get("versionId")
    return None if value is None else check_version_id(value)


def echo_version(call: S3Call, artifact: Artifact, asked: bool = False) -> None:
    """``x-amz-version-id`` as S3 sends it: for any version but ``null``, and for ``null`` when asked."""
    if artifact.version_id != NULL or asked:
        call.set_header("x-amz-version-id", artifact.version_id)


def parse_configuration(body: bytes) -> str | None:
    """The Status a VersioningConfiguration asks for (None: unchanged). MFA delete is refused."""
    root = xmlparse.parse(body)
    if _local(root.tag) != "VersioningConfiguration":
        raise S3Error("MalformedXML")
    status = None
    for child in root:
        name, text = _local(child.tag), (child.text or "").strip()
        if name == "Status":
            if text not in STATES:
                raise S3Error("MalformedXML")
            status = text
        elif name == "MfaDelete":
            if text == "Enabled":
                raise S3Error("NotImplemented", "MFA delete is not implemented by Vaultaire.")
            if text != "Disabled":
                raise S3Error("MalformedXML")
        else:
            raise S3Error("MalformedXML")
    return status


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class VersioningOperations(OperationBase):
    async def get_bucket_versioning(self, call: S3Call) -> bytes:
        container = await self._container(call)
        status = await self.engine.versioning(call.ctx, container)
        # Never enabled: S3 answers an empty configuration.
        children = [element("Status", status)] if status else []
        return self._xml(call, element("VersioningConfiguration", *children, xmlns=True))

    async def put_bucket_versioning(self, call: S3Call) -> bytes:
        # An x-amz-mfa header is refused before any handler runs (api/unsupported.py).
        container = await self._container(call)
        status = parse_configuration(await self._small_body(call))
        if status is not None:
            if status != "Enabled" and await self.engine.container_setting(call.ctx, container, "object-lock"):
                raise S3Error(
                    "InvalidBucketState",
                    "An Object Lock configuration is present on this bucket, "
                    "so the versioning state cannot be changed.",
                )
            await self.engine.set_versioning(call.ctx, container, status)
        call.set_header("Content-Length", "0")
        return b""

    async def list_object_versions(self, call: S3Call) -> bytes:
        container = await self._container(call)
        q = call.target.query
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        max_keys = _max_keys(q)
        encoding = _encoding(q)
        key_marker = q.get("key-marker") or None
        version_marker = q.get("version-id-marker") or None
        if version_marker is not None:
            if key_marker is None:
                raise S3Error(
                    "InvalidArgument",
                    "A version-id marker cannot be specified without a key marker.",
                    ArgumentName="version-id-marker",
                    ArgumentValue=version_marker,
                )
            check_version_id(version_marker, "version-id-marker")
        page = await self.engine.list_versions(
            call.ctx, container, prefix, delimiter, key_marker, version_marker, max_keys
        )

        def enc(text: str) -> str:
            return _url_encode(text) if encoding == "url" else text

        entries = []
        for v in page.versions:
            if v.delete_marker:
                entries.append(
                    element(
                        "DeleteMarker",
                        element("Key", enc(v.key)),
                        element("VersionId", v.version_id),
                        element("IsLatest", v.is_latest),
                        element("LastModified", iso(v.modified)),
                        self._owner(call),
                    )
                )
            else:
                entries.append(
                    element(
                        "Version",
                        element("Key", enc(v.key)),
                        element("VersionId", v.version_id),
                        element("IsLatest", v.is_latest),
                        element("LastModified", iso(v.modified)),
                        element("ETag", v.etag),
                        element("Size", v.size),
                        element("StorageClass", v.storage_class),
                        self._owner(call),
                    )
                )
        prefixes = [element("CommonPrefixes", element("Prefix", enc(p))) for p in page.prefixes]
        head = [
            element("Name", container.name),
            element("Prefix", enc(prefix)),
            element("KeyMarker", enc(key_marker or "")),
            element("VersionIdMarker", version_marker or ""),
        ]
        if page.truncated:
            if page.next_key_marker is not None:
                head.append(element("NextKeyMarker", enc(page.next_key_marker)))
            if page.next_version_id_marker is not None:
                head.append(element("NextVersionIdMarker", page.next_version_id_marker))
        head.append(element("MaxKeys", max_keys))
        head += _listing_flags(delimiter, encoding, page.truncated, enc)
        return self._xml(call, element("ListVersionsResult", *head, *entries, *prefixes, xmlns=True))
