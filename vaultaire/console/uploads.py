"""Multipart uploads for the browser: console.js slices a large file and sends it a part at a
time; each step here is the S3 call of the same name, signed with the user's keys.

Each part is spooled by twisted.web (only for a signed-in session sending its CSRF token:
app.ConsoleRequest) and streamed on to S3 from there, never held whole in memory. The
browser keeps the parts' ETags and names them at completion, as any S3 client does; on
cancel it asks for the abort, which frees the parts already stored.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.web.iweb import IRequest

from vaultaire.console import documents
from vaultaire.console.routes import app, arg
from vaultaire.console.s3client import Keys, S3Client, S3Failed, S3Unreachable
from vaultaire.console.sessions import Session

MAX_PARTS = 10_000  # S3's limit on a multipart upload
# The browser's part size, and the size above which a file goes up in parts: a few parts for
# files of tens of MiB (progress and cancel work part by part), above S3's 5 MiB minimum.
PART_SIZE = 8 * 2**20


class UploadRefused(Exception):
    """A step the console cannot send (a part number out of range, a malformed part list)."""


def _reply(request: IRequest, document: dict[str, Any], status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(document).encode()


def part_list(body: bytes) -> list[tuple[int, str]]:
    """The browser's [{"part": N, "etag": "..."}...], checked, in order."""
    try:
        found = json.loads(body)
        parts = [(int(p["part"]), str(p["etag"])) for p in found]
    except (ValueError, TypeError, KeyError):
        raise UploadRefused("The part list must be JSON: [{part: N, etag: ...}, ...].") from None
    if not parts or len(parts) > MAX_PARTS or any(not 1 <= n <= MAX_PARTS for n, _ in parts):
        raise UploadRefused(f"A multipart upload has 1 to {MAX_PARTS} parts, numbered from 1.")
    return sorted(parts)


class UploadPages:
    if TYPE_CHECKING:
        s3: S3Client

        def posted(self, request: IRequest) -> Session: ...

        @staticmethod
        def keys(session: Session) -> Keys: ...

    async def _step(self, request: IRequest, bucket: str, step: str) -> bytes:
        session = self.posted(request)
        keys = self.keys(session)
        key, upload = arg(request, "key"), arg(request, "upload")
        try:
            return _reply(request, await self._do(request, keys, bucket, key, upload, step))
        except S3Failed as e:
            status = e.reply.status if 400 <= e.reply.status < 600 else 502
            return _reply(request, {"error": str(e)}, status)
        except UploadRefused as e:
            return _reply(request, {"error": str(e)}, 400)
        except S3Unreachable as e:
            return _reply(request, {"error": f"the S3 service is unreachable: {e.why}"}, 502)

    async def _do(self, request: IRequest, keys: Keys, bucket: str, key: str, upload: str, step: str) -> dict[str, Any]:
        if step == "create":
            content_type = request.getHeader(b"content-type")
            headers = {"content-type": content_type.decode("latin-1")} if isinstance(content_type, bytes) else {}
            reply = await self.s3.checked(keys, "POST", bucket, key, query=[("uploads", "")], headers=headers)
            return {"upload": documents.text(documents.plain(reply.body), "UploadId")}
        if not upload:
            raise UploadRefused("Which upload? (upload= is missing)")
        if step == "part":
            number = arg(request, "part")
            if not number.isdigit() or not 1 <= int(number) <= MAX_PARTS:
                raise UploadRefused(f"A part number is 1 to {MAX_PARTS}, not {number!r}.")
            body = request.content
            body.seek(0)
            query = [("partNumber", number), ("uploadId", upload)]
            reply = await self.s3.checked(keys, "PUT", bucket, key, query=query, body=body)
            return {"part": int(number), "etag": reply.headers.get("etag", "")}
        if step == "complete":
            request.content.seek(0)
            parts = part_list(request.content.read())
            root = documents.element(
                "CompleteMultipartUpload",
                None,
                *(
                    documents.element(
                        "Part", None, documents.element("PartNumber", str(n)), documents.element("ETag", etag)
                    )
                    for n, etag in parts
                ),
            )
            reply = await self.s3.checked(
                keys, "POST", bucket, key, query=[("uploadId", upload)], body=documents.document(root)
            )
            # S3 may answer 200 with an error inside (a failure after the response began).
            done = documents.plain(reply.body)
            if done.tag == "Error":
                raise UploadRefused(f"{documents.text(done, 'Code')}: {documents.text(done, 'Message')}")
            return {"key": key, "etag": documents.text(done, "ETag")}
        if step == "abort":
            await self.s3.checked(keys, "DELETE", bucket, key, query=[("uploadId", upload)])
            return {"aborted": upload}
        raise UploadRefused(f"No such step: {step!r}.")

    @app.route("/b/<bucket>/multipart/<step>", methods=["POST", "PUT"])
    async def multipart_step(self, request: IRequest, bucket: str, step: str) -> bytes:
        return await self._step(request, bucket, step)
