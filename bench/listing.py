#!/usr/bin/env python3
"""ListObjectsV2 page latency against containers of growing size. Run by hand, never in tests.

For each size N (default 10,000 and 1,000,000 keys named ``dir%04d/file%06d``):

1. start ``twistd vaultaire`` on a fresh data directory (tests/daemon.py's ``Daemon``) and
   create a bucket, then stop it;
2. insert N artifact rows straight into the data directory's SQLite catalog, with the
   catalog module's own schema (``vaultaire.catalog.sqlite.SCHEMA``) and metadata encoding
   (no blobs: listing never reads them);
3. start the daemon again on that directory and time ListObjectsV2 pages of 1000 keys over
   one keep-alive HTTP connection (presigned URLs made before timing, so neither signing nor
   client-side XML parsing is counted): the first page, a middle page and the last page, each
   reached with a real continuation token (obtained with ``start-after`` + ``max-keys=1``),
   flat and with delimiter ``/``.

Prints the median (and min) milliseconds per page of ``--repeat`` runs. Example:

    /work/venv/bin/python bench/listing.py --sizes 10000,1000000 --repeat 7
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from daemon import Daemon  # noqa: E402

from vaultaire.catalog.rows import ARTIFACT_COLUMNS as _ARTIFACT_COLUMNS  # noqa: E402
from vaultaire.catalog.rows import extra_json as _extra  # noqa: E402
from vaultaire.catalog.sqlite import SCHEMA  # noqa: E402
from vaultaire.model import Artifact  # noqa: E402

BUCKET = "listing"
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
PAGE = 1000


def keys_for(n: int, dirs: int) -> list[str]:
    """``n`` keys spread evenly over ``min(dirs, n)`` directories, in listing (byte) order."""
    dirs = max(1, min(dirs, n))
    per_dir = -(-n // dirs)
    keys = [f"dir{i // per_dir:04d}/file{i % per_dir:06d}" for i in range(n)]
    keys.sort()
    return keys


def load(data_dir: Path, keys: list[str]) -> float:
    """Insert one artifact row per key into the bucket's container; returns seconds taken."""
    started = time.monotonic()
    db = sqlite3.connect(data_dir / "catalog.sqlite3", isolation_level=None)
    db.executescript(SCHEMA)
    (container_id,) = db.execute("SELECT id FROM containers WHERE name = ?", (BUCKET,)).fetchone()
    now = time.time()
    extra = _extra(Artifact(container_id=container_id, key="", locator="", size=0, md5="", modified=now))
    md5 = "d41d8cd98f00b204e9800998ecf8427e"
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    sql = f"INSERT INTO artifacts ({_ARTIFACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    batch = 50_000
    for start in range(0, len(keys), batch):
        db.executemany(
            sql,
            (
                (container_id, k.encode(), f"bench/{i}", 1024, md5, now, "binary/octet-stream", extra)
                for i, k in enumerate(keys[start : start + batch], start)
            ),
        )
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return time.monotonic() - started


class Lister:
    """Presigned ListObjectsV2 requests over one persistent connection."""

    def __init__(self, d: Daemon) -> None:
        self.s3 = d.boto3_client()
        self.conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)

    def url(self, **params: object) -> str:
        return str(
            self.s3.generate_presigned_url("list_objects_v2", Params={"Bucket": BUCKET, **params}, ExpiresIn=3600)
        )

    def get(self, url: str) -> tuple[float, ET.Element]:
        parts = urllib.parse.urlsplit(url)
        started = time.perf_counter()
        self.conn.request("GET", f"{parts.path}?{parts.query}")
        response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {body[:500]!r}")
        return elapsed, ET.fromstring(body)

    def token_before(self, start_after: str | None, delimiter: str) -> str:
        """The continuation token of a one-entry page beginning right after ``start_after``."""
        params: dict[str, object] = {"MaxKeys": 1}
        if delimiter:
            params["Delimiter"] = delimiter
        if start_after is not None:
            params["StartAfter"] = start_after
        _, doc = self.get(self.url(**params))
        token = doc.findtext(f"{NS}NextContinuationToken")
        if not token:
            raise RuntimeError(f"no continuation token after {start_after!r}")
        return token


def page_entries(doc: ET.Element) -> list[str]:
    keys = [e.findtext(f"{NS}Key") or "" for e in doc.findall(f"{NS}Contents")]
    prefixes = [e.findtext(f"{NS}Prefix") or "" for e in doc.findall(f"{NS}CommonPrefixes")]
    return sorted(keys + prefixes)


def measure(d: Daemon, keys: list[str], repeat: int) -> list[dict[str, object]]:
    lister = Lister(d)
    rows: list[dict[str, object]] = []
    for delimiter in ("", "/"):
        entries = sorted({k.split("/")[0] + "/" for k in keys}) if delimiter else keys
        extra = {"Delimiter": delimiter} if delimiter else {}
        n = len(entries)
        # The page starting at entry ``i`` is reached with a token issued right after entry ``i - 1``.
        starts = {"first": 0, "middle": (n // 2) // PAGE * PAGE, "last": max(0, (n - 1) // PAGE * PAGE)}
        for name, start in starts.items():
            if start == 0:
                url = lister.url(MaxKeys=PAGE, **extra)
            else:
                # A one-entry page holding entry start-1 hands out the token for the page at ``start``.
                # Its start-after is entry start-2 (for a prefix "dirNNNN/": that directory's last key).
                before = None
                if start >= 2:
                    before = entries[start - 2]
                    if delimiter:
                        before = max(k for k in keys if k.startswith(before))
                url = lister.url(MaxKeys=PAGE, ContinuationToken=lister.token_before(before, delimiter), **extra)
            times = []
            got: list[str] = []
            lister.get(url)  # warm-up
            for _ in range(repeat):
                elapsed, doc = lister.get(url)
                times.append(elapsed * 1000)
                got = page_entries(doc)
            if got != entries[start : start + PAGE]:
                raise RuntimeError(
                    f"{name} page ({delimiter or 'flat'}) is wrong: {len(got)} entries,"
                    f" {got[:1]}..{got[-1:]}, expected {entries[start : start + 1]}.."
                )
            rows.append(
                {
                    "keys": len(keys),
                    "listing": "delimiter /" if delimiter else "flat",
                    "page": name,
                    "entries": len(got),
                    "median_ms": statistics.median(times),
                    "min_ms": min(times),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,1000000", help="comma-separated key counts")
    parser.add_argument("--dirs", type=int, default=10_000, help="directories the keys are spread over")
    parser.add_argument("--repeat", type=int, default=7, help="timed requests per page (median reported)")
    parser.add_argument("--scratch", help="where data dirs go (default: a temp dir, removed at the end)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON lines too")
    args = parser.parse_args()

    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="vaultaire-listing-"))
    all_rows: list[dict[str, object]] = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            d = Daemon(scratch / f"n{size}").start()
            try:
                d.boto3_client().create_bucket(Bucket=BUCKET)
            finally:
                d.stop()
            keys = keys_for(size, args.dirs)
            seconds = load(d.data_dir, keys)
            print(
                f"# {size:,} keys over {min(args.dirs, size):,} dirs loaded into the catalog in {seconds:.1f} s",
                flush=True,
            )
            d.restart()
            try:
                all_rows += measure(d, keys, args.repeat)
            finally:
                d.stop()
    finally:
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nListObjectsV2, {PAGE} entries a page, ms per page (median of {args.repeat}, min)\n")
    print("| keys | listing | page | entries | median ms | min ms |")
    print("|---:|---|---|---:|---:|---:|")
    for r in all_rows:
        print(
            f"| {r['keys']:,} | {r['listing']} | {r['page']} | {r['entries']} | {r['median_ms']:.1f} "
            f"| {r['min_ms']:.1f} |"
        )
    if args.json:
        for r in all_rows:
            print(json.dumps(r))
    if os.environ.get("VAULTAIRE_BENCH_STRICT"):
        slow = [r for r in all_rows if float(r["median_ms"]) > 100]  # type: ignore[arg-type]
        if slow:
            sys.exit(f"pages over 100 ms: {slow}")


if __name__ == "__main__":
    main()
