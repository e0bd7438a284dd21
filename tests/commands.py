"""Outside programs the tests run: one way to run them, and the ones installed when missing."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import pytest


def run(
    cmd: Sequence[str], *, env: Mapping[str, str] | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to completion; with ``check``, a non-zero exit fails the test showing both outputs."""
    result = subprocess.run(
        list(cmd), env=dict(env) if env is not None else None, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@contextmanager
def installing(what: str) -> Iterator[None]:
    """One installer at a time across test processes (pytest-xdist workers, parallel runs):
    apt-get and npm into one directory both fail when two run at once."""
    path = os.path.join(tempfile.gettempdir(), f"vaultaire-tests-install-{what}.lock")
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def apt_program(program: str, package: str) -> str:
    """The path of ``program``, installing Debian's ``package`` with apt-get when it is missing.

    CI runs as root on a fresh machine: there a missing program is installed, never assumed. Where it
    cannot be installed (not root, no apt-get, apt failing) the test fails saying what to install.
    """
    found = shutil.which(program)
    if found:
        return found
    with installing("apt"):
        return _apt_install(program, package)


def _apt_install(program: str, package: str) -> str:
    found = shutil.which(program)  # another process may have installed it while this one waited
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(f"{program} is missing and installing it needs root and apt-get (apt-get install {package})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", package]):
        try:
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{' '.join(command)} timed out: cannot install {program}")
        if result.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed, cannot install {program}:\n{result.stderr[-2000:]}")
    found = shutil.which(program)
    if not found:
        pytest.fail(f"apt-get installed {package} but {program} is not on PATH")
    return found


def curl() -> str:
    """curl, the command-line HTTP client a user pastes a presigned URL into."""
    return apt_program("curl", "curl")
