"""Bucket names mean one bucket (issue 14): unique across tenants, old conflicts kept working and named.

A name another tenant holds is 409 BucketAlreadyExists. A data directory from before
names were unique may hold one name under several tenants: each keeps its own by path,
the name resolves for no one else, the daemon logs each such name once at start with the
command that ends it, and ``vaultaire-admin bucket rename`` ends it without copying a byte.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import pytest_twisted
from botocore.exceptions import ClientError
from daemon import ADMIN, Daemon
from twisted.internet.defer import DeferredList

from tests.s3helpers import Server, error_code, legacy_container, legacy_container_at, xml_values
from vaultaire.errors import ContainerExists, ContainerNameTaken, NoSuchContainer
from vaultaire.names import policy_renamed

pytestmark = pytest.mark.timeout(120)

OTHER = {"access": "OTHERACCESSKEY", "secret": "other-secret-0123456789"}


async def other_tenant(server: Server, name: str = "other", access: str = OTHER["access"]) -> Any:
    return await server.engine.ensure_credential(name, access, OTHER["secret"])


@pytest_twisted.ensureDeferred
async def test_a_name_another_tenant_holds_is_bucket_already_exists(server: Server) -> None:
    await other_tenant(server)
    r = await server.request("PUT", "/bucket", **OTHER)
    assert (r.code, error_code(r)) == (409, "BucketAlreadyExists"), r.body
    assert xml_values(r.body, "BucketName") == ["bucket"]
    # Its own name again is what the compatibility rules say (200 in us-east-1).
    assert (await server.request("PUT", "/bucket")).code == 200
    assert (await server.request("PUT", "/mine", **OTHER)).code == 200
    r = await server.request("PUT", "/mine")
    assert (r.code, error_code(r)) == (409, "BucketAlreadyExists")
    # Refused creates made nothing: each tenant lists only its own.
    assert xml_values((await server.request("GET", "/")).body, "Name") == ["bucket"]
    assert xml_values((await server.request("GET", "/", **OTHER)).body, "Name") == ["mine"]
    # Found by name alone, whoever asks (the access checks decide what the asker may do).
    found = await server.engine.container_named("mine")
    assert found is not None and found.name == "mine" and found.tenant_id != (await server.catalog.tenant("default")).id
    assert await server.engine.container_named("nothing-here") is None
    # A deleted name is free for anyone.
    assert (await server.request("DELETE", "/mine", **OTHER)).code == 204
    assert (await server.request("PUT", "/mine")).code == 200


@pytest_twisted.ensureDeferred
async def test_two_tenants_racing_for_one_name_get_one_bucket(server: Server) -> None:
    tenants = [await server.catalog.ensure_tenant(f"racer{i}") for i in range(6)]
    results = await DeferredList(
        [server.catalog.create_container(t.id, "contested", "local") for t in tenants], consumeErrors=True
    )
    won = [r for ok, r in results if ok]
    lost = [r for ok, r in results if not ok]
    assert len(won) == 1 and len(lost) == 5
    assert all(f.check(ContainerNameTaken) for f in lost)
    assert (await server.catalog.container_named("contested")) == won[0]


@pytest_twisted.ensureDeferred
async def test_names_several_tenants_hold_keep_working_for_their_owners_only(server: Server) -> None:
    other = await other_tenant(server)
    legacy_container(server, other.id, "bucket")
    assert (await server.request("PUT", "/bucket/k", b"default's")).code == 200
    assert (await server.request("PUT", "/bucket/k", b"other's", **OTHER)).code == 200
    assert (await server.request("GET", "/bucket/k")).body == b"default's"
    assert (await server.request("GET", "/bucket/k", **OTHER)).body == b"other's"

    assert await server.engine.container_named("bucket") is None  # resolves for no one else
    assert await server.engine.name_conflicts() == [("bucket", ["default", "other"])]
    third = {"access": "THIRDACCESSKEY", "secret": OTHER["secret"]}
    await other_tenant(server, "third", third["access"])
    r = await server.request("PUT", "/bucket", **third)
    assert (r.code, error_code(r)) == (409, "BucketAlreadyExists")
    r = await server.request("GET", "/bucket/k", **third)
    assert r.code in (403, 404) and b"default's" not in r.body and b"other's" not in r.body
    # Without a tenant (an unsigned CORS preflight) the name gives no container's settings.
    mine = await server.catalog.container((await server.catalog.tenant("default")).id, "bucket")
    assert mine is not None
    await server.catalog.put_setting(mine, "cors", "[]")
    assert await server.engine.settings_by_name(None, "bucket", "cors") == []
    assert await server.catalog.settings_by_name(other.id, "bucket", "cors") == [None]

    # Renamed: no byte copied, the other tenant's objects under the new name, the old name one bucket again.
    blobs = sorted(server.blob_files())
    renamed = await server.catalog.rename_container(other.id, "bucket", "others-bucket")
    assert renamed.name == "others-bucket" and renamed.tenant_id == other.id
    assert sorted(server.blob_files()) == blobs
    assert (await server.request("GET", "/others-bucket/k", **OTHER)).body == b"other's"
    assert (await server.request("GET", "/bucket/k")).body == b"default's"
    # The name is the default tenant's alone now: to the other tenant, someone else's bucket (issue 14).
    r = await server.request("GET", "/bucket/k", **OTHER)
    assert (r.code, error_code(r)) == (403, "AccessDenied")
    found = await server.engine.container_named("bucket")
    assert found is not None and found.tenant_id != other.id
    assert await server.engine.name_conflicts() == []
    assert await server.engine.settings_by_name(None, "bucket", "cors") == ["[]"]


@pytest_twisted.ensureDeferred
async def test_rename_refusals(server: Server) -> None:
    other = await other_tenant(server)
    assert (await server.request("PUT", "/mine", **OTHER)).code == 200
    assert (await server.request("PUT", "/also-mine", **OTHER)).code == 200
    with pytest.raises(NoSuchContainer):
        await server.catalog.rename_container(other.id, "missing", "new-name")
    with pytest.raises(ContainerExists):
        await server.catalog.rename_container(other.id, "mine", "also-mine")
    with pytest.raises(ContainerNameTaken):
        await server.catalog.rename_container(other.id, "mine", "bucket")
    assert (await server.catalog.rename_container(other.id, "mine", "mine")).name == "mine"
    assert xml_values((await server.request("GET", "/", **OTHER)).body, "Name") == ["also-mine", "mine"]


@pytest_twisted.ensureDeferred
async def test_rename_carries_the_bucket_policy_over(server: Server) -> None:
    """The bucket's own policy names the bucket: after a rename it names the new name (a public read
    granted on the old name goes on working, and would not leak to a new bucket of the old name)."""
    other = await other_tenant(server)
    assert (await server.request("PUT", "/shop", **OTHER)).code == 200
    assert (await server.request("PUT", "/shop/logo.png", b"png", **OTHER)).code == 200
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shop/logo.png"},
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": ["arn:aws:s3:::shop", "arn:aws:s3:::shop/private/*"],
            },
        ],
    }
    assert (await server.request("DELETE", "/shop", query="publicAccessBlock=", **OTHER)).code == 204
    r = await server.request("PUT", "/shop", json.dumps(policy).encode(), query="policy=", **OTHER)
    assert r.code == 204, r.body
    assert (await server.request("GET", "/shop/logo.png", sign=False)).body == b"png"
    await server.catalog.rename_container(other.id, "shop", "store")
    assert (await server.request("GET", "/store/logo.png", sign=False)).body == b"png"
    stored = json.loads((await server.request("GET", "/store", query="policy=", **OTHER)).body)
    resources = [s["Resource"] for s in stored["Statement"]]
    assert resources == ["arn:aws:s3:::store/logo.png", ["arn:aws:s3:::store", "arn:aws:s3:::store/private/*"]]


# -- a real daemon on a data directory from before names were unique, and vaultaire-admin


def admin(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ADMIN, "--data", str(d.data_dir), *args], capture_output=True, text=True, timeout=60)


def test_daemon_logs_each_conflict_once_and_admin_renames(tmp_path: Any) -> None:
    # A data directory from before names were unique: alice and bob both hold "shared".
    daemon = Daemon(tmp_path / "vaultaire", workers=2)  # the supervisor says it, not each worker
    keys = {}
    for tenant in ("alice", "bob"):
        made = admin(daemon, "--json", "tenant", "create", tenant)
        assert made.returncode == 0, made.stderr
        legacy_container_at(str(daemon.data_dir / "catalog.sqlite3"), json.loads(made.stdout)["id"], "shared")
        keys[tenant] = json.loads(admin(daemon, "key", "create", tenant, "--json").stdout)
    daemon.start()
    try:
        alice, bob = (
            daemon.boto3_client(access_key=keys[t]["access_key"], secret_key=keys[t]["secret_key"])
            for t in ("alice", "bob")
        )
        command = f"vaultaire-admin --data {daemon.data_dir} bucket rename bob shared NEW-NAME"
        log = daemon.log_text()
        assert log.count("bucket name 'shared' is held by several tenants (alice, bob)") == 1, log
        assert log.count(command) == 1, log
        # Each keeps its own bucket by path.
        alice.put_object(Bucket="shared", Key="k", Body=b"alice's")
        bob.put_object(Bucket="shared", Key="k", Body=b"bob's")
        assert alice.get_object(Bucket="shared", Key="k")["Body"].read() == b"alice's"
        assert bob.get_object(Bucket="shared", Key="k")["Body"].read() == b"bob's"

        done = admin(daemon, "bucket", "rename", "bob", "shared", "Not_Valid")
        assert done.returncode == 1 and "is not a valid bucket name" in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1
        alice.create_bucket(Bucket="alices-other")
        done = admin(daemon, "bucket", "rename", "bob", "shared", "alices-other")
        assert done.returncode == 1 and "taken by another tenant" in done.stderr, done.stderr

        done = admin(daemon, "--json", "bucket", "rename", "bob", "shared", "bob-renamed")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["new"] == "bob-renamed"
        # Seen by the running daemon at once.
        assert bob.get_object(Bucket="bob-renamed", Key="k")["Body"].read() == b"bob's"
        assert [b["Name"] for b in bob.list_buckets()["Buckets"]] == ["bob-renamed"]
        assert alice.get_object(Bucket="shared", Key="k")["Body"].read() == b"alice's"
        with pytest.raises(ClientError):
            bob.get_object(Bucket="shared", Key="k")
        with pytest.raises(ClientError) as refused:
            bob.create_bucket(Bucket="shared")
        assert refused.value.response["Error"]["Code"] == "BucketAlreadyExists"

        daemon.restart()
        assert "held by several tenants" not in daemon.log_text().split("==== start 2")[1]
    finally:
        daemon.stop()


def test_admin_rename_refuses_what_it_cannot_do(tmp_path: Any) -> None:
    d = Daemon(tmp_path / "vaultaire")  # never started: the admin tool works on the directory alone
    assert admin(d, "tenant", "create", "carol").returncode == 0
    for args, message in (
        (("bucket", "rename", "carol", "missing", "fresh-name"), "has no bucket named 'missing'"),
        (("bucket", "rename", "nobody", "shared", "fresh-name"), "no tenant named 'nobody'"),
    ):
        done = admin(d, *args)
        assert done.returncode == 1 and message in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr


@pytest_twisted.ensureDeferred
async def test_a_renamed_bucket_is_billed_under_each_name_for_its_time(tmp_path: Any) -> None:
    from test_usage import FakeClock, artifact, open_catalog

    clock = FakeClock("2026-09-01 00:00:00")
    catalog = await open_catalog(str(tmp_path), clock)
    try:
        tenant = await catalog.create_tenant("acme")
        box = await catalog.create_container(tenant.id, "before", "local")
        await catalog.put_artifact(artifact(box.id, "k", 1000, clock()))
        clock.set("2026-09-01 02:00:00")
        await catalog.rename_container(tenant.id, "before", "after")
        clock.set("2026-09-01 03:00:00")
        await catalog.delete_artifact(box.id, "k")
        rows = await catalog.usage(tenant.id, 0, 2**40)
        by_name: dict[str, int] = {}
        for row in rows:
            by_name[row.container] = by_name.get(row.container, 0) + row.byte_seconds
        assert by_name == {"before": 1000 * 7200, "after": 1000 * 3600}
    finally:
        await catalog.stop()


def test_policy_renamed_moves_only_the_bucket_and_its_paths() -> None:
    document = json.dumps(
        {"Statement": {"Effect": "Allow", "NotResource": ["arn:aws:s3:::a", "arn:aws:s3:::ab/*", "arn:aws:s3:::a*"]}}
    )
    moved = json.loads(policy_renamed(document, "a", "z"))
    assert moved["Statement"]["NotResource"] == ["arn:aws:s3:::z", "arn:aws:s3:::ab/*", "arn:aws:s3:::a*"]
    assert policy_renamed("not json", "a", "z") == "not json"
