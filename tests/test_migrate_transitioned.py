"""``vaultaire-admin migrate`` and lifecycle transitions: a version a Transition rule moved to another
placement (its storage class names the placement it is on) stays where lifecycle put it when its
bucket migrates; the rest of the bucket moves."""

from __future__ import annotations

import base64
import hashlib
import os
import time

import pytest_twisted

from tests.placed import bucket_container, server_with_placements
from tests.s3helpers import Server
from vaultaire.engine.migrate import migrate
from vaultaire.lifecycle import evaluate
from vaultaire.lifecycle.runner import LifecycleRunner
from vaultaire.ops.events import EventLog
from vaultaire.ops.metrics import LifecycleMetrics, Metrics

DAY = 86400.0
RULES = (
    b"<LifecycleConfiguration><Rule><ID>r</ID><Filter><Prefix>cold/</Prefix></Filter><Status>Enabled</Status>"
    b"<Transition><Days>1</Days><StorageClass>cold</StorageClass></Transition></Rule></LifecycleConfiguration>"
)


server = server_with_placements("cold", "warm")


async def transition(server: Server) -> None:
    md5 = base64.b64encode(hashlib.md5(RULES).digest()).decode()
    headers = {"Content-MD5": md5, "x-amz-transition-default-minimum-object-size": "varies_by_storage_class"}
    assert (await server.request("PUT", "/bucket", RULES, query="lifecycle", headers=headers)).code == 200
    later = time.time() + 2 * DAY
    events = EventLog(os.path.join(server.data, "lifecycle-events"))
    run = LifecycleRunner(
        server.engine, events=events, metrics=LifecycleMetrics(Metrics().registry), clock=lambda: later
    )
    report = await run.run()
    assert report.actions == {evaluate.TRANSITION: 2}


@pytest_twisted.ensureDeferred
async def test_migration_leaves_transitioned_versions_where_lifecycle_put_them(server: Server) -> None:
    versioning = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
    assert (await server.request("PUT", "/bucket", versioning, query="versioning=")).code == 200
    r = await server.request("PUT", "/bucket/cold/then-overwritten", b"transitioned, then noncurrent")
    noncurrent = r.headers.getRawHeaders("x-amz-version-id")[0]
    assert (await server.request("PUT", "/bucket/cold/stays", b"transitioned")).code == 200
    assert (await server.request("PUT", "/bucket/hot", b"never transitioned")).code == 200
    await transition(server)
    assert (await server.request("PUT", "/bucket/cold/then-overwritten", b"written after")).code == 200

    report = await migrate(server.engine, await bucket_container(server), "warm")

    c = await bucket_container(server)
    where = {
        (key, version): (found.placement, found.storage_class)
        for key, version in (
            ("cold/then-overwritten", noncurrent),
            ("cold/then-overwritten", None),
            ("cold/stays", None),
            ("hot", None),
        )
        if (found := await server.catalog.artifact(c.id, key, version)) is not None
    }
    assert where == {
        ("cold/then-overwritten", noncurrent): ("cold", "cold"),  # left where lifecycle put it
        ("cold/stays", None): ("cold", "cold"),
        ("cold/then-overwritten", None): ("warm", "STANDARD"),  # the rest moved
        ("hot", None): ("warm", "STANDARD"),
    }
    assert report.artifacts_moved == 2 and report.kept == 2 and report.skipped == 0
    r = await server.request("GET", "/bucket/cold/then-overwritten", query=f"versionId={noncurrent}")
    assert (r.code, r.body) == (200, b"transitioned, then noncurrent")
    assert (await server.request("GET", "/bucket/cold/stays")).body == b"transitioned"
    assert (await server.request("GET", "/bucket/hot")).body == b"never transitioned"
    # Run again: nothing left to move, the transitioned versions still kept.
    again = await migrate(server.engine, await bucket_container(server), "warm")
    assert (again.artifacts_moved, again.kept) == (0, 2)
