"""The driver contract, one set of tests for every driver.

``memory`` and ``local`` in process; ``s3`` against two real upstreams on
127.0.0.1: SeaweedFS and a second Vaultaire on the local driver.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.driverio import put, read
from vaultaire.drivers.failover import FailoverDriver
from vaultaire.drivers.local import LocalDriver
from vaultaire.drivers.memory import MemoryDriver
from vaultaire.drivers.mirror import MirrorDriver
from vaultaire.drivers.s3 import S3Driver, S3DriverConfig
from vaultaire.errors import DriverError, DriverUnavailable

DRIVERS = ["memory", "local", "s3-seaweed", "s3-vaultaire", "mirror", "failover"]


def s3_config(endpoint: str, **overrides: Any) -> S3DriverConfig:
    from upstreams import ACCESS, SECRET

    values: dict[str, Any] = {
        "endpoint": endpoint,
        "bucket": "vaultaire-blobs",
        "access_key": ACCESS,
        "secret_key": SECRET,
        "prefix": f"t-{uuid.uuid4().hex[:8]}/",
        "part_size": 5 * 2**20,
        "timeout": 5.0,
        "retries": 1,
    }
    values.update(overrides)
    return S3DriverConfig(**values)


@pytest.fixture(params=DRIVERS)
def driver_factory(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    kind = request.param

    def make(**overrides: Any) -> Any:
        if kind == "memory":
            return MemoryDriver()
        if kind == "local":
            return LocalDriver(str(tmp_path / "blobs"), reactor)
        if kind == "mirror":  # local disk and SeaweedFS
            endpoint = request.getfixturevalue("seaweed").endpoint
            members = [LocalDriver(str(tmp_path / "m1"), reactor, name="m1"), S3Driver(s3_config(endpoint), reactor)]
            return MirrorDriver("mirror", members, reactor)
        if kind == "failover":
            members = [MemoryDriver("f1"), LocalDriver(str(tmp_path / "f2"), reactor, name="f2")]
            return FailoverDriver("failover", members, reactor, str(tmp_path / "journal"))
        upstream = request.getfixturevalue("seaweed" if kind == "s3-seaweed" else "upstream_vaultaire")
        endpoint = upstream.endpoint if kind == "s3-seaweed" else upstream.endpoint_url
        return S3Driver(s3_config(endpoint, **overrides), reactor, name=kind)

    make.kind = kind  # type: ignore[attr-defined]
    return make


@pytest_twisted.async_yield_fixture
async def driver(driver_factory: Any) -> Any:
    d = driver_factory()
    members = getattr(d, "members", [])  # composites leave their members to their owner (the engine)
    for m in members:
        await m.start()
    await d.start()
    yield d
    await d.stop()
    for m in members:
        await m.stop()


@pytest.mark.parametrize("known_size", [True, False], ids=["sized", "unsized"])
@pytest_twisted.ensureDeferred
async def test_write_read_ranges_stat_delete(driver, known_size):
    data = os.urandom(3 * 2**20 + 17)
    await put(driver, "1/ab/blob", data, len(data) if known_size else None)
    assert await driver.stat("1/ab/blob") == len(data)
    assert await read(driver, "1/ab/blob", 0, len(data) - 1) == data
    assert await read(driver, "1/ab/blob", 5, 5) == data[5:6]
    assert await read(driver, "1/ab/blob", 2**20, 2 * 2**20 + 3) == data[2**20 : 2 * 2**20 + 4]
    await driver.delete("1/ab/blob")
    assert await driver.stat("1/ab/blob") is None
    await driver.delete("1/ab/blob")  # already gone: not an error
    with pytest.raises(DriverError):
        await driver.open_reader("1/ab/blob", 0, 0)


@pytest_twisted.ensureDeferred
async def test_empty_blob(driver):
    await put(driver, "1/cd/empty", b"", 0)
    assert await driver.stat("1/cd/empty") == 0
    assert await read(driver, "1/cd/empty", 0, -1) == b""


@pytest_twisted.ensureDeferred
async def test_unsized_blob_larger_than_a_part_goes_up_in_parts(driver):
    data = os.urandom(11 * 2**20 + 5)  # three upstream parts of 5 MiB for s3
    await put(driver, "1/ef/big", data, None, chunk=1024 * 1024)
    assert await driver.stat("1/ef/big") == len(data)
    assert await read(driver, "1/ef/big", 0, len(data) - 1, pause_every=3) == data


@pytest.mark.parametrize("known_size", [True, False], ids=["sized", "unsized"])
@pytest_twisted.ensureDeferred
async def test_abort_leaves_nothing(driver, known_size):
    data = os.urandom(6 * 2**20)
    writer = driver.open_writer("1/aa/aborted", len(data) + 10 if known_size else None)
    for i in range(0, len(data), 2**20):
        await writer.write(data[i : i + 2**20])
    await writer.abort()
    await writer.abort()  # twice is fine
    assert await driver.stat("1/aa/aborted") is None  # gone when abort() has fired, not later


@pytest_twisted.ensureDeferred
async def test_a_wrong_size_hint_fails_the_commit(driver):
    writer = driver.open_writer("1/bb/short", 100)
    await writer.write(b"x" * 60)
    with pytest.raises(DriverError):
        await writer.commit()
    await writer.abort()
    assert await driver.stat("1/bb/short") is None


@pytest_twisted.ensureDeferred
async def test_a_reader_stopped_early_releases_the_blob(driver):
    data = os.urandom(4 * 2**20)
    await put(driver, "1/cc/stop", data, len(data))
    reader = await driver.open_reader("1/cc/stop", 0, len(data) - 1)
    reader.stop()
    # The blob is still whole for the next reader, and the driver still works.
    assert await read(driver, "1/cc/stop", 0, len(data) - 1) == data


@pytest_twisted.ensureDeferred
async def test_health_reports_ok(driver):
    health = await driver.health()
    assert health["status"] == "ok"


# -- s3 only


@pytest_twisted.ensureDeferred
async def test_s3_upstream_down_is_a_quick_unavailable_error(seaweed):
    from daemon import free_port

    port = free_port()  # nothing listens there
    d = S3Driver(s3_config(f"http://127.0.0.1:{port}", timeout=2.0, retries=1), reactor)
    with pytest.raises(DriverUnavailable):
        await d.open_reader("1/aa/x", 0, 0)
    writer = d.open_writer("1/aa/y", 5)
    with pytest.raises(DriverUnavailable):
        await writer.write(b"hello")
    await writer.abort()
    writer = d.open_writer("1/aa/z", None)
    await writer.write(b"hello")
    with pytest.raises(DriverUnavailable):
        await writer.commit()
    health = await d.health()
    assert health["status"] == "error"
    await d.stop()


@pytest_twisted.ensureDeferred
async def test_s3_missing_bucket_is_a_clear_error_at_start(seaweed):
    d = S3Driver(s3_config(seaweed.endpoint, bucket="no-such-bucket-here"), reactor, name="cold")
    with pytest.raises(DriverError, match="bucket 'no-such-bucket-here' is not usable"):
        await d.start()
    await d.stop()


@pytest_twisted.ensureDeferred
async def test_s3_blobs_live_under_the_prefix(seaweed):
    from upstreams import keys

    config = s3_config(seaweed.endpoint)
    d = S3Driver(config, reactor)
    await d.start()
    await put(d, "7/ab/one", b"one", 3)
    await put(d, "7/ab/two", b"two" * 3000000, None)
    assert sorted(keys(seaweed.endpoint, "vaultaire-blobs", config.prefix)) == [
        config.prefix + "7/ab/one",
        config.prefix + "7/ab/two",
    ]
    await d.stop()


@pytest_twisted.ensureDeferred
async def test_s3_over_tls_checks_the_certificate(tmp_path):
    from daemon import Daemon, self_signed_certificate
    from upstreams import ACCESS, SECRET, client

    key, cert = self_signed_certificate(tmp_path)
    upstream = Daemon(
        tmp_path / "tls",
        access_key=ACCESS,
        secret_key=SECRET,
        scheme="https",
        verify=str(cert),
        listen_template=f"ssl:{{port}}:privateKey={key}:certKey={cert}:interface=127.0.0.1",
    ).start()
    try:
        client(upstream.endpoint_url, verify=str(cert)).create_bucket(Bucket="vaultaire-blobs")
        trusting = S3Driver(s3_config(upstream.endpoint_url, ca_file=str(cert)), reactor)
        await trusting.start()
        await put(trusting, "1/tl/s", b"over tls", 8)
        assert await read(trusting, "1/tl/s", 0, 7) == b"over tls"
        await trusting.stop()
        # Without the CA, the self-signed certificate is refused; with tls_verify off it is not checked.
        strict = S3Driver(s3_config(upstream.endpoint_url, retries=0), reactor)
        with pytest.raises(DriverError):
            await strict.start()
        await strict.stop()
        lax = S3Driver(s3_config(upstream.endpoint_url, tls_verify=False), reactor)
        await lax.start()
        await lax.stop()
    finally:
        upstream.stop()
