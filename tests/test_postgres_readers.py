"""The PostgreSQL catalog's reader threads: every call answered on the reactor, in any batch."""

from __future__ import annotations

import threading
import time

import pytest
import pytest_twisted
from twisted.internet import reactor

from vaultaire.catalog.postgres.readers import ReaderThreads


class Refused(Exception):
    pass


def _answer(n: int) -> tuple[int, str]:
    time.sleep(0.001 * (n % 3))  # answers come back out of order and in batches
    if n % 7 == 0:
        raise Refused(str(n))
    return n * n, threading.current_thread().name


@pytest_twisted.ensureDeferred
async def test_every_call_fires_its_own_deferred_on_the_reactor_thread() -> None:
    readers = ReaderThreads(reactor, 3, "test-readers")  # type: ignore[arg-type]  # the global reactor provides IReactorFromThreads
    readers.start()
    try:
        pending = [readers.submit(_answer, n) for n in range(200)]
        fired_on: set[str] = set()
        ran_on: set[str] = set()
        for n, d in enumerate(pending):
            if n % 7 == 0:
                with pytest.raises(Refused, match=f"^{n}$"):
                    await d
            else:
                square, thread = await d
                assert square == n * n
                ran_on.add(thread)
            fired_on.add(threading.current_thread().name)
        assert fired_on == {threading.main_thread().name}
        assert ran_on <= {f"test-readers-{i}" for i in range(3)} and len(ran_on) > 1
    finally:
        readers.stop()


@pytest_twisted.ensureDeferred
async def test_stop_runs_what_was_queued_then_ends_the_threads() -> None:
    readers = ReaderThreads(reactor, 2, "test-readers-stop")  # type: ignore[arg-type]  # as above
    readers.start()
    threads = [t for t in threading.enumerate() if t.name.startswith("test-readers-stop-")]
    queued = [readers.submit(time.sleep, 0.01) for _ in range(10)]
    readers.stop()
    for d in queued:
        assert await d is None
    for thread in threads:
        thread.join(timeout=5)
        assert not thread.is_alive()
