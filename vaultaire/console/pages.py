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


# Characters that reorder or hide text (bidi overrides and isolates, marks, C0/C1 controls):
# a key holding them could pass for another name, so they are shown as visible escapes.
_INVISIBLE = {
    c: f"\\u{c:04x}"
    for c in [
        *range(0x20),
        0x7F,
        *range(0x80, 0xA0),
        0x061C,
        0x200E,
        0x200F,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
}


def shown(name: str) -> str:
    """A key, name or value as displayed text: hidden and reordering characters made visible."""
    return name.translate(_INVISIBLE)


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
        links: list[Child] = [tags.a(href="/")("Buckets"), " ", tags.a(href="/usage")("Usage and bill")]
        if session.operator:
            who = "operator"
            links = [
                tags.a(href="/ops")("Tenants"),
                " ",
                tags.a(href="/ops/health")("Health"),
                " ",
                tags.a(href="/ops/workers")("Workers"),
                " ",
                tags.a(href="/ops/metrics")("Metrics"),
            ]
        nav = tags.nav(
            *links,
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


# Elements that have no end tag in HTML (twisted.web.template writes them as <x />).
_VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attribute(value: str) -> str:
    return _text(value).replace('"', "&quot;")


def _serialize(node: Any, out: list[str]) -> None:
    if isinstance(node, str):
        out.append(_text(node))
    elif isinstance(node, list | tuple):
        for child in node:
            _serialize(child, out)
    elif isinstance(node, Tag):
        name = node.tagName if isinstance(node.tagName, str) else node.tagName.decode()
        out.append("<" + name)
        for attribute, value in node.attributes.items():
            out.append(f' {attribute!s}="{_attribute(str(value))}"')
        if name in _VOID:
            out.append(" />")
            return
        out.append(">")
        for child in node.children:
            _serialize(child, out)
        out.append(f"</{name}>")
    else:
        raise TypeError(f"a page holds {type(node).__name__}, not a Tag or text")


def render_now(page: Tag) -> bytes:
    """The page as twisted.web.template's flattener writes it (tests/test_console_pages.py
    checks they agree), but synchronously: flattenString walks a Deferred per element, and
    took over a second for a listing of 1,000 keys; this takes about a tenth of that. Only
    Tags, lists and text are allowed, and every text and attribute value is escaped."""
    out: list[str] = []
    _serialize(page, out)
    return b"<!DOCTYPE html>\n" + "".join(out).encode("utf-8")


async def render(page: Tag) -> bytes:
    return render_now(page)


async def render_with_twisted(page: Tag) -> bytes:
    """The reference: what twisted.web.template's own flattener makes of the page."""
    html: bytes = await flattenString(None, page)
    return b"<!DOCTYPE html>\n" + html
