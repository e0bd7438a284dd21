"""A mirror over two real upstreams (SeaweedFS and a second Vaultaire), one killed mid-test."""

from __future__ import annotations

import os
import uuid

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from upstreams import ACCESS, SECRET, client, keys, second_vaultaire

from tests.s3helpers import Server, error_code, later, location_body
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
        killed = False  # set, and the upstream dead, before any write that sees it
        begun_after_kill = refused_after_kill = 0

        async def put(key: str, size: int) -> None:
            nonlocal refused, begun_after_kill, refused_after_kill
            after_kill = killed
            body = os.urandom(size)
            r = await server.request("PUT", f"/mirrored-bucket/{key}", body)
            if r.code == 200:
                acknowledged[key] = body
            elif after_kill:
                # A member known down: SlowDown, which SDKs retry with back-off.
                assert (r.code, error_code(r)) == (503, "SlowDown"), r.body
                refused += 1
            else:
                # Cut mid-write by the kill: the driver failed (ServiceUnavailable) or found the
                # member down (SlowDown); both 503, both retried by SDKs.
                assert (r.code, error_code(r)) in ((503, "SlowDown"), (503, "ServiceUnavailable")), r.body
                refused += 1
            begun_after_kill += after_kill
            refused_after_kill += after_kill and r.code != 200

        for i in range(10):
            await put(f"before/{i}", 64 * 1024)
        assert len(acknowledged) == 10

        # Three clients writing one after another; the second upstream dies under them once six of
        # their writes are acknowledged (an event, not a timer: a busy machine only slows it down).
        async def client_writes(n: int) -> None:
            nonlocal killed
            for i in range(25):
                await put(f"during/{n}/{i}", 256 * 1024)
                if not killed and sum(k.startswith("during/") for k in acknowledged) >= 6:
                    other.kill9()
                    killed = True
                await later(0.02)

        await gatherResults([Deferred.fromCoroutine(client_writes(n)) for n in range(3)])
        assert killed and not other.running
        during = sum(k.startswith("during/") for k in acknowledged)
        assert 6 <= during <= 75 - begun_after_kill
        # Every write begun with an upstream dead was refused (those in flight at the kill may go
        # either way, each acknowledged or refused, never both).
        assert 0 < begun_after_kill and 75 - during - 3 <= begun_after_kill == refused_after_kill
        assert during + refused == 75

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
        deadline = reactor.seconds() + 30  # the repair runs after the read has answered
        while await sw.stat(locator) is None and reactor.seconds() < deadline:
            await later(0.05)
        assert await sw.stat(locator) == len(acknowledged["before/5"])
        assert mirror.repairs == 1
        # The tally: the 10 before (2 deleted), the acknowledged during, "after"; refused: the rest, "while-down".
        assert (len(acknowledged), refused) == (10 - 2 + during + 1, 75 - during + 1)
    finally:
        await server.stop()
        other.stop()
