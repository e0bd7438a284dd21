"""npm packages for the tests that drive JavaScript, installed once into a cache directory."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def npm_modules(js_dir: Path, package: str, cache_name: str, required: bool = False) -> Path:
    """``node_modules`` holding ``js_dir/package.json``'s dependencies (``package`` is one of them).

    Installed into ``$VAULTAIRE_NPM_CACHE/<cache_name>`` (default ``~/.cache/vaultaire-npm``) and
    reused while the manifest is unchanged; the test skips, saying why, when npm cannot install it,
    or fails when the package is ``required`` (a real component the feature is tested against).
    """
    give_up = pytest.fail if required else pytest.skip
    if not shutil.which("node") or not shutil.which("npm"):
        give_up(f"node and npm are needed to install {package}")
    root = Path(os.environ.get("VAULTAIRE_NPM_CACHE") or Path.home() / ".cache" / "vaultaire-npm")
    cache = root / cache_name
    cache.mkdir(parents=True, exist_ok=True)
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
            give_up(f"npm install of {package} timed out")
        if result.returncode != 0 or not installed.exists():
            give_up(f"npm install of {package} failed:\n{result.stderr[-2000:]}")
    return cache / "node_modules"
