"""kill -9 in the middle of a lifecycle run: the restarted daemon finishes it, and nothing is
lost that should not be, nor left behind (every blob file on either placement is referenced or
queued as garbage, every referenced blob is there)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.daemon import Daemon, catalog_rows, write_config

COUNT = 300
SIZE = 4096


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def ledger_agrees(data_dir: Path, cold: Path) -> tuple[bool, str]:
    on_disk = {("local", f) for f in files(data_dir / "blobs")} | {("local2", f) for f in files(cold)}
    # Small objects kept in the catalog (vaultaire/engine/inline.py): their rows are stored blobs too.
    on_disk |= {("local", f"inline:{r[0]:016x}") for r in catalog_rows(data_dir, "SELECT id FROM inline_blobs")}
    referenced: set[tuple[str, str]] = set()
    for locator, extra in catalog_rows(data_dir, "SELECT locator, metadata FROM artifacts"):
        placement = json.loads(extra).get("placement") or "local"
        referenced.add((placement, locator))
    queued = set(catalog_rows(data_dir, "SELECT placement, locator FROM garbage"))
    intents = catalog_rows(data_dir, "SELECT placement, locator FROM intents")
    staged = {f for _, f in on_disk if f.endswith(".part")}
    orphans = {b for b in on_disk if b not in referenced and b not in queued}
    missing = referenced - on_disk
    ok = not (orphans or missing or intents or staged)
    return ok, f"{len(orphans)} orphans, {len(missing)} missing, {len(intents)} intents, {len(staged)} staged"


@pytest.mark.timeout(240)
def test_kill_9_during_a_run(tmp_path: Path) -> None:
    cold = tmp_path / "cold-blobs"
    config = write_config(
        tmp_path, f'[lifecycle]\nday_seconds = 1\n\n[drivers.local2]\ntype = "local"\nroot = "{cold}"\n'
    )
    daemon = Daemon(tmp_path / "v", extra_args=["--config", config], workers=1).start()
    try:
        s3 = daemon.boto3_client()
        s3.create_bucket(Bucket="crash")
        bodies = {f"cold/{i:04d}": os.urandom(SIZE) for i in range(COUNT)}
        bodies |= {f"{kind}/{i:04d}": os.urandom(SIZE) for kind in ("tmp", "keep") for i in range(50)}

        def put(item: tuple[str, bytes]) -> None:
            s3.put_object(Bucket="crash", Key=item[0], Body=item[1])

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(put, bodies.items()))
        time.sleep(2)  # every object at least a lifecycle day old when the rules arrive
        s3.put_bucket_lifecycle_configuration(
            Bucket="crash",
            LifecycleConfiguration={
                "Rules": [
                    {"ID": "tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 1}},
                    {
                        "ID": "cold",
                        "Filter": {"And": {"Prefix": "cold/", "ObjectSizeGreaterThan": 0}},
                        "Status": "Enabled",
                        "Transitions": [{"Days": 1, "StorageClass": "local2"}],
                    },
                ]
            },
        )
        # Kill it once the run has moved more than a page (100 keys: a cursor is written) but not all.
        deadline = time.monotonic() + 60
        moved = 0
        while time.monotonic() < deadline:
            moved = len(files(cold)) if cold.exists() else 0
            if moved > 110:
                break
            time.sleep(0.005)
        daemon.kill9()
        assert 110 < moved < COUNT, f"the run was not caught in the middle ({moved} of {COUNT} moved)"
        cursor = catalog_rows(daemon.data_dir, "SELECT value FROM container_settings WHERE name = 'lifecycle-cursor'")
        assert cursor and cursor[0][0].startswith("cold/"), cursor  # where the restarted run goes on

        daemon.restart()
        s3 = daemon.boto3_client()

        def remaining() -> tuple[int, int]:
            rows = catalog_rows(daemon.data_dir, "SELECT key, metadata FROM artifacts")
            tmp = sum(1 for key, _ in rows if bytes(key).startswith(b"tmp/"))
            warm = sum(
                1
                for key, extra in rows
                if bytes(key).startswith(b"cold/") and json.loads(extra).get("placement") != "local2"
            )
            return tmp, warm

        deadline = time.monotonic() + 90
        while remaining() != (0, 0) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert remaining() == (0, 0)
        for key, body in bodies.items():
            if key.startswith("tmp/"):
                continue
            got = s3.get_object(Bucket="crash", Key=key)
            assert hashlib.md5(got["Body"].read()).hexdigest() == hashlib.md5(body).hexdigest(), key
            assert got.get("StorageClass", "STANDARD") == ("local2" if key.startswith("cold/") else "STANDARD")
        deadline = time.monotonic() + 60
        while True:
            ok, why = ledger_agrees(daemon.data_dir, cold)
            if ok or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert ok, why
        print(f"killed with {moved}/{COUNT} moved, cursor {cursor}")
    finally:
        daemon.stop()
