"""The console when its S3 port does not answer: a page that says so (502), never a 500 or a
traceback, for a page, a form and a multipart step; and when S3 accepts but never answers,
the same page once the answer is overdue, not a request that hangs."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import pytest_twisted
import treq
from daemon import free_port
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol

from vaultaire.console import s3client
from vaultaire.console.app import SESSION_COOKIE, Console, ConsoleSite
from vaultaire.console.s3client import S3Client
from vaultaire.console.sessions import Session

pytestmark = pytest.mark.timeout(60)


class Silent(Protocol):
    """Takes the connection and the request, and never answers."""


async def serve(s3_url: str) -> tuple[Any, Console, Session]:
    client = S3Client(lambda: s3_url, lambda: s3_url, "us-east-1", time.time)
    console = Console(None, client, lambda: s3_url, time.time, price_per_tb_month=1.0)  # type: ignore[arg-type]
    session = console.sessions.create("AKEXAMPLE", "a-secret-never-shown", "tid", "acme", "")
    port = reactor.listenTCP(0, ConsoleSite(console), interface="127.0.0.1")  # type: ignore[attr-defined]
    return port, console, session


async def get(url: str, session: Session, method: str = "GET", **kwargs: Any) -> tuple[int, str]:
    response = await treq.request(method, url, cookies={SESSION_COOKIE.decode(): session.id}, **kwargs)
    return response.code, (await treq.content(response)).decode()


@pytest_twisted.ensureDeferred
async def test_pages_and_forms_say_the_s3_service_is_unreachable() -> None:
    port, _, session = await serve(f"http://127.0.0.1:{free_port()}")
    try:
        await pages_say_so(f"http://127.0.0.1:{port.getHost().port}", session)
    finally:
        await port.stopListening()


async def pages_say_so(base: str, session: Session) -> None:
    for path in ("/", "/b/photos", "/b/photos/settings", "/b/photos/object?key=a"):
        status, page = await get(base + path, session)
        assert status == 502, (path, status, page)
        assert "could not reach the S3 service" in page and "connection refused" in page
        assert "Traceback" not in page and "a-secret-never-shown" not in page
        assert f'href="{path.replace("&", "&amp;")}"' in page  # "Try again" reloads the same page
    form = {"csrf": session.csrf, "action": "save", "document": "{}"}
    status, page = await get(base + "/b/photos/settings/policy", session, "POST", data=form)
    assert status == 502 and "could not reach the S3 service" in page
    status, text = await get(
        base + "/b/photos/multipart/create?key=k", session, "POST", headers={"X-CSRF-Token": session.csrf}
    )
    assert status == 502 and "unreachable" in json.loads(text)["error"]


@pytest_twisted.ensureDeferred
async def test_an_s3_port_that_never_answers_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3client, "ANSWER_SECONDS", 0.5)
    silent = reactor.listenTCP(0, Factory.forProtocol(Silent), interface="127.0.0.1")  # type: ignore[attr-defined]
    port, _, session = await serve(f"http://127.0.0.1:{silent.getHost().port}")
    try:
        started = time.monotonic()
        status, page = await get(f"http://127.0.0.1:{port.getHost().port}/", session)
        assert status == 502 and "no answer in time" in page, page[-600:]
        assert time.monotonic() - started < 30
    finally:
        await port.stopListening()
        await silent.stopListening()
