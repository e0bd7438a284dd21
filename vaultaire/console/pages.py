"""The console's HTML: twisted.web.template tags, so every key, name, tag and metadata value
is escaped by construction (object keys are attacker-controlled)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode

from twisted.web.template import Tag, flattenString

from vaultaire.console.sessions import Session

# No inline script or style anywhere: the pages' own two files are all that runs and styles.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self' {s3}; frame-ancestors 'none'; base-uri 'none'"
)

Child = Any  # a Tag, a string, or a list of them


class _Tags:
    """Any element by name (twisted's ``tags`` knows no ``main``, ``nav``, ``svg``...).
    Text and attribute values given to a Tag are escaped when the page is flattened."""

    def __getattr__(self, name: str) -> Tag:
        return Tag(name)


tags = _Tags()


def url(path: str, **query: str | None) -> str:
    kept = {k: v for k, v in query.items() if v is not None}
    return path + ("?" + urlencode(kept) if kept else "")


def bucket_path(bucket: str, action: str = "") -> str:
    """/b/NAME or /b/NAME/ACTION, the name percent-encoded (a typed name may hold anything)."""
    return "/b/" + quote(bucket, safe="") + (f"/{action}" if action else "")


def csrf_field(session: Session) -> Tag:
    return tags.input(type="hidden", name="csrf", value=session.csrf)


def post_form(session: Session, action: str, *children: Child, **attributes: str) -> Tag:
    return tags.form(method="post", action=action, **attributes)(csrf_field(session), *children)


def button(label: str, **attributes: str) -> Tag:
    return tags.button(type="submit", **attributes)(label)


def hidden(name: str, value: str) -> Tag:
    return tags.input(type="hidden", name=name, value=value)


def size_text(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def table(headers: Iterable[str], rows: Iterable[Iterable[Child]], **attributes: str) -> Tag:
    names = list(headers)
    return tags.table(**attributes)(
        tags.thead(tags.tr([tags.th(h) for h in names])) if any(names) else "",
        tags.tbody([tags.tr([tags.td(cell) for cell in row]) for row in rows]),
    )


def message(kind: str, text: str | None) -> Child:
    """A notice at the top of a page: kind "error" or "info"."""
    if not text:
        return ""
    return tags.p(class_=f"notice {kind}", role="alert" if kind == "error" else "status")(text)


def layout(title: str, session: Session | None, *body: Child) -> Tag:
    nav: Child = ""
    if session is not None:
        who = session.tenant + (f" / {session.user}" if session.user else " (root)")
        nav = tags.nav(
            tags.a(href="/")("Buckets"),
            " ",
            tags.a(href="/usage")("Usage and bill"),
            " ",
            tags.span(class_="who")(who, " · ", session.access_key),
            " ",
            post_form(session, "/logout", button("Log out"), class_="inline", id="logout"),
        )
    return tags.html(lang="en")(
        tags.head(
            tags.meta(charset="utf-8"),
            tags.meta(name="viewport", content="width=device-width, initial-scale=1"),
            tags.title(f"{title} · Vaultaire"),
            tags.link(rel="stylesheet", href="/static/console.css"),
            tags.script(src="/static/console.js", defer="defer"),
        ),
        tags.body(
            tags.header(tags.strong("Vaultaire console"), " ", nav),
            tags.main(tags.h1(title), *body),
        ),
    )


async def render(page: Tag) -> bytes:
    html: bytes = await flattenString(None, page)
    return b"<!DOCTYPE html>\n" + html
