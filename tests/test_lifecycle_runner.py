"""The lifecycle runner in process, with a clock the test moves: expiration, transition, upload
abort, Object Lock, a client's write racing an expiration, and a pass resumed after a crash."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from typing import Any

import pytest_twisted
from attrs import evolve
from twisted.internet.defer import ensureDeferred

from tests.placed import bucket_container, server_with_placements
from tests.s3helpers import Server, error_code
from vaultaire.lifecycle import evaluate
from vaultaire.lifecycle.runner import CURSOR, LifecycleRunner
from vaultaire.ops.events import EventLog
from vaultaire.ops.metrics import LifecycleMetrics, Metrics

DAY = 86400.0


def rule(inner: str, rule_id: str = "r", prefix: str = "") -> str:
    return f"<Rule><ID>{rule_id}</ID><Filter><Prefix>{prefix}</Prefix></Filter><Status>Enabled</Status>{inner}</Rule>"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


server = server_with_placements("cold")


async def configure(server: Server, *rules: str, headers: dict[str, str] | None = None) -> None:
    body = f"<LifecycleConfiguration>{''.join(rules)}</LifecycleConfiguration>".encode()
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    r = await server.request("PUT", "/bucket", body, query="lifecycle", headers={"Content-MD5": md5, **(headers or {})})
    assert r.code == 200, r.body


def runner(server: Server, clock: Clock, **kw: Any) -> tuple[LifecycleRunner, EventLog, LifecycleMetrics]:
    events = EventLog(os.path.join(server.data, "lifecycle-events"))
    metrics = LifecycleMetrics(Metrics().registry)
    return LifecycleRunner(server.engine, events=events, metrics=metrics, clock=clock, **kw), events, metrics


@pytest_twisted.ensureDeferred
async def test_expiration_deletes_what_is_due_and_keeps_the_rest(server: Server) -> None:
    await configure(server, rule("<Expiration><Days>1</Days></Expiration>", "logs", "logs/"))
    for key in ("logs/a", "logs/b", "keep/c"):
        assert (await server.request("PUT", f"/bucket/{key}", b"x" * 10)).code == 200
    clock = Clock()
    run, events, metrics = runner(server, clock)
    report = await run.run()
    assert report.actions == {}  # not a day old yet
    clock.now += 2 * DAY
    events.start()
    report = await run.run()
    events.stop()
    assert report.actions == {evaluate.EXPIRE: 2}
    for key, code in (("logs/a", 404), ("logs/b", 404), ("keep/c", 200)):
        assert (await server.request("HEAD", f"/bucket/{key}")).code == code
    lines = [json.loads(line) for line in open(events.path)]
    assert sorted(e["key"] for e in lines) == ["logs/a", "logs/b"]
    assert {(e["operation"], e["rule_id"], e["container"], e["tenant"]) for e in lines} == {
        ("LifecycleExpire", "logs", "bucket", "default")
    }
    assert metrics.actions.labels(action="expire")._value.get() == 2
    assert len(server.blob_files()) == 1  # the expired blobs are freed
    assert (await server.catalog.tenant_totals((await bucket_container(server)).tenant_id)).objects == 1


@pytest_twisted.ensureDeferred
async def test_an_overwrite_racing_the_expiration_wins(server: Server) -> None:
    await configure(server, rule("<Expiration><Days>1</Days></Expiration>"))
    assert (await server.request("PUT", "/bucket/k", b"old")).code == 200
    real = server.catalog.list_versions

    async def racing(*args: Any) -> Any:
        page = await real(*args)  # the runner has read the old version...
        assert (await server.request("PUT", "/bucket/k", b"new")).code == 200  # ...a client overwrites it
        return page

    server.catalog.list_versions = lambda *args: ensureDeferred(racing(*args))  # type: ignore[method-assign]
    clock = Clock()
    clock.now += 2 * DAY
    run, _, _ = runner(server, clock)
    try:
        report = await run.run()
    finally:
        server.catalog.list_versions = real  # type: ignore[method-assign]
    assert report.skipped == 1 and report.actions == {}
    r = await server.request("GET", "/bucket/k")
    assert (r.code, r.body) == (200, b"new")


async def versions_of(server: Server, key: str) -> list[Any]:
    c = await bucket_container(server)
    page = await server.catalog.list_versions(c.id, key, "", None, None, 1000)
    return [v for v in page.versions if v.key == key]


@pytest_twisted.ensureDeferred
async def test_a_versioned_key_expires_to_a_marker_then_its_versions_and_the_marker_go(server: Server) -> None:
    await configure(
        server,
        rule("<Expiration><Days>1</Days></Expiration>", "current"),
        rule("<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays></NoncurrentVersionExpiration>", "old"),
    )
    await server.catalog.put_setting(await bucket_container(server), "versioning", "Enabled")
    for body in (b"v1", b"v2"):
        assert (await server.request("PUT", "/bucket/k", body)).code == 200
    clock = Clock()
    run, _, _ = runner(server, clock)
    clock.now += 2 * DAY
    report = await run.run()
    # v2 expired (a delete marker on top, v2 kept); v1 was noncurrent for a day: gone for good.
    assert report.actions == {evaluate.EXPIRE: 1, evaluate.EXPIRE_NONCURRENT: 1}
    left = await versions_of(server, "k")
    assert [(v.delete_marker, v.is_latest) for v in left] == [(True, True), (False, False)]
    assert (await server.request("GET", "/bucket/k")).code == 404
    clock.now += 2 * DAY
    report = await run.run()
    assert report.actions == {evaluate.EXPIRE_NONCURRENT: 1}  # v2, noncurrent since the marker
    clock.now += 2 * DAY
    report = await run.run()
    assert report.actions == {evaluate.REMOVE_MARKER: 1}  # the marker, alone now
    assert await versions_of(server, "k") == []
    assert server.blob_files() == []


@pytest_twisted.ensureDeferred
async def test_newer_noncurrent_versions_are_kept_and_locked_ones_too(server: Server) -> None:
    await configure(
        server,
        rule(
            "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
            "<NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration>"
        ),
    )
    c = await bucket_container(server)
    await server.catalog.put_setting(c, "versioning", "Enabled")
    for n in range(5):
        assert (await server.request("PUT", "/bucket/k", f"v{n}".encode())).code == 200
    oldest = (await versions_of(server, "k"))[-1]
    await server.catalog.amend_artifact(c.id, "k", oldest.version_id, lambda a: evolve(a, legal_hold=True))
    clock = Clock()
    clock.now += 3 * DAY
    run, _, _ = runner(server, clock, batch=2)  # a key's versions over several pages
    report = await run.run()
    assert report.actions == {evaluate.EXPIRE_NONCURRENT: 1} and report.locked == 1
    left = await versions_of(server, "k")
    assert len(left) == 4 and left[-1].version_id == oldest.version_id
    r = await server.request("GET", "/bucket/k")
    assert (r.code, r.body) == (200, b"v4")


@pytest_twisted.ensureDeferred
async def test_a_locked_version_is_never_deleted(server: Server) -> None:
    await configure(server, rule("<Expiration><Days>1</Days></Expiration>"))
    assert (await server.request("PUT", "/bucket/held", b"x")).code == 200
    c = await bucket_container(server)
    await server.catalog.amend_artifact(c.id, "held", None, lambda a: evolve(a, legal_hold=True))
    clock = Clock()
    clock.now += 5 * DAY
    run, _, _ = runner(server, clock)
    report = await run.run()
    assert report.locked == 1 and report.actions == {}
    assert (await server.request("HEAD", "/bucket/held")).code == 200


@pytest_twisted.ensureDeferred
async def test_transition_moves_the_blobs_to_the_placement(server: Server) -> None:
    await configure(
        server,
        rule("<Transition><Days>1</Days><StorageClass>cold</StorageClass></Transition>"),
        headers={"x-amz-transition-default-minimum-object-size": "varies_by_storage_class"},
    )
    body = os.urandom(50_000)
    assert (await server.request("PUT", "/bucket/big", body)).code == 200
    cold_dir = os.path.join(server.data, "cold")
    clock = Clock()
    clock.now += 2 * DAY
    run, _, metrics = runner(server, clock)
    report = await run.run()
    assert report.actions == {evaluate.TRANSITION: 1}
    c = await bucket_container(server)
    moved = await server.catalog.artifact(c.id, "big")
    assert moved is not None and moved.placement == "cold" and moved.storage_class == "cold"
    r = await server.request("GET", "/bucket/big")
    assert (r.code, r.body) == (200, body)
    assert r.headers.getRawHeaders("x-amz-storage-class") == ["cold"]
    assert server.blob_files() == []  # the old blob on the container's placement is freed
    assert sum(len(files) for _, _, files in os.walk(cold_dir)) == 1
    assert (await run.run()).actions == {}  # nothing left to move
    assert metrics.actions.labels(action="transition")._value.get() == 1


@pytest_twisted.ensureDeferred
async def test_stale_uploads_are_aborted(server: Server) -> None:
    await configure(
        server,
        rule(
            "<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload>",
            prefix="tmp/",
        ),
    )
    r = await server.request("POST", "/bucket/tmp/big", query="uploads")
    stale = r.body.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
    r = await server.request("PUT", "/bucket/tmp/big", b"p" * 100, query=f"partNumber=1&uploadId={stale}")
    assert r.code == 200
    r = await server.request("POST", "/bucket/keep/big", query="uploads")
    assert r.code == 200
    clock = Clock()
    clock.now += 2 * DAY
    run, _, _ = runner(server, clock)
    report = await run.run()
    assert report.actions == {evaluate.ABORT_UPLOAD: 1}
    r = await server.request("GET", "/bucket", query="uploads")
    assert b"keep/big" in r.body and b"tmp/big" not in r.body
    r = await server.request("GET", "/bucket/tmp/big", query=f"uploadId={stale}")
    assert error_code(r) == "NoSuchUpload"
    assert server.blob_files() == []  # the part's blob is freed


@pytest_twisted.ensureDeferred
async def test_a_pass_that_dies_resumes_at_its_cursor(server: Server) -> None:
    await configure(server, rule("<Expiration><Days>1</Days></Expiration>"))
    keys = [f"k{i}" for i in range(7)]
    for key in keys:
        assert (await server.request("PUT", f"/bucket/{key}", b"x")).code == 200
    c = await bucket_container(server)
    clock = Clock()
    clock.now += 2 * DAY
    run, _, _ = runner(server, clock, batch=2)
    real = server.catalog.list_versions
    calls = []

    def dying(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real(*args)

    server.catalog.list_versions = dying  # type: ignore[method-assign]
    try:
        await run.run()  # the container's failure is logged, the run goes on
    finally:
        server.catalog.list_versions = real  # type: ignore[method-assign]
    assert await server.catalog.setting(c, CURSOR) == "k2"  # the last key known to be finished
    page = await server.catalog.list_artifacts(c.id, "", "", None, 100)
    assert [a.key for a in page.artifacts] == keys[4:]
    resumed = []
    server.catalog.list_versions = lambda *args: resumed.append(args[3]) or real(*args)  # type: ignore[method-assign]
    try:
        report = await run.run()
    finally:
        server.catalog.list_versions = real  # type: ignore[method-assign]
    assert resumed[0] == "k2"  # not from the first key again
    assert report.actions == {evaluate.EXPIRE: 3}
    assert (await server.catalog.list_artifacts(c.id, "", "", None, 100)).artifacts == ()
    assert await server.catalog.setting(c, CURSOR) is None


@pytest_twisted.ensureDeferred
async def test_noncurrent_versions_transition_and_the_current_one_stays(server: Server) -> None:
    await configure(
        server,
        rule(
            "<NoncurrentVersionTransition><NoncurrentDays>1</NoncurrentDays><StorageClass>cold</StorageClass>"
            "</NoncurrentVersionTransition>"
        ),
        headers={"x-amz-transition-default-minimum-object-size": "varies_by_storage_class"},
    )
    c = await bucket_container(server)
    await server.catalog.put_setting(c, "versioning", "Enabled")
    for body in (b"first", b"second"):
        assert (await server.request("PUT", "/bucket/k", body)).code == 200
    clock = Clock()
    clock.now += 3 * DAY
    run, _, _ = runner(server, clock)
    report = await run.run()
    assert report.actions == {evaluate.NONCURRENT_TRANSITION: 1}
    current, old = await versions_of(server, "k")
    assert (current.placement or c.placement, old.placement, old.storage_class) == ("local", "cold", "cold")
    r = await server.request("GET", "/bucket/k", query=f"versionId={old.version_id}")
    assert (r.code, r.body) == (200, b"first")
    assert (await run.run()).actions == {}


@pytest_twisted.ensureDeferred
async def test_a_page_that_starts_its_key_over_counts_each_version_once(server: Server) -> None:
    # The page ends on k's null version, which the run deletes: the next page lists k's remaining
    # versions again. v2 must still count as the one newer noncurrent version to keep.
    await configure(
        server,
        rule(
            "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
            "<NewerNoncurrentVersions>1</NewerNoncurrentVersions></NoncurrentVersionExpiration>"
        ),
    )
    c = await bucket_container(server)
    assert (await server.request("PUT", "/bucket/k", b"null")).code == 200
    await server.catalog.put_setting(c, "versioning", "Enabled")
    for body in (b"v1", b"v2", b"v3"):
        assert (await server.request("PUT", "/bucket/k", body)).code == 200
    assert (await server.request("PUT", "/bucket/z", b"z")).code == 200
    clock = Clock()
    clock.now += 3 * DAY
    run, _, _ = runner(server, clock, batch=4)
    report = await run.run()
    assert report.actions == {evaluate.EXPIRE_NONCURRENT: 2}
    left = await versions_of(server, "k")
    bodies = [(await server.request("GET", "/bucket/k", query=f"versionId={v.version_id}")).body for v in left]
    assert bodies == [b"v3", b"v2"]


@pytest_twisted.ensureDeferred
async def test_a_suspended_expiration_never_removes_a_locked_null_version(server: Server) -> None:
    # On a suspended bucket an expiration's null delete marker replaces the null version,
    # wherever it is: a locked one keeps the key as it is.
    await configure(server, rule("<Expiration><Days>1</Days></Expiration>"))
    c = await bucket_container(server)
    assert (await server.request("PUT", "/bucket/k", b"null")).code == 200
    await server.catalog.amend_artifact(c.id, "k", "null", lambda a: evolve(a, legal_hold=True))
    await server.catalog.put_setting(c, "versioning", "Enabled")
    assert (await server.request("PUT", "/bucket/k", b"v1")).code == 200
    await server.catalog.put_setting(c, "versioning", "Suspended")
    clock = Clock()
    clock.now += 3 * DAY
    run, _, _ = runner(server, clock)
    report = await run.run()
    assert report.locked == 1 and report.actions == {}
    r = await server.request("GET", "/bucket/k", query="versionId=null")
    assert (r.code, r.body) == (200, b"null")
    assert (await server.request("GET", "/bucket/k")).body == b"v1"


@pytest_twisted.ensureDeferred
async def test_a_versioned_write_racing_the_expiration_is_not_hidden_by_a_marker(server: Server) -> None:
    await configure(server, rule("<Expiration><Days>1</Days></Expiration>"))
    await server.catalog.put_setting(await bucket_container(server), "versioning", "Enabled")
    assert (await server.request("PUT", "/bucket/k", b"old")).code == 200
    real = server.catalog.list_versions

    async def racing(*args: Any) -> Any:
        page = await real(*args)
        assert (await server.request("PUT", "/bucket/k", b"new")).code == 200
        return page

    server.catalog.list_versions = lambda *args: ensureDeferred(racing(*args))  # type: ignore[method-assign]
    clock = Clock()
    clock.now += 2 * DAY
    run, _, _ = runner(server, clock)
    try:
        report = await run.run()
    finally:
        server.catalog.list_versions = real  # type: ignore[method-assign]
    assert report.skipped == 1 and report.actions == {}
    r = await server.request("GET", "/bucket/k")
    assert (r.code, r.body) == (200, b"new")


@pytest_twisted.ensureDeferred
async def test_a_tag_filter_selects_by_the_objects_tags(server: Server) -> None:
    await configure(
        server,
        "<Rule><ID>t</ID><Filter><Tag><Key>retain</Key><Value>short</Value></Tag></Filter><Status>Enabled</Status>"
        "<Expiration><Days>1</Days></Expiration></Rule>",
    )
    r = await server.request("PUT", "/bucket/tagged", b"x", headers={"x-amz-tagging": "retain=short"})
    assert r.code == 200 and r.headers.getRawHeaders("x-amz-expiration")[0].endswith('rule-id="t"')
    r = await server.request("PUT", "/bucket/other", b"x", headers={"x-amz-tagging": "retain=long"})
    assert r.code == 200 and r.headers.getRawHeaders("x-amz-expiration") is None
    clock = Clock()
    clock.now += 2 * DAY
    run, _, _ = runner(server, clock)
    assert (await run.run()).actions == {evaluate.EXPIRE: 1}
    assert (await server.request("HEAD", "/bucket/tagged")).code == 404
    assert (await server.request("HEAD", "/bucket/other")).code == 200


@pytest_twisted.ensureDeferred
async def test_a_bucket_deleted_during_a_run_is_no_failure(server: Server) -> None:
    await configure(server, rule("<Expiration><Days>1</Days></Expiration>"))
    for n in range(3):
        assert (await server.request("PUT", f"/bucket/k{n}", b"x")).code == 200
    c = await bucket_container(server)
    real = server.catalog.list_versions

    async def deleting(*args: Any) -> Any:
        page = await real(*args)
        for n in range(3):
            await server.request("DELETE", f"/bucket/k{n}")
        assert (await server.request("DELETE", "/bucket")).code == 204
        return page

    server.catalog.list_versions = lambda *args: ensureDeferred(deleting(*args))  # type: ignore[method-assign]
    clock = Clock()
    clock.now += 2 * DAY
    run, _, _ = runner(server, clock, batch=2)
    errors: list[Any] = []
    from twisted.logger import globalLogPublisher

    def observe(event: Any) -> None:
        if event.get("log_failure") is not None:
            errors.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        report = await run.run()
    finally:
        globalLogPublisher.removeObserver(observe)
        server.catalog.list_versions = real  # type: ignore[method-assign]
    assert errors == [] and report.containers == 1
    assert await server.catalog.container(c.tenant_id, "bucket") is None


@pytest_twisted.ensureDeferred
async def test_stop_ends_a_run_at_its_next_page_and_keeps_its_cursor(server: Server) -> None:
    await configure(server, rule("<Expiration><Days>1</Days></Expiration>"))
    for n in range(6):
        assert (await server.request("PUT", f"/bucket/k{n}", b"x")).code == 200
    c = await bucket_container(server)
    clock = Clock()
    clock.now += 2 * DAY
    run, _, _ = runner(server, clock, batch=2)
    real = server.catalog.list_versions

    def stopping(*args: Any) -> Any:
        run.stop()  # as the daemon's shutdown does while the first page is read
        return real(*args)

    server.catalog.list_versions = stopping  # type: ignore[method-assign]
    try:
        report = await run.run()
    finally:
        server.catalog.list_versions = real  # type: ignore[method-assign]
    assert report.actions == {evaluate.EXPIRE: 2}
    assert await server.catalog.setting(c, CURSOR) == "k0"
    assert (await run.run()).actions == {}  # no run starts once stopped


@pytest_twisted.ensureDeferred
async def test_random_histories_end_as_a_whole_list_model_says_whatever_the_page_size(server: Server) -> None:
    """Keys with random histories of writes and deletes, read by the runner in pages of random
    sizes, end as computing each key's whole list of versions at once says they should."""
    import random

    keep = 2
    removed = 0
    for seed in range(6):
        rnd = random.Random(seed)
        bucket = f"model{seed}"
        assert (await server.request("PUT", f"/{bucket}")).code == 200
        body = (
            "<LifecycleConfiguration>"
            + rule(
                "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
                f"<NewerNoncurrentVersions>{keep}</NewerNoncurrentVersions></NoncurrentVersionExpiration>",
                "n",
            )
            + rule("<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>", "m")
            + "</LifecycleConfiguration>"
        ).encode()
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        assert (
            await server.request("PUT", f"/{bucket}", body, query="lifecycle", headers={"Content-MD5": md5})
        ).code == 200
        c = await server.catalog.container((await server.catalog.tenant("default")).id, bucket)
        await server.catalog.put_setting(c, "versioning", "Enabled")
        for n in range(rnd.randint(2, 5)):
            for _ in range(rnd.randint(1, 7)):
                if rnd.random() < 0.3:
                    await server.request("DELETE", f"/{bucket}/key{n}")
                else:
                    await server.request("PUT", f"/{bucket}/key{n}", os.urandom(8))
        before = (await server.catalog.list_versions(c.id, "", "", None, None, 1000)).versions
        expected: list[tuple[str, str]] = []
        for key in sorted({v.key for v in before}):
            versions = [v for v in before if v.key == key]  # newest first
            kept, newer_data = [versions[0]], 0
            for v in versions[1:]:
                if newer_data < keep:
                    kept.append(v)
                if not v.delete_marker:
                    newer_data += 1
            if len(kept) == 1 and kept[0].delete_marker:
                kept = []  # a delete marker left alone
            expected += [(v.key, v.version_id) for v in kept]
        clock = Clock()
        clock.now += 3 * DAY
        run, _, _ = runner(server, clock, batch=rnd.randint(1, 5))
        for _ in range(2):  # a marker left alone by this run's deletions goes at the next
            await run.run()
        after = (await server.catalog.list_versions(c.id, "", "", None, None, 1000)).versions
        assert [(v.key, v.version_id) for v in after] == expected, seed
        removed += len(before) - len(after)
    assert removed > 10  # the histories gave the rules something to do
