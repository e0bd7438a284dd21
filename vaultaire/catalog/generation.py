"""The catalog's generation: one number that moves with every change a request's point reads see.

Every request reads who a key is (credentials, users, tenants), what a bucket name means
(containers) and how that bucket is set up (container settings). A worker process keeps
those answers (``vaultaire/catalog/cached.py``) and asks, once per request, whether the
generation moved since; if it did, it forgets them all. So a change made in any process
counts on the next request in every process, for the price of one point read.

The counter is bumped by triggers, not by each writing method: a change that commits is
counted in its own transaction whoever made it (the daemon, the admin tool, a migration
of an older catalog, a statement added later), and a write that rolls back bumps nothing.
PostgreSQL keeps the same table and triggers.

Writes that change only what is stored (artifacts, versions, uploads, usage) do not move
it: a PUT or DELETE of an object never throws the cached answers away.
"""

from __future__ import annotations

import sqlite3

# The tables whose rows the cached point reads are made of. A table added here needs its
# trigger on PostgreSQL too: a new migration in catalog/postgres/schema.py.
WATCHED = ("tenants", "credentials", "users", "containers", "container_settings", "kms_keys")

SCHEMA = """
CREATE TABLE IF NOT EXISTS generation (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO generation (id, value) VALUES (0, 0);
""" + "".join(
    f"CREATE TRIGGER IF NOT EXISTS generation_{event.lower()}_{table} AFTER {event} ON {table}"
    " BEGIN UPDATE generation SET value = value + 1 WHERE id = 0; END;\n"
    for table in WATCHED
    for event in ("INSERT", "UPDATE", "DELETE")
)

READ = "SELECT value FROM generation WHERE id = 0"


def read(db: sqlite3.Connection) -> int:
    """The generation as of the latest commit (of any process)."""
    row = db.execute(READ).fetchone()
    return 0 if row is None else int(row[0])
