"""Bucket pages: the list (size and object count), create, delete, versioning, and browsing
by prefix with "/" as the folder delimiter, a page at a time (continuation tokens)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.iweb import IRequest
from twisted.web.template import Tag

from vaultaire.console import documents, pages
from vaultaire.console.host import PageHost
from vaultaire.console.pages import bucket_path, shown, size_text, tags, url
from vaultaire.console.routes import app, arg
from vaultaire.console.s3client import NS, Keys, S3Failed
from vaultaire.console.sessions import Session
from vaultaire.model import StoredTotals

if TYPE_CHECKING:
    from vaultaire.engine import Engine

PAGE_SIZE = 1000  # keys a browse page shows, as ListObjectsV2's own maximum

VERSIONING_XML = (
    '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>{}</Status>'
    "</VersioningConfiguration>"
)


def _text(element: Any, name: str) -> str:
    return str(element.findtext(NS + name) or "")


class BucketPages(PageHost):
    if TYPE_CHECKING:
        engine: Engine

        async def uploadarg(self, request: IRequest, session: Session, bucket: str, prefix: str) -> Tag: ...

    async def versioning_state(self, keys: Keys, bucket: str) -> str:
        reply = await self.s3.call(keys, "GET", bucket, query=[("versioning", "")])
        if not reply.ok:
            return "unknown (" + reply.error() + ")"
        return str(reply.xml().findtext(NS + "Status") or "Off")

    @app.route("/", methods=["GET"])
    async def buckets_page(self, request: IRequest) -> bytes:
        session = self.session(request)
        keys = self.keys(session)
        reply = await self.s3.call(keys, "GET")
        body: list[Any] = []
        if reply.ok:
            found = reply.xml().findall(f"{NS}Buckets/{NS}Bucket")
            totals: dict[str, StoredTotals] = {}
            catalog: Any = self.engine.catalog
            if hasattr(catalog, "container_totals"):
                totals = await catalog.container_totals(session.tenant_id)
            rows = []
            for b in found:
                name = _text(b, "Name")
                t = totals.get(name, StoredTotals())
                rows.append(
                    [
                        tags.a(href=url(bucket_path(name)))(name),
                        size_text(t.bytes),
                        str(t.objects),
                        _text(b, "CreationDate"),
                        pages.post_form(
                            session,
                            "/buckets/delete",
                            pages.hidden("bucket", name),
                            pages.button("Delete", class_="delete-bucket"),
                            class_="inline",
                        ),
                    ]
                )
            body.append(
                pages.table(["Bucket", "Size", "Objects", "Created", ""], rows, id="buckets")
                if rows
                else tags.p("No buckets yet.")
            )
        else:
            body.append(pages.message("error", f"Your keys may not list the buckets: {reply.error()}"))
            body.append(
                tags.form(method="get", action="/go")(
                    tags.label("Open a bucket by name: ", tags.input(type="text", name="bucket", required="required")),
                    " ",
                    pages.button("Open"),
                )
            )
        body.append(
            tags.fieldset(
                tags.legend("Create a bucket"),
                pages.post_form(
                    session,
                    "/buckets",
                    tags.label(
                        "Name ",
                        tags.input(type="text", name="bucket", required="required", pattern="[a-z0-9.\\-]{3,63}"),
                    ),
                    " ",
                    tags.label(tags.input(type="checkbox", name="versioning", value="on"), " versioning"),
                    " ",
                    tags.label(
                        tags.input(type="checkbox", name="object_lock", value="on"),
                        " Object Lock (objects can be made undeletable for a time; turns versioning on)",
                    ),
                    " ",
                    self._placement_choice(),
                    pages.button("Create"),
                    id="create-bucket",
                ),
            )
        )
        return await self.html(request, "Buckets", session, *body)

    def _placement_choice(self) -> Any:
        """Where the bucket's bytes go, when the server has more than one placement."""
        names = sorted(getattr(self.engine, "drivers", {}) or {})
        if len(names) < 2:
            return ""
        default = self.engine.default_placement
        options = [tags.option(value="")(f"default ({default})")]
        options += [tags.option(value=n)(n) for n in names if n != default]
        return [tags.label("Placement ", tags.select(name="placement")(*options)), " "]

    @app.route("/go", methods=["GET"])
    def go(self, request: IRequest) -> bytes:
        self.session(request)
        name = arg(request, "bucket").strip()
        return self.redirect(request, url(bucket_path(name)) if name else "/")

    @app.route("/buckets", methods=["POST"])
    async def create_bucket(self, request: IRequest) -> bytes:
        session = self.posted(request)
        keys = self.keys(session)
        name = arg(request, "bucket").strip()
        headers = {"x-amz-bucket-object-lock-enabled": "true"} if arg(request, "object_lock") == "on" else {}
        placement = arg(request, "placement")
        body = None
        if placement:
            # S3's LocationConstraint names the placement; the server refuses one it does not know.
            body = documents.document(
                documents.element("CreateBucketConfiguration", None, documents.element("LocationConstraint", placement))
            )
        await self.s3.checked(keys, "PUT", name, headers=headers, body=body)
        if arg(request, "versioning") == "on":
            await self.s3.checked(
                keys, "PUT", name, query=[("versioning", "")], body=VERSIONING_XML.format("Enabled").encode()
            )
        return self.redirect(request, url(bucket_path(name)))

    @app.route("/buckets/delete", methods=["POST"])
    async def delete_bucket(self, request: IRequest) -> bytes:
        session = self.posted(request)
        await self.s3.checked(self.keys(session), "DELETE", arg(request, "bucket"))
        return self.redirect(request, "/")

    @app.route("/b/<bucket>/versioning", methods=["POST"])
    async def set_versioning(self, request: IRequest, bucket: str) -> bytes:
        session = self.posted(request)
        state = "Enabled" if arg(request, "state") == "Enabled" else "Suspended"
        body = VERSIONING_XML.format(state).encode()
        await self.s3.checked(self.keys(session), "PUT", bucket, query=[("versioning", "")], body=body)
        if arg(request, "back") == "settings":
            return self.redirect(request, url(bucket_path(bucket, "settings")) + "#versioning")
        return self.redirect(request, url(bucket_path(bucket)))

    @app.route("/b/<bucket>", methods=["GET"])
    async def browse(self, request: IRequest, bucket: str) -> bytes:
        session = self.session(request)
        keys = self.keys(session)
        prefix, token = arg(request, "prefix"), arg(request, "token")
        query = [("delimiter", "/"), ("list-type", "2"), ("max-keys", str(PAGE_SIZE)), ("prefix", prefix)]
        if token:
            query.append(("continuation-token", token))
        reply = await self.s3.call(keys, "GET", bucket, query=sorted(query))
        body: list[Any] = [_crumbs(bucket, prefix)]
        if not reply.ok:
            body.append(pages.message("error", f"This bucket cannot be listed with your keys: {reply.error()}"))
        else:
            root = reply.xml()
            rows: list[list[Any]] = []
            for p in root.findall(f"{NS}CommonPrefixes"):
                sub = _text(p, "Prefix")
                rows.append(
                    [
                        tags.a(href=url(bucket_path(bucket), prefix=sub), class_="folder")(shown(sub[len(prefix) :])),
                        "",
                        "",
                        "",
                    ]
                )
            for c in root.findall(f"{NS}Contents"):
                key = _text(c, "Key")
                rows.append(
                    [
                        tags.a(href=url(bucket_path(bucket, "object"), key=key), class_="object")(
                            key[len(prefix) :] or key
                        ),
                        size_text(int(_text(c, "Size") or 0)),
                        _text(c, "LastModified"),
                        tags.a(href=url(bucket_path(bucket, "download"), key=key))("Download"),
                    ]
                )
            body.append(
                pages.table(["Name", "Size", "Modified", ""], rows, id="objects") if rows else tags.p("Nothing here.")
            )
            following = _text(root, "NextContinuationToken")
            if _text(root, "IsTruncated") == "true" and following:
                body.append(
                    tags.p(
                        tags.a(href=url(bucket_path(bucket), prefix=prefix, token=following), id="next")("Next page")
                    )
                )
        body.append(await self.uploadarg(request, session, bucket, prefix))
        body.append(await self._settings_box(session, bucket))
        return await self.html(request, bucket, session, *body)

    async def _settings_box(self, session: Session, bucket: str) -> Tag:
        state = await self.versioning_state(self.keys(session), bucket)
        turn = "Suspended" if state == "Enabled" else "Enabled"
        return tags.fieldset(
            tags.legend("Settings"),
            tags.p("Versioning: ", tags.strong(id="versioning-state")(state), " "),
            pages.post_form(
                session,
                bucket_path(bucket, "versioning"),
                pages.hidden("state", turn),
                pages.button("Turn versioning on" if turn == "Enabled" else "Suspend versioning", id="versioning"),
            ),
            tags.p(
                tags.a(href=url(bucket_path(bucket, "settings")), id="settings")(
                    "All settings: tags, lifecycle, CORS, policy, public access, encryption, Object Lock"
                )
            ),
        )


def _crumbs(bucket: str, prefix: str) -> Tag:
    parts: list[Any] = [tags.a(href="/")("Buckets"), " / ", tags.a(href=url(bucket_path(bucket)))(bucket), " / "]
    walked = ""
    for piece in prefix.split("/")[:-1] if prefix else []:
        walked += piece + "/"
        parts += [tags.a(href=url(bucket_path(bucket), prefix=walked))(shown(piece)), " / "]
    return tags.p(class_="crumbs")(*parts)


__all__ = ["BucketPages", "S3Failed"]
