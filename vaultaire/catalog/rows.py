"""An artifact (any version of it) as a catalog row, and back.

The columns every store indexes (key, size, md5...) are columns; everything
else a version carries (metadata, stored headers, parts, sealing, tags, lock
state, its version id and order) is one JSON document, read whole with the row.
Rows written before a field existed lack it and read as its default.
"""

from __future__ import annotations

import json
from typing import Any

from vaultaire.model import Artifact, Retention, Sealing

ARTIFACT_COLUMNS = "container_id, key, locator, size, md5, modified, content_type, metadata"


def artifact_row(row: tuple[Any, ...], is_latest: bool = True, extra: dict[str, Any] | None = None) -> Artifact:
    """The artifact of a row of ARTIFACT_COLUMNS (more columns after them are ignored);
    ``extra``: its JSON column, when the caller has parsed it already."""
    if extra is None:
        extra = json.loads(row[7])
    return Artifact(
        container_id=row[0],
        key=bytes(row[1]).decode("utf-8"),
        locator=row[2],
        size=row[3],
        md5=row[4],
        modified=row[5],
        content_type=row[6],
        metadata=tuple((k, v) for k, v in extra["meta"]),
        headers=tuple((k, v) for k, v in extra["headers"]),
        storage_class=extra.get("class", "STANDARD"),
        parts=tuple((loc, size) for loc, size in extra.get("parts", ())),
        checksum=tuple(extra["checksum"]) if extra.get("checksum") else None,
        placement=extra.get("placement", ""),
        upload_id=extra.get("upload", ""),
        sealing=sealing(extra.get("sealing")),
        # Rows from before versioning are the "null" version (S3's id for an unversioned write).
        version_id=extra.get("version", "null"),
        delete_marker=bool(extra.get("marker", False)),
        is_latest=is_latest,
        tags=tuple((k, v) for k, v in extra.get("tags", ())),
        retention=retention(extra.get("retention")),
        legal_hold=hold_of(extra.get("hold")),
        acl=extra.get("acl", ""),
    )


def artifact_and_rank(row: tuple[Any, ...]) -> tuple[Artifact, int | None]:
    """The artifact of a row and the version order it recorded (None in rows from before versioning)."""
    extra = json.loads(row[7])
    rank = extra.get("rank")
    return artifact_row(row, extra=extra), None if rank is None else int(rank)


def hold_of(stored: Any) -> bool | None:
    """A stored legal hold: None when none was ever set on the version (S3 then answers 404)."""
    return None if stored is None else bool(stored)


def retention(stored: list[Any] | None) -> Retention | None:
    return Retention(stored[0], stored[1]) if stored else None


def sealing(stored: dict[str, Any] | None) -> Sealing | None:
    if not stored:
        return None  # written before encryption, or plaintext
    return Sealing(
        stored["mode"],
        tuple(stored.get("keys", ())),
        stored.get("proof", ""),
        stored.get("md5", ""),
        stored.get("kms", ""),
        stored.get("context", ""),
        bool(stored.get("bucket_key", False)),
    )


def sealing_json(sealed: Sealing | None) -> dict[str, Any] | None:
    if sealed is None:
        return None
    stored: dict[str, Any] = {
        "mode": sealed.mode,
        "keys": list(sealed.keys),
        "proof": sealed.key_proof,
        "md5": sealed.key_md5,
    }
    if sealed.kms_key:  # SSE-KMS
        stored.update(kms=sealed.kms_key, context=sealed.context, bucket_key=sealed.bucket_key)
    return stored


def extra_json(artifact: Artifact, rank: int | None = None) -> str:
    """Everything but the indexed columns: one JSON column. ``rank`` orders the key's versions."""
    extra: dict[str, Any] = {
        "meta": [list(kv) for kv in artifact.metadata],
        "headers": [list(kv) for kv in artifact.headers],
        "class": artifact.storage_class,
        "parts": [list(p) for p in artifact.parts],
        "checksum": list(artifact.checksum) if artifact.checksum else None,
        "placement": artifact.placement,
        "upload": artifact.upload_id,
        "sealing": sealing_json(artifact.sealing),
        "tags": [list(kv) for kv in artifact.tags],
        "retention": [artifact.retention.mode, artifact.retention.until] if artifact.retention else None,
        "hold": artifact.legal_hold,
        "acl": artifact.acl,
        "version": artifact.version_id,
    }
    if artifact.delete_marker:
        extra["marker"] = True
    if rank is not None:
        extra["rank"] = rank
    return json.dumps(extra)
