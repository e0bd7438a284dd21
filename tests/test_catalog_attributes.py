"""Per-version attributes (tags, retention, legal hold, ACL) survive the catalog and change in place."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from attrs import evolve

from vaultaire.errors import NoSuchArtifact
from vaultaire.model import Artifact, Retention, Upload


@pytest_twisted.ensureDeferred
async def test_attributes_round_trip_and_amend(catalog_factory: Any) -> None:
    catalog = catalog_factory()
    await catalog.start()
    try:
        tenant = await catalog.ensure_tenant("t")
        container = await catalog.create_container(tenant.id, "b", "local")
        stored = Artifact(
            container.id,
            "k",
            "loc",
            3,
            "0" * 32,
            1.0,
            tags=(("b", "2"), ("a", "1")),
            retention=Retention("GOVERNANCE", 2e9),
            legal_hold=True,
            acl='{"grants": []}',
        )
        await catalog.put_artifact(stored)
        assert await catalog.artifact(container.id, "k") == stored

        def untag(old: Artifact) -> Artifact:
            return evolve(old, tags=(), legal_hold=False)

        amended = await catalog.amend_artifact(container.id, "k", None, untag)
        assert amended.tags == () and not amended.legal_hold and amended.retention == stored.retention
        assert await catalog.artifact(container.id, "k") == amended
        # The blob is still the version's: never queued for the sweep to free.
        assert await catalog.garbage(10) == []

        def refuse(old: Artifact) -> Artifact:
            raise PermissionError("locked")

        with pytest.raises(PermissionError):
            await catalog.amend_artifact(container.id, "k", None, refuse)
        assert await catalog.artifact(container.id, "k") == amended
        with pytest.raises(NoSuchArtifact):
            await catalog.amend_artifact(container.id, "missing", None, untag)
        with pytest.raises(ValueError):
            await catalog.amend_artifact(container.id, "k", None, lambda old: evolve(old, size=4))

        upload = Upload("u1", container.id, "m", 1.0, tags=(("x", "y"),), retention=Retention("COMPLIANCE", 3e9))
        await catalog.create_upload(upload)
        assert await catalog.upload(container.id, "u1") == upload
    finally:
        await catalog.stop()
