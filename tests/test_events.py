"""Tests for vaultaire.ops.events: the JSON-lines event log."""

from __future__ import annotations

import calendar
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vaultaire.ops.events import CURRENT_NAME, EventLog, format_time, make_event

ROTATED = re.compile(r"^events-\d{8}-\d{6}(-\d+)?\.jsonl$")


def _utc(*fields: int) -> float:
    return float(calendar.timegm((*fields, 0, 0, 0)))


def _read_lines(directory: Path) -> list[dict[str, Any]]:
    """Every event across the current and rotated files; fails on a torn line."""
    events: list[dict[str, Any]] = []
    for path in sorted(directory.iterdir()):
        data = path.read_bytes()
        assert data == b"" or data.endswith(b"\n"), f"{path.name} ends mid-line"
        events.extend(json.loads(line) for line in data.splitlines())
    return events


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    return tmp_path / "events"


@pytest.fixture
def started(logdir: Path) -> Iterator[EventLog]:
    log = EventLog(str(logdir))
    log.start()
    yield log
    log.stop()


def _event(i: int, **extra: object) -> dict[str, object]:
    return make_event(
        time=1_700_000_000.0 + i,
        request_id=f"req-{i}",
        tenant="acme",
        operation="PutObject",
        container="photos",
        key=f"cat-{i}.jpg",
        bytes_in=100 + i,
        bytes_out=0,
        status=200,
        duration=0.0123456,
        **extra,  # type: ignore[arg-type]
    )


def test_make_event_fields() -> None:
    event = make_event(
        time=_utc(2026, 11, 21, 15, 4, 5) + 0.1234,
        request_id="r1",
        tenant=None,
        operation="GetObject",
        container="b",
        key=None,
        bytes_in=0,
        bytes_out=42,
        status=404,
        duration=0.0015,
        error="NoSuchKey",
    )
    assert event == {
        "time": "2026-11-21T15:04:05.123Z",
        "request_id": "r1",
        "tenant": None,
        "operation": "GetObject",
        "container": "b",
        "key": None,
        "bytes_in": 0,
        "bytes_out": 42,
        "status": 404,
        "duration_ms": 1.5,
        "error": "NoSuchKey",
    }


def test_format_time_never_rounds_up_to_1000ms() -> None:
    assert format_time(_utc(2026, 1, 1, 0, 0, 0) + 0.9996) == "2026-01-01T00:00:00.999Z"


def test_events_written_as_json_lines(started: EventLog, logdir: Path) -> None:
    for i in range(3):
        started.emit(_event(i))
    started.stop()
    assert os.listdir(logdir) == [CURRENT_NAME]
    raw = (logdir / CURRENT_NAME).read_text("utf-8")
    assert raw.count("\n") == 3
    assert '", "' not in raw  # compact separators
    events = _read_lines(logdir)
    assert events == [_event(i) for i in range(3)]
    assert set(events[0]) == {
        "time", "request_id", "tenant", "operation", "container", "key",
        "bytes_in", "bytes_out", "status", "duration_ms", "error",
    }  # fmt: skip
    assert events[0]["duration_ms"] == 12.346


def test_non_ascii_kept_readable(started: EventLog, logdir: Path) -> None:
    started.emit({"key": "ключ/日本.txt", "bad": "\udcff"})
    started.stop()
    raw = (logdir / CURRENT_NAME).read_text("utf-8")
    assert "ключ/日本.txt" in raw
    assert json.loads(raw)["bad"] == "\udcff"


def test_emit_from_many_threads(started: EventLog, logdir: Path) -> None:
    threads, per_thread = 8, 500

    def worker(t: int) -> None:
        for i in range(per_thread):
            started.emit({"thread": t, "i": i})

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    started.stop()
    events = _read_lines(logdir)
    assert len(events) == threads * per_thread
    assert {(e["thread"], e["i"]) for e in events} == {(t, i) for t in range(threads) for i in range(per_thread)}
    assert started.dropped == 0


def test_full_queue_drops_and_counts(logdir: Path) -> None:
    log = EventLog(str(logdir), queue_size=5)  # not started: nothing drains
    for i in range(12):
        log.emit({"i": i})
    assert log.dropped == 7
    log.start()
    log.stop()
    assert [e["i"] for e in _read_lines(logdir)] == [0, 1, 2, 3, 4]


def test_emit_never_raises(started: EventLog, logdir: Path) -> None:
    circular: dict[str, object] = {}
    circular["self"] = circular
    started.emit({"obj": object(), "when": b"bytes", "n": 1})
    started.emit({"circular": circular})  # cannot serialise: dropped, counted
    started.emit(None)  # type: ignore[arg-type]  # not a mapping at all
    started.emit({"n": 2})
    started.stop()
    events = _read_lines(logdir)
    assert [e["n"] for e in events] == [1, 2]
    assert events[0]["obj"].startswith("<object object")
    assert events[0]["when"] == "b'bytes'"
    assert started.dropped == 2


def test_stop_flushes_everything(logdir: Path) -> None:
    log = EventLog(str(logdir))
    log.start()
    for i in range(5000):
        log.emit({"i": i})
    log.stop()
    assert len(_read_lines(logdir)) == 5000
    log.stop()  # idempotent


def test_flush_waits_for_writes(started: EventLog, logdir: Path) -> None:
    started.emit({"i": 1})
    assert started.flush()
    assert _read_lines(logdir) == [{"i": 1}]


def test_rotation_by_size(logdir: Path) -> None:
    log = EventLog(str(logdir), max_bytes=1000)
    log.start()
    for i in range(400):
        log.emit(_event(i))
        if i % 50 == 0:
            log.flush()  # vary batch boundaries
    log.stop()
    names = sorted(os.listdir(logdir))
    rotated = [n for n in names if n != CURRENT_NAME]
    assert CURRENT_NAME in names
    assert len(rotated) > 10
    assert all(ROTATED.match(n) for n in rotated), rotated
    for name in names:
        assert (logdir / name).stat().st_size <= 1000
    # No line lost, duplicated or torn, across all files.
    assert sorted(e["request_id"] for e in _read_lines(logdir)) == sorted(f"req-{i}" for i in range(400))


def test_rotation_never_overwrites(logdir: Path) -> None:
    logdir.mkdir()
    now = _utc(2026, 11, 21, 12, 0, 0)
    (logdir / "events-20261121-120000.jsonl").write_text('{"old":1}\n')
    log = EventLog(str(logdir), max_bytes=20, clock=lambda: now)
    log.start()
    for i in range(3):
        log.emit({"i": f"{i:012d}"})  # 20 bytes per line: one line per file
    log.stop()
    names = sorted(os.listdir(logdir))
    assert names == [
        "events-20261121-120000-1.jsonl",
        "events-20261121-120000-2.jsonl",
        "events-20261121-120000.jsonl",
        CURRENT_NAME,
    ]
    assert (logdir / "events-20261121-120000.jsonl").read_text() == '{"old":1}\n'
    assert len(_read_lines(logdir)) == 4


def test_rotation_by_day(logdir: Path) -> None:
    now = [_utc(2026, 11, 21, 23, 59, 58)]
    log = EventLog(str(logdir), clock=lambda: now[0])
    log.start()
    log.emit({"day": 1})
    log.flush()
    now[0] += 1  # still the same UTC day
    log.emit({"day": 1.5})
    log.flush()
    assert os.listdir(logdir) == [CURRENT_NAME]
    now[0] += 3  # past midnight UTC
    log.emit({"day": 2})
    log.stop()
    assert sorted(os.listdir(logdir)) == ["events-20261121-235958.jsonl", CURRENT_NAME]
    old = (logdir / "events-20261121-235958.jsonl").read_text().splitlines()
    assert [json.loads(x)["day"] for x in old] == [1, 1.5]
    assert json.loads((logdir / CURRENT_NAME).read_text()) == {"day": 2}


def test_no_daily_rotation_when_disabled(logdir: Path) -> None:
    now = [_utc(2026, 11, 21, 23, 59, 59)]
    log = EventLog(str(logdir), rotate_daily=False, clock=lambda: now[0])
    log.start()
    log.emit({"a": 1})
    log.flush()
    now[0] += 86400
    log.emit({"a": 2})
    log.stop()
    assert os.listdir(logdir) == [CURRENT_NAME]


def test_write_error_counted_and_thread_survives(logdir: Path) -> None:
    log = EventLog(str(logdir))
    log.start()
    try:
        log.emit({"n": 1})
        assert log.flush()
        # The data directory disappears and a plain file takes its place:
        # reopening fails (as root too, unlike chmod).
        shutil.rmtree(logdir)
        logdir.write_text("not a directory")
        log.emit({"n": 2})
        assert log.flush()
        assert log.write_errors == 1
        assert log.lost == 1
        log.emit({"n": 3})
        assert log.flush()
        assert log.write_errors == 2
        # Repair: the same thread recovers and writes again.
        logdir.unlink()
        log.emit({"n": 4})
        assert log.flush()
        assert log._thread is not None and log._thread.is_alive()
    finally:
        log.stop()
    assert _read_lines(logdir) == [{"n": 4}]
    assert log.write_errors == 2


def test_write_error_mid_write(logdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = EventLog(str(logdir))
    log.start()
    log.emit({"n": 1})
    assert log.flush()
    assert log._fh is not None
    fd = log._fh
    real_write = os.write
    calls = []

    def failing_write(target: int, data: bytes) -> int:
        if target != fd or calls:  # only the first write of the batch fails (the fd number is reused)
            return real_write(target, data)
        calls.append(data)
        real_write(target, bytes(data[:3]))  # a torn line, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", failing_write)
    log.emit({"n": 2})
    assert log.flush()
    assert log.write_errors == 1 and calls
    log.emit({"n": 3})
    log.stop()
    raw = (logdir / CURRENT_NAME).read_bytes().splitlines()
    # The torn fragment is isolated on its own line; later events stay parseable.
    assert json.loads(raw[0]) == {"n": 1}
    assert raw[1] == b'{"n'
    assert json.loads(raw[2]) == {"n": 3}


def test_external_rotation_reopens(started: EventLog, logdir: Path) -> None:
    started.emit({"n": 1})
    assert started.flush()
    os.rename(logdir / CURRENT_NAME, logdir / "moved.jsonl")  # e.g. logrotate
    started.emit({"n": 2})
    started.stop()
    assert json.loads((logdir / "moved.jsonl").read_text()) == {"n": 1}
    assert json.loads((logdir / CURRENT_NAME).read_text()) == {"n": 2}


def _write_events(directory: str, writer: int, count: int) -> None:
    """One worker process' share: its own EventLog on the shared directory."""
    log = EventLog(directory, max_bytes=4096)
    log.start()
    for i in range(count):
        log.emit({"writer": writer, "n": i, "pad": "x" * (i % 50)})
        if i % 25 == 0:
            assert log.flush()  # many small batches: many chances to race a rotation
    log.stop()
    assert log.write_errors == 0 and log.dropped == 0


def test_several_processes_share_the_log_without_losing_or_tearing_lines(logdir: Path) -> None:
    import multiprocessing

    count = 600
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_write_events, args=(str(logdir), w, count)) for w in range(3)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(60)
        assert p.exitcode == 0
    events = _read_lines(logdir)  # fails on a torn or interleaved line
    seen = sorted((e["writer"], e["n"]) for e in events)
    assert seen == [(w, n) for w in range(3) for n in range(count)]
    names = os.listdir(logdir)
    assert CURRENT_NAME in names and len(names) > 10  # size rotation happened, many times, by every writer
    for name in names:
        assert name == CURRENT_NAME or ROTATED.match(name), name
        # No rotation renamed a file another process had just rotated in: none is far past the limit.
        assert (logdir / name).stat().st_size <= 4096 + 3 * 2048, name
