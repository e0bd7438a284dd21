"""What only a shared PostgreSQL catalog has to show: several gateways' catalogs on one database
race and exactly one wins, migrations run once and refuse older code, an outage is
CatalogUnavailable (503 SlowDown) and service resumes by itself; and boto3 against the S3 stack
on it (PUT, GET, list, multipart, versioning)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any

import boto3
import pytest
import pytest_twisted
from botocore.config import Config
from twisted.internet import defer, reactor, threads

from tests.s3helpers import ACCESS, REGION, SECRET, Server
from vaultaire.api.errors import from_domain
from vaultaire.catalog.postgres import PostgresCatalog, schema
from vaultaire.errors import CatalogUnavailable, PreconditionFailed, QuotaExceeded
from vaultaire.model import Artifact, WriteCondition
from vaultaire.sealing import SecretBox

BOX = SecretBox(os.urandom(32))


async def gateways(url: str, n: int = 2, **options: Any) -> list[PostgresCatalog]:
    """``n`` catalogs on one database, as ``n`` gateways have."""
    catalogs = [PostgresCatalog(url, reactor, BOX, **options) for _ in range(n)]
    await defer.gatherResults([c.start() for c in catalogs])
    return catalogs


def blob(container_id: int, key: str, locator: str) -> Artifact:
    return Artifact(container_id, key, locator, 10, "0" * 32, time.time())


async def outcomes(calls: list[defer.Deferred[Any]]) -> list[Any]:
    """Each call's result, or the exception it failed with."""
    results = await defer.DeferredList(calls, consumeErrors=True)
    return [value if ok else value.value for ok, value in results]


@pytest_twisted.ensureDeferred
async def test_a_conditional_create_racing_on_two_gateways_has_exactly_one_winner(postgres: Any) -> None:
    a, b = await gateways(postgres.fresh_database())
    try:
        tenant = await a.ensure_tenant("t")
        container = await a.create_container(tenant.id, "race", "local")
        for key in ("k1", "k2", "k3"):
            calls = [
                (a, b)[i % 2].put_artifact(blob(container.id, key, f"{key}-{i}"), WriteCondition(must_not_exist=True))
                for i in range(12)
            ]
            results = await outcomes(calls)
            winners = [r for r in results if not isinstance(r, Exception)]
            assert len(winners) == 1, results
            assert all(isinstance(r, PreconditionFailed) for r in results if isinstance(r, Exception)), results
            stored = await b.artifact(container.id, key)
            assert stored is not None and stored.locator == winners[0].written.locator
        # Every losing writer's blob is its own to free: nothing the winner wrote is garbage.
        assert await a.garbage(100) == []
        assert (await b.tenant_totals(tenant.id)).objects == 3
    finally:
        await defer.gatherResults([a.stop(), b.stop()])


@pytest_twisted.ensureDeferred
async def test_a_free_lease_goes_to_exactly_one_gateway_and_a_change_on_one_moves_the_generation_of_all(
    postgres: Any,
) -> None:
    a, b = await gateways(postgres.fresh_database())
    try:
        for round_ in range(10):
            name = f"job:{round_}"
            results = await outcomes([(a, b)[i % 2].take_lease(name, ("a", "b")[i % 2], 60) for i in range(6)])
            assert all(isinstance(r, bool) for r in results), results
            assert len({("a", "b")[i % 2] for i, won in enumerate(results) if won}) == 1, results
        held = await b.lease_holder("job:0")
        assert held is not None and held[0] in ("a", "b") and 0 < held[1] <= 60
        await (a if held[0] == "a" else b).release_lease("job:0", held[0])
        assert await a.lease_holder("job:0") is None
        # The cached reads' generation (catalog/generation.py) is the database's: one number for all.
        before = await b.generation()
        await a.ensure_tenant("t")
        assert await b.generation() > before
        after = await b.generation()
        await a.put_artifact(blob((await a.create_container((await a.tenant("t")).id, "c", "local")).id, "k", "l"))
        assert await b.generation() == after + 1  # the container moved it; the artifact did not
    finally:
        await defer.gatherResults([a.stop(), b.stop()])


@pytest_twisted.ensureDeferred
async def test_the_quota_holds_across_gateways_racing_for_the_last_objects(postgres: Any) -> None:
    a, b = await gateways(postgres.fresh_database())
    try:
        tenant = await a.ensure_tenant("t")
        await a.set_quota("t", None, 5)
        one = await a.create_container(tenant.id, "one", "local")
        two = await b.create_container(tenant.id, "two", "local")
        calls = [(a, b)[i % 2].put_artifact(blob((one, two)[i % 2].id, f"k{i}", f"loc{i}")) for i in range(16)]
        results = await outcomes(calls)
        assert sum(1 for r in results if not isinstance(r, Exception)) == 5, results
        assert all(isinstance(r, QuotaExceeded) for r in results if isinstance(r, Exception)), results
        assert (await b.tenant_totals(tenant.id)).objects == 5
    finally:
        await defer.gatherResults([a.stop(), b.stop()])


@pytest_twisted.ensureDeferred
async def test_the_first_gateway_migrates_once_and_older_code_refuses_a_newer_schema(postgres: Any) -> None:
    url = postgres.fresh_database(empty=True)
    catalogs = await gateways(url, 3)  # all three start at once on an empty database
    await defer.gatherResults([c.stop() for c in catalogs])
    assert postgres.sql(url, "SELECT version FROM schema_version") == [(schema.VERSION,)]
    postgres.sql(url, "UPDATE schema_version SET version = %s", schema.VERSION + 1)
    newer = PostgresCatalog(url, reactor, BOX)
    with pytest.raises(schema.SchemaTooNew, match="upgrade this gateway"):
        await newer.start()
    await newer.stop()


@pytest_twisted.ensureDeferred
async def test_a_catalog_of_an_older_schema_is_brought_up_and_every_watched_table_moves_the_generation(
    postgres: Any,
) -> None:
    import psycopg

    from vaultaire.catalog.generation import WATCHED

    url = postgres.fresh_database(empty=True)
    with psycopg.connect(url, autocommit=True) as conn:
        schema.migrate(conn, schema.MIGRATIONS[:2])  # as a gateway of version 2 left it
    (catalog,) = await gateways(url, 1)
    await catalog.stop()
    assert postgres.sql(url, "SELECT version FROM schema_version") == [(schema.VERSION,)]
    triggers = postgres.sql(url, "SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname LIKE 'generation_%'")
    assert sorted(t for (t,) in triggers) == sorted(WATCHED)


@pytest_twisted.ensureDeferred
async def test_connections_cut_by_the_server_are_replaced_without_an_error(postgres: Any) -> None:
    url = postgres.fresh_database()
    (catalog,) = await gateways(url, 1, pool_size=3)
    try:
        tenant = await catalog.ensure_tenant("t")
        container = await catalog.create_container(tenant.id, "b", "local")
        await defer.gatherResults([catalog.put_artifact(blob(container.id, f"k{i}", f"l{i}")) for i in range(6)])
        database = url.split("/")[-1].split("?")[0]
        # What a PostgreSQL restart does to a pool's idle connections.
        postgres.sql(
            postgres.admin_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            database,
        )
        for i in range(6):
            assert (await catalog.artifact(container.id, f"k{i}")) is not None
        await catalog.put_artifact(blob(container.id, "after", "l-after"))
    finally:
        await catalog.stop()


@pytest_twisted.ensureDeferred
async def test_an_outage_is_catalog_unavailable_and_service_resumes_after_a_restart() -> None:
    import pgserver

    directory = tempfile.mkdtemp(prefix="vt-pgo-")
    os.chmod(directory, 0o755)
    data = os.path.join(directory, "data")
    server = await threads.deferToThread(pgserver.get_server, data, "stop")
    url = server.get_uri()
    catalog = PostgresCatalog(url, reactor, BOX, pool_size=2, pool_timeout=2.0, statement_timeout=5.0)
    try:
        await catalog.start()
        tenant = await catalog.ensure_tenant("t")
        container = await catalog.create_container(tenant.id, "b", "local")
        await catalog.put_artifact(blob(container.id, "before", "l1"))
        await threads.deferToThread(server.cleanup)  # PostgreSQL stops
        t0 = time.monotonic()
        for call in (
            lambda: catalog.artifact(container.id, "before"),
            lambda: catalog.put_artifact(blob(container.id, "during", "l2")),
            lambda: catalog.tenant_totals(tenant.id),
        ):
            with pytest.raises(CatalogUnavailable):
                await call()
        assert time.monotonic() - t0 < 60  # refused within the pool's timeout, never a hang
        assert (await catalog.probe())["status"] == "error"
        error = from_domain(CatalogUnavailable("down"), "b", "k")
        assert error is not None and (error.status, error.code) == (503, "SlowDown")
        server = await threads.deferToThread(pgserver.get_server, data, "stop")  # and starts again
        deadline = time.monotonic() + 60
        while True:
            try:
                # A GET's reads reconnect on their own (reactor_reads.py); the pool's too, by this.
                await catalog.tenant_totals(tenant.id)
                found = await catalog.artifact(container.id, "before")
                break
            except CatalogUnavailable:
                assert time.monotonic() < deadline, "the catalog did not reconnect"
                await threads.deferToThread(time.sleep, 0.2)
        assert found is not None and found.locator == "l1"
        await catalog.put_artifact(blob(container.id, "after", "l3"))
        assert (await catalog.tenant_totals(tenant.id)).objects == 2  # nothing lost, nothing half-written
        assert (await catalog.probe())["status"] == "ok"
    finally:
        await catalog.stop()
        await threads.deferToThread(server.cleanup)
        shutil.rmtree(directory, ignore_errors=True)


@pytest_twisted.ensureDeferred
async def test_boto3_on_the_s3_stack_over_a_postgresql_catalog(postgres: Any, tmp_path: Any) -> None:
    server = Server(str(tmp_path), catalog_url=postgres.fresh_database())
    server.engine.min_part_size = 5 * 2**20
    await server.start()
    try:

        def clients() -> None:
            s3 = boto3.client(
                "s3",
                endpoint_url=server.url,
                aws_access_key_id=ACCESS,
                aws_secret_access_key=SECRET,
                region_name=REGION,
                config=Config(retries={"max_attempts": 1}),
            )
            s3.create_bucket(Bucket="pgb")
            s3.put_object(Bucket="pgb", Key="a/1", Body=b"one")
            s3.put_object(Bucket="pgb", Key="a/2", Body=b"two")
            s3.put_object(Bucket="pgb", Key="b", Body=b"bee")
            assert s3.get_object(Bucket="pgb", Key="a/1")["Body"].read() == b"one"
            listed = s3.list_objects_v2(Bucket="pgb", Delimiter="/")
            assert [c["Prefix"] for c in listed["CommonPrefixes"]] == ["a/"]
            assert [o["Key"] for o in listed["Contents"]] == ["b"]
            # Multipart: two parts, completed, read back whole.
            upload = s3.create_multipart_upload(Bucket="pgb", Key="big")["UploadId"]
            first = s3.upload_part(Bucket="pgb", Key="big", UploadId=upload, PartNumber=1, Body=b"x" * (5 * 2**20))
            second = s3.upload_part(Bucket="pgb", Key="big", UploadId=upload, PartNumber=2, Body=b"tail")
            s3.complete_multipart_upload(
                Bucket="pgb",
                Key="big",
                UploadId=upload,
                MultipartUpload={
                    "Parts": [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": second["ETag"]}]
                },
            )
            assert s3.get_object(Bucket="pgb", Key="big")["ContentLength"] == 5 * 2**20 + 4
            # Versioning: two versions and a delete marker, the old version still readable.
            s3.put_bucket_versioning(Bucket="pgb", VersioningConfiguration={"Status": "Enabled"})
            v1 = s3.put_object(Bucket="pgb", Key="v", Body=b"first")["VersionId"]
            s3.put_object(Bucket="pgb", Key="v", Body=b"second")
            s3.delete_object(Bucket="pgb", Key="v")
            versions = s3.list_object_versions(Bucket="pgb", Prefix="v")
            assert len(versions["Versions"]) == 2 and len(versions["DeleteMarkers"]) == 1
            assert s3.get_object(Bucket="pgb", Key="v", VersionId=v1)["Body"].read() == b"first"

        await threads.deferToThread(clients)
    finally:
        await server.stop()
