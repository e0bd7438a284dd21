"""A bucket's settings page: versioning, tags, lifecycle rules, CORS, bucket policy, public
access block, default encryption and Object Lock default retention.

Each form is one S3 call signed with the user's keys. When the server refuses (a malformed
policy, a 501 for what it does not do, AccessDenied), the page comes back with the server's
own error beside the form that caused it and what was typed still in it: a setting is never
shown as saved unless S3 said so.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from attrs import frozen
from twisted.web.iweb import IRequest
from twisted.web.template import Tag

from vaultaire.console import documents, pages, settings_view
from vaultaire.console.documents import PUBLIC_ACCESS_SWITCHES
from vaultaire.console.host import PageHost
from vaultaire.console.pages import bucket_path, tags, url
from vaultaire.console.routes import app, arg
from vaultaire.console.s3client import Keys, Reply, S3Failed, together
from vaultaire.console.sessions import Session
from vaultaire.console.settings_view import Found

# Subresources the page reads, by the section that shows them.
READS = {
    "tags": "tagging",
    "lifecycle": "lifecycle",
    "cors": "cors",
    "policy": "policy",
    "public-access-block": "publicAccessBlock",
    "encryption": "encryption",
    "object-lock": "object-lock",
}

LEGENDS = {
    "tags": "Tags",
    "lifecycle": "Lifecycle rules",
    "cors": "CORS",
    "policy": "Bucket policy",
    "public-access-block": "Public access block",
    "encryption": "Default encryption",
    "object-lock": "Object Lock",
}

CORS_EXAMPLE = """<CORSConfiguration>
  <CORSRule>
    <AllowedOrigin>https://example.com</AllowedOrigin>
    <AllowedMethod>GET</AllowedMethod>
    <AllowedHeader>*</AllowedHeader>
    <MaxAgeSeconds>3000</MaxAgeSeconds>
  </CORSRule>
</CORSConfiguration>"""

POLICY_EXAMPLE = """{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::BUCKET/*"}
  ]
}"""


class FormError(Exception):
    """A form the console cannot turn into a request (a number that is not one)."""


@frozen
class Trouble:
    """What went wrong with the last change, shown beside its form."""

    section: str = ""
    error: str = ""
    draft: str | None = None  # the text typed into the section's editor, given back


def number(request: IRequest, name: str, label: str, maximum: int = 100 * 365) -> int:
    raw = arg(request, name).strip()
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) > maximum:
        raise FormError(f"{label} must be a whole number from 0 to {maximum}, not {raw!r}.")
    return int(raw)


class SettingsPages(PageHost):
    if TYPE_CHECKING:

        async def versioning_state(self, keys: Keys, bucket: str) -> str: ...

    async def _read(self, keys: Keys, bucket: str, subresource: str) -> Found:
        reply = await self.s3.call(keys, "GET", bucket, query=[(subresource, "")])
        if reply.ok:
            return Found(reply.body)
        if reply.code in ("NoSuchBucket", "InvalidBucketName"):  # no page to show: the error page
            raise S3Failed(reply)
        if reply.status == 404:
            return Found(None)  # NoSuchTagSet, NoSuchBucketPolicy...: the bucket has none
        return Found(None, reply.error())

    async def _put(self, keys: Keys, bucket: str, subresource: str, body: bytes) -> Reply:
        headers = {"content-md5": documents.content_md5(body)}
        return await self.s3.checked(keys, "PUT", bucket, query=[(subresource, "")], headers=headers, body=body)

    async def _delete(self, keys: Keys, bucket: str, subresource: str) -> Reply:
        return await self.s3.checked(keys, "DELETE", bucket, query=[(subresource, "")])

    @app.route("/b/<bucket>/settings", methods=["GET"])
    async def settings_page(self, request: IRequest, bucket: str) -> bytes:
        return await self._settings(request, self.session(request), bucket, Trouble())

    async def _settings(
        self, request: IRequest, session: Session, bucket: str, trouble: Trouble, status: int = 200
    ) -> bytes:
        keys = self.keys(session)
        names = list(READS)
        found: list[Found] = await together(*(self._read(keys, bucket, READS[n]) for n in names))
        read = dict(zip(names, found, strict=True))
        versioning = await self.versioning_state(keys, bucket)

        def section(name: str, legend: str, *body: Any) -> Tag:
            notes: list[Any] = []
            if read.get(name) is not None and read[name].error:
                notes.append(pages.message("error", f"Not shown: {read[name].error}"))
            if trouble.section == name:
                notes.append(pages.message("error", trouble.error))
            return tags.fieldset(id=name)(tags.legend(legend), *notes, *body)

        def draft(name: str, current: str) -> str:
            return trouble.draft if trouble.section == name and trouble.draft is not None else current

        def form(name: str, *children: Any, **attributes: str) -> Tag:
            return pages.post_form(session, bucket_path(bucket, f"settings/{name}"), *children, **attributes)

        body: list[Any] = [
            tags.p(class_="crumbs")(
                tags.a(href="/")("Buckets"), " / ", tags.a(href=url(bucket_path(bucket)))(bucket), " / settings"
            ),
        ]
        if trouble.section:
            where = LEGENDS.get(trouble.section, trouble.section)
            body.append(pages.message("error", f"Not saved: see {where} below."))
        turn = "Suspended" if versioning == "Enabled" else "Enabled"
        body.append(
            section(
                "versioning",
                "Versioning",
                tags.p("Versioning: ", tags.strong(id="versioning-state")(versioning)),
                pages.post_form(
                    session,
                    bucket_path(bucket, "versioning"),
                    pages.hidden("state", turn),
                    pages.hidden("back", "settings"),
                    pages.button("Turn versioning on" if turn == "Enabled" else "Suspend versioning"),
                ),
            )
        )
        body.append(settings_view.tags_section(section, form, read["tags"]))
        body.append(settings_view.lifecycle_section(section, form, draft, read["lifecycle"]))
        cors = read["cors"].body
        body.append(
            section(
                "cors",
                "CORS (cross-origin requests from web pages)",
                form(
                    "cors",
                    tags.textarea(name="document", rows="10", cols="90", placeholder=CORS_EXAMPLE)(
                        draft("cors", documents.pretty(cors) if cors else "")
                    ),
                    tags.br(),
                    pages.button("Save CORS rules", name="action", value="save"),
                    " ",
                    pages.button("Remove CORS rules", name="action", value="remove") if cors else "",
                ),
            )
        )
        policy = read["policy"].body
        body.append(
            section(
                "policy",
                "Bucket policy (JSON)",
                form(
                    "policy",
                    tags.textarea(name="document", rows="14", cols="90", placeholder=POLICY_EXAMPLE)(
                        draft("policy", _pretty_json(policy) if policy else "")
                    ),
                    tags.br(),
                    pages.button("Save policy", name="action", value="save"),
                    " ",
                    pages.button("Remove policy", name="action", value="remove") if policy else "",
                ),
            )
        )
        body.append(settings_view.public_access_section(section, form, read["public-access-block"]))
        body.append(settings_view.encryption_section(section, form, read["encryption"]))
        body.append(settings_view.lock_section(section, form, read["object-lock"]))
        return await self.html(request, f"Settings of {bucket}", session, *body, status=status)

    # -- the sections

    # -- changes

    @app.route("/b/<bucket>/settings/<name>", methods=["POST"])
    async def change_setting(self, request: IRequest, bucket: str, name: str) -> bytes:
        session = self.posted(request)
        change = CHANGES.get(name)
        if change is None:
            return await self._settings(request, session, bucket, Trouble(), status=404)
        draft = arg(request, "document") if request.args and b"document" in request.args else None
        try:
            await change(self, self.keys(session), bucket, request)
        except S3Failed as e:
            status = e.reply.status if 400 <= e.reply.status < 600 else 502
            trouble = Trouble(name, f"The server refused this: {e}", draft)
            return await self._settings(request, session, bucket, trouble, status=status)
        except FormError as e:
            return await self._settings(request, session, bucket, Trouble(name, str(e), draft), status=400)
        return self.redirect(request, url(bucket_path(bucket, "settings")) + "#" + name)

    async def _change_tags(self, keys: Keys, bucket: str, request: IRequest) -> None:
        current = await self._read(keys, bucket, "tagging")
        if current.error:
            raise FormError(f"The tags cannot be read: {current.error}")
        pairs = documents.tags_of(current.body) if current.body else []
        tag = arg(request, "tag")
        pairs = [(k, v) for k, v in pairs if k != tag]
        if arg(request, "action") == "add":
            pairs.append((tag, arg(request, "value")))
        if pairs:
            await self._put(keys, bucket, "tagging", documents.tag_set(pairs))
        else:
            await self._delete(keys, bucket, "tagging")

    async def _change_lifecycle(self, keys: Keys, bucket: str, request: IRequest) -> None:
        action = arg(request, "action")
        if action == "remove":
            await self._delete(keys, bucket, "lifecycle")
            return
        if action == "raw":
            await self._put(keys, bucket, "lifecycle", arg(request, "document").encode())
            return
        current = await self._read(keys, bucket, "lifecycle")
        if current.error:
            raise FormError(f"The rules cannot be read: {current.error}")
        root = documents.plain(current.body) if current.body else documents.element("LifecycleConfiguration")
        rule_id = arg(request, "rule")
        for rule in root.findall("Rule"):
            if (rule.findtext("ID") or "") == rule_id:
                root.remove(rule)
        if action == "add":
            root.append(
                documents.lifecycle_rule(
                    rule_id,
                    arg(request, "prefix"),
                    number(request, "expire_days", "Days before objects are deleted"),
                    number(request, "noncurrent_days", "Days before old versions are deleted"),
                    number(request, "abort_days", "Days before unfinished uploads are aborted"),
                )
            )
        if root.findall("Rule"):
            await self._put(keys, bucket, "lifecycle", documents.document(root))
        else:
            await self._delete(keys, bucket, "lifecycle")

    async def _change_cors(self, keys: Keys, bucket: str, request: IRequest) -> None:
        if arg(request, "action") == "remove":
            await self._delete(keys, bucket, "cors")
        else:
            await self._put(keys, bucket, "cors", arg(request, "document").encode())

    async def _change_policy(self, keys: Keys, bucket: str, request: IRequest) -> None:
        if arg(request, "action") == "remove":
            await self._delete(keys, bucket, "policy")
        else:
            # Sent as typed: S3's own validation (MalformedPolicy and its reason) is what is shown.
            await self.s3.checked(keys, "PUT", bucket, query=[("policy", "")], body=arg(request, "document").encode())

    async def _change_public_access(self, keys: Keys, bucket: str, request: IRequest) -> None:
        if arg(request, "action") == "remove":
            await self._delete(keys, bucket, "publicAccessBlock")
        else:
            on = {name for name in PUBLIC_ACCESS_SWITCHES if arg(request, name) == "true"}
            await self._put(keys, bucket, "publicAccessBlock", documents.public_access_block(on))

    async def _change_encryption(self, keys: Keys, bucket: str, request: IRequest) -> None:
        if arg(request, "action") == "remove":
            await self._delete(keys, bucket, "encryption")
        else:
            body = documents.encryption(arg(request, "algorithm"), arg(request, "kms_key").strip())
            await self._put(keys, bucket, "encryption", body)

    async def _change_lock(self, keys: Keys, bucket: str, request: IRequest) -> None:
        if arg(request, "action") == "enable":
            await self._put(keys, bucket, "object-lock", documents.object_lock("", "", 0))
            return
        mode = arg(request, "mode")
        unit = "Years" if arg(request, "unit") == "Years" else "Days"
        period = number(request, "period", "The retention period", 36500)
        if mode and not period:
            raise FormError("A default retention needs a period of at least one day or year.")
        await self._put(keys, bucket, "object-lock", documents.object_lock(mode, unit, period))


def _pretty_json(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body), indent=2)
    except ValueError:
        return body.decode("utf-8", "replace")


Change = Callable[[SettingsPages, Keys, str, IRequest], Awaitable[None]]

CHANGES: dict[str, Change] = {
    "tags": SettingsPages._change_tags,
    "lifecycle": SettingsPages._change_lifecycle,
    "cors": SettingsPages._change_cors,
    "policy": SettingsPages._change_policy,
    "public-access-block": SettingsPages._change_public_access,
    "encryption": SettingsPages._change_encryption,
    "object-lock": SettingsPages._change_lock,
}
