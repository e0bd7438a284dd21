"""The request path's cached point reads (catalog/cached.py) and the generation that invalidates them.

What the cache saves is counted at the catalog: after the first request, a GET reads the
generation and nothing else of keys, buckets and settings. What it must never do (serve a
change late) is checked here in one process, and across worker processes in
tests/test_cache_workers.py.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable
from typing import Any

import pytest
import pytest_twisted
from s3helpers import error_code
from twisted.internet.defer import Deferred, succeed

from vaultaire.catalog.cached import CachedReads
from vaultaire.errors import ContainerExists
from vaultaire.model import Container, ContainerAccess, Tenant

pytestmark = pytest.mark.timeout(60)  # a cache that asks again waits on an answer never given: fail, do not hang


@pytest_twisted.async_yield_fixture
async def server(tmp_path: Any, catalog_url: str | None) -> Any:
    """The stack on each catalog backend: PostgreSQL moves the generation by its own triggers."""
    from s3helpers import Server

    s = Server(str(tmp_path), catalog_url=catalog_url)
    await s.start("bucket")
    yield s
    await s.stop()


POINT_READS = ("credential", "user", "containers_named", "container", "container_named", "setting", "settings_by_name")


def count_reads(server: Any, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count every call of the catalog's point reads (and of ``generation``) from now on."""
    counts: Counter[str] = Counter()
    for name in (*POINT_READS, "generation"):
        original = getattr(server.catalog, name)

        def counting(*args: Any, _name: str = name, _original: Any = original) -> Any:
            counts[_name] += 1
            return _original(*args)

        monkeypatch.setattr(server.catalog, name, counting)
    return counts


@pytest_twisted.ensureDeferred
async def test_repeated_gets_read_the_generation_and_nothing_else_of_keys_and_buckets(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await server.request("PUT", "/bucket/k", b"data")).code == 200
    assert (await server.request("GET", "/bucket/k")).code == 200
    counts = count_reads(server, monkeypatch)
    for _ in range(10):
        response = await server.request("GET", "/bucket/k")
        assert response.code == 200 and response.body == b"data"
    assert counts == Counter({"generation": 10})

    # A change through S3 counts on the next request: read again once, then kept again.
    deny = {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/k"}
    document = json.dumps({"Version": "2012-10-17", "Statement": [deny]}).encode()
    assert (await server.request("PUT", "/bucket", document, query="policy")).code == 204
    counts.clear()
    for _ in range(5):
        response = await server.request("GET", "/bucket/k")
        assert (response.code, error_code(response)) == (403, "AccessDenied")
    assert counts["generation"] == 5
    assert counts["containers_named"] == 1


@pytest_twisted.ensureDeferred
async def test_sse_kms_gets_read_their_key_once_and_a_disabled_key_counts_at_the_next_request(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await server.engine.sealed.kms.create("app")
    headers = {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": "app"}
    assert (await server.request("PUT", "/bucket/sealed", b"secret", headers=headers)).code == 200
    assert (await server.request("GET", "/bucket/sealed")).code == 200
    asked: Counter[str] = Counter()
    original = server.catalog.kms_key

    def counting(id_or_name: str) -> Any:
        asked[id_or_name] += 1
        return original(id_or_name)

    monkeypatch.setattr(server.catalog, "kms_key", counting)
    for _ in range(5):
        response = await server.request("GET", "/bucket/sealed")
        assert response.code == 200 and response.body == b"secret"
    assert sum(asked.values()) == 0
    # Disabled by the catalog directly (as the admin tool does, from another process).
    await server.catalog.set_kms_key_enabled("app", False)
    response = await server.request("GET", "/bucket/sealed")
    assert (response.code, error_code(response)) == (400, "KMS.DisabledException")
    await server.catalog.set_kms_key_enabled("app", True)
    response = await server.request("GET", "/bucket/sealed")
    assert response.code == 200 and response.body == b"secret"
    # A name no key has is asked each time: it may be made in between (the default key is).
    for _ in range(2):
        headers["x-amz-server-side-encryption-aws-kms-key-id"] = "nothing-by-this-name"
        response = await server.request("PUT", "/bucket/other", b"x", headers=headers)
        assert response.code == 400
    assert asked["nothing-by-this-name"] == 2


@pytest_twisted.ensureDeferred
async def test_a_users_requests_read_its_policy_once(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = await server.catalog.tenant("default")
    await server.catalog.create_user(tenant.id, "reader", '{"Version": "2012-10-17", "Statement": []}')
    await server.catalog.add_credential(tenant.id, "READERKEY", "reader-secret", "reader")
    as_reader = {"query": "list-type=2", "access": "READERKEY", "secret": "reader-secret"}
    counts = count_reads(server, monkeypatch)
    for _ in range(4):
        response = await server.request("GET", "/bucket", **as_reader)
        assert (response.code, error_code(response)) == (403, "AccessDenied")
    assert (counts["generation"], counts["user"], counts["credential"]) == (4, 1, 1)
    # Changed by the catalog directly (as the admin tool does, from another process): the next request sees it.
    everything = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
    await server.catalog.set_user_policy(
        tenant.id, "reader", json.dumps({"Version": "2012-10-17", "Statement": [everything]})
    )
    response = await server.request("GET", "/bucket", **as_reader)
    assert response.code == 200
    await server.catalog.revoke_credential("READERKEY")
    response = await server.request("GET", "/bucket", **as_reader)
    assert (response.code, error_code(response)) == (403, "InvalidAccessKeyId")


@pytest_twisted.ensureDeferred
async def test_the_generation_moves_with_every_change_the_cached_reads_see_and_only_then(server: Any) -> None:
    catalog = server.catalog
    last = await catalog.generation()

    async def moved(change: Awaitable[Any]) -> bool:
        nonlocal last
        await change
        now = await catalog.generation()
        changed, last = now != last, now
        return changed

    # What is stored moves nothing: PUT and DELETE keep every cached answer.
    assert not await moved(server.request("PUT", "/bucket/k", b"data"))
    assert not await moved(server.request("GET", "/bucket/k"))
    assert not await moved(server.request("DELETE", "/bucket/k"))
    tenant = await catalog.tenant("default")
    bucket = await catalog.container(tenant.id, "bucket")
    assert await moved(catalog.put_setting(bucket, "cors", "<CORSConfiguration/>"))
    assert await moved(catalog.delete_setting(bucket, "cors"))
    assert await moved(catalog.add_credential(tenant.id, "OTHERKEY", "secret"))
    assert await moved(catalog.revoke_credential("OTHERKEY"))
    assert await moved(catalog.create_user(tenant.id, "u", None))
    assert await moved(catalog.set_user_policy(tenant.id, "u", "{}"))
    assert await moved(catalog.delete_user(tenant.id, "u"))
    assert await moved(catalog.set_tenant_status("default", "suspended"))
    assert await moved(catalog.set_tenant_status("default", "active"))
    assert await moved(catalog.set_quota("default", 10**12, None))
    assert await moved(catalog.create_tenant("another"))
    assert await moved(catalog.delete_tenant("another"))
    assert await moved(server.engine.sealed.kms.create("some-key"))
    assert await moved(catalog.set_kms_key_enabled("some-key", False))
    other = await catalog.container(tenant.id, "bucket")
    assert await moved(catalog.create_container(tenant.id, "second", server.driver.name))
    assert await moved(catalog.rename_container(tenant.id, "second", "third"))
    third = await catalog.container(tenant.id, "third")
    assert await moved(catalog.begin_migration(third.id, server.driver.name))
    assert await moved(catalog.delete_container(third))
    # A refused change moves nothing (its transaction rolled back).
    with pytest.raises(ContainerExists):
        await catalog.create_container(tenant.id, "bucket", server.driver.name)
    assert await catalog.generation() == last
    assert other == bucket


# -- the cache alone, over a catalog whose answers the test hands out


class ScriptedCatalog:
    """The point reads a test answers by hand (Deferreds it fires when it wants)."""

    def __init__(self) -> None:
        self.value = 0
        self.pending: list[Deferred[Any]] = []
        self.asked: Counter[str] = Counter()

    def generation(self) -> Deferred[int]:
        return succeed(self.value)

    def _ask(self, name: str) -> Deferred[Any]:
        self.asked[name] += 1
        d: Deferred[Any] = Deferred()
        self.pending.append(d)
        return d

    def credential(self, access_key: str) -> Deferred[Any]:
        return self._ask("credential")

    def containers_named(self, name: str) -> Deferred[Any]:
        return self._ask("containers_named")


def _access(name: str) -> ContainerAccess:
    tenant = Tenant(id="t", name="t", status="active", created=0.0)
    return ContainerAccess(Container(id=1, tenant_id="t", name=name, placement="local", created=0.0), tenant, ())


@pytest_twisted.ensureDeferred
async def test_an_answer_read_before_a_change_is_not_kept_after_it() -> None:
    catalog = ScriptedCatalog()
    reads = CachedReads(catalog)  # type: ignore[arg-type]
    await reads.refresh()
    slow = Deferred.fromCoroutine(reads.credential("K"))  # asked before the change...
    catalog.value += 1
    await reads.refresh()  # ...the change is seen...
    catalog.pending.pop().callback(("old answer",))  # ...and then the old answer arrives
    assert await slow == ("old answer",)
    fresh = Deferred.fromCoroutine(reads.credential("K"))
    assert catalog.asked["credential"] == 2  # asked again, not served the old answer
    catalog.pending.pop().callback(("new answer",))
    assert await fresh == ("new answer",)
    assert await reads.credential("K") == ("new answer",)  # kept now
    assert catalog.asked["credential"] == 2


@pytest_twisted.ensureDeferred
async def test_nothing_is_kept_before_the_first_refresh_and_lists_are_copies() -> None:
    catalog = ScriptedCatalog()
    reads = CachedReads(catalog)  # type: ignore[arg-type]
    first = Deferred.fromCoroutine(reads.containers_named("b"))
    catalog.pending.pop().callback([_access("b")])
    assert len(await first) == 1
    second = Deferred.fromCoroutine(reads.containers_named("b"))
    assert catalog.asked["containers_named"] == 2  # no refresh yet: not known current, so not kept
    catalog.pending.pop().callback([_access("b")])
    await second
    await reads.refresh()
    third = Deferred.fromCoroutine(reads.containers_named("b"))
    catalog.pending.pop().callback([_access("b")])
    (await third).clear()  # a caller changing its list changes no one else's
    assert len(await reads.containers_named("b")) == 1
    assert catalog.asked["containers_named"] == 3


@pytest_twisted.ensureDeferred
async def test_unknown_keys_never_grow_the_cache_past_its_limit() -> None:
    catalog = ScriptedCatalog()
    reads = CachedReads(catalog, limit=50)  # type: ignore[arg-type]
    await reads.refresh()
    for n in range(500):
        asked = Deferred.fromCoroutine(reads.credential(f"K{n}"))
        catalog.pending.pop().callback(None)  # an unknown key: an answer kept too
        assert await asked is None
        assert len(reads._answers) <= 50
