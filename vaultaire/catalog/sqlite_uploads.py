"""Multipart uploads and their parts: a mixin of SQLiteCatalog."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from attrs import evolve
from twisted.internet.defer import Deferred

from vaultaire.catalog import accounting, blobs, versions
from vaultaire.catalog.listing import successor
from vaultaire.catalog.rows import hold_of
from vaultaire.catalog.rows import retention as _retention
from vaultaire.catalog.rows import sealing as _sealing
from vaultaire.catalog.rows import sealing_json as _sealing_json
from vaultaire.catalog.sqlite_statements import SQLiteStatements
from vaultaire.errors import EntityTooSmall, InvalidPart, InvalidPartOrder, MigrationInProgress, NoSuchUpload
from vaultaire.model import Artifact, Part, Upload, WriteCondition

_UPLOAD_COLUMNS = "id, container_id, key, created, content_type, extra"
_PART_COLUMNS = "upload_id, number, locator, size, md5, modified, checksum, placement, sealed_key"


def _upload(row: tuple[Any, ...]) -> Upload:
    extra = json.loads(row[5])
    return Upload(
        id=row[0],
        container_id=row[1],
        key=bytes(row[2]).decode("utf-8"),
        created=row[3],
        content_type=row[4],
        metadata=tuple((k, v) for k, v in extra["meta"]),
        headers=tuple((k, v) for k, v in extra["headers"]),
        storage_class=extra["class"],
        checksum_algorithm=extra["checksum"],
        checksum_type=extra.get("checksum_type"),
        sealing=_sealing(extra.get("sealing")),
        tags=tuple((k, v) for k, v in extra.get("tags", ())),
        retention=_retention(extra.get("retention")),
        legal_hold=hold_of(extra.get("hold")),
        acl=extra.get("acl", ""),
    )


def _part(row: tuple[Any, ...]) -> Part:
    upload_id, number, locator, size, md5, modified, checksum, placement, sealed_key = row
    # NULL placement and sealed_key: older catalogs (the container's placement; plaintext).
    return Part(upload_id, number, locator, size, md5, modified, checksum, placement or "", sealed_key or "")


class UploadStatements(SQLiteStatements):
    """Create, fill, complete, abort and list multipart uploads."""

    if TYPE_CHECKING:

        def _queue_garbage(
            self, db: sqlite3.Connection, container_id: int, locators: Iterable[str], placement: str | None = None
        ) -> None: ...
        def _queue_parts(
            self, db: sqlite3.Connection, container_id: int, rows: Iterable[tuple[str, str | None]]
        ) -> None: ...
        def _check_condition(
            self, db: sqlite3.Connection, container_id: int, key: bytes, condition: WriteCondition
        ) -> None: ...

    def create_upload(self, upload: Upload) -> Deferred[None]:
        def work(db: sqlite3.Connection) -> None:
            extra = json.dumps(
                {
                    "meta": [list(kv) for kv in upload.metadata],
                    "headers": [list(kv) for kv in upload.headers],
                    "class": upload.storage_class,
                    "checksum": upload.checksum_algorithm,
                    "checksum_type": upload.checksum_type,
                    "sealing": _sealing_json(upload.sealing),
                    "tags": [list(kv) for kv in upload.tags],
                    "retention": [upload.retention.mode, upload.retention.until] if upload.retention else None,
                    "hold": upload.legal_hold,
                    "acl": upload.acl,
                }
            )
            db.execute(
                "INSERT INTO uploads (id, container_id, key, created, content_type, extra) VALUES (?, ?, ?, ?, ?, ?)",
                (upload.id, upload.container_id, upload.key.encode(), upload.created, upload.content_type, extra),
            )

        return self._write(work)

    def _upload(self, db: sqlite3.Connection, container_id: int, upload_id: str) -> Upload:
        row = db.execute(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE id = ? AND container_id = ?", (upload_id, container_id)
        ).fetchone()
        if row is None:
            raise NoSuchUpload(upload_id)
        return _upload(row)

    def upload(self, container_id: int, upload_id: str) -> Deferred[Upload]:
        return self._read(lambda db: self._upload(db, container_id, upload_id))

    def put_part(self, container_id: int, part: Part, *, intended: bool = False) -> Deferred[Part | None]:
        """Record a part (the upload must still exist); a re-sent part replaces the old one."""

        def work(db: sqlite3.Connection) -> Part | None:
            self._upload(db, container_id, part.upload_id)
            row = db.execute(
                f"SELECT {_PART_COLUMNS} FROM parts WHERE upload_id = ? AND number = ?", (part.upload_id, part.number)
            ).fetchone()
            old = None if row is None else _part(row)
            if old is not None:
                self._queue_garbage(db, container_id, [old.locator], old.placement)
            accounting.account(db, container_id, part.size - (old.size if old else 0), 0, self._clock())
            db.execute(
                f"INSERT OR REPLACE INTO parts ({_PART_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    part.upload_id,
                    part.number,
                    part.locator,
                    part.size,
                    part.md5,
                    part.modified,
                    part.checksum,
                    part.placement or None,
                    part.sealed_key or None,
                ),
            )
            blobs.settle(db, [part.locator], claim=intended)
            return old

        return self._write(work)

    def parts(self, container_id: int, upload_id: str, after: int, limit: int) -> Deferred[tuple[Upload, list[Part]]]:
        def work() -> tuple[Upload, list[Part]]:
            db = self._db()
            upload = self._upload(db, container_id, upload_id)
            rows = db.execute(
                f"SELECT {_PART_COLUMNS} FROM parts WHERE upload_id = ? AND number > ? ORDER BY number LIMIT ?",
                (upload_id, after, limit),
            )
            return upload, [_part(r) for r in rows]

        return self._run(work)

    def complete_upload(
        self,
        container_id: int,
        upload_id: str,
        chosen: list[tuple[int, str]],
        min_part_size: int,
        modified: float,
        condition: WriteCondition | None,
        checksum_of: Callable[[Upload, list[Part]], tuple[str, str] | None] = lambda upload, parts: None,
    ) -> Deferred[tuple[Artifact, Artifact | None, list[Part], list[tuple[str, str]]]]:
        """Turn an upload into a manifest artifact in one transaction; no byte moves.

        Returns (new artifact, replaced artifact, the chosen parts, the (placement,
        locator) of parts uploaded but not chosen). Those are queued as garbage with
        the replaced artifact.
        ``checksum_of`` derives the artifact's checksum from the chosen parts
        (it may raise to refuse the completion).
        """

        def work(db: sqlite3.Connection) -> tuple[Artifact, Artifact | None, list[Part], list[tuple[str, str]]]:
            upload = self._upload(db, container_id, upload_id)
            stored = {
                p.number: p
                for p in map(_part, db.execute(f"SELECT {_PART_COLUMNS} FROM parts WHERE upload_id = ?", (upload_id,)))
            }
            picked: list[Part] = []
            previous = 0
            for number, md5 in chosen:
                if number <= previous:
                    raise InvalidPartOrder(str(number))
                previous = number
                part = stored.get(number)
                if part is None or part.md5 != md5:
                    raise InvalidPart(str(number))
                picked.append(part)
            for part in picked[:-1]:
                if part.size < min_part_size:
                    raise EntityTooSmall(str(part.number))
            key = upload.key.encode("utf-8")
            if condition is not None:
                self._check_condition(db, container_id, key, condition)
            digest = hashlib.md5(b"".join(bytes.fromhex(p.md5) for p in picked)).hexdigest()
            # A manifest's parts all live on one placement. Parts uploaded on both sides of a
            # migration differ until the migration has moved them: the client retries (503).
            here = db.execute("SELECT placement FROM containers WHERE id = ?", (container_id,)).fetchone()
            placements = {p.placement or (here[0] if here else "") for p in picked}
            if len(placements) > 1:
                raise MigrationInProgress("this upload's parts are being moved to another placement; retry")
            artifact = Artifact(
                container_id=container_id,
                key=upload.key,
                locator="",
                size=sum(p.size for p in picked),
                md5=f"{digest}-{len(picked)}",
                modified=modified,
                content_type=upload.content_type,
                metadata=upload.metadata,
                headers=upload.headers,
                storage_class=upload.storage_class,
                parts=tuple((p.locator, p.size) for p in picked),
                checksum=checksum_of(upload, picked),
                placement=placements.pop() if placements else "",
                upload_id=upload_id,
                # Each part keeps its own data key: the manifest lists them in part order.
                sealing=None
                if upload.sealing is None
                else evolve(upload.sealing, keys=tuple(p.sealed_key for p in picked)),
                tags=upload.tags,
                retention=upload.retention,
                legal_hold=upload.legal_hold,
                acl=upload.acl,
            )
            # The chosen parts' bytes stay (now the artifact's); the others go with the replaced artifact.
            unchosen_bytes = sum(p.size for p in stored.values()) - artifact.size
            artifact, old = versions.install(db, artifact, -unchosen_bytes, self._clock())
            chosen_numbers = {p.number for p in picked}
            unchosen = [(p.locator, p.placement) for n, p in stored.items() if n not in chosen_numbers]
            self._queue_parts(db, container_id, unchosen)
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
            return (
                artifact,
                old,
                picked,
                [(placement or (here[0] if here else "local"), loc) for loc, placement in unchosen],
            )

        return self._write(work)

    def abort_upload(self, container_id: int, upload_id: str) -> Deferred[list[tuple[str, str]]]:
        """Drop the upload; its parts' blobs are queued, and returned as (placement, locator)."""

        def work(db: sqlite3.Connection) -> list[tuple[str, str]]:
            self._upload(db, container_id, upload_id)
            rows = db.execute("SELECT locator, size, placement FROM parts WHERE upload_id = ?", (upload_id,)).fetchall()
            self._queue_parts(db, container_id, [(r[0], r[2]) for r in rows])
            accounting.account(db, container_id, -sum(r[1] for r in rows), 0, self._clock())
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
            here = db.execute("SELECT placement FROM containers WHERE id = ?", (container_id,)).fetchone()
            return [(r[2] or (here[0] if here else "local"), r[0]) for r in rows]

        return self._write(work)

    def list_uploads(
        self, container_id: int, prefix: str, delimiter: str, key_marker: str | None, id_marker: str | None, limit: int
    ) -> Deferred[tuple[list[Upload], list[str], bool]]:
        """Uploads in (key, created, id) order after the markers; (uploads, common prefixes, truncated)."""

        def work() -> tuple[list[Upload], list[str], bool]:
            db = self._db()
            raw_prefix = prefix.encode("utf-8")
            raw_delim = delimiter.encode("utf-8")
            upper = successor(raw_prefix) if raw_prefix else None
            uploads: list[Upload] = []
            prefixes: list[str] = []
            lower = max(raw_prefix, key_marker.encode("utf-8")) if key_marker else raw_prefix
            # With only a key marker, every upload of that key was listed already.
            skip_key = key_marker.encode("utf-8") if key_marker and not id_marker else None
            after_id = (key_marker.encode("utf-8"), id_marker) if key_marker and id_marker else None
            while True:
                sql = f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE container_id = ? AND key >= ?"
                args: list[Any] = [container_id, lower]
                if upper is not None:
                    sql += " AND key < ?"
                    args.append(upper)
                rows = db.execute(sql + " ORDER BY key, created, id LIMIT ?", [*args, limit + 2]).fetchall()
                jumped = False
                for row in rows:
                    key = bytes(row[2])
                    if skip_key is not None and key == skip_key:
                        continue
                    if after_id is not None and key == after_id[0]:
                        # same key as the marker: only uploads after the marked one
                        if row[0] == after_id[1]:
                            after_id = None
                        continue
                    if raw_delim:
                        at = key.find(raw_delim, len(raw_prefix))
                        if at >= 0:
                            rolled = key[: at + len(raw_delim)]
                            if len(uploads) + len(prefixes) == limit:
                                return uploads, prefixes, True
                            if not key_marker or rolled.decode("utf-8") > key_marker:
                                prefixes.append(rolled.decode("utf-8"))
                            nxt = successor(rolled)
                            assert nxt is not None
                            lower, jumped = nxt, True
                            break
                    if len(uploads) + len(prefixes) == limit:
                        return uploads, prefixes, True
                    uploads.append(_upload(row))
                if not jumped:
                    return uploads, prefixes, False

        return self._run(work)

    def stale_uploads(self, created_before: float, limit: int) -> Deferred[list[Upload]]:
        def work() -> list[Upload]:
            rows = self._db().execute(
                f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE created < ? ORDER BY created LIMIT ?",
                (created_before, limit),
            )
            return [_upload(r) for r in rows]

        return self._run(work)
