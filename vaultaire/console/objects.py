"""Object pages: details (size, ETag, type, metadata, tags, versions), upload (a form posted
straight to S3, or dropped files sent through the console with progress), download, delete,
restore an old version, and share links (presigned GETs of a chosen lifetime)."""

from __future__ import annotations

import base64
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from twisted.web.iweb import IRequest
from twisted.web.template import Tag

from vaultaire import sigv4
from vaultaire.console import pages
from vaultaire.console.host import PageHost
from vaultaire.console.object_settings import encryption_text
from vaultaire.console.pages import bucket_path, shown, size_text, tags, url
from vaultaire.console.routes import app, arg
from vaultaire.console.s3client import NS, S3Client, quote_key
from vaultaire.console.sessions import Session
from vaultaire.console.settings import Trouble

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_SHARE_SECONDS = 7 * 24 * 3600  # SigV4's own limit on a presigned URL
DOWNLOAD_SECONDS = 300
FORM_SECONDS = 3600  # how long an upload form's signed policy stays good


def _text(element: Any, name: str) -> str:
    return str(element.findtext(NS + name) or "")


def own_origin(request: IRequest) -> str:
    host = request.getHeader(b"host") or b"localhost"
    scheme = "https" if request.isSecure() else "http"
    return f"{scheme}://{host.decode('latin-1') if isinstance(host, bytes) else host}"


class ObjectPages(PageHost):
    if TYPE_CHECKING:
        s3: S3Client
        s3_public: Callable[[], str]
        clock: Callable[[], float]
        part_size: int

        async def object_sections(
            self, session: Session, bucket: str, key: str, version: str, trouble: Trouble
        ) -> list[Tag]: ...

    # -- upload

    async def uploadarg(self, request: IRequest, session: Session, bucket: str, prefix: str) -> Tag:
        """A POST Object form signed for this user (works without JavaScript: the browser posts
        straight to S3, which redirects back here); console.js sends dropped or chosen files
        through the console instead, to show progress."""
        back = own_origin(request) + url(bucket_path(bucket), prefix=prefix or None)
        fields = self._post_policy(session, bucket, prefix, back)
        return tags.fieldset(
            tags.legend("Upload"),
            tags.form(
                method="post",
                action=self.s3_public() + "/" + quote(bucket, safe=""),
                enctype="multipart/form-data",
                id="upload",
                **{
                    "data-put": bucket_path(bucket, "upload"),
                    "data-multipart": bucket_path(bucket, "multipart"),
                    "data-part-size": str(self.part_size),
                    "data-prefix": prefix,
                    "data-csrf": session.csrf,
                },
            )(
                [pages.hidden(name, value) for name, value in fields],
                tags.input(type="file", name="file", id="file", multiple="multiple", required="required"),
                " ",
                pages.button("Upload"),
                tags.div(class_="dropzone", id="dropzone", hidden="hidden")("…or drop files here"),
                tags.button(type="button", id="cancel", hidden="hidden")("Cancel"),
                tags.div(id="progress"),
            ),
        )

    def _post_policy(self, session: Session, bucket: str, prefix: str, redirect: str) -> list[tuple[str, str]]:
        now = datetime.fromtimestamp(self.clock(), UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        region = self.s3.region
        credential = f"{session.access_key}/{amz_date[:8]}/{region}/s3/aws4_request"
        document = {
            "expiration": (now + timedelta(seconds=FORM_SECONDS)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "conditions": [
                {"bucket": bucket},
                ["starts-with", "$key", prefix],
                {"success_action_redirect": redirect},
                {"x-amz-algorithm": sigv4.ALGORITHM},
                {"x-amz-credential": credential},
                {"x-amz-date": amz_date},
            ],
        }
        policy = base64.b64encode(json.dumps(document).encode()).decode()
        key = sigv4.signing_key(session.secret_key, amz_date[:8], region, "s3")
        signature = hmac.new(key, policy.encode(), "sha256").hexdigest()
        return [
            ("key", prefix + "${filename}"),
            ("success_action_redirect", redirect),
            ("x-amz-algorithm", sigv4.ALGORITHM),
            ("x-amz-credential", credential),
            ("x-amz-date", amz_date),
            ("policy", policy),
            ("x-amz-signature", signature),
        ]

    @app.route("/b/<bucket>/upload", methods=["PUT"])
    async def upload(self, request: IRequest, bucket: str) -> bytes:
        """One file from console.js: twisted.web has spooled the body (to a temporary file past
        100 kB); it is streamed on to S3 from there, never read whole into memory."""
        session = self.posted(request)
        key = arg(request, "key")
        content_type = request.getHeader(b"content-type")
        headers = {"content-type": content_type.decode("latin-1")} if isinstance(content_type, bytes) else {}
        body = request.content
        body.seek(0)
        reply = await self.s3.checked(self.keys(session), "PUT", bucket, key, headers=headers, body=body)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"key": key, "etag": reply.headers.get("etag", "")}).encode()

    # -- one object

    @app.route("/b/<bucket>/object", methods=["GET"])
    async def object_page(self, request: IRequest, bucket: str) -> bytes:
        return await self._object(request, self.session(request), bucket, arg(request, "key"), Trouble())

    async def _object(
        self, request: IRequest, session: Session, bucket: str, key: str, trouble: Trouble, status: int = 200
    ) -> bytes:
        keys = self.keys(session)
        head = await self.s3.checked(keys, "HEAD", bucket, key)
        meta = [
            (name[len("x-amz-meta-") :], value)
            for name, value in sorted(head.headers.items())
            if name.startswith("x-amz-meta-")
        ]
        size = int(head.headers.get("content-length", "0"))
        details = pages.table(
            ["", ""],
            [
                ["Key", tags.code(id="key")(shown(key))],
                ["Size", f"{size_text(size)} ({size} bytes)"],
                ["ETag", head.headers.get("etag", "")],
                ["Type", head.headers.get("content-type", "")],
                ["Modified", head.headers.get("last-modified", "")],
                ["Version", head.headers.get("x-amz-version-id", "")],
                [
                    "Metadata",
                    tags.ul([tags.li(tags.code(shown(n)), " = ", shown(v)) for n, v in meta]) if meta else "none",
                ],
                ["Encryption", tags.span(id="encryption")(encryption_text(head.headers))],
            ],
            id="details",
        )
        actions = tags.p(
            tags.a(href=url(bucket_path(bucket, "download"), key=key), id="download")("Download"),
            " ",
            pages.post_form(
                session,
                bucket_path(bucket, "delete"),
                pages.hidden("key", key),
                pages.button("Delete"),
                class_="inline",
            ),
        )
        share = tags.fieldset(
            tags.legend("Share link"),
            pages.post_form(
                session,
                bucket_path(bucket, "share"),
                pages.hidden("key", key),
                tags.label(
                    "Valid for ",
                    tags.input(type="number", name="hours", value="24", min="1", max="168", required="required"),
                    " hours (at most 7 days) ",
                ),
                pages.button("Make link"),
                id="share",
            ),
        )
        crumbs = tags.p(
            tags.a(href=url(bucket_path(bucket), prefix=key.rpartition("/")[0] + "/" if "/" in key else None))(
                "Back to the listing"
            )
        )
        versions = await self._versions(session, bucket, key)
        version = head.headers.get("x-amz-version-id", "")
        sections = await self.object_sections(session, bucket, key, "" if version == "null" else version, trouble)
        return await self.html(
            request, "Object", session, crumbs, details, *sections, actions, share, versions, status=status
        )

    async def _versions(self, session: Session, bucket: str, key: str) -> Any:
        reply = await self.s3.call(self.keys(session), "GET", bucket, query=[("prefix", key), ("versions", "")])
        if not reply.ok:
            return tags.p(f"Versions not shown: {reply.error()}")
        root = reply.xml()
        rows = []
        for v in [*root.findall(f"{NS}Version"), *root.findall(f"{NS}DeleteMarker")]:
            if _text(v, "Key") != key:
                continue
            marker = v.tag == f"{NS}DeleteMarker"
            version_id = _text(v, "VersionId")
            latest = _text(v, "IsLatest") == "true"
            action: Any = ""
            if not marker:
                action = [
                    tags.a(href=url(bucket_path(bucket, "download"), key=key, version=version_id))("Download"),
                    " ",
                    ""
                    if latest
                    else pages.post_form(
                        session,
                        bucket_path(bucket, "restore"),
                        pages.hidden("key", key),
                        pages.hidden("version", version_id),
                        pages.button("Restore", class_="restore"),
                        class_="inline",
                    ),
                ]
            rows.append(
                [
                    tags.code(version_id),
                    "delete marker" if marker else size_text(int(_text(v, "Size") or 0)),
                    _text(v, "LastModified"),
                    "latest" if latest else "",
                    action,
                ]
            )
        rows.sort(key=lambda r: str(r[2]), reverse=True)
        return tags.section(
            tags.h2("Versions"), pages.table(["Version", "Size", "Modified", "", ""], rows, id="versions")
        )

    @app.route("/b/<bucket>/download", methods=["GET"])
    def download(self, request: IRequest, bucket: str) -> bytes:
        """A short presigned GET: the bytes stream from S3 to the browser, not through here."""
        session = self.session(request)
        key = arg(request, "key")
        name = key.rpartition("/")[2] or "download"
        query = [("response-content-disposition", "attachment; filename*=UTF-8''" + quote(name, safe=""))]
        if arg(request, "version"):
            query.append(("versionId", arg(request, "version")))
        return self.redirect(request, self.s3.presign(self.keys(session), bucket, key, DOWNLOAD_SECONDS, query))

    @app.route("/b/<bucket>/delete", methods=["POST"])
    async def delete_object(self, request: IRequest, bucket: str) -> bytes:
        session = self.posted(request)
        key = arg(request, "key")
        await self.s3.checked(self.keys(session), "DELETE", bucket, key)
        return self.redirect(
            request, url(bucket_path(bucket), prefix=key.rpartition("/")[0] + "/" if "/" in key else None)
        )

    @app.route("/b/<bucket>/restore", methods=["POST"])
    async def restore(self, request: IRequest, bucket: str) -> bytes:
        """An old version copied over the key: it becomes the latest, the others stay."""
        session = self.posted(request)
        key, version = arg(request, "key"), arg(request, "version")
        source = f"/{quote(bucket, safe='')}/{quote_key(key)}?versionId={quote(version, safe='')}"
        await self.s3.checked(self.keys(session), "PUT", bucket, key, headers={"x-amz-copy-source": source})
        return self.redirect(request, url(bucket_path(bucket, "object"), key=key))

    @app.route("/b/<bucket>/share", methods=["POST"])
    async def share(self, request: IRequest, bucket: str) -> bytes:
        session = self.posted(request)
        key = arg(request, "key")
        try:
            seconds = int(float(arg(request, "hours")) * 3600)
        except ValueError:
            seconds = 0
        if not 0 < seconds <= MAX_SHARE_SECONDS:
            return await self.html(
                request,
                "Share link",
                session,
                pages.message("error", "A share link lasts from 1 hour up to 7 days (168 hours)."),
                status=400,
            )
        # Checked first, so a link is never made for what this user cannot read.
        await self.s3.checked(self.keys(session), "HEAD", bucket, key)
        link = self.s3.presign(self.keys(session), bucket, key, seconds)
        until = datetime.fromtimestamp(self.clock() + seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return await self.html(
            request,
            "Share link",
            session,
            tags.p("Anyone with this link can download ", tags.code(shown(key)), f" until {until}:"),
            tags.p(
                tags.input(type="url", readonly="readonly", value=link, id="share-link", size="100"),
                " ",
                tags.button(type="button", id="copy", **{"data-copy": "share-link"})("Copy"),
            ),
            tags.p(tags.a(href=url(bucket_path(bucket, "object"), key=key))("Back to the object")),
        )
