"""What every admin command gets: the settings, an open catalog, and how to print."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from vaultaire.catalog.interface import Catalog
from vaultaire.catalog.open import open_catalog
from vaultaire.config import ConfigError, Settings
from vaultaire.encryption.keys import Keyring
from vaultaire.sealing import SecretBox, master_keys


class AdminError(Exception):
    """A refusal the operator can act on: printed as one line, exit status 1."""


class AdminContext:
    def __init__(self, settings: Settings, as_json: bool, reactor: Any, out: TextIO = sys.stdout) -> None:
        self.settings = settings
        self.as_json = as_json
        self.reactor = reactor
        self.out = out
        self._catalog: Catalog | None = None
        self.box: SecretBox | None = None  # the catalog's, once it is open

    async def catalog(self) -> Catalog:
        """The daemon's catalog (its file in the data directory, or the shared one the settings name);
        SQLite's WAL and PostgreSQL both let the daemon and this tool write safely at once."""
        if self._catalog is None:
            data = os.path.abspath(self.settings.data)
            try:
                os.makedirs(data, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"data directory {data!r} cannot be created: {e.strerror}") from None
            if self.settings.catalog_url and not (self.settings.master_key or self.settings.master_key_file):
                # A key sealed with this directory's own master key would open on no gateway.
                raise ConfigError(
                    "with a shared catalog (--catalog, [catalog] url) give the gateways' master key:"
                    " --config FILE with [security] master_key_file"
                )
            keys, reload = master_keys(self.settings, data)
            box = SecretBox(keys[0], keys[1:], reload)
            self.box = box
            # Typed as the contract: the admin tool needs nothing SQLite-specific.
            s = self.settings
            self._catalog = open_catalog(
                s.catalog_url,
                data,
                self.reactor,
                box,
                pool_size=min(s.catalog_pool_size, 2),  # one command at a time needs no more
                statement_timeout=s.catalog_statement_timeout,
            )
            await self._catalog.start()
        return self._catalog

    def data_dir(self) -> str:
        return os.path.abspath(self.settings.data)

    def keyring(self) -> Keyring:
        """The master keys as they are now (read again each time: a rotation changes them)."""
        keys, reload = master_keys(self.settings, self.data_dir())
        return Keyring(keys[0], keys[1:], reload)

    async def close(self) -> None:
        if self._catalog is not None:
            await self._catalog.stop()

    def emit(self, document: object, table: Sequence[Sequence[object]] | None = None, text: str = "") -> None:
        """JSON with --json; otherwise a table (first row the header) and/or a line of text."""
        if self.as_json:
            self.out.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
            return
        if table:
            widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
            for row in table:
                self.out.write("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
                self.out.write("\n")
        if text:
            self.out.write(text + "\n")
