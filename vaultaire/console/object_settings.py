"""What an object page shows and changes beyond its bytes: its tags, its encryption, and,
where the bucket has Object Lock, its retention and legal hold.

Each change is one S3 call with the user's keys; a refusal (InvalidTag, AccessDenied, a
retention that may not be shortened) comes back beside its form, with the server's words.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twisted.web.iweb import IRequest
from twisted.web.template import Tag

from vaultaire.console import documents, pages
from vaultaire.console.pages import bucket_path, shown, tags, url
from vaultaire.console.routes import app, arg
from vaultaire.console.s3client import Keys, Reply, S3Client, S3Failed
from vaultaire.console.sessions import Session
from vaultaire.console.settings import FormError, Trouble

if TYPE_CHECKING:
    from collections.abc import Callable


def encryption_text(headers: Mapping[str, str]) -> str:
    """How a HEAD says the object is stored: SSE-S3, SSE-KMS (and its key) or SSE-C."""
    method = headers.get("x-amz-server-side-encryption", "")
    if headers.get("x-amz-server-side-encryption-customer-algorithm"):
        return "SSE-C (the client's own key; it must be sent to read the object)"
    if method == "AES256":
        return "SSE-S3 (AES256)"
    if method.startswith("aws:kms"):
        key = headers.get("x-amz-server-side-encryption-aws-kms-key-id", "")
        return f"SSE-KMS ({method})" + (f", key {key}" if key else "")
    return method or "none"


def until_date(raw: str) -> str:
    """A form's date (YYYY-MM-DD, or datetime-local's YYYY-MM-DDTHH:MM, UTC) as S3's timestamp."""
    raw = raw.strip()
    for form in ("%Y-%m-%dT%H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(raw, form).replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        except ValueError:
            continue
    raise FormError(f"The retain-until date must be a date like 2030-01-31, not {raw!r}.")


class ObjectSettingsPages:
    if TYPE_CHECKING:
        s3: S3Client
        clock: Callable[[], float]

        def redirect(self, request: IRequest, location: str) -> bytes: ...

        def posted(self, request: IRequest) -> Session: ...

        @staticmethod
        def keys(session: Session) -> Keys: ...

        async def _object(
            self, request: IRequest, session: Session, bucket: str, key: str, trouble: Trouble, status: int = 200
        ) -> bytes: ...

    async def bucket_locked(self, keys: Keys, bucket: str) -> bool:
        reply = await self.s3.call(keys, "GET", bucket, query=[("object-lock", "")])
        if not reply.ok:
            return False
        return documents.text(documents.plain(reply.body), "ObjectLockEnabled") == "Enabled"

    async def object_sections(
        self, session: Session, bucket: str, key: str, version: str, trouble: Trouble
    ) -> list[Tag]:
        keys = self.keys(session)

        def form(name: str, *children: Any, **attributes: str) -> Tag:
            return pages.post_form(
                session,
                bucket_path(bucket, f"object/{name}"),
                pages.hidden("key", key),
                pages.hidden("version", version),
                *children,
                **attributes,
            )

        def section(name: str, legend: str, *body: Any) -> Tag:
            notes = [pages.message("error", trouble.error)] if trouble.section == name else []
            return tags.fieldset(id=name)(tags.legend(legend), *notes, *body)

        out = [section("object-tags", "Tags", *await self._tag_rows(keys, bucket, key, version, form))]
        if await self.bucket_locked(keys, bucket):
            out.append(section("object-lock", "Object Lock", *await self._lock_rows(keys, bucket, key, version, form)))
        return out

    async def _tag_rows(self, keys: Keys, bucket: str, key: str, version: str, form: Callable[..., Tag]) -> list[Any]:
        query = [("tagging", "")] + ([("versionId", version)] if version else [])
        reply = await self.s3.call(keys, "GET", bucket, key, query=sorted(query))
        if not reply.ok:
            return [pages.message("error", f"Not shown: {reply.error()}")]
        pairs = documents.tags_of(reply.body)
        rows = [
            [
                tags.code(shown(k)),
                shown(v),
                form("tags", pages.hidden("action", "delete"), pages.hidden("tag", k), pages.button("Delete")),
            ]
            for k, v in pairs
        ]
        return [
            pages.table(["Key", "Value", ""], rows, id="tag-list") if rows else tags.p("No tags."),
            form(
                "tags",
                pages.hidden("action", "add"),
                tags.label("Key ", tags.input(type="text", name="tag", required="required")),
                " ",
                tags.label("Value ", tags.input(type="text", name="value")),
                " ",
                pages.button("Add tag"),
                id="add-object-tag",
            ),
        ]

    async def _lock_rows(self, keys: Keys, bucket: str, key: str, version: str, form: Callable[..., Tag]) -> list[Any]:
        extra = [("versionId", version)] if version else []
        retention = await self.s3.call(keys, "GET", bucket, key, query=sorted([("retention", ""), *extra]))
        hold = await self.s3.call(keys, "GET", bucket, key, query=sorted([("legal-hold", ""), *extra]))
        mode = until = ""
        rows: list[Any] = []
        if retention.ok:
            root = documents.plain(retention.body)
            mode, until = documents.text(root, "Mode"), documents.text(root, "RetainUntilDate")
        elif retention.status != 404:
            rows.append(pages.message("error", f"Retention not shown: {retention.error()}"))
        held = hold.ok and documents.text(documents.plain(hold.body), "Status") == "ON"
        if not hold.ok and hold.status != 404:
            rows.append(pages.message("error", f"Legal hold not shown: {hold.error()}"))
        modes = []
        for value in ("GOVERNANCE", "COMPLIANCE"):
            option = tags.option(value=value)(value)
            if value == mode:
                option.attributes["selected"] = "selected"
            modes.append(option)
        rows += [
            tags.p(
                "Retention: ",
                tags.strong(id="retention")(f"{mode} until {until}" if mode else "none"),
                "; legal hold: ",
                tags.strong(id="legal-hold")("ON" if held else "OFF"),
            ),
            form(
                "retention",
                tags.label("Mode ", tags.select(name="mode")(*modes)),
                " ",
                tags.label("until (UTC) ", tags.input(type="date", name="until", required="required")),
                " ",
                tags.label(
                    tags.input(type="checkbox", name="bypass", value="true"),
                    " bypass GOVERNANCE (to shorten or remove it; needs s3:BypassGovernanceRetention)",
                ),
                " ",
                pages.button("Set retention"),
                id="set-retention",
            ),
            form(
                "legal-hold",
                pages.hidden("state", "OFF" if held else "ON"),
                pages.button("Release the legal hold" if held else "Place a legal hold", id="toggle-hold"),
            ),
        ]
        return rows

    @app.route("/b/<bucket>/object/<name>", methods=["POST"])
    async def change_object(self, request: IRequest, bucket: str, name: str) -> bytes:
        session = self.posted(request)
        keys = self.keys(session)
        key, version = arg(request, "key"), arg(request, "version")
        extra = [("versionId", version)] if version else []
        section = {"tags": "object-tags", "retention": "object-lock", "legal-hold": "object-lock"}.get(name)
        try:
            if name == "tags":
                await self._change_object_tags(keys, bucket, key, extra, request)
            elif name == "retention":
                body = documents.retention(arg(request, "mode"), until_date(arg(request, "until")))
                headers = {"content-md5": documents.content_md5(body)}
                if arg(request, "bypass") == "true":
                    headers["x-amz-bypass-governance-retention"] = "true"
                query = sorted([("retention", ""), *extra])
                await self.s3.checked(keys, "PUT", bucket, key, query=query, headers=headers, body=body)
            elif name == "legal-hold":
                body = documents.legal_hold(arg(request, "state") == "ON")
                query = sorted([("legal-hold", ""), *extra])
                headers = {"content-md5": documents.content_md5(body)}
                await self.s3.checked(keys, "PUT", bucket, key, query=query, headers=headers, body=body)
            else:
                raise FormError(f"No such change: {name!r}.")
        except S3Failed as e:
            status = e.reply.status if 400 <= e.reply.status < 600 else 502
            trouble = Trouble(section or "", f"The server refused this: {e}")
            return await self._object(request, session, bucket, key, trouble, status=status)
        except FormError as e:
            return await self._object(request, session, bucket, key, Trouble(section or "", str(e)), status=400)
        return self.redirect(request, url(bucket_path(bucket, "object"), key=key) + "#" + (section or ""))

    async def _change_object_tags(
        self, keys: Keys, bucket: str, key: str, extra: list[tuple[str, str]], request: IRequest
    ) -> Reply:
        query = sorted([("tagging", ""), *extra])
        current = await self.s3.checked(keys, "GET", bucket, key, query=query)
        tag = arg(request, "tag")
        pairs = [(k, v) for k, v in documents.tags_of(current.body) if k != tag]
        if arg(request, "action") == "add":
            pairs.append((tag, arg(request, "value")))
        if not pairs:
            return await self.s3.checked(keys, "DELETE", bucket, key, query=query)
        body = documents.tag_set(pairs)
        headers = {"content-md5": documents.content_md5(body)}
        return await self.s3.checked(keys, "PUT", bucket, key, query=query, headers=headers, body=body)
