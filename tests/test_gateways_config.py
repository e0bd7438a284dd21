"""Many gateways, one deployment: the catalog setting, the leases, and placements a shared catalog refuses.

In process and fast: a SQLite catalog with a fake clock for the leases, the
config module for the settings, and twistd run to its one-line refusal.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest
import pytest_twisted
from daemon import ADMIN, assert_one_line_failure, run_twistd, write_config
from twisted.internet import reactor
from twisted.internet.defer import DeferredList

from vaultaire.catalog.open import open_catalog, sqlite_path
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.config import ConfigError, Settings, build, check_shared_catalog, redact_url
from vaultaire.deployment import BOX_HOLDER, DeploymentJobs
from vaultaire.sealing import SecretBox, load_master_key

S3_DRIVER = {
    "type": "s3",
    "endpoint": "http://127.0.0.1:1",
    "bucket": "b",
    "access_key": "a",
    "secret_key": "s",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def _catalog(path: Path, clock: Clock) -> SQLiteCatalog:
    data = str(path.parent)
    box = SecretBox(load_master_key(Settings(data=data), data, create=True))
    catalog = SQLiteCatalog(str(path), reactor, box, clock=clock)
    await catalog.start()
    return catalog


# -- leases


@pytest_twisted.ensureDeferred
async def test_lease_is_taken_renewed_and_taken_over_only_after_it_expires(tmp_path: Path) -> None:
    clock = Clock()
    catalog = await _catalog(tmp_path / "catalog.sqlite3", clock)
    try:
        assert await catalog.take_lease("job:x", "a", 30)
        assert not await catalog.take_lease("job:x", "b", 30)  # a holds it
        assert await catalog.lease_holder("job:x") == ("a", 30.0)
        clock.now += 29
        assert not await catalog.take_lease("job:x", "b", 30)
        assert await catalog.take_lease("job:x", "a", 30)  # renewed: until now + 30
        assert not await catalog.take_lease("job:x", "a", 30, renew=False)  # a job's lease is not re-run early
        clock.now += 29
        assert not await catalog.take_lease("job:x", "b", 30)
        clock.now += 1  # expired: the next taker wins
        assert await catalog.lease_holder("job:x") is None
        assert await catalog.take_lease("job:x", "b", 30)
        assert not await catalog.take_lease("job:x", "a", 30)
        await catalog.release_lease("job:x", "a")  # not a's: nothing happens
        assert await catalog.lease_holder("job:x") == ("b", 30.0)
        await catalog.release_lease("job:x", "b")
        assert await catalog.take_lease("job:x", "a", 30)
    finally:
        await catalog.stop()


@pytest_twisted.ensureDeferred
async def test_exactly_one_of_two_catalog_processes_takes_a_free_lease(tmp_path: Path) -> None:
    # Two catalogs on one file: two gateways on one machine (sqlite:/// url), racing.
    clock = Clock()
    path = tmp_path / "shared.sqlite3"
    one, two = await _catalog(path, clock), await _catalog(path, clock)
    try:
        for round_ in range(20):
            name = f"job:{round_}"
            results = await DeferredList(
                [c.take_lease(name, holder, 60) for c, holder in ((one, "one"), (two, "two")) for _ in range(3)],
                consumeErrors=True,
            )
            assert all(ok for ok, _ in results), results
            won = {holder for (ok, took), holder in zip(results, ["one"] * 3 + ["two"] * 3, strict=True) if took}
            assert len(won) == 1, (name, won)
            assert (await one.lease_holder(name))[0] in won  # type: ignore[index]
    finally:
        await one.stop()
        await two.stop()


@pytest_twisted.ensureDeferred
async def test_a_job_runs_once_per_period_across_gateways_and_another_takes_over(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "shared.sqlite3"
    catalogs = [await _catalog(path, clock), await _catalog(path, clock)]
    runs: list[int] = []
    try:
        from prometheus_client import CollectorRegistry

        ticks = []
        for index, catalog in enumerate(catalogs):
            jobs = DeploymentJobs(catalog, CollectorRegistry(), shared=True, check_seconds=10)

            async def work(index: int = index) -> None:
                runs.append(index)

            seconds, tick = jobs.job("sweep", 60, lambda work=work: pytest_twisted.ensureDeferred(work)())
            assert seconds == 10  # checked every 10 s, run every 60 s
            ticks.append(tick)
        # Six minutes of both gateways ticking every 10 s: six runs, not twelve, not 36.
        for _ in range(36):
            for tick in ticks:
                await tick()
            clock.now += 10
        assert len(runs) == 6, runs
        holder = runs[-1]
        # The gateway that ran last dies (it ticks no more): the other runs the job one period
        # after the last run at most.
        survivor = ticks[1 - holder]
        before = len(runs)
        for _ in range(6):  # one period
            await survivor()
            clock.now += 10
        assert runs[before:] == [1 - holder]
    finally:
        for catalog in catalogs:
            await catalog.stop()


@pytest_twisted.ensureDeferred
async def test_a_run_longer_than_its_period_keeps_its_lease_and_no_second_run_starts(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry
    from twisted.internet.defer import Deferred

    clock = Clock()
    path = tmp_path / "shared.sqlite3"
    one, two = await _catalog(path, clock), await _catalog(path, clock)
    try:
        long_run: Deferred[None] = Deferred()
        started: list[str] = []

        def work(who: str) -> Deferred[None]:
            started.append(who)
            return long_run if who == "one" else Deferred.fromCoroutine(_nothing())

        first = DeploymentJobs(one, CollectorRegistry(), shared=True, check_seconds=10)
        second = DeploymentJobs(two, CollectorRegistry(), shared=True, check_seconds=10)
        _, tick_one = first.job("lifecycle", 30, lambda: work("one"))
        _, tick_two = second.job("lifecycle", 30, lambda: work("two"))
        await tick_one()  # returns at once: the run goes on, the timer keeps ticking
        assert started == ["one"] and not first.idle().called
        for _ in range(12):  # two minutes, four periods: "one" keeps renewing, "two" never starts
            clock.now += 10
            await tick_two()
            await tick_one()
        assert started == ["one"]
        long_run.callback(None)
        assert first.idle().called
        clock.now += 30
        await tick_two()
        assert started == ["one", "two"]
    finally:
        await one.stop()
        await two.stop()


async def _nothing() -> None:
    return None


@pytest_twisted.ensureDeferred
async def test_a_box_with_its_own_catalog_frees_its_earlier_leases_at_start(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    clock = Clock()
    catalog = await _catalog(tmp_path / "catalog.sqlite3", clock)
    try:
        ran: list[str] = []

        async def work() -> None:
            ran.append("x")

        jobs = DeploymentJobs(catalog, CollectorRegistry(), shared=False)
        assert jobs.holder == BOX_HOLDER
        _, tick = jobs.job("sweep", 600, lambda: pytest_twisted.ensureDeferred(work)())
        await tick()
        # A restart (a new DeploymentJobs on the same catalog): the sweep runs at start again.
        again = DeploymentJobs(catalog, CollectorRegistry(), shared=False)
        _, tick = again.job("sweep", 600, lambda: pytest_twisted.ensureDeferred(work)())
        await tick()
        assert ran == ["x"]
        await again.forget_box_leases()
        await tick()
        assert ran == ["x", "x"]
    finally:
        await catalog.stop()


# -- settings


def test_catalog_settings_from_the_file_and_their_checks(tmp_path: Path) -> None:
    values = {"catalog_url": "sqlite:////srv/c.sqlite3", "catalog_pool_size": 4, "catalog_statement_timeout": 5}
    settings = build({**values, "drivers": {"blobs": S3_DRIVER}, "default_placement": "blobs"}, {})
    assert (settings.catalog_url, settings.catalog_pool_size, settings.catalog_statement_timeout) == (
        "sqlite:////srv/c.sqlite3",
        4,
        5.0,
    )
    with pytest.raises(ConfigError, match="pool_size"):
        build({"catalog_pool_size": 0}, {})
    with pytest.raises(ConfigError, match="statement_timeout"):
        build({"catalog_statement_timeout": 0}, {})
    with pytest.raises(ConfigError, match=r"must start with postgresql://") as e:
        build({"catalog_url": "mysql://root:hunter2@db/x"}, {})
    assert "hunter2" not in str(e.value)  # never a password in an error line
    assert redact_url("postgresql://u:secret@h:5432/d?sslmode=require") == "postgresql://u:***@h:5432/d?sslmode=require"


def test_sqlite_urls_name_a_file_and_no_url_is_the_data_directory(tmp_path: Path) -> None:
    assert sqlite_path(None, str(tmp_path)) == str(tmp_path / "catalog.sqlite3")
    assert sqlite_path("sqlite:////srv/v/c.sqlite3", "x") == "/srv/v/c.sqlite3"
    assert sqlite_path("postgresql://h/d", "x") is None
    with pytest.raises(ConfigError, match="must name a file"):
        sqlite_path("sqlite:////srv/v/", "x")
    from vaultaire.catalog.postgres import PostgresCatalog

    # Not started: nothing connects until start(); the URL is PostgreSQL's (tests/test_postgres_catalog.py).
    assert isinstance(
        open_catalog("postgresql://u:pw@h/d", str(tmp_path), reactor, SecretBox(os.urandom(32))), PostgresCatalog
    )
    with pytest.raises(ConfigError, match="unknown catalog URL") as e:
        open_catalog("mysql://u:pw@h/d", str(tmp_path), reactor, SecretBox(os.urandom(32)))
    assert "pw@" not in str(e.value)


def _checked(file_values: dict[str, object]) -> Settings:
    settings = build(file_values, {})
    check_shared_catalog(settings)
    return settings


def test_a_shared_catalog_refuses_host_local_placements() -> None:
    build = _checked
    shared = {"catalog_url": "sqlite:////srv/c.sqlite3"}
    with pytest.raises(ConfigError, match="same master key"):
        build({**shared, "drivers": {"up": S3_DRIVER}, "default_placement": "up"})
    shared["master_key_file"] = "/srv/master.key"
    # The default placement is the implicit local driver: on one host's disk.
    with pytest.raises(ConfigError, match="no implicit local driver"):
        build(shared)
    with pytest.raises(ConfigError, match=r"keeps blobs on this host's disk \(/srv/blobs\).*shared = true"):
        build({**shared, "drivers": {"disk": {"type": "local", "root": "/srv/blobs"}}, "default_placement": "disk"})
    with pytest.raises(ConfigError, match="memory driver"):
        build({**shared, "drivers": {"m": {"type": "memory"}}, "default_placement": "m"})
    with pytest.raises(ConfigError, match="absolute root"):
        build({**shared, "drivers": {"nfs": {"type": "local", "shared": True}}, "default_placement": "nfs"})
    # Marked shared (a network filesystem every gateway mounts), or an s3 driver: accepted.
    nfs = {"type": "local", "root": "/mnt/nfs/blobs", "shared": True}
    assert build({**shared, "drivers": {"nfs": nfs}, "default_placement": "nfs"}).default_placement == "nfs"
    assert build({**shared, "drivers": {"up": S3_DRIVER}, "default_placement": "up"}).default_placement == "up"
    # One box (no url): the local driver as always.
    assert build({}).default_placement == "local"


def test_twistd_refuses_a_shared_catalog_without_one_key_or_with_a_local_placement(tmp_path: Path) -> None:
    catalog = ["--data", str(tmp_path / "data"), "--catalog", f"sqlite:///{tmp_path}/shared.sqlite3", "--workers", "1"]
    assert_one_line_failure(run_twistd(catalog, tmp_path), "same master key", "master_key_file")
    key = tmp_path / "master.key"
    key.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    keyed = write_config(tmp_path, f'[security]\nmaster_key_file = "{key}"\n', name="keyed.toml")
    result = run_twistd(["--config", keyed, *catalog], tmp_path)
    assert_one_line_failure(result, "no implicit local driver", "[drivers.NAME] of type s3")
    config = write_config(
        tmp_path,
        f'[security]\nmaster_key_file = "{key}"\n'
        '[drivers.disk]\ntype = "local"\nroot = "/srv/x"\n[placement]\ndefault = "disk"\n',
    )
    result = run_twistd(["--config", config, *catalog], tmp_path)
    assert_one_line_failure(result, "[drivers.disk] keeps blobs on this host's disk", "shared = true")
    assert not (tmp_path / "shared.sqlite3").exists()  # refused before anything was written


def test_admin_uses_the_catalog_the_url_names_with_the_gateways_key(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "catalog.sqlite3"
    key = tmp_path / "master.key"
    key.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    driver = "".join(f'{k} = "{v}"\n' for k, v in S3_DRIVER.items())
    config = write_config(
        tmp_path,
        f'[catalog]\nurl = "sqlite:///{shared}"\n[security]\nmaster_key_file = "{key}"\n'
        f'[placement]\ndefault = "up"\n[drivers.up]\n{driver}',
    )

    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ADMIN, *args], capture_output=True, text=True, timeout=60)

    made = admin("--config", config, "--data", str(tmp_path / "one"), "tenant", "create", "acme")
    assert made.returncode == 0, made.stderr
    assert shared.exists() and not (tmp_path / "one" / "catalog.sqlite3").exists()
    # --catalog alone: keys it made would be sealed with a master key no gateway has.
    alone = admin("--data", str(tmp_path / "two"), "--catalog", f"sqlite:///{shared}", "key", "create", "acme")
    assert alone.returncode == 1 and "master_key_file" in alone.stderr, alone.stderr
    # --catalog on the command line, with the gateways' key: the same catalog from another directory.
    keyed = write_config(tmp_path, f'[security]\nmaster_key_file = "{key}"\n', name="keyed.toml")
    listed = admin(
        "--config",
        keyed,
        "--data",
        str(tmp_path / "two"),
        "--catalog",
        f"sqlite:///{shared}",
        "--json",
        "tenant",
        "list",
    )
    assert listed.returncode == 0, listed.stderr
    assert '"acme"' in listed.stdout
    assert not (tmp_path / "two" / "catalog.sqlite3").exists()
