"""A started daemon sets the heap it built to start aside from the garbage collector
(vaultaire/ops/heap.py): full collections under load walk only what requests made since."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from vaultaire import tap
from vaultaire.ops.heap import set_aside_startup_heap


@pytest.fixture
def unfrozen() -> Any:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest_twisted.ensureDeferred
async def test_a_started_daemon_has_frozen_its_startup_heap(tmp_path: Path, unfrozen: None) -> None:
    options = tap.Options()
    options.parseOptions(
        [
            "--data",
            str(tmp_path / "data"),
            "--workers",
            "1",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--ops",
            "tcp:0:interface=127.0.0.1",
        ]
    )
    service = tap.makeService(options)
    assert gc.get_freeze_count() == 0
    service.startService()
    try:
        await service.ready
        assert gc.get_freeze_count() > 10_000  # the modules, the resource tree, the engine...
    finally:
        await service.stopService()


def test_what_is_made_after_the_freeze_is_still_collected(unfrozen: None) -> None:
    class Node:
        other: Any = None

    assert set_aside_startup_heap() > 0
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle only a collection frees
    del a, b
    assert gc.collect() >= 2
