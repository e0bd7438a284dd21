"""The console's page writer: the same bytes as twisted.web.template's flattener, every
attacker-controlled string escaped, in text and in attributes."""

from __future__ import annotations

import time

import pytest_twisted

from vaultaire.console import pages
from vaultaire.console.pages import bucket_path, tags, url

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    '"><script>alert(1)</script>',
    "' onmouseover='alert(1)",
    "a&b&amp;c",
    "\u202egnp.exe\u202c",  # a right-to-left override
    "</textarea></title><svg onload=alert(1)>",
]


def page_of(keys: list[str]) -> object:
    rows = [
        [
            tags.a(href=url(bucket_path("b", "object"), key=k), class_="object", title=k)(k),
            tags.input(type="hidden", name="key", value=k),
            tags.code(k),
        ]
        for k in keys
    ]
    return pages.layout(HOSTILE[0], None, pages.message("error", HOSTILE[1]), pages.table(["Key", "", ""], rows))


@pytest_twisted.ensureDeferred
async def test_the_page_writer_agrees_with_twisteds_flattener() -> None:
    page = page_of(HOSTILE)
    assert pages.render_now(page) == await pages.render_with_twisted(page)


def test_hostile_text_and_attributes_are_escaped() -> None:
    html = pages.render_now(page_of(HOSTILE)).decode()
    assert "<img" not in html and "<script>alert" not in html and "<svg" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert "a&amp;b&amp;amp;c" in html


def test_only_tags_and_text_make_a_page() -> None:
    try:
        pages.render_now(tags.p(b"bytes are not text"))
    except TypeError:
        return
    raise AssertionError("bytes were written into a page")


def test_a_page_of_1000_keys_is_written_fast() -> None:
    page = page_of([f'"><img src=x>{i:04d}' for i in range(1000)])
    started = time.perf_counter()
    pages.render_now(page)
    print(f"console: 1,000 rows written in {(time.perf_counter() - started) * 1000:.0f} ms")


def test_reordering_and_hidden_characters_are_shown_not_obeyed() -> None:
    assert pages.shown("\u202egnp.exe") == "\\u202egnp.exe"
    assert pages.shown("a\u2066b\x00c\x1b") == "a\\u2066b\\u0000c\\u001b"
    assert pages.shown("plain/ключ/键.txt") == "plain/ключ/键.txt"
