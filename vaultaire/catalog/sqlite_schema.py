"""The SQLite catalog's own tables (the other modules' come with them) and its migrations."""

from __future__ import annotations

import sqlite3

from vaultaire.catalog import accounting, sqlite_users, versions
from vaultaire.sealing import SecretBox, is_sealed

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'active',
    created REAL NOT NULL,
    max_bytes INTEGER,
    max_objects INTEGER
);
-- secret_key is sealed (AES-GCM under the master key, see vaultaire/sealing.py), never plain.
CREATE TABLE IF NOT EXISTS credentials (
    access_key TEXT PRIMARY KEY,
    secret_key TEXT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS credentials_by_tenant ON credentials (tenant_id);
CREATE TABLE IF NOT EXISTS containers (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    placement TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (tenant_id, name)
);
-- Keys are stored as UTF-8 BLOBs: SQLite compares BLOBs with memcmp, which
-- is exactly S3's UTF-8 binary listing order, and the primary key is the index.
CREATE TABLE IF NOT EXISTS artifacts (
    container_id INTEGER NOT NULL,
    key BLOB NOT NULL,
    locator TEXT NOT NULL,
    size INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    modified REAL NOT NULL,
    content_type TEXT NOT NULL,
    metadata TEXT NOT NULL,
    PRIMARY KEY (container_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    container_id INTEGER NOT NULL,
    key BLOB NOT NULL,
    created REAL NOT NULL,
    content_type TEXT NOT NULL,
    extra TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (container_id, key, created, id);
CREATE INDEX IF NOT EXISTS uploads_by_age ON uploads (created);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    locator TEXT NOT NULL,
    size INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    modified REAL NOT NULL,
    checksum TEXT,
    placement TEXT,
    sealed_key TEXT,
    PRIMARY KEY (upload_id, number)
) WITHOUT ROWID;
-- Per-container settings (name = "cors", ...): opaque documents to the catalog,
-- deleted with their container in the same transaction.
CREATE TABLE IF NOT EXISTS container_settings (
    container_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (container_id, name)
) WITHOUT ROWID;
-- An unsigned CORS preflight names a container but no tenant.
CREATE INDEX IF NOT EXISTS containers_by_name ON containers (name);
"""


def migrate(db: sqlite3.Connection, box: SecretBox, now: float) -> None:
    """Bring a catalog written by an older version up to this schema, in one transaction."""
    (written,) = db.execute("PRAGMA user_version").fetchone()
    if written > versions.SCHEMA_VERSION:
        raise RuntimeError(
            f"the catalog {written=} was written by a newer Vaultaire (this one knows {versions.SCHEMA_VERSION})"
        )
    # 1 -> 2, versioning: the versions table is new (created empty); artifacts rows from before
    # it need no rewrite, they read as the current "null" version ordered by their time.
    # 2 -> 3, inline blobs: the inline_blobs table is new (created empty); nothing is rewritten.
    db.execute(f"PRAGMA user_version = {versions.SCHEMA_VERSION}")
    if "placement" not in {r[1] for r in db.execute("PRAGMA table_info(parts)")}:
        db.execute("ALTER TABLE parts ADD COLUMN placement TEXT")  # NULL: the container's placement
    if "sealed_key" not in {r[1] for r in db.execute("PRAGMA table_info(parts)")}:
        db.execute("ALTER TABLE parts ADD COLUMN sealed_key TEXT")  # NULL: a plaintext part
    columns = {r[1] for r in db.execute("PRAGMA table_info(tenants)")}
    for column in ("max_bytes", "max_objects"):
        if column not in columns:
            db.execute(f"ALTER TABLE tenants ADD COLUMN {column} INTEGER")
    accounting.backfill(db, now)
    sqlite_users.migrate(db)
    plain = db.execute("SELECT access_key, secret_key FROM credentials").fetchall()
    db.executemany(
        "UPDATE credentials SET secret_key = ? WHERE access_key = ?",
        [(box.seal(secret, access), access) for access, secret in plain if not is_sealed(secret)],
    )
