"""A deployment of several gateways for tests: one shared catalog, blobs on a SeaweedFS cluster.

Each gateway is a real ``twistd vaultaire`` with its own data directory (its
event log, its runtime files) and the one shared config file: the catalog
URL, the master key file every gateway reads, and an s3 driver on the
cluster as the default placement.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path
from typing import Any

from daemon import Daemon, catalog_rows, write_config
from seaweed_cluster import SeaweedCluster
from upstreams import ACCESS, SECRET, keys

from vaultaire.catalog.open import sqlite_path

BUCKET = "vaultaire-blobs"


def shared_config(shared: Path, endpoint: str, catalog_url: str, extra: str = "", rollup_seconds: int = 3600) -> str:
    """The config file every gateway gets (written into ``shared``, with the master key beside it)."""
    key = shared / "master.key"
    if not key.exists():
        key.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
        key.chmod(0o600)
    text = f"""
[catalog]
url = "{catalog_url}"

[security]
master_key_file = "{key}"

[placement]
default = "cluster"
# Replaced blobs are freed at the next sweep, and the sweep (once across the gateways) runs often.
free_grace = 0
sweep_seconds = 2

[metering]
flush_seconds = 1
rollup_seconds = {rollup_seconds}

[drivers.cluster]
type = "s3"
endpoint = "{endpoint}"
bucket = "{BUCKET}"
access_key = "{ACCESS}"
secret_key = "{SECRET}"
{extra}
"""
    return write_config(shared, text, name="shared.toml")


class Deployment:
    """A SeaweedFS cluster and gateways (``workers`` processes each) over one catalog; ``start()``, ``stop()``."""

    def __init__(
        self,
        base: Path,
        workers: tuple[int, ...] = (1, 1, 2),
        catalog_url: str | None = None,
        rollup_seconds: int = 3600,
    ) -> None:
        self.base = Path(base)
        self.shared = self.base / "shared"
        self.shared.mkdir(parents=True, exist_ok=True)
        self.cluster = SeaweedCluster(self.base / "seaweed")
        # One SQLite file by default; a postgresql:// URL (tests/postgres.py's) works the same way.
        self.catalog_url = catalog_url or f"sqlite:///{self.shared / 'catalog.sqlite3'}"
        self.rollup_seconds = rollup_seconds  # the usage rollup's period: a once-per-deployment job
        # The last gateway runs a supervisor and two workers: its once-per-deployment jobs run
        # in the supervisor, its writes in the workers.
        self.gateways = [Daemon(self.base / f"gateway{i}", workers=w) for i, w in enumerate(workers)]

    def start(self) -> Deployment:
        self.cluster.start(BUCKET)
        config = shared_config(self.shared, self.cluster.endpoint, self.catalog_url, rollup_seconds=self.rollup_seconds)
        for gateway in self.gateways:
            gateway.extra_args = ["--config", config]
        # All at once, as hosts booting together do: each ensures the first keys from its
        # environment in one catalog transaction, so they agree on one tenant and one key.
        failures: list[BaseException] = []

        def start(gateway: Daemon) -> None:
            try:
                gateway.start()
            except BaseException as e:
                failures.append(e)

        threads = [threading.Thread(target=start, args=(g,)) for g in self.gateways]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise failures[0]
        return self

    def stop(self) -> None:
        for gateway in self.gateways:
            gateway.stop()
        self.cluster.stop()

    def clients(self) -> list[Any]:
        return [g.boto3_client(max_pool_connections=20) for g in self.gateways]

    # -- what the catalog references, against what the cluster holds

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The shared catalog's rows, read directly (the SQLite file, or psycopg on the PostgreSQL URL)."""
        if self.catalog_url.startswith("postgresql://"):
            import psycopg

            with psycopg.connect(self.catalog_url, autocommit=True, connect_timeout=10) as conn:
                return [tuple(row) for row in conn.execute(sql).fetchall()]
        path = sqlite_path(self.catalog_url, "")
        assert path is not None
        return catalog_rows(Path(path).parent, sql)

    def referenced(self) -> set[str]:
        """Every blob a version, a manifest or an uploaded part names."""
        out: set[str] = set()
        rows = self.rows("SELECT locator, metadata FROM artifacts")
        rows += [r for r in self.rows("SELECT locator, metadata FROM versions") if not json.loads(r[1]).get("marker")]
        for locator, metadata in rows:
            parts = json.loads(metadata).get("parts") or []
            out |= {p[0] for p in parts} if parts else {locator}
        return out | {r[0] for r in self.rows("SELECT locator FROM parts")}

    def writers(self) -> list[tuple[Any, ...]]:
        """The writers' rows of a PostgreSQL catalog (name, holder, server start it was taken
        under, and the server's start and time now); on SQLite, the writers' lock files."""
        if self.catalog_url.startswith("postgresql://"):
            return self.rows(
                "SELECT name, holder, expires_at, extract(epoch FROM pg_postmaster_start_time()),"
                " extract(epoch FROM clock_timestamp()) FROM leases"
            )
        path = sqlite_path(self.catalog_url, "")
        assert path is not None
        return [(p.name,) for p in Path(path + ".writers").glob("*")]

    def ledger(self) -> dict[str, set[str]]:
        return {
            "stored": set(keys(self.cluster.endpoint, BUCKET)),
            "referenced": self.referenced(),
            "garbage": {r[0] for r in self.rows("SELECT locator FROM garbage")},
            "intents": {r[0] for r in self.rows("SELECT locator FROM intents")},
        }
