"""A real PostgreSQL for the tests, started by them: PostgreSQL 16 from the ``pgserver`` wheel.

One server per test process (xdist worker), started at its first use; each test gets a
database of its own, copied from a template that holds the catalog's schema already, so a
fresh catalog costs a ``CREATE DATABASE`` and not a migration. pgserver runs the server as
an unprivileged user of its own when the tests run as root (as CI does).
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import psycopg

from tests.commands import installing
from vaultaire.catalog.postgres import schema

TEMPLATE = "vaultaire_template"


class PostgresServer:
    def __init__(self) -> None:
        import pgserver

        # Short: the Unix socket lives in it (a socket path may not exceed ~100 bytes).
        self.directory = tempfile.mkdtemp(prefix="vt-pg-")
        os.chmod(self.directory, 0o755)  # the server's own user must reach its data directory
        # Run as root, pgserver adds its system user at the first start: two test processes
        # adding it at once fail (useradd's lock), as a fresh CI machine showed.
        with installing("pgserver-user"):
            self._server = pgserver.get_server(os.path.join(self.directory, "data"), cleanup_mode="stop")
        self.admin_url = self._server.get_uri()
        self._names = itertools.count()
        self._lock = threading.Lock()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        with psycopg.connect(self.url(TEMPLATE), autocommit=True) as conn:
            schema.migrate(conn)

    def url(self, database: str) -> str:
        """The server's URL for ``database`` (pgserver's URIs name the socket directory as host=)."""
        base, _, query = self.admin_url.partition("?")
        return f"{base.rsplit('/', 1)[0]}/{database}?{query}"

    def fresh_database(self, empty: bool = False) -> str:
        """The URL of a new database: with the catalog's schema, or ``empty`` (for migration tests)."""
        with self._lock:
            name = f"t{os.getpid()}_{next(self._names)}"
        template = "template0" if empty else TEMPLATE
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)

    def sql(self, url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(url, autocommit=True) as conn:
            cursor = conn.execute(statement, params or None)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def halt(self) -> None:
        """Stop this server as an operator's restart does (``pg_ctl stop -m fast``: sessions cut)."""
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self._server.pgdata, user=self._server.system_user)

    def resume(self) -> None:
        """Start it again after ``halt``: the same data directory and socket, so the same URLs."""
        self._server.ensure_postgres_running()

    def stop(self) -> None:
        """Stop the server and delete its cluster: each left behind kept 70-470 MB in /tmp."""
        try:
            self._server.cleanup()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


_server: PostgresServer | None = None


def server() -> PostgresServer:
    """This process's server, started on first use and stopped when the process exits."""
    global _server
    if _server is None:
        _server = PostgresServer()
    return _server


def gateway_config(directory: str | os.PathLike[str], url: str) -> str:
    """A gateway's ``--config`` for the catalog at ``url``, written into ``directory`` (the benchmarks'):
    its master key file, and one ``local`` placement there marked ``shared`` (one machine: every
    gateway sees the directory). Returns the config file's path."""
    base = Path(directory)
    key = base / "master.key"
    key.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    key.chmod(0o600)
    (base / "blobs").mkdir(parents=True, exist_ok=True)
    config = base / "shared.toml"
    config.write_text(
        f"""
[catalog]
url = "{url}"
[security]
master_key_file = "{key}"
[placement]
default = "shared"
[drivers.shared]
type = "local"
root = "{base / "blobs"}"
shared = true
"""
    )
    return str(config)
