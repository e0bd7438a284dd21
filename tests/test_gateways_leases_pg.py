"""Leases on a real PostgreSQL (catalog/postgres_leases.py): the server's clock decides expiry.

PostgreSQL 16 from the ``pgserver`` wheel (a test dependency), the session's server (tests/postgres.py).
The statements run on plain psycopg connections, as the PostgreSQL catalog's pool hands them.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from vaultaire.catalog import postgres_leases as leases


@pytest.fixture(scope="module")
def url(postgres: Any) -> str:
    """A fresh database on the test session's PostgreSQL (tests/postgres.py), with the leases table."""
    database = str(postgres.fresh_database())
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(leases.SCHEMA)
    return database


def connect(url: str) -> Any:
    return psycopg.connect(url, autocommit=True)


def test_taken_renewed_released_and_taken_over_once_expired(url: str) -> None:
    with connect(url) as conn:
        assert leases.take(conn, "job:a", "one", 60, renew=False)
        assert not leases.take(conn, "job:a", "two", 60, renew=True)
        assert not leases.take(conn, "job:a", "one", 60, renew=False)  # a job's lease: not re-run early
        assert leases.take(conn, "job:a", "one", 60, renew=True)
        found = leases.holder(conn, "job:a")
        assert found is not None and found[0] == "one" and 59 < found[1] <= 60
        leases.release(conn, "job:a", "two")  # not two's: kept
        assert leases.holder(conn, "job:a") is not None
        leases.release(conn, "job:a", "one")
        assert leases.holder(conn, "job:a") is None
        # A short lease whose holder died: free once the server's clock passes its expiry.
        assert leases.take(conn, "job:b", "dead", 0.3, renew=False)
        deadline = time.monotonic() + 30
        while leases.holder(conn, "job:b") is not None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert leases.take(conn, "job:b", "alive", 60, renew=False)
        assert leases.holder(conn, "job:b")[0] == "alive"  # type: ignore[index]


def test_one_of_many_sessions_racing_for_a_free_lease_wins(url: str) -> None:
    sessions = [connect(url) for _ in range(6)]
    try:
        for round_ in range(15):
            barrier = threading.Barrier(len(sessions))
            won: list[str] = []

            def take(
                conn: Any,
                who: str,
                name: str = f"race:{round_}",
                barrier: threading.Barrier = barrier,
                won: list[str] = won,
            ) -> None:
                barrier.wait()
                if leases.take(conn, name, who, 60, renew=True):
                    won.append(who)

            threads = [threading.Thread(target=take, args=(c, f"g{i}")) for i, c in enumerate(sessions)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert len(won) == 1, won
    finally:
        for conn in sessions:
            conn.close()
