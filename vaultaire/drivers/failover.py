"""The failover placement: blobs on the primary, on a secondary while the primary is down.

* A write goes to the first member not known to be down. A write that fails
  because its member is unreachable marks it down (the client gets 503 and
  retries, landing on the next member); the health probe marks it up again.
* A blob committed anywhere but on the primary is noted in a journal (one
  locator a line, appended and fsynced before the commit is acknowledged), so
  a restart forgets nothing.
* Reads try the members in order and take the first that has the blob.
* Once the primary answers again, ``reconcile`` copies every journalled blob
  to the primary, deletes it from where it was, and drops it from the
  journal; a blob deleted meanwhile is simply skipped. It runs from the
  periodic work done once per data directory (the single daemon, or the
  supervisor of workers), never from a health probe: ``health`` only looks.
* Every process appends to the one journal; appends and the rewrite that
  drops reconciled entries hold an ``flock`` of ``<journal>.lock``, so no
  append is lost to a concurrent rewrite.
* A delete must succeed on every member (a blob may be on any of them), or it
  fails and stays queued as garbage for the next sweep.

Members are placements of their own, started and stopped by the engine.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from vaultaire.drivers.copy import copy_blob
from vaultaire.drivers.interface import BlobReader, BlobWriter, Driver
from vaultaire.drivers.members import overall_status, probe_members
from vaultaire.errors import DriverError, DriverUnavailable

log = Logger()


class Journal:
    """Locators waiting to go back to the primary: an append-only file, rewritten when drained."""

    def __init__(self, path: str, reactor: Any) -> None:
        self.path = path
        self._reactor = reactor

    def _run(self, fn: Any, *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), fn, *args)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across processes (workers append while the supervisor rewrites)."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _append(self, locator: str) -> None:
        with self._locked(), open(self.path, "a", encoding="utf-8") as f:
            f.write(locator + "\n")
            f.flush()
            os.fsync(f.fileno())

    def append(self, locator: str) -> Deferred[None]:
        return self._run(self._append, locator)

    def _read(self) -> list[str]:
        try:
            with open(self.path, encoding="utf-8") as f:
                return list(dict.fromkeys(line.strip() for line in f if line.strip()))
        except FileNotFoundError:
            return []

    def read(self) -> Deferred[list[str]]:
        return self._run(self._read)

    def _forget(self, done: set[str]) -> None:
        with self._locked():
            # Entries appended while reconciling ran are kept: only what was done goes.
            remaining = [loc for loc in self._read() if loc not in done]
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(loc + "\n" for loc in remaining)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)

    def forget(self, done: set[str]) -> Deferred[None]:
        return self._run(self._forget, done)


class FailoverWriter:
    def __init__(self, failover: FailoverDriver, member: Driver, locator: str, writer: BlobWriter) -> None:
        self._failover = failover
        self._member = member
        self._locator = locator
        self._writer = writer

    def write(self, data: bytes) -> Deferred[None]:
        return self._watch(self._writer.write(data))

    def _watch(self, d: Deferred[None]) -> Deferred[None]:
        def failed(failure: Any) -> Any:
            self._failover.member_failed(self._member, failure.value)
            return failure

        return d.addErrback(failed)

    def commit(self) -> Deferred[None]:
        async def commit() -> None:
            await self._watch(self._writer.commit())
            if self._member is not self._failover.primary:
                await self._failover.journal.append(self._locator)

        return Deferred.fromCoroutine(commit())

    def abort(self) -> Deferred[None]:
        return self._writer.abort()


class FailoverDriver:
    def __init__(self, name: str, members: Sequence[Driver], reactor: Any, journal_dir: str) -> None:
        if len(members) < 2:
            raise ValueError("failover needs two or more drivers")
        self.name = name
        self.members = list(members)
        self.primary = self.members[0]
        self._reactor = reactor
        self._down: set[str] = set()
        self.journal = Journal(os.path.join(journal_dir, f"{name}.journal"), reactor)
        self.reconciled = 0
        self._reconciling = False
        self._waiters: list[Deferred[int]] = []

    def member_failed(self, member: Driver, error: BaseException) -> None:
        if isinstance(error, DriverUnavailable):
            if member.name not in self._down:
                log.warn(
                    "failover {name}: {member} is down, writing to the next driver", name=self.name, member=member.name
                )
            self._down.add(member.name)

    def _writable(self) -> Driver:
        for member in self.members:
            if member.name not in self._down:
                return member
        return self.primary  # all down: try the primary, the client gets its error

    # -- life cycle: members are the engine's

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        if self._reconciling:
            return self.reconcile().addCallback(lambda _: None)
        return succeed(None)

    # -- blobs

    def open_writer(self, locator: str, size_hint: int | None = None) -> FailoverWriter:
        member = self._writable()
        return FailoverWriter(self, member, locator, member.open_writer(locator, size_hint))

    def open_reader(self, locator: str, start: int, end: int) -> Deferred[BlobReader]:
        async def open_() -> BlobReader:
            errors = []
            for member in sorted(self.members, key=lambda m: m.name in self._down):
                try:
                    return await member.open_reader(locator, start, end)
                except DriverError as e:
                    self.member_failed(member, e)
                    errors.append(f"{member.name}: {e}")
            raise DriverError(f"failover {self.name}: no member could read {locator} ({'; '.join(errors)})")

        return Deferred.fromCoroutine(open_())

    def delete(self, locator: str) -> Deferred[None]:
        async def delete() -> None:
            results: list[tuple[bool, Any]] = await DeferredList(  # value: a Failure where not ok
                [m.delete(locator) for m in self.members], consumeErrors=True
            )
            for member, (ok, value) in zip(self.members, results, strict=True):
                if not ok:
                    self.member_failed(member, value.value)
                    value.raiseException()

        return Deferred.fromCoroutine(delete())

    def stat(self, locator: str) -> Deferred[int | None]:
        async def stat() -> int | None:
            for member in self.members:
                try:
                    size = await member.stat(locator)
                except DriverError:
                    continue
                if size is not None:
                    return size
            return None

        return Deferred.fromCoroutine(stat())

    # -- reconciliation

    def reconcile_if_due(self) -> Deferred[int]:
        """The once-per-deployment upkeep: reconcile if the primary is up and the journal has work."""

        async def run() -> int:
            if self.primary.name in self._down:
                try:
                    if (await self.primary.health()).get("status") != "ok":
                        return 0
                except Exception:
                    return 0
                self._down.discard(self.primary.name)
            if not await self.journal.read():
                return 0
            return await self.reconcile()

        return Deferred.fromCoroutine(run())

    def reconcile(self) -> Deferred[int]:
        """Move journalled blobs back to the primary; fires with how many moved.

        One run at a time: a call while one runs waits for that run."""
        d: Deferred[int] = Deferred()
        self._waiters.append(d)
        if not self._reconciling:
            self._reconciling = True
            Deferred.fromCoroutine(self._reconcile()).addBoth(self._reconciled)
        return d

    def _reconciled(self, result: Any) -> None:
        self._reconciling = False
        waiters, self._waiters = self._waiters, []
        if isinstance(result, Failure):
            log.failure("failover {name}: reconciling failed", result, name=self.name)
        for waiter in waiters:
            waiter.callback(result if isinstance(result, int) else 0)

    async def _reconcile(self) -> int:
        pending = await self.journal.read()
        done: set[str] = set()
        moved = 0
        try:
            for locator in pending:
                # On the primary already when an earlier run stopped before forgetting it.
                if await self.primary.stat(locator) is None:
                    source = await self._holder(locator)
                    if source is None:
                        done.add(locator)  # deleted meanwhile: nothing to move
                        continue
                    await copy_blob(source, self.primary, locator)
                    moved += 1
                for member in self.members[1:]:
                    await member.delete(locator)
                done.add(locator)
        except DriverError as e:
            log.warn("failover {name}: reconciling stopped: {e}", name=self.name, e=str(e))
        finally:
            if done:
                await self.journal.forget(done)
        self.reconciled += moved
        return moved

    async def _holder(self, locator: str) -> Driver | None:
        for member in self.members[1:]:
            if await member.stat(locator) is not None:
                return member
        return None

    def health(self) -> Deferred[dict[str, object]]:
        async def probe() -> dict[str, object]:
            members = await probe_members(self.members)
            for name, member_status in members.items():
                if member_status == "ok":
                    if name in self._down:
                        log.info("failover {name}: {member} is back", name=self.name, member=name)
                    self._down.discard(name)
                else:
                    self._down.add(name)
            pending = len(await self.journal.read())
            up = sum(1 for m in self.members if m.name not in self._down)
            primary_ok = self.primary.name not in self._down
            status = overall_status(up, len(self.members))
            return {
                "status": status,
                "policy": "failover",
                "members": members,
                "writing_to": self._writable().name,
                "primary_up": primary_ok,
                "awaiting_reconcile": pending,
                "reconciled": self.reconciled,
            }

        return Deferred.fromCoroutine(probe())
