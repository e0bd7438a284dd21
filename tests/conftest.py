"""Shared fixtures: a real `twistd vaultaire` process per test (or per module), or the stack in process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

sys.path.insert(0, str(Path(__file__).parent))

from daemon import Daemon


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes over a minute; deselect with -m 'not slow'")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A fresh daemon with its own data directory and ports, stopped after the test."""
    d = Daemon(tmp_path / "vaultaire").start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def module_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon shared by a module's tests (each test uses its own buckets)."""
    d = Daemon(tmp_path_factory.mktemp("vaultaire")).start()
    try:
        yield d
    finally:
        d.stop()


@pytest_twisted.async_yield_fixture
async def server(tmp_path: Path) -> Any:
    """The whole S3 stack in process with one bucket, ``bucket`` (a module may define its own ``server``)."""
    from tests.s3helpers import Server

    s = Server(str(tmp_path))
    await s.start("bucket")
    yield s
    await s.stop()


@pytest.fixture
def aws_home(tmp_path: Path) -> Path:
    """A directory holding the aws cli's config and credentials files for one test."""
    home = tmp_path / "aws-home"
    home.mkdir()
    return home


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One SeaweedFS for the whole session (it takes seconds to start); tests use their own prefixes."""
    from upstreams import Seaweed, UpstreamError

    server = Seaweed(tmp_path_factory.mktemp("seaweed"))
    try:
        server.start(bucket="vaultaire-blobs")
    except UpstreamError as e:
        server.kill9()
        pytest.fail(f"SeaweedFS could not start: {e}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def upstream_vaultaire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A second Vaultaire (local driver) serving as an S3 upstream, bucket 'vaultaire-blobs' made."""
    from upstreams import second_vaultaire

    d = second_vaultaire(tmp_path_factory.mktemp("upstream-vaultaire"), "vaultaire-blobs")
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(params=["local", "s3"])
def upstream(request: pytest.FixtureRequest) -> str | None:
    """Where the in-process server keeps bytes: None for the local driver, or
    SeaweedFS's endpoint for the s3 driver. Fixtures building ``Server`` take it,
    so the same test bodies run against both drivers."""
    if request.param == "local":
        return None
    return str(request.getfixturevalue("seaweed").endpoint)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """This test process's PostgreSQL server (tests/postgres.py), stopped at the end of the session."""
    import postgres as pg

    server = pg.server()
    try:
        yield server
    finally:
        server.stop()
        pg._server = None


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Make catalogs on each backend: ``make(box=None, clock=time.time)`` -> a catalog, not started.

    Calls in one test share one store (the SQLite file in tmp_path, or one fresh database), so a
    test can reopen what it wrote. The contract tests take this to run on both backends.
    """
    import os
    import time

    from twisted.internet import reactor

    from vaultaire.catalog.open import open_catalog
    from vaultaire.sealing import SecretBox

    url = request.getfixturevalue("postgres").fresh_database() if request.param == "postgresql" else None

    def make(box: SecretBox | None = None, clock: Any = time.time) -> Any:
        return open_catalog(url, str(tmp_path), reactor, box or SecretBox(os.urandom(32)), clock=clock)

    make.backend = request.param  # type: ignore[attr-defined]
    make.url = url  # type: ignore[attr-defined]
    return make


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest) -> str | None:
    """For the in-process stack (tests/s3helpers.py Server): None (SQLite) or a fresh PostgreSQL database."""
    return request.getfixturevalue("postgres").fresh_database() if request.param == "postgresql" else None
