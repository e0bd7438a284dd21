"""Shared fixtures: a real `twistd vaultaire` process per test (or per module)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture
def aws_home(tmp_path: Path) -> Path:
    """A directory holding the aws cli's config and credentials files for one test."""
    home = tmp_path / "aws-home"
    home.mkdir()
    return home
