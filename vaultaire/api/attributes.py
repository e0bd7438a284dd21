"""GetObjectAttributes: an object's ETag, checksum, parts, storage class and size without its bytes.

What the catalog keeps decides what the parts can say: a completed multipart artifact is
a manifest of its parts' blobs and sizes (``Artifact.parts``), in the order the upload
completed them. Each part's own checksum lives in the upload's part rows, which the
completion removes, and its original part number is not kept (parts 1, 3, 7 become the
manifest's first, second and third). So ``ObjectParts`` lists each part as its position
in the manifest (the number ``GET ?partNumber=`` reads) and its size, never a per-part
checksum; the whole object's checksum, composite or full-object, is the ``Checksum``.
"""

from __future__ import annotations

from vaultaire.api import encryption
from vaultaire.api.call import OperationBase, S3Call, http_date
from vaultaire.api.errors import S3Error, delete_marker_addressed
from vaultaire.api.versioning import echo_version, requested_version
from vaultaire.api.xmlout import Element, element
from vaultaire.errors import DeleteMarkerAddressed
from vaultaire.model import Artifact

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_PARTS = 1000
_INT_MAX = 2**31 - 1


def requested(header: str | None) -> set[str]:
    """The attributes ``x-amz-object-attributes`` names (comma-separated, as SDKs join a list)."""
    names = {name.strip() for name in (header or "").split(",") if name.strip()}
    if not names:
        raise S3Error(
            "InvalidRequest",
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty",
        )
    if not names <= set(ATTRIBUTES):
        raise S3Error("InvalidArgument", "Invalid attribute name specified.")
    return names


def _max_parts(raw: str | None) -> int:
    # S3 answers an x-amz-max-parts it cannot read with its default rather than an error.
    try:
        value = int(raw) if raw is not None else MAX_PARTS
    except ValueError:
        return MAX_PARTS
    return min(max(value, 0), MAX_PARTS)


def _part_marker(raw: str | None) -> int:
    if raw is None:
        return 0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= _INT_MAX:
        raise S3Error(
            "InvalidArgument",
            f"Argument part-number-marker must be an integer between 0 and {_INT_MAX}",
            ArgumentName="x-amz-part-number-marker",
            ArgumentValue=raw,
        )
    return value


def object_parts(artifact: Artifact, marker: int, limit: int) -> Element | None:
    """The ObjectParts of a multipart artifact (None for one uploaded whole, as S3 answers)."""
    if not artifact.parts:
        return None
    numbered = list(enumerate(artifact.parts, 1))[marker : marker + limit]
    last = numbered[-1][0] if numbered else marker
    return element(
        "ObjectParts",
        element("PartsCount", len(artifact.parts)),
        element("PartNumberMarker", marker),
        element("NextPartNumberMarker", last),
        element("MaxParts", limit),
        element("IsTruncated", last < len(artifact.parts)),
        *(element("Part", element("PartNumber", n), element("Size", size)) for n, (_loc, size) in numbered),
    )


class AttributesOperations(OperationBase):
    async def get_object_attributes(self, call: S3Call) -> bytes:
        assert call.target.key is not None
        wanted = requested(call.headers.get("x-amz-object-attributes"))
        marker = _part_marker(call.headers.get("x-amz-part-number-marker"))
        limit = _max_parts(call.headers.get("x-amz-max-parts"))
        version_id = requested_version(call)
        offered = encryption.for_read(call.headers, self._sse_c_secure(call))
        container = await self._container(call)
        try:
            artifact = await self.engine.artifact(call.ctx, container, call.target.key, version_id)
        except DeleteMarkerAddressed as e:
            raise delete_marker_addressed(e.marker, "GET") from None
        # As GET: an SSE-C object tells nothing of itself without its key.
        encryption.check_offered(artifact.sealing, offered)
        self.engine.sealed.check(artifact.sealing, offered)
        call.set_header("Last-Modified", http_date(artifact.modified))
        echo_version(call, artifact, asked=version_id is not None)
        fields: list[Element] = []
        if "ETag" in wanted:
            fields.append(element("ETag", artifact.md5))  # unquoted here, as S3 answers it
        if "Checksum" in wanted and artifact.checksum is not None:
            algorithm, value = artifact.checksum
            kind = "COMPOSITE" if "-" in value else "FULL_OBJECT"
            fields.append(
                element("Checksum", element(f"Checksum{algorithm.upper()}", value), element("ChecksumType", kind))
            )
        parts = object_parts(artifact, marker, limit) if "ObjectParts" in wanted else None
        if parts is not None:
            fields.append(parts)
        if "StorageClass" in wanted:
            fields.append(element("StorageClass", artifact.storage_class))
        if "ObjectSize" in wanted:
            fields.append(element("ObjectSize", artifact.size))
        return self._xml(call, element("GetObjectAttributesResponse", *fields, xmlns=True))
