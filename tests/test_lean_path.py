"""The lean GET path (issue 18): what each saving removed stays removed, and answers stay the same."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from werkzeug.routing import Map

from tests.s3helpers import Server, error_code


@pytest_twisted.async_yield_fixture
async def server(tmp_path: Any) -> Any:
    s = Server(str(tmp_path))
    await s.start("bucket")
    yield s
    await s.stop()


@pytest_twisted.ensureDeferred
async def test_s3_requests_skip_werkzeug_routing(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # The S3 app has one catch-all route: binding and matching werkzeug's map per request was pure cost.
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("werkzeug's Map.bind ran for an S3 request")

    monkeypatch.setattr(Map, "bind", refuse)
    r = await server.request("PUT", "/bucket/a//b/", b"hello")
    assert r.code == 200, r.body
    r = await server.request("GET", "/bucket/a//b/")
    assert (r.code, r.body) == (200, b"hello")
    r = await server.request("HEAD", "/bucket/a//b/")
    assert (r.code, r.headers.getRawHeaders("content-length")) == (200, ["5"])
    r = await server.request("GET", "/bucket/missing")
    assert (r.code, error_code(r)) == (404, "NoSuchKey")
