"""Version listing and delete-marker semantics against a small in-memory model (hypothesis).

The catalog's statements (vaultaire/catalog/versions.py, version_listing.py) run on an in-memory SQLite
database after any sequence of puts, deletes, deletes of one version and versioning
changes; what they hold and list must be what the model says S3 holds and lists.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaultaire.catalog import accounting, blobs, version_listing, versions
from vaultaire.catalog.sqlite_schema import SCHEMA
from vaultaire.model import Artifact

CONTAINER = 1

# A version in the model: (version id, delete marker?, locator, size)
Version = tuple[str, bool, str, int]


def fresh_catalog() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(SCHEMA + accounting.SCHEMA + blobs.SCHEMA + versions.SCHEMA)
    db.execute("INSERT INTO tenants (id, name, created) VALUES ('t', 't', 0)")
    db.execute("INSERT INTO containers (id, tenant_id, name, placement, created) VALUES (1, 't', 'b', 'local', 0)")
    accounting.open_container(db, CONTAINER, "t", "b", 0)
    return db


# Few keys, so that versions pile up on each; "/" and a non-ASCII key for delimiters and byte order.
keys = st.sampled_from(["a", "a/b", "a/c", "b", "é", "é/x"])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, st.integers(0, 9)),
        st.tuples(st.just("delete"), keys, st.just(0)),
        st.tuples(st.just("delete_version"), keys, st.integers(0, 9)),
        st.tuples(st.just("state"), st.sampled_from(["Enabled", "Suspended"]), st.just(0)),
    ),
    max_size=40,
)


def apply(db: sqlite3.Connection, ops: list[tuple[str, str, int]]) -> dict[str, list[Version]]:
    """Run ``ops`` on the catalog and on the model; returns the model (newest version first)."""
    model: dict[str, list[Version]] = {}
    state: str | None = None
    for n, (op, arg, number) in enumerate(ops):
        now = 1000.0 + n // 3  # equal clock readings too: the order must not depend on the clock
        if op == "state":
            db.execute(
                "INSERT OR REPLACE INTO container_settings (container_id, name, value) VALUES (?, 'versioning', ?)",
                (CONTAINER, arg),
            )
            state = arg
            continue
        held = model.setdefault(arg, [])
        if op == "put":
            locator = f"blob-{n}"
            stored, removed = versions.install(
                db, Artifact(CONTAINER, arg, locator, number, "0" * 32, now), number, now
            )
            expected_removed = _null_of(held) if state != "Enabled" else None
            assert (removed.locator if removed else None) == (expected_removed[2] if expected_removed else None)
            if state != "Enabled":
                held[:] = [v for v in held if v[0] != "null"]
                assert stored.version_id == "null"
            held.insert(0, (stored.version_id, False, locator, number))
        elif op == "delete":
            marker, removed = versions.delete_key(db, CONTAINER, arg, now)
            if state is None:
                assert marker is None
                assert (removed.locator if removed else None) == (held[0][2] if held else None)
                held.clear()
            else:
                assert marker is not None and marker.delete_marker
                if state == "Suspended":
                    expected_removed = _null_of(held)
                    assert (removed.version_id if removed else None) == (
                        expected_removed[0] if expected_removed else None
                    )
                    held[:] = [v for v in held if v[0] != "null"]
                    assert marker.version_id == "null"
                held.insert(0, (marker.version_id, True, "", 0))
        else:
            if not held:
                assert versions.delete_version(db, CONTAINER, arg, "0" * 32, None, now) is None
                continue
            victim = held[number % len(held)]
            removed_version = versions.delete_version(db, CONTAINER, arg, victim[0], None, now)
            assert removed_version is not None and removed_version.version_id == victim[0]
            held.remove(victim)
    return {k: v for k, v in model.items() if v}


def _null_of(held: list[Version]) -> Version | None:
    return next((v for v in held if v[0] == "null"), None)


def model_listing(model: dict[str, list[Version]], prefix: str, delimiter: str) -> list[Any]:
    out: list[Any] = []
    for key in sorted(model, key=lambda k: k.encode()):
        if not key.startswith(prefix):
            continue
        at = key.find(delimiter, len(prefix)) if delimiter else -1
        if at >= 0:
            rolled = key[: at + len(delimiter)]
            if not out or out[-1] != ("prefix", rolled):
                out.append(("prefix", rolled))
            continue
        for n, (vid, marker, locator, _size) in enumerate(model[key]):
            out.append((key, vid, n == 0, marker, locator))
    return out


def catalog_listing(db: sqlite3.Connection, prefix: str, delimiter: str, limit: int) -> list[Any]:
    out: list[Any] = []
    key_marker = version_marker = None
    for _ in range(1000):
        page = version_listing.list_versions(db, CONTAINER, prefix, delimiter, key_marker, version_marker, limit)
        assert len(page.versions) + len(page.prefixes) <= limit
        # Versions and prefixes of one page, merged back into key order.
        entries = [
            ((v.key.encode(), 0), (v.key, v.version_id, v.is_latest, v.delete_marker, v.locator)) for v in page.versions
        ]
        entries += [((p.encode(), 1), ("prefix", p)) for p in page.prefixes]
        out += [entry for _order, entry in sorted(entries, key=lambda e: e[0])]
        if not page.truncated:
            return out
        key_marker, version_marker = page.next_key_marker, page.next_version_id_marker
    raise AssertionError("the listing never ended")


@settings(max_examples=200, deadline=None)
@given(operations, st.sampled_from(["", "a", "b/", "é"]), st.sampled_from(["", "/"]), st.integers(1, 5))
def test_versions_and_markers_follow_the_model(ops, prefix, delimiter, limit):
    check(fresh_catalog(), ops, prefix, delimiter, limit)


_pg_database: list[str] = []


# Fewer examples on PostgreSQL (a round trip per statement); each runs in a transaction rolled back.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations, st.sampled_from(["", "a", "b/", "é"]), st.sampled_from(["", "/"]), st.integers(1, 5))
def test_versions_and_markers_follow_the_model_on_postgresql(postgres, ops, prefix, delimiter, limit):
    import psycopg

    from vaultaire.catalog.postgres.dialect import Connection

    if not _pg_database:
        _pg_database.append(postgres.fresh_database())
    with psycopg.connect(_pg_database[0]) as conn:
        db = Connection(conn)
        db.execute("INSERT INTO tenants (id, name, created) VALUES ('t', 't', 0)")
        db.execute("INSERT INTO containers (id, tenant_id, name, placement, created) VALUES (1, 't', 'b', 'local', 0)")
        accounting.open_container(db, CONTAINER, "t", "b", 0)
        try:
            check(db, ops, prefix, delimiter, limit)
        finally:
            conn.rollback()


def check(db: Any, ops: list[tuple[str, str, int]], prefix: str, delimiter: str, limit: int) -> None:
    model = apply(db, ops)
    assert catalog_listing(db, prefix, delimiter, limit) == model_listing(model, prefix, delimiter)
    # The current version of each key: what GET sees (a marker reads as one), what ListObjects lists.
    for key, held in model.items():
        current = versions.lookup(db, CONTAINER, key, None)
        assert current is not None and current.version_id == held[0][0] and current.delete_marker == held[0][1]
        for vid, marker, locator, _size in held:
            found = versions.lookup(db, CONTAINER, key, vid)
            assert found is not None and found.locator == locator and found.delete_marker == marker
    rows = db.execute("SELECT key, locator FROM artifacts ORDER BY key").fetchall()
    listed = {bytes(k).decode(): loc for k, loc in rows}
    assert listed == {k: held[0][2] for k, held in model.items() if not held[0][1]}
    # Stored totals: every data version, current or not.
    data = [v for held in model.values() for v in held if not v[1]]
    assert accounting.tenant_totals(db, "t").bytes == sum(v[3] for v in data)
    assert accounting.tenant_totals(db, "t").objects == len(data)
    # Garbage: exactly the blobs of data versions removed for good.
    live = {v[2] for v in data}
    queued = {r[0] for r in db.execute("SELECT locator FROM garbage")}
    written = {f"blob-{n}" for n, op in enumerate(ops) if op[0] == "put"}
    assert queued == written - live
