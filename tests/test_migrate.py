"""Migrating a container to another placement under concurrent reads and writes; resuming."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import uuid
from typing import Any

import pytest
import pytest_twisted
from daemon import ADMIN, Daemon, write_config
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from upstreams import ACCESS as UP_ACCESS
from upstreams import SECRET as UP_SECRET
from upstreams import keys

from tests.s3helpers import Server, complete_upload, later, upload_multipart, xml_values
from vaultaire.drivers.s3 import S3Driver, S3DriverConfig
from vaultaire.engine.migrate import migrate
from vaultaire.errors import DriverError

BUCKET = "moving-bucket"


def cold_driver(endpoint: str) -> S3Driver:
    config = S3DriverConfig(
        endpoint=endpoint,
        bucket="vaultaire-blobs",
        access_key=UP_ACCESS,
        secret_key=UP_SECRET,
        prefix=f"mig-{uuid.uuid4().hex[:8]}/",
        part_size=5 * 2**20,
    )
    return S3Driver(config, reactor, name="cold")


@pytest_twisted.async_yield_fixture
async def server(tmp_path, seaweed):
    cold = cold_driver(seaweed.endpoint)
    s = Server(str(tmp_path), placements={"cold": cold})
    s.engine.min_part_size = 0  # small parts keep the test quick
    await s.start(BUCKET)
    yield s, cold
    await s.stop()


async def placements_of(server: Server) -> set[str]:
    page = await server.catalog.list_artifacts(1, "", "", None, 10000)
    found = set()
    for entry in page.artifacts:
        found.add((await server.catalog.artifact(1, entry.key)).placement)
    return found


@pytest_twisted.ensureDeferred
async def test_migration_under_concurrent_reads_and_writes_loses_nothing(server):
    server, cold = server
    expected: dict[str, bytes] = {}
    for i in range(30):
        expected[f"k{i}"] = os.urandom(random.randint(0, 300_000))
        r = await server.request("PUT", f"/{BUCKET}/k{i}", expected[f"k{i}"])
        assert r.code == 200
    expected["multi"] = b"".join(parts := [os.urandom(200_000), os.urandom(100_000)])
    await upload_multipart(server, f"/{BUCKET}/multi", parts)
    pending_parts = [os.urandom(150_000), os.urandom(50_000)]
    pending = await upload_multipart(server, f"/{BUCKET}/pending", pending_parts[:1], complete=False)

    stop = False
    failures: list[str] = []
    # Every body ever sent per key: a read racing a write may see either, never anything else.
    sent: dict[str, set[str]] = {k: {hashlib.md5(v).hexdigest()} for k, v in expected.items()}

    async def writer(w: int) -> None:
        # Each writer owns its keys, so "the last acknowledged write" is well defined per key.
        mine = [f"k{i}" for i in range(30) if i % 2 == w]
        n = 0
        while not stop:
            key = random.choice([random.choice(mine), f"new{w}-{n}"])
            body = os.urandom(random.randint(1, 100_000))
            sent.setdefault(key, set()).add(hashlib.md5(body).hexdigest())
            r = await server.request("PUT", f"/{BUCKET}/{key}", body)
            if r.code == 200:
                expected[key] = body
            else:
                failures.append(f"PUT {key}: {r.code}")
            if n % 7 == 3:
                victim = random.choice(mine)
                r = await server.request("DELETE", f"/{BUCKET}/{victim}")
                if r.code == 204:
                    expected.pop(victim, None)
            n += 1

    async def reader() -> None:
        while not stop:
            key = random.choice(list(expected))
            r = await server.request("GET", f"/{BUCKET}/{key}")
            # A concurrent overwrite or delete may win the race; anything else is a loss.
            if r.code == 200 and hashlib.md5(r.body).hexdigest() not in sent[key]:
                failures.append(f"GET {key}: bytes nobody wrote")
            elif r.code not in (200, 404):
                failures.append(f"GET {key}: {r.code} {r.body[:200]!r}")
            await later(0)

    async def run_migration() -> Any:
        nonlocal stop
        container = await server.engine.catalog.container(
            (await server.catalog.credential("TESTACCESSKEY"))[1].id, BUCKET
        )
        try:
            return await migrate(server.engine, container, "cold", batch=7)
        finally:
            await later(0.3)  # let the clients go on a moment on the new placement
            stop = True

    results = await gatherResults(
        [Deferred.fromCoroutine(c) for c in (run_migration(), writer(0), writer(1), reader(), reader())],
        consumeErrors=True,
    )
    report = results[0]
    assert failures == []
    assert report.artifacts_moved > 0 and report.parts_moved == 1  # the rest were overwritten onto cold

    # The upload begun before the migration completes after it, on the new placement.
    r = await server.request("PUT", f"/{BUCKET}/pending", pending_parts[1], query=f"partNumber=2&uploadId={pending}")
    assert r.code == 200
    r = await server.request("GET", f"/{BUCKET}/pending", query=f"uploadId={pending}")
    etags = xml_values(r.body, "ETag")
    r = await complete_upload(server, f"/{BUCKET}/pending", pending, enumerate(etags, 1))
    assert r.code == 200, r.body
    expected["pending"] = b"".join(pending_parts)

    for key, data in expected.items():
        r = await server.request("GET", f"/{BUCKET}/{key}")
        assert r.code == 200 and hashlib.md5(r.body).hexdigest() == hashlib.md5(data).hexdigest(), key
    assert await placements_of(server) == {"cold"}
    await server.engine.collect_garbage()
    assert server.blob_files() == []  # nothing left on local disk
    r = await server.request("GET", f"/{BUCKET}", query="location")
    assert b">cold<" in r.body


class FailingAfter:
    """Wraps a driver: its n-th open_writer and later ones fail, as if the migration were killed."""

    def __init__(self, inner: Any, n: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.writers = 0
        self.n = n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def open_writer(self, locator: str, size_hint: int | None = None) -> Any:
        self.writers += 1
        if self.writers >= self.n:
            raise DriverError("interrupted")
        return self.inner.open_writer(locator, size_hint)


@pytest_twisted.ensureDeferred
async def test_an_interrupted_migration_resumes(server):
    server, cold = server
    bodies = {f"k{i}": os.urandom(1000 + i) for i in range(20)}
    for key, body in bodies.items():
        assert (await server.request("PUT", f"/{BUCKET}/{key}", body)).code == 200
    tenant = (await server.catalog.credential("TESTACCESSKEY"))[1]
    container = await server.catalog.container(tenant.id, BUCKET)
    server.engine.drivers["cold"] = FailingAfter(cold, 8)
    with pytest.raises(DriverError, match="interrupted"):
        await migrate(server.engine, container, "cold")
    assert await placements_of(server) == {"local", "cold"}  # half way
    for key, body in bodies.items():  # readable half way
        r = await server.request("GET", f"/{BUCKET}/{key}")
        assert (r.code, r.body == body) == (200, True)
    server.engine.drivers["cold"] = cold
    report = await migrate(server.engine, container, "cold")
    assert report.artifacts_moved == 20 - 7 and report.source == "cold"
    assert await placements_of(server) == {"cold"}
    for key, body in bodies.items():
        r = await server.request("GET", f"/{BUCKET}/{key}")
        assert (r.code, r.body == body) == (200, True)
    assert server.blob_files() == []
    assert len(keys(cold.config.endpoint, "vaultaire-blobs", cold.config.prefix)) == 20


@pytest.mark.timeout(120)
def test_vaultaire_admin_migrate_moves_a_live_daemons_container(tmp_path, seaweed):
    prefix = f"cli-{uuid.uuid4().hex[:8]}/"
    config = write_config(
        tmp_path,
        f"""
[drivers.cold]
type = "s3"
endpoint = "{seaweed.endpoint}"
bucket = "vaultaire-blobs"
prefix = "{prefix}"
access_key = "{UP_ACCESS}"
secret_key = "{UP_SECRET}"
""",
    )
    with Daemon(tmp_path / "v", extra_args=["--config", config]) as daemon:
        s3 = daemon.boto3_client()
        s3.create_bucket(Bucket="photos")
        bodies = {f"p{i}.jpg": os.urandom(5000 * (i + 1)) for i in range(12)}
        for key, body in bodies.items():
            s3.put_object(Bucket="photos", Key=key, Body=body)
        cmd = [ADMIN, "--config", config, "--data", str(daemon.data_dir)]
        done = subprocess.run([*cmd, "migrate", "photos", "tape"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "no placement named 'tape'" in done.stderr
        done = subprocess.run([*cmd, "--json", "migrate", "photos", "cold"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert (result["from"], result["to"], result["artifacts_moved"]) == ("local", "cold", 12)
        # The daemon serves the moved container at once, reads and writes.
        for key, body in bodies.items():
            assert s3.get_object(Bucket="photos", Key=key)["Body"].read() == body
        s3.put_object(Bucket="photos", Key="after", Body=b"new")
        assert len(keys(seaweed.endpoint, "vaultaire-blobs", prefix)) == 13
        assert s3.get_bucket_location(Bucket="photos")["LocationConstraint"] == "cold"
        blobs = [p for p in (daemon.data_dir / "blobs").rglob("*") if p.is_file()]
        assert blobs == []
