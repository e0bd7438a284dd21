"""An in-process Server with extra local placements and one bucket, for the tests that move versions
between placements (lifecycle transitions, migrate)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
from twisted.internet import reactor

from tests.s3helpers import Server
from vaultaire.drivers.local import LocalDriver
from vaultaire.model import Container


def server_with_placements(*names: str) -> Any:
    """A fixture: a started Server whose placements ``names`` are local drivers under the test's
    directory, with a bucket named ``bucket``. Assign it to a module-level name to use it."""

    @pytest_twisted.async_yield_fixture
    async def server(tmp_path: Any) -> AsyncIterator[Server]:
        placements = {name: LocalDriver(os.path.join(str(tmp_path), name), reactor, name=name) for name in names}
        s = Server(str(tmp_path), placements=placements)
        await s.start("bucket")
        yield s
        await s.stop()

    return server


async def bucket_container(server: Server) -> Container:
    """The catalog's container of the fixture's ``bucket``."""
    found = await server.catalog.container((await server.catalog.tenant("default")).id, "bucket")
    assert found is not None
    return found
