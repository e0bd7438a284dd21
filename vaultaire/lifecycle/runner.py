"""The lifecycle runner: applies every container's rules, once per deployment, in the background.

It runs where the other once-per-data-directory work runs (the single daemon, or the
supervisor of workers: vaultaire/service.py ``periodic_work``), at start and then every
``[lifecycle] day_seconds``. A run never overlaps the previous one (the timer waits for it).

Each container is walked in bounded pages of versions (``Catalog.list_versions``; every call
a Deferred: requests are served between them). After each page the last key finished is
written down as the container's ``lifecycle-cursor`` setting, so a run that dies (kill -9)
goes on after it; a pass that reaches the end removes it and the next run starts over.

Nothing a client wrote meanwhile is lost, because every change is checked in its own
transaction: an expiration of a current version (``Catalog.expire_current``) only if the key
still holds exactly that version, a noncurrent version or delete marker
(``Catalog.delete_version`` with a guard) only if it is still what it was. A transition copies
the blobs to the target placement, swaps them in only if the version still holds the old ones
(``Catalog.move_artifact``), and only then frees the old ones; a copy whose swap is refused,
or that a crash interrupts, is freed (or left as a write intent the garbage sweep frees). A
version Object Lock keeps (retention, legal hold) is never deleted: not by an expiration, a
noncurrent expiration, nor by the null delete marker of a suspended bucket.

Every action is one event in the event log (operation ``Lifecycle...``, with the rule id)
and one increment of ``vaultaire_lifecycle_actions{action=...}``.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

from attrs import define, evolve, field
from twisted.logger import Logger

from vaultaire.drivers.copy import copy_blob
from vaultaire.encryption.packages import sealed_size
from vaultaire.engine import Engine
from vaultaire.errors import DriverError, NoSuchContainer, NoSuchUpload
from vaultaire.lifecycle import documents, evaluate, rules
from vaultaire.lifecycle.evaluate import Action, Version
from vaultaire.model import Artifact, Container, RequestContext, Upload
from vaultaire.ops.events import EventLog, make_event
from vaultaire.ops.metrics import LifecycleMetrics

log = Logger()

CURSOR = "lifecycle-cursor"  # container setting: the last key a pass that did not finish reached
BATCH = 100
CONTAINER_BATCH = 100

# The event's operation for each kind of action.
OPERATIONS = {
    evaluate.EXPIRE: "LifecycleExpire",
    evaluate.REMOVE_MARKER: "LifecycleRemoveDeleteMarker",
    evaluate.EXPIRE_NONCURRENT: "LifecycleExpireNoncurrent",
    evaluate.TRANSITION: "LifecycleTransition",
    evaluate.NONCURRENT_TRANSITION: "LifecycleTransitionNoncurrent",
    evaluate.ABORT_UPLOAD: "LifecycleAbortUpload",
}


@define
class RunReport:
    containers: int = 0
    examined: int = 0  # versions and uploads looked at
    actions: dict[str, int] = field(factory=dict)
    locked: int = 0  # due for deletion but kept by Object Lock
    skipped: int = 0  # changed by a client meanwhile, or waiting for what this build lacks


class LifecycleRunner:
    def __init__(
        self,
        engine: Engine,
        *,
        events: EventLog | None = None,
        metrics: LifecycleMetrics | None = None,
        day_seconds: float = evaluate.DAY,
        clock: Callable[[], float] = time.time,
        batch: int = BATCH,
    ) -> None:
        self.engine = engine
        self.catalog = engine.catalog
        self.events = events
        self.metrics = metrics
        self.day_seconds = day_seconds
        self.clock = clock
        self.batch = batch
        self._running = False
        self._stopping = False

    def stop(self) -> None:
        """End the run in progress at its next page (its cursor kept): a daemon that is asked to
        stop must not wait for a pass over millions of versions. No run starts after this."""
        self._stopping = True

    async def run(self) -> RunReport:
        """One pass over every container with a lifecycle configuration."""
        report = RunReport()
        if self._running or self._stopping:  # a caller outside the timer (a test, an admin) while one is running
            return report
        self._running = True
        try:
            tenants = {t.id: t.name for t in await self.catalog.tenants()}
            after_id = 0
            while True:
                page = await self.catalog.containers_with_setting(rules.SETTING, after_id, CONTAINER_BATCH)
                for container, stored in page:
                    if self._stopping:
                        return report
                    report.containers += 1
                    try:
                        configuration = documents.load(stored)
                        await self._container(container, configuration, tenants.get(container.tenant_id), report)
                    except NoSuchContainer:
                        pass  # deleted while the run went through it: nothing left to do there
                    except Exception:
                        # One container's trouble (a placement down) must not stop the others'.
                        log.failure("lifecycle run on container {name} failed", name=container.name)
                if len(page) < CONTAINER_BATCH:
                    break
                after_id = page[-1][0].id
        finally:
            self._running = False
        if self.metrics is not None:
            self.metrics.runs.inc()
        return report

    async def _container(
        self, container: Container, configuration: rules.Configuration, tenant: str | None, report: RunReport
    ) -> None:
        enabled = configuration.enabled
        if any(rule.abort_days is not None for rule in enabled):
            await self._uploads(container, configuration, tenant, report)
        if any(_acts_on_versions(rule) for rule in enabled):
            await self._versions(container, configuration, tenant, report)

    async def _uploads(
        self, container: Container, configuration: rules.Configuration, tenant: str | None, report: RunReport
    ) -> None:
        key_marker: str | None = None
        id_marker: str | None = None
        prefix = evaluate.common_prefix(configuration)
        while True:
            uploads, _, truncated = await self.catalog.list_uploads(
                container.id, prefix, "", key_marker, id_marker, self.batch
            )
            for upload in uploads:
                report.examined += 1
                action = evaluate.abort_due(configuration, upload, self.clock(), self.day_seconds)
                if action is not None:
                    await self._abort(container, upload, action, tenant, report)
            if not truncated or not uploads or self._stopping:
                return
            key_marker, id_marker = uploads[-1].key, uploads[-1].id

    async def _abort(
        self, container: Container, upload: Upload, action: Action, tenant: str | None, report: RunReport
    ) -> None:
        try:
            await self.engine.abort_upload(self._ctx(), container, upload.id)
        except NoSuchUpload:
            report.skipped += 1  # completed or aborted meanwhile
            return
        self._record(action, container, upload.key, tenant, report, upload_id=upload.id)

    async def _versions(
        self, container: Container, configuration: rules.Configuration, tenant: str | None, report: RunReport
    ) -> None:
        prefix = evaluate.common_prefix(configuration)
        # A run that died left the last key it finished: this one goes on after it.
        key_marker = await self.catalog.setting(container, CURSOR)
        version_marker: str | None = None
        walk = _KeyWalk(container)
        while True:
            page = await self.catalog.list_versions(container.id, prefix, "", key_marker, version_marker, self.batch)
            for artifact in page.versions:
                report.examined += 1
                for version, found in walk.feed(artifact):
                    await self._evaluate(container, configuration, version, found, tenant, report)
            if not page.truncated or page.next_key_marker is None:
                break
            key_marker, version_marker = page.next_key_marker, page.next_version_id_marker
            if walk.done_key is not None:
                await self.catalog.put_setting(container, CURSOR, walk.done_key)
            if self._stopping:
                return  # the next start goes on from the cursor
        for version, found in walk.finish():
            await self._evaluate(container, configuration, version, found, tenant, report)
        await self.catalog.delete_setting(container, CURSOR)

    async def _evaluate(
        self,
        container: Container,
        configuration: rules.Configuration,
        version: Version,
        artifact: Artifact,
        tenant: str | None,
        report: RunReport,
    ) -> None:
        action = evaluate.due(configuration, version, self.clock(), self.day_seconds)
        if action is None:
            return
        if action.kind in (evaluate.TRANSITION, evaluate.NONCURRENT_TRANSITION):
            await self._transition(container, artifact, action, tenant, report)
            return
        try:
            if action.kind == evaluate.EXPIRE:
                done = await self._expire_current(container, artifact)
            else:  # REMOVE_MARKER, EXPIRE_NONCURRENT: that one version goes for good
                done = await self._delete_version(container, artifact, action)
        except _Locked:
            report.locked += 1
            return
        except _Changed:
            report.skipped += 1  # a client changed the key meanwhile: its write wins
            return
        if done:
            self._record(action, container, artifact.key, tenant, report, version_id=artifact.version_id)

    async def _expire_current(self, container: Container, artifact: Artifact) -> bool:
        """S3's expiration of a current version: deleted when the container was never versioned,
        else a delete marker on top (Suspended: a null marker, replacing the null version).
        Checked in the delete's transaction: still that version, and nothing locked removed."""
        now = self.clock()

        def guard(current: Artifact | None, doomed: Artifact | None) -> None:
            if current is None or current.version_id != artifact.version_id:
                raise _Changed()
            if current.locators != artifact.locators or current.modified != artifact.modified:
                raise _Changed()
            if doomed is not None and evaluate.locked(doomed, now):
                raise _Locked()

        change = await self.catalog.expire_current(container.id, artifact.key, guard)
        if change.removed is not None:
            await self.engine.release(change.removed, container)
        return True

    async def _delete_version(self, container: Container, artifact: Artifact, action: Action) -> bool:
        now = self.clock()

        def guard(found: Artifact) -> None:
            if found.delete_marker != artifact.delete_marker:
                raise _Changed()
            if action.kind == evaluate.EXPIRE_NONCURRENT and found.is_latest:
                raise _Changed()  # current again (its successor was deleted): not for this rule
            if action.kind == evaluate.REMOVE_MARKER and not found.is_latest:
                raise _Changed()
            if evaluate.locked(found, now):
                raise _Locked()

        change = await self.catalog.delete_version(container.id, artifact.key, artifact.version_id, guard)
        if change.removed is None:
            return False  # gone already
        if not change.removed.delete_marker:
            await self.engine.release(change.removed, container)
        return True

    async def _transition(
        self, container: Container, artifact: Artifact, action: Action, tenant: str | None, report: RunReport
    ) -> None:
        target = action.placement
        if target not in self.engine.drivers:
            report.skipped += 1  # a placement removed from the configuration since: the rule waits
            return
        source = artifact.placement or container.placement
        copied: list[str] = []
        try:
            if artifact.parts:
                parts = []
                for locator, size in artifact.parts:
                    new = await self._copy(container, source, target, locator, _stored(size, artifact), copied)
                    parts.append((new, size))
                moved = evolve(artifact, parts=tuple(parts), placement=target, storage_class=target)
            else:
                stored = _stored(artifact.size, artifact)
                new = await self._copy(container, source, target, artifact.locator, stored, copied)
                moved = evolve(artifact, locator=new, placement=target, storage_class=target)
            swapped = await self.catalog.move_artifact(artifact, moved, intended=True)
        except DriverError:
            await self.engine.blobs.withdraw(target, copied)
            # The version it was copying (a noncurrent one too), not the key's current one.
            current = await self.catalog.artifact(container.id, artifact.key, artifact.version_id)
            if current is not None and current.locators == artifact.locators:
                raise  # a real failure: the next run tries again
            report.skipped += 1  # overwritten or deleted while copying: its blob went under us
            return
        except BaseException:
            await self.engine.blobs.withdraw(target, copied)
            raise
        if not swapped:
            report.skipped += 1
            await self.engine.blobs.withdraw(target, copied)
            return
        await self.engine.release(artifact, container)  # the old blobs, queued by the swap
        self._record(action, container, artifact.key, tenant, report, target=target)

    async def _copy(
        self, container: Container, source: str, target: str, locator: str, size: int, copied: list[str]
    ) -> str:
        blob = uuid.uuid4().hex
        new = f"{container.id}/{blob[:2]}/{blob}"
        # Recorded before the first byte: a crash before the swap leaves garbage, never a leak.
        await self.engine.blobs.intend(target, [new])
        copied.append(new)
        await copy_blob(self.engine.source(source, locator), self.engine.placement(target), locator, size, new)
        return new

    def _ctx(self) -> RequestContext:
        return RequestContext("lifecycle-" + secrets.token_hex(6).upper())

    def _record(
        self,
        action: Action,
        container: Container,
        key: str,
        tenant: str | None,
        report: RunReport,
        **extra: str,
    ) -> None:
        report.actions[action.kind] = report.actions.get(action.kind, 0) + 1
        if self.metrics is not None:
            self.metrics.observe(action.kind)
        if self.events is not None:
            event = make_event(
                time=self.clock(),
                request_id="lifecycle-" + secrets.token_hex(6).upper(),
                tenant=tenant,
                operation=OPERATIONS[action.kind],
                container=container.name,
                key=key,
                bytes_in=0,
                bytes_out=0,
                status=200,
                duration=0.0,
            )
            event["rule_id"] = action.rule_id
            event.update(extra)
            self.events.emit(event)


class _Changed(Exception):
    """The version is not what was found due any more."""


class _Locked(Exception):
    """Object Lock keeps the version."""


class _KeyWalk:
    """Turns a stream of versions (by key, newest first) into what the rules look at: when each
    noncurrent version stopped being current, how many noncurrent versions are newer, and
    whether a current delete marker is its key's only version (known at the next version)."""

    def __init__(self, container: Container) -> None:
        self._placement = container.placement
        self.key: str | None = None
        self.done_key: str | None = None  # the last key whose versions have all been seen
        self._newer: float | None = None  # the time of the version just newer than the next one
        self._noncurrent = 0
        self._marker: Artifact | None = None  # a current delete marker, alone so far
        self._seen: set[str] = set()  # the version ids of this key fed so far

    def _version(self, artifact: Artifact, **kw: Any) -> Version:
        return evolve(Version.of(artifact, **kw), placement=artifact.placement or self._placement)

    def feed(self, artifact: Artifact) -> list[tuple[Version, Artifact]]:
        out: list[tuple[Version, Artifact]] = []
        if artifact.key != self.key:
            out += self.finish()
            self.done_key = self.key
            self.key, self._newer, self._noncurrent = artifact.key, None, 0
            self._seen.clear()
        if artifact.version_id in self._seen:
            # A page can start over at its key (the marker was a null version we just deleted):
            # counted once, or NewerNoncurrentVersions would keep too few.
            return out
        self._seen.add(artifact.version_id)
        if artifact.is_latest:
            self._newer = artifact.modified
            if artifact.delete_marker:
                self._marker = artifact  # alone unless an older version follows
            else:
                out.append((self._version(artifact), artifact))
            return out
        self._marker = None
        since = self._newer if self._newer is not None else artifact.modified
        out.append((self._version(artifact, noncurrent_since=since, newer_noncurrent=self._noncurrent), artifact))
        if not artifact.delete_marker:
            self._noncurrent += 1
        self._newer = artifact.modified
        return out

    def finish(self) -> list[tuple[Version, Artifact]]:
        marker, self._marker = self._marker, None
        return [] if marker is None else [(self._version(marker, only_version=True), marker)]


def _acts_on_versions(rule: rules.Rule) -> bool:
    return (
        rule.expiration_days is not None
        or rule.expiration_date is not None
        or bool(rule.expired_object_delete_marker)
        or rule.has_noncurrent_expiration
        or bool(rule.transitions)
        or bool(rule.noncurrent_transitions)
    )


def _stored(plain_size: int, artifact: Artifact) -> int:
    """A blob's size on its driver: an encrypted one holds its packages' tags too (copied as is)."""
    return sealed_size(plain_size) if artifact.sealing is not None else plain_size


__all__ = ["CURSOR", "LifecycleRunner", "RunReport"]
