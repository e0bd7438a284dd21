"""A browser for the console's HTTP tests: a cookie jar, redirects not followed, forms and tokens."""

from __future__ import annotations

import html
import http.cookiejar
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browser:
    """A cookie jar and no redirects followed: each answer is seen as sent."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect())

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str], str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else body
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=60) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode("utf-8", "replace")

    def csrf(self, path: str = "/") -> str:
        status, _, page = self.request("GET", path)
        assert status == 200, page
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found, page
        return found.group(1)

    def login(self, access: str, secret: str) -> int:
        token = self.csrf("/login")
        status, headers, _ = self.request("POST", "/login", {"csrf": token, "access_key": access, "secret_key": secret})
        return status


def section(page: str, name: str) -> str:
    """The fieldset of that id on a page (the console's settings and object sections)."""
    found = re.search(rf'<fieldset id="{re.escape(name)}">(.*?)</fieldset>', page, re.S)
    assert found, f"no section {name!r} in the page"
    return found.group(1)


def table_rows(page: str, table_id: str) -> list[list[str]]:
    """The body rows of the table of that id, each cell as its text (tags dropped, unescaped)."""
    found = re.search(rf'<table id="{re.escape(table_id)}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert found, f"no table {table_id!r} in the page"
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S)
    ]


def poll(check: Callable[[], T | None], what: str, deadline: float = 60.0) -> T:
    """check() until it answers something (generous: the machine is shared and loaded)."""
    end = time.monotonic() + deadline
    while True:
        answer = check()
        if answer is not None and answer is not False:
            return answer
        assert time.monotonic() < end, f"gave up waiting: {what}"
        time.sleep(0.2)
