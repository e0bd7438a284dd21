"""Listings with a delimiter on PostgreSQL (catalog/postgres/listing.py: the walk in one statement)
give exactly SQLite's pages (catalog/listing.py: one query per common prefix).

The same keys in both catalogs; pages asked with prefixes, delimiters, markers and sizes drawn at
random (and the edge cases named), compared entry for entry, then followed to the end.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from typing import Any

import psycopg
import pytest_twisted
from twisted.internet import reactor

from vaultaire.catalog.open import open_catalog
from vaultaire.catalog.rows import ARTIFACT_COLUMNS, extra_json
from vaultaire.model import Artifact
from vaultaire.sealing import SecretBox

BOX = SecretBox(os.urandom(32))


def keys() -> list[str]:
    rng = random.Random(17)
    out = {"a", "a/", "a/b", "a/b/c", "a//b", "a/b/", "b", "é/x", "é/y/z", "z" * 5, "x/\U0001f600/y", "-/-"}
    parts = ["a", "b", "dir", "é", "x", "-", "/", "ab", "a-b", "0"]
    while len(out) < 400:
        out.add("".join(rng.choice(parts) for _ in range(rng.randint(1, 6))))
    return sorted(out)


NOW = time.time()


def rows(container_id: int, names: list[str]) -> list[tuple[Any, ...]]:
    now = NOW
    extra = extra_json(Artifact(container_id=container_id, key="", locator="", size=0, md5="", modified=now))
    return [(container_id, k.encode(), f"l/{i}", i, "0" * 32, now, "x/y", extra) for i, k in enumerate(names)]


@pytest_twisted.ensureDeferred
async def test_pages_with_a_delimiter_are_sqlites_pages(postgres: Any, tmp_path: Any) -> None:
    url = postgres.fresh_database()
    lite = open_catalog(None, str(tmp_path), reactor, BOX)
    pg = open_catalog(url, str(tmp_path / "unused"), reactor, BOX)
    await lite.start()
    await pg.start()
    try:
        names = keys()
        containers = []
        for catalog in (lite, pg):
            tenant = await catalog.ensure_tenant("t")
            containers.append((await catalog.create_container(tenant.id, "c", "local")).id)
        db = sqlite3.connect(tmp_path / "catalog.sqlite3")
        with db:
            db.executemany(
                f"INSERT INTO artifacts ({ARTIFACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows(containers[0], names),
            )
        db.close()
        with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO artifacts ({ARTIFACT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                rows(containers[1], names),
            )

        rng = random.Random(5)
        cases = [
            ("", "/", None, 1000),
            ("", "/", None, 1),
            ("a", "/", "a/b", 3),
            ("", "a", None, 5),
            ("", "/", "a/", 2),
        ]
        cases += [("é", "/", "é/x", 2), ("x/", "/", None, 4), ("", "ab", "a", 7), ("zzz", "/", None, 3)]
        for _ in range(60):
            prefix = rng.choice(["", "a", "a/", "d", "é", "-", "x/", "b"])
            marker = rng.choice([None, None, rng.choice(names), prefix + "/", "a/b/"])
            cases.append((prefix, rng.choice(["/", "a", "-", "ir", "//", "é"]), marker, rng.choice([1, 2, 3, 10, 100])))
        for prefix, delimiter, after, limit in cases:
            for method in ("list_artifacts", "list_listed"):
                seen = []
                marker = after
                for _ in range(500):  # the pages to the end, each the same on both
                    a = await getattr(lite, method)(containers[0], prefix, delimiter, marker, limit)
                    b = await getattr(pg, method)(containers[1], prefix, delimiter, marker, limit)
                    case = (method, prefix, delimiter, marker, limit)
                    assert [x.key for x in a.artifacts] == [x.key for x in b.artifacts], case
                    assert (a.prefixes, a.truncated, a.next_marker) == (b.prefixes, b.truncated, b.next_marker), case
                    if method == "list_listed":
                        assert a.artifacts == b.artifacts, case
                    else:
                        assert [(x.size, x.locator) for x in a.artifacts] == [(x.size, x.locator) for x in b.artifacts]
                    seen += [x.key for x in a.artifacts] + list(a.prefixes)
                    if not a.truncated:
                        break
                    marker = a.next_marker
                assert seen and len(seen) == len(set(seen)) or not seen
    finally:
        await lite.stop()
        await pg.stop()
