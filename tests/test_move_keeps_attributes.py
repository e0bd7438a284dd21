"""A move of a version's blobs (lifecycle transition, ``vaultaire-admin migrate``) changes only where
its bytes are: a tag, retention, legal-hold or ACL change made while the bytes were being copied
is kept, and a version whose bytes changed meanwhile is not swapped."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import Any

import pytest_twisted
from attrs import evolve
from twisted.internet.defer import ensureDeferred, fail

from tests.placed import bucket_container, server_with_placements
from tests.s3helpers import Server, xml_values
from vaultaire.drivers.memory import MemoryBlobWriter, MemoryDriver
from vaultaire.engine.migrate import migrate
from vaultaire.errors import DriverError
from vaultaire.lifecycle import evaluate
from vaultaire.lifecycle.runner import LifecycleRunner
from vaultaire.model import Artifact, Retention
from vaultaire.ops.events import EventLog
from vaultaire.ops.metrics import LifecycleMetrics, Metrics

DAY = 86400.0
TAGGING = b"<Tagging><TagSet><Tag><Key>during</Key><Value>copy</Value></Tag></TagSet></Tagging>"


server = server_with_placements("cold")


def amend_before_swap(server: Server, change: Any) -> list[str]:
    """Run ``change(listed)`` (an async function) when a move has copied the bytes of version
    ``listed`` and is about to swap it in: the order a client's change racing the copy takes."""
    real = server.catalog.move_artifact
    seen: list[str] = []

    async def racing(old: Artifact, moved: Artifact, intended: bool) -> bool:
        seen.append(old.version_id)
        await change(old)
        return await real(old, moved, intended=intended)

    server.catalog.move_artifact = lambda old, moved, intended=False: ensureDeferred(racing(old, moved, intended))  # type: ignore[method-assign]
    return seen


async def tag_and_hold(server: Server, listed: Artifact) -> None:
    """A client's PutObjectTagging, and a legal hold and retention set on the same version."""
    r = await server.request("PUT", f"/bucket/{listed.key}", TAGGING, query=f"tagging=&versionId={listed.version_id}")
    assert r.code == 200, r.body
    until = time.time() + 30 * DAY
    await server.catalog.amend_artifact(
        listed.container_id,
        listed.key,
        listed.version_id,
        lambda a: evolve(a, legal_hold=True, retention=Retention("GOVERNANCE", until), acl="changed-acl"),
    )


async def assert_kept(server: Server, key: str, version_id: str | None, placement: str) -> None:
    c = await bucket_container(server)
    found = await server.catalog.artifact(c.id, key, version_id)
    assert found is not None
    assert found.placement == placement  # moved...
    assert found.tags == (("during", "copy"),)  # ...and what changed meanwhile is kept
    assert found.legal_hold and found.retention is not None and found.retention.mode == "GOVERNANCE"
    assert found.acl == "changed-acl"
    query = "tagging=" + (f"&versionId={version_id}" if version_id else "")
    r = await server.request("GET", f"/bucket/{key}", query=query)
    assert xml_values(r.body, "Key") == ["during"]


@pytest_twisted.ensureDeferred
async def test_a_transition_keeps_tags_and_lock_changed_during_the_copy(server: Server) -> None:
    body = (
        b"<LifecycleConfiguration><Rule><ID>r</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status>"
        b"<Transition><Days>1</Days><StorageClass>cold</StorageClass></Transition></Rule></LifecycleConfiguration>"
    )
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    r = await server.request(
        "PUT",
        "/bucket",
        body,
        query="lifecycle",
        headers={"Content-MD5": md5, "x-amz-transition-default-minimum-object-size": "varies_by_storage_class"},
    )
    assert r.code == 200, r.body
    data = os.urandom(20_000)
    r = await server.request("PUT", "/bucket/big", data, headers={"x-amz-tagging": "before=copy"})
    assert r.code == 200, r.body
    seen = amend_before_swap(server, lambda listed: tag_and_hold(server, listed))
    clock_now = time.time() + 2 * DAY
    events = EventLog(os.path.join(server.data, "lifecycle-events"))
    run = LifecycleRunner(
        server.engine, events=events, metrics=LifecycleMetrics(Metrics().registry), clock=lambda: clock_now
    )
    report = await run.run()
    assert seen == ["null"]
    assert report.actions == {evaluate.TRANSITION: 1}
    await assert_kept(server, "big", None, "cold")
    c = await bucket_container(server)
    moved = await server.catalog.artifact(c.id, "big")
    assert moved is not None and moved.storage_class == "cold"
    r = await server.request("GET", "/bucket/big")
    assert (r.code, r.body) == (200, data)


@pytest_twisted.ensureDeferred
async def test_a_migration_keeps_what_changed_during_the_copy_current_and_noncurrent(server: Server) -> None:
    r = await server.request(
        "PUT",
        "/bucket",
        b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
        query="versioning=",
    )
    assert r.code == 200, r.body
    first = await server.request("PUT", "/bucket/k", b"first")
    old_version = first.headers.getRawHeaders("x-amz-version-id")[0]
    second = await server.request("PUT", "/bucket/k", b"second")
    new_version = second.headers.getRawHeaders("x-amz-version-id")[0]
    seen = amend_before_swap(server, lambda listed: tag_and_hold(server, listed))
    report = await migrate(server.engine, await bucket_container(server), "cold")
    assert sorted(seen) == sorted([old_version, new_version])
    assert report.artifacts_moved == 2 and report.skipped == 0
    await assert_kept(server, "k", new_version, "cold")
    await assert_kept(server, "k", old_version, "cold")
    assert (await server.request("GET", "/bucket/k", query=f"versionId={old_version}")).body == b"first"
    assert (await server.request("GET", "/bucket/k")).body == b"second"


@pytest_twisted.ensureDeferred
async def test_a_version_whose_bytes_changed_during_the_copy_is_not_swapped(server: Server) -> None:
    assert (await server.request("PUT", "/bucket/k", b"old")).code == 200

    async def overwrite(listed: Artifact) -> None:
        assert (await server.request("PUT", "/bucket/k", b"new")).code == 200

    amend_before_swap(server, overwrite)
    report = await migrate(server.engine, await bucket_container(server), "cold")
    assert report.skipped == 1
    assert (await server.request("GET", "/bucket/k")).body == b"new"


class _DownWriter(MemoryBlobWriter):
    def commit(self) -> Any:
        return fail(DriverError("upstream unreachable"))


class _DownDriver(MemoryDriver):
    """A placement whose every write fails (an upstream that went away)."""

    def open_writer(self, locator: str, size_hint: int | None = None) -> MemoryBlobWriter:
        return _DownWriter(self.blobs, locator, size_hint)


@pytest_twisted.ensureDeferred
async def test_a_noncurrent_transition_that_fails_is_a_failure_not_a_client_change(tmp_path: Any) -> None:
    # The runner told "changed by a client" from "the copy failed" by the key's current version,
    # which a noncurrent version is not: its failure passed for a client's change.
    server = Server(str(tmp_path), placements={"down": _DownDriver("down")})
    await server.start("bucket")
    try:
        versioning = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
        assert (await server.request("PUT", "/bucket", versioning, query="versioning=")).code == 200
        rules = (
            b"<LifecycleConfiguration><Rule><ID>r</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status>"
            b"<NoncurrentVersionTransition><NoncurrentDays>1</NoncurrentDays><StorageClass>down</StorageClass>"
            b"</NoncurrentVersionTransition></Rule></LifecycleConfiguration>"
        )
        md5 = base64.b64encode(hashlib.md5(rules).digest()).decode()
        headers = {"Content-MD5": md5, "x-amz-transition-default-minimum-object-size": "varies_by_storage_class"}
        assert (await server.request("PUT", "/bucket", rules, query="lifecycle", headers=headers)).code == 200
        assert (await server.request("PUT", "/bucket/k", b"old")).code == 200
        assert (await server.request("PUT", "/bucket/k", b"new")).code == 200
        later = time.time() + 3 * DAY
        events = EventLog(os.path.join(server.data, "lifecycle-events"))
        run = LifecycleRunner(
            server.engine, events=events, metrics=LifecycleMetrics(Metrics().registry), clock=lambda: later
        )
        report = await run.run()
        assert report.skipped == 0 and report.actions == {}, report
    finally:
        await server.stop()
