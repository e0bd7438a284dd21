"""A mirror over two real upstreams (SeaweedFS and a second Vaultaire), one killed mid-test."""

from __future__ import annotations

import os
import uuid

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from upstreams import ACCESS, SECRET, client, keys, second_vaultaire

from tests.s3helpers import Server, error_code, later
from tests.test_placement import location_body
from vaultaire.drivers.mirror import MirrorDriver
from vaultaire.drivers.s3 import S3Driver, S3DriverConfig

pytestmark = pytest.mark.timeout(180)


def upstream_driver(name: str, endpoint: str) -> S3Driver:
    config = S3DriverConfig(
        endpoint=endpoint,
        bucket="vaultaire-blobs",
        access_key=ACCESS,
        secret_key=SECRET,
        prefix=f"{name}-{uuid.uuid4().hex[:8]}/",
        timeout=5.0,
        retries=1,
    )
    return S3Driver(config, reactor, name=name)


@pytest_twisted.ensureDeferred
async def test_mirror_loses_no_acknowledged_write_when_an_upstream_dies_and_repairs_it_after(tmp_path, seaweed):
    other = second_vaultaire(tmp_path / "other", "vaultaire-blobs")
    sw = upstream_driver("sw", seaweed.endpoint)
    vt = upstream_driver("vt", other.endpoint_url)
    mirror = MirrorDriver("mirrored", [sw, vt], reactor)
    server = Server(str(tmp_path / "gw"), placements={"sw": sw, "vt": vt, "mirrored": mirror})
    await server.start()
    try:
        r = await server.request("PUT", "/mirrored-bucket", location_body("mirrored"))
        assert r.code == 200, r.body
        acknowledged: dict[str, bytes] = {}
        refused = 0

        async def put(key: str, size: int) -> None:
            nonlocal refused
            body = os.urandom(size)
            r = await server.request("PUT", f"/mirrored-bucket/{key}", body)
            if r.code == 200:
                acknowledged[key] = body
            else:
                assert (r.code, error_code(r)) in ((503, "SlowDown"), (503, "ServiceUnavailable")), r.body
                refused += 1

        for i in range(10):
            await put(f"before/{i}", 64 * 1024)
        assert len(acknowledged) == 10

        # Three clients writing one after another while the second upstream dies under them.
        async def client_writes(n: int) -> None:
            for i in range(25):
                await put(f"during/{n}/{i}", 256 * 1024)
                await later(0.02)

        reactor.callLater(0.4, other.kill9)
        await gatherResults([Deferred.fromCoroutine(client_writes(n)) for n in range(3)])
        assert not other.running
        assert any(k.startswith("during/") for k in acknowledged) and refused > 0

        # Down: every acknowledged write still reads back; new writes are refused, never half-done.
        for key, body in acknowledged.items():
            r = await server.request("GET", f"/mirrored-bucket/{key}")
            assert (r.code, r.body == body) == (200, True), key
        await put("while-down", 1000)
        assert "while-down" not in acknowledged
        health = await server.engine.health()
        assert health["drivers"]["mirrored"]["status"] == "degraded"
        # Deletes succeed for the client; the dead upstream's copies stay queued as garbage.
        for key in ["before/0", "before/1"]:
            r = await server.request("DELETE", f"/mirrored-bucket/{key}")
            assert r.code == 204
            del acknowledged[key]
        assert await server.catalog.garbage(100)

        # Back: the queued deletes are done, and both upstreams hold exactly the acknowledged blobs.
        other.restart()
        await server.engine.collect_garbage()
        assert await server.catalog.garbage(100) == []
        on_sw = {k.removeprefix(sw.config.prefix) for k in keys(seaweed.endpoint, "vaultaire-blobs", sw.config.prefix)}
        on_vt = {
            k.removeprefix(vt.config.prefix) for k in keys(other.endpoint_url, "vaultaire-blobs", vt.config.prefix)
        }
        expected = {(await server.catalog.artifact(1, key)).locator for key in acknowledged}
        assert on_sw == on_vt == expected
        for key, body in acknowledged.items():
            r = await server.request("GET", f"/mirrored-bucket/{key}")
            assert (r.code, r.body == body) == (200, True), key
        await put("after", 1000)
        assert "after" in acknowledged

        # A replica lost on the first upstream is repaired by the next read.
        locator = (await server.catalog.artifact(1, "before/5")).locator
        client(seaweed.endpoint).delete_object(Bucket="vaultaire-blobs", Key=sw.config.prefix + locator)
        r = await server.request("GET", "/mirrored-bucket/before/5")
        assert (r.code, r.body == acknowledged["before/5"]) == (200, True)
        for _ in range(100):
            if await sw.stat(locator) is not None:
                break
            await later(0.05)
        assert await sw.stat(locator) == len(acknowledged["before/5"])
        assert mirror.repairs == 1
        print(f"\nmirror: {len(acknowledged)} acknowledged, {refused} refused while an upstream was down")
    finally:
        await server.stop()
        other.stop()
