"""Building S3's XML responses: tiny, escaping everything, no DOM."""

from __future__ import annotations

from xml.sax.saxutils import escape

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


class Element:
    __slots__ = ("name", "children", "text", "attrs")

    def __init__(self, name: str, children: tuple[Element, ...], text: str | None, attrs: str) -> None:
        self.name = name
        self.children = children
        self.text = text
        self.attrs = attrs

    def render(self, out: list[str]) -> None:
        if self.text is not None:
            out.append(f"<{self.name}{self.attrs}>{escape(self.text)}</{self.name}>")
            return
        out.append(f"<{self.name}{self.attrs}>")
        for child in self.children:
            child.render(out)
        out.append(f"</{self.name}>")


class Raw(Element):
    """Markup rendered already (escaped by whoever made it): a listing's thousand entries
    are one string built in one pass, not four thousand elements."""

    __slots__ = ("xml",)

    def __init__(self, xml: str) -> None:
        super().__init__("", (), None, "")
        self.xml = xml

    def render(self, out: list[str]) -> None:
        out.append(self.xml)


def rendered(root: Element) -> str:
    """An element's markup, to be repeated as is (inside a Raw)."""
    out: list[str] = []
    root.render(out)
    return "".join(out)


def element(name: str, *content: Element | str | int | bool | None, xmlns: bool = False) -> Element:
    """``element("Key", "a")`` is a text element; ``element("Contents", e1, e2)`` a parent."""
    attrs = f' xmlns="{S3_NS}"' if xmlns else ""
    if len(content) == 1 and not isinstance(content[0], Element):
        value = content[0]
        text = "true" if value is True else "false" if value is False else "" if value is None else str(value)
        return Element(name, (), text, attrs)
    return Element(name, tuple(c for c in content if isinstance(c, Element)), None, attrs)


def xml_document(root: Element) -> bytes:
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    root.render(out)
    # Echoed client input (a header read as latin-1 or with surrogateescape) may hold lone
    # surrogates, which UTF-8 cannot carry: they become "?" rather than a 500.
    return "".join(out).encode("utf-8", "replace")
