"""npm packages for the tests that drive JavaScript, installed once into a cache directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.commands import apt_program, installing


def npm_modules(js_dir: Path, package: str, cache_name: str) -> Path:
    """``node_modules`` holding ``js_dir/package.json``'s dependencies (``package`` is one of them).

    Installed into ``$VAULTAIRE_NPM_CACHE/<cache_name>`` (default ``~/.cache/vaultaire-npm``) and
    reused while the manifest is unchanged. Node and npm are installed with apt-get when missing;
    the test fails, saying why, when they or the package cannot be installed.
    """
    apt_program("node", "nodejs")
    apt_program("npm", "npm")
    root = Path(os.environ.get("VAULTAIRE_NPM_CACHE") or Path.home() / ".cache" / "vaultaire-npm")
    cache = root / cache_name
    cache.mkdir(parents=True, exist_ok=True)
    with installing(f"npm-{cache_name}"):
        return _install(js_dir, package, cache)


def _install(js_dir: Path, package: str, cache: Path) -> Path:
    manifest = (js_dir / "package.json").read_bytes()
    installed = cache / "node_modules" / package / "package.json"
    if (
        not installed.exists()
        or not (cache / "package.json").exists()
        or (cache / "package.json").read_bytes() != manifest
    ):
        (cache / "package.json").write_bytes(manifest)
        try:
            result = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(cache)],
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"npm install of {package} timed out")
        if result.returncode != 0 or not installed.exists():
            pytest.fail(f"npm install of {package} failed:\n{result.stderr[-2000:]}")
    return cache / "node_modules"
