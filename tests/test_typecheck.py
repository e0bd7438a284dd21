"""mypy is part of the test command: the package type-checks with zero errors.

The configuration is setup.cfg's ``[mypy]`` (mypy-zope for Twisted's interfaces,
untyped definitions refused, every ignore naming its error code). The cache lives
in the virtualenv (or the temporary directory) so a second run takes seconds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("vaultaire", "twisted")
# `# type: ignore[code]  # why`: the code (mypy enforces it) and a reason after it.
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]*\])?(?P<rest>.*)$")


def _cache_dir() -> str:
    for base in (sys.prefix, tempfile.gettempdir()):
        if os.access(base, os.W_OK):
            return os.path.join(base, ".vaultaire-mypy-cache")
    raise AssertionError("no writable place for mypy's cache")


def test_mypy_finds_no_error_in_the_package() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "setup.cfg", "--cache-dir", _cache_dir()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"mypy found errors:\n{result.stdout}{result.stderr}"
    # Guard against a configuration that checks nothing (a wrong `files`, a lost plugin).
    checked = re.search(r"Success: no issues found in (\d+) source files", result.stdout)
    assert checked is not None, result.stdout + result.stderr
    assert int(checked.group(1)) >= len(list((ROOT / "vaultaire").rglob("*.py")))


def test_every_type_ignore_names_its_error_and_says_why() -> None:
    bare = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                found = IGNORE.search(line)
                if found is None:
                    continue
                reason = found.group("rest").strip().lstrip("#").strip()
                if not found.group("codes") or not reason:
                    bare.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bare, "type: ignore without [code] and a reason after it:\n" + "\n".join(bare)
