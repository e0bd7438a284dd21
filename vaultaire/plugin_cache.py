"""``python -m vaultaire.plugin_cache``: write Twisted's plugin caches (``dropin.cache``) now.

twistd finds ``twistd vaultaire`` by scanning every ``twisted/plugins`` directory and
caching what it found in that directory's ``dropin.cache``; when the cache is missing or
older than a plugin it rewrites it. Run as a user who cannot write there (the systemd
unit's), that rewrite fails on every start and logs "Unable to write to plugin cache ...:
error number 13". Run this once as the user who installed Vaultaire (root, after
``pip install``); the systemd unit also runs it as root before each start, so an upgrade
never leaves a stale cache behind.
"""

from __future__ import annotations

import sys
from typing import Any


def main() -> int:
    from twisted.plugin import IPlugin, getPlugins
    from twisted.python import log

    import twisted.plugins

    failures: list[str] = []

    def watch(event: dict[str, Any]) -> None:
        text = event.get("format") or ""
        if text.startswith("Unable to write to plugin cache"):
            failures.append(text % event)

    log.addObserver(watch)
    try:
        names = sorted(getattr(p, "tapname", "") or repr(p) for p in getPlugins(IPlugin, twisted.plugins))
    finally:
        log.removeObserver(watch)
    for failure in failures:
        sys.stderr.write(f"vaultaire: {failure}\n")
    if failures:
        return 1
    print(f"plugin caches written ({len(names)} plugins; twistd vaultaire: {'vaultaire' in names})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
