"""The policy language's small pieces: its errors, ``*``/``?`` wildcards, and policy variables.

A pattern is compiled once, when the policy is parsed. Only a pattern holding a
policy variable (``${aws:username}``) is finished per request, by putting the
request's value in as literal text (a user called ``a*`` is not a wildcard).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from attrs import frozen


class MalformedPolicy(Exception):
    """A policy document S3 would refuse (400 MalformedPolicy); the message says what is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedPolicy(MalformedPolicy):
    """A valid AWS policy asking for something this server cannot evaluate (answered 501).

    Accepting it and ignoring the part we cannot check would turn a Deny into no
    protection at all, so such a document is refused whole.
    """


# How a statement finds the value of a condition key in the request: its values, or None if absent.
Lookup = Callable[[str], "tuple[str, ...] | None"]

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
# ${key} or ${key, 'default'}; the key is checked against the known keys by the caller.
_VARIABLE_BODY = re.compile(r"^\s*([^,\s]+)\s*(?:,\s*'([^']*)'\s*)?$")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


_WILD = re.compile(r"([*?])")


@lru_cache(maxsize=4096)
def wildcard_source(text: str) -> str:
    """The regex source matching ``text`` where ``*`` is any run of characters and ``?`` one character."""
    return "".join(".*" if p == "*" else "." if p == "?" else re.escape(p) for p in _WILD.split(text) if p)


def wildcard_regex(text: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile(wildcard_source(text), flags)


def has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


@frozen
class Part:
    """A piece of a template: ``text`` as written (wildcards live), as exact text, or a variable."""

    kind: str  # "text", "exact" or "variable"
    text: str  # the text, or the variable's lower-cased key
    default: str | None = None  # a variable's value when the request has none


@frozen
class Template:
    """A string of the policy that may hold policy variables (Version 2012-10-17 only)."""

    source: str
    parts: tuple[Part, ...]

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(part.text for part in self.parts if part.kind == "variable")

    @property
    def is_fixed(self) -> bool:
        return not self.variables

    def render(self, lookup: Lookup | None, *, wildcards: bool) -> str | None:
        """The regex source (``wildcards``) or the plain string; None if a variable has no value here.

        A variable of a key the request lacks (or holds several values of) makes the
        whole string match nothing, as AWS does, unless the variable names a default.
        """
        out = []
        for part in self.parts:
            if part.kind == "text":
                out.append(wildcard_source(part.text) if wildcards else part.text)
                continue
            if part.kind == "exact":
                value = part.text
            else:
                values = lookup(part.text) if lookup is not None else None
                found = values[0] if values is not None and len(values) == 1 else part.default
                if found is None:
                    return None
                value = found
            out.append(re.escape(value) if wildcards else value)
        return "".join(out)


def template(text: str, *, variables: bool, check_key: Callable[[str], str]) -> Template:
    """Parse ``text``; with ``variables`` (Version 2012-10-17) ``${...}`` are policy variables.

    ``check_key`` validates a variable's key (raising MalformedPolicy) and returns its canonical name.
    """
    if not variables or "${" not in text:
        return Template(text, (Part("text", text),))
    parts: list[Part] = []
    position = 0
    for match in _VARIABLE.finditer(text):
        if match.start() > position:
            parts.append(Part("text", text[position : match.start()]))
        body = match.group(1)
        if body in _SPECIAL:
            parts.append(Part("exact", _SPECIAL[body]))
        else:
            found = _VARIABLE_BODY.match(body)
            if found is None:
                raise MalformedPolicy(f"Invalid policy variable ${{{body}}}")
            parts.append(Part("variable", check_key(found.group(1)), found.group(2)))
        position = match.end()
    if position < len(text):
        parts.append(Part("text", text[position:]))
    return Template(text, tuple(parts))


class Matcher:
    """A set of wildcard templates matched as one: a precompiled regex for the fixed ones."""

    __slots__ = ("_fixed", "_variable", "_flags")

    def __init__(self, templates: list[Template], *, ignore_case: bool = False) -> None:
        self._flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
        fixed = [t.render(None, wildcards=True) or "" for t in templates if t.is_fixed]
        self._fixed = re.compile("|".join(f"(?:{s})" for s in fixed), self._flags) if fixed else None
        self._variable = tuple(t for t in templates if not t.is_fixed)

    def matches(self, value: str, lookup: Lookup | None) -> bool:
        if self._fixed is not None and self._fixed.fullmatch(value):
            return True
        for item in self._variable:
            source = item.render(lookup, wildcards=True)
            # re keeps its own cache of compiled patterns: a user's home prefix compiles once.
            if source is not None and re.fullmatch(source, value, self._flags):
                return True
        return False
