"""Usage metering on a scripted timeline with a fake clock: exact byte-hours, the bill to the cent."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from decimal import Decimal

import pytest_twisted
from daemon import ADMIN
from twisted.internet import reactor

from vaultaire.billing import TIB, monthly_bill
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.config import Settings
from vaultaire.model import Artifact, Tenant
from vaultaire.ops.metering import Meter, request_class
from vaultaire.ops.metrics import Metrics
from vaultaire.sealing import SecretBox, load_master_key


def at(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


class FakeClock:
    def __init__(self, start: str) -> None:
        self.now = at(start)

    def set(self, text: str) -> None:
        self.now = at(text)

    def __call__(self) -> float:
        return self.now


async def open_catalog(data: str, clock: FakeClock) -> SQLiteCatalog:
    box = SecretBox(load_master_key(Settings(data=data), data, create=True))
    catalog = SQLiteCatalog(os.path.join(data, "catalog.sqlite3"), reactor, box, clock=clock)
    await catalog.start()
    return catalog


def artifact(container_id: int, key: str, size: int, when: float) -> Artifact:
    return Artifact(container_id, key, f"fake/{key}", size, "0" * 32, when)


@pytest_twisted.ensureDeferred
async def test_half_a_month_of_a_tebibyte_then_delete_and_download(tmp_path):
    data = str(tmp_path)
    clock = FakeClock("2026-09-01 00:00:00")
    catalog = await open_catalog(data, clock)
    try:
        tenant = await catalog.create_tenant("acme")
        archive = await catalog.create_container(tenant.id, "archive", "local")
        photos = await catalog.create_container(tenant.id, "photos", "local")
        # 1 TiB stored from the 1st to the 16th of September (15 days = 360 hours) in one container...
        await catalog.put_artifact(artifact(archive.id, "tib", TIB, clock()))
        clock.set("2026-09-16 00:00:00")
        await catalog.delete_artifact(archive.id, "tib")
        # ...and in another, 3 GiB from the 20th at 12:30 to the end of the month and beyond,
        # replaced by 1 GiB halfway through the 25th: changes that straddle hours.
        clock.set("2026-09-20 12:30:00")
        await catalog.put_artifact(artifact(photos.id, "p", 3 * 2**30, clock()))
        clock.set("2026-09-25 12:00:00")
        await catalog.put_artifact(artifact(photos.id, "p", 2**30, clock()))
        # Deleted two days into October: a stored object would count up to the admin's real "now",
        # which the test does not control.
        clock.set("2026-10-03 00:00:00")
        await catalog.delete_artifact(photos.id, "p")
        await catalog.rollup_usage()

        # Downloads, metered the way the S3 front end does.
        metrics = Metrics()
        meter = Meter(catalog.add_traffic, metrics, clock)
        clock.set("2026-09-30 23:59:59")
        who = Tenant(tenant.id, "acme")
        for _ in range(4):
            meter.record(who, "photos", "GET", "GetObject", sent=2**30, received=0)
        meter.record(who, "photos", "PUT", "PutObject", sent=0, received=1234)
        meter.record(who, "photos", "GET", "ListObjectsV2", sent=500, received=0)
        meter.record(who, "photos", "DELETE", "DeleteObject", sent=0, received=0)
        await meter.flush()

        september = at("2026-09-01 00:00:00") // 3600
        rows = await catalog.usage(tenant.id, int(september), int(september) + 30 * 24)
        bill = monthly_bill("acme", "2026-09", rows, Decimal("3.99"))
    finally:
        await catalog.stop()

    archive_hours = TIB * 360
    photos_hours = 3 * 2**30 * (4 * 24 + 23.5) + 2**30 * (5 * 24 + 12)  # 20th 12:30 -> 25th 12:00 -> Oct 1st
    assert bill.containers["archive"].byte_hours == archive_hours
    assert bill.containers["photos"].byte_hours == photos_hours
    assert bill.total.byte_hours == archive_hours + photos_hours
    assert bill.total.bytes_out == 4 * 2**30 + 500 and bill.total.bytes_in == 1234
    assert (bill.total.class_a, bill.total.class_b) == (2, 4)  # PUT and LIST; 4 GETs; DELETE is free
    # Half a TiB-month at $3.99 is $1.995, rounded half up; the photos add 0.0005 TiB-months.
    assert bill.amount(bill.containers["archive"]) == Decimal("2.00")
    tb_months = (archive_hours + photos_hours) / (TIB * 720)
    assert bill.amount(bill.total) == Decimal(str(round(tb_months * 3.99 + 1e-9, 2)))
    doc = bill.as_json()
    assert doc["stored_byte_hours"] == archive_hours + photos_hours
    assert doc["requests_class_a"] == 2 and doc["requests_class_b"] == 4
    assert doc["amount_usd"] == str(bill.amount(bill.total))

    # The admin command reads the same rows from the data directory.
    out = subprocess.run(
        [ADMIN, "--data", data, "usage", "--tenant", "acme", "--month", "2026-09", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    for field in ("bytes_in", "bytes_out", "stored_byte_hours", "requests_class_a", "requests_class_b", "amount_usd"):
        assert printed[field] == doc[field], field
    table = subprocess.run(
        [ADMIN, "--data", data, "usage", "--tenant", "acme", "--month", "2026-09"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "GB-MONTHS" in table and "archive" in table and f"${doc['amount_usd']}" in table
    # October: the 1 GiB stored for two days, exactly; nothing else.
    october = json.loads(
        subprocess.run(
            [ADMIN, "--data", data, "usage", "--tenant", "acme", "--month", "2026-10", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    )
    assert october["stored_byte_hours"] == october["containers"]["photos"]["stored_byte_hours"] == 2**30 * 48
    traffic = ("bytes_in", "bytes_out", "requests_class_a", "requests_class_b")
    assert {field: october[field] for field in traffic} == dict.fromkeys(traffic, 0)


@pytest_twisted.ensureDeferred
async def test_deleting_a_container_bills_it_up_to_then(catalog_factory):
    clock = FakeClock("2026-08-10 10:00:00")
    catalog = catalog_factory(clock=clock)  # on each backend
    await catalog.start()
    try:
        tenant = await catalog.create_tenant("t")
        box = await catalog.create_container(tenant.id, "box", "local")
        await catalog.put_artifact(artifact(box.id, "k", 1000, clock()))
        clock.set("2026-08-10 12:15:00")
        await catalog.delete_artifact(box.id, "k")
        await catalog.delete_container(box)
        clock.set("2026-08-20 00:00:00")
        hour = int(at("2026-08-01 00:00:00")) // 3600
        rows = await catalog.usage(tenant.id, hour, hour + 31 * 24)
    finally:
        await catalog.stop()
    assert sum(r.byte_seconds for r in rows) == 1000 * (2 * 3600 + 15 * 60)
    assert {r.hour for r in rows} == {hour + 9 * 24 + h for h in (10, 11, 12)}  # split at hour boundaries


def test_request_classes():
    assert [request_class(m, o) for m, o in (("PUT", "PutObject"), ("POST", "CompleteMultipartUpload"))] == ["a", "a"]
    assert request_class("GET", "ListObjectsV2") == "a" and request_class("GET", "ListBuckets") == "a"
    assert request_class("GET", "GetObject") == "b" and request_class("HEAD", "HeadObject") == "b"
    assert request_class("DELETE", "DeleteObject") is None
