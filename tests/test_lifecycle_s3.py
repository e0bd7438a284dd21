"""A lifecycle transition to an s3 placement (SeaweedFS): one API, many backends. A multipart
object and an encrypted one move from the local disk upstream, read back whole, and expire
from there."""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from upstreams import ACCESS as UP_ACCESS
from upstreams import SECRET as UP_SECRET
from upstreams import keys

from tests.s3helpers import Server, upload_multipart
from vaultaire.drivers.s3 import S3Driver, S3DriverConfig
from vaultaire.lifecycle import evaluate
from vaultaire.lifecycle.runner import LifecycleRunner

DAY = 86400.0


@pytest_twisted.async_yield_fixture
async def server(tmp_path: Any, seaweed: Any) -> Any:
    config = S3DriverConfig(
        endpoint=seaweed.endpoint,
        bucket="vaultaire-blobs",
        access_key=UP_ACCESS,
        secret_key=UP_SECRET,
        prefix=f"lc-{uuid.uuid4().hex[:8]}/",
        part_size=5 * 2**20,
    )
    s = Server(str(tmp_path), placements={"cold": S3Driver(config, reactor, name="cold")})
    s.engine.min_part_size = 1
    await s.start("bucket")
    yield s
    await s.stop()


@pytest_twisted.ensureDeferred
async def test_transition_to_an_s3_placement_then_expiration(server: Server) -> None:
    body = (
        b"<LifecycleConfiguration><Rule><ID>archive</ID><Filter/><Status>Enabled</Status>"
        b"<Transition><Days>1</Days><StorageClass>cold</StorageClass></Transition>"
        b"<Expiration><Days>5</Days></Expiration></Rule></LifecycleConfiguration>"
    )
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    headers = {"Content-MD5": md5, "x-amz-transition-default-minimum-object-size": "varies_by_storage_class"}
    assert (await server.request("PUT", "/bucket", body, query="lifecycle", headers=headers)).code == 200
    parts = [os.urandom(1000), os.urandom(700)]
    await upload_multipart(server, "/bucket/multi", parts)
    sealed = os.urandom(3000)
    r = await server.request("PUT", "/bucket/sealed", sealed, headers={"x-amz-server-side-encryption": "AES256"})
    assert r.code == 200
    cold = server.engine.drivers["cold"]
    assert isinstance(cold, S3Driver)
    upstream = (cold.config.endpoint, cold.config.bucket, cold.config.prefix)
    now = time.time()
    run = LifecycleRunner(server.engine, clock=lambda: now + 2 * DAY)
    assert (await run.run()).actions == {evaluate.TRANSITION: 2}
    assert len(keys(*upstream)) == 3  # two parts and one blob, now upstream
    assert server.blob_files() == []  # and freed from the local disk
    r = await server.request("GET", "/bucket/multi")
    assert (r.code, r.body) == (200, b"".join(parts))
    r = await server.request("GET", "/bucket/sealed", headers={"Range": "bytes=100-199"})
    assert (r.code, r.body) == (206, sealed[100:200])
    run = LifecycleRunner(server.engine, clock=lambda: now + 6 * DAY)
    assert (await run.run()).actions == {evaluate.EXPIRE: 2}
    await server.sweep()  # a manifest's parts upstream wait out the read grace period
    assert keys(*upstream) == []
