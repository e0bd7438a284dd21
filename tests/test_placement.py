"""Placement: drivers named in the config, LocationConstraint picks one, GetBucketLocation answers it."""

from __future__ import annotations

import uuid

import pytest
import pytest_twisted
from daemon import free_port, run_twistd, write_config
from twisted.internet import reactor
from upstreams import ACCESS as UP_ACCESS
from upstreams import SECRET as UP_SECRET
from upstreams import keys

from tests.s3helpers import Server, error_code, location_body
from vaultaire.config import ConfigError, build, load_file
from vaultaire.drivers.build import build_placements
from vaultaire.drivers.s3 import S3Driver, S3DriverConfig


@pytest_twisted.async_yield_fixture
async def two_placements(tmp_path, seaweed):
    """A server whose default placement is local disk, with an s3 placement named "cold"."""
    cold = S3Driver(
        S3DriverConfig(
            endpoint=seaweed.endpoint,
            bucket="vaultaire-blobs",
            access_key=UP_ACCESS,
            secret_key=UP_SECRET,
            prefix=f"cold-{uuid.uuid4().hex[:8]}/",
        ),
        reactor,
        name="cold",
    )
    s = Server(str(tmp_path), placements={"cold": cold})
    await s.start()
    yield s, cold, seaweed
    await s.stop()


@pytest_twisted.ensureDeferred
async def test_location_constraint_places_the_container_and_is_answered_back(two_placements):
    server, cold, seaweed = two_placements
    r = await server.request("PUT", "/archive", location_body("cold"))
    assert r.code == 200, r.body
    r = await server.request("PUT", "/hot")
    assert r.code == 200, r.body
    r = await server.request("GET", "/archive", query="location")
    assert b">cold</LocationConstraint>" in r.body
    r = await server.request("GET", "/hot", query="location")
    assert b"<LocationConstraint" in r.body and b"cold" not in r.body  # the default: the region (empty)

    r = await server.request("PUT", "/archive/a", b"to the cold store")
    assert r.code == 200
    r = await server.request("PUT", "/hot/b", b"to local disk")
    assert r.code == 200
    upstream = keys(seaweed.endpoint, "vaultaire-blobs", cold.config.prefix)
    assert len(upstream) == 1 and len(server.blob_files()) == 1  # one blob each, where placed
    r = await server.request("GET", "/archive/a")
    assert (r.code, r.body) == (200, b"to the cold store")
    r = await server.request("DELETE", "/archive/a")
    assert r.code == 204
    await server.sweep()  # an upstream object is freed after the grace period for reads in flight
    assert keys(seaweed.endpoint, "vaultaire-blobs", cold.config.prefix) == []


@pytest_twisted.ensureDeferred
async def test_the_region_means_the_default_placement_and_unknown_names_are_refused(two_placements):
    server, _, _ = two_placements
    r = await server.request("PUT", "/regional", location_body("us-east-1"))
    assert r.code == 200, r.body
    r = await server.request("PUT", "/nowhere", location_body("tape"))
    assert (r.code, error_code(r)) == (400, "InvalidLocationConstraint")
    assert b"<LocationConstraint>tape</LocationConstraint>" in r.body
    r = await server.request("HEAD", "/nowhere")
    assert r.code == 404


# -- the configuration


def test_config_names_drivers_and_placements(tmp_path):
    path = write_config(
        tmp_path,
        """
[drivers.cold]
type = "s3"
endpoint = "http://127.0.0.1:8333"
region = "us-east-1"
bucket = "vaultaire-blobs"
prefix = ""
access_key = "a"
secret_key = "s"
timeout = 5

[drivers.disk2]
type = "local"
root = "/tmp/elsewhere"

[placement]
default = "both"

[placements.both]
policy = "mirror"
drivers = ["local", "cold"]

[placements.spare]
policy = "failover"
drivers = ["disk2", "cold"]
""",
    )
    settings = build(load_file(path), {})
    assert settings.default_placement == "both"
    built = build_placements(settings.drivers, settings.placements, str(tmp_path), reactor)
    assert sorted(built) == ["both", "cold", "disk2", "local", "spare"]
    assert isinstance(built["cold"], S3Driver) and built["cold"].config.timeout == 5.0


@pytest.mark.parametrize(
    "text, needle",
    [
        ('[drivers.cold]\ntype = "tape"\n', "type"),
        ('[drivers.cold]\ntype = "s3"\nendpoint = "http://x"\nbucket = "b"\naccess_key = "a"\n', "secret_key"),
        ('[drivers.cold]\ntype = "s3"\nendpoint = "x"\nbucket = "b"\naccess_key = "a"\nsecret_key = "s"\n', "http"),
        ('[drivers.cold]\ntype = "local"\nbucket = "b"\n', "bucket"),
        ('[placements.p]\npolicy = "mirror"\ndrivers = ["local", "nope"]\n', "nope"),
        ('[placements.p]\npolicy = "stripe"\ndrivers = ["local"]\n', "policy"),
        ('[placements.local]\npolicy = "mirror"\ndrivers = ["local", "local"]\n', "already"),
        ('[placement]\ndefault = "cold"\n', "cold"),
    ],
)
def test_bad_backend_configs_are_refused_clearly(tmp_path, text, needle):
    with pytest.raises(ConfigError, match=needle):
        build(load_file(write_config(tmp_path, text)), {})


@pytest.mark.timeout(90)
def test_a_missing_upstream_bucket_stops_the_daemon_with_one_line(tmp_path, seaweed):
    path = write_config(
        tmp_path,
        f"""
[drivers.cold]
type = "s3"
endpoint = "{seaweed.endpoint}"
bucket = "bucket-that-is-not-there"
access_key = "{UP_ACCESS}"
secret_key = "{UP_SECRET}"

[placement]
default = "cold"
""",
    )
    result = run_twistd(
        [
            "--config",
            path,
            "--data",
            str(tmp_path / "d"),
            "--listen",
            f"tcp:{free_port()}:interface=127.0.0.1",
            "--ops",
            f"tcp:{free_port()}:interface=127.0.0.1",
        ],
        tmp_path,
        {"VAULTAIRE_ACCESS_KEY": "AKIAEXAMPLE000000001", "VAULTAIRE_SECRET_KEY": "x" * 40},
    )
    assert result.returncode != 0
    assert "bucket 'bucket-that-is-not-there' is not usable" in result.stderr, result.stderr


@pytest.mark.timeout(90)
def test_every_driver_shows_on_health_and_in_metrics(tmp_path, seaweed):
    import json
    import time
    import urllib.request

    from daemon import Daemon

    path = write_config(
        tmp_path,
        f"""
[drivers.cold]
type = "s3"
endpoint = "{seaweed.endpoint}"
bucket = "vaultaire-blobs"
prefix = "health/"
access_key = "{UP_ACCESS}"
secret_key = "{UP_SECRET}"

[placements.both]
policy = "mirror"
drivers = ["local", "cold"]
""",
    )
    with Daemon(tmp_path / "v", extra_args=["--config", path]) as daemon:
        deadline = time.monotonic() + 20
        while True:
            with urllib.request.urlopen(daemon.ops_url + "/health") as r:
                health = json.load(r)
            if "drivers" in health or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        drivers = health["drivers"]
        assert drivers["cold"]["status"] == "ok" and drivers["cold"]["latency_seconds"] > 0
        assert drivers["local"]["status"] == "ok"
        assert drivers["both"] == {
            "status": "ok",
            "policy": "mirror",
            "members": {"local": "ok", "cold": "ok"},
            "repairs": 0,
        }
        with urllib.request.urlopen(daemon.ops_url + "/metrics") as r:
            metrics = r.read().decode()
        for name in ("cold", "local", "both"):
            assert f'vaultaire_driver_up{{driver="{name}"}} 1.0' in metrics
        assert 'vaultaire_driver_latency_seconds{driver="cold"}' in metrics
        assert 'vaultaire_driver_errors{driver="cold"} 0.0' in metrics
