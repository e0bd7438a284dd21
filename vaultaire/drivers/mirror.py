"""The mirror placement: every blob on every member driver.

* A write goes to all members at once (each chunk accepted by all before the
  next) and is acknowledged only when all have committed; if any fails, the
  others' copies are aborted or deleted, so no member keeps a blob nothing
  references.
* A read comes from the first member believed healthy; a member that fails
  goes to the back of the line until it works again. A member found missing
  the blob, or holding it at the wrong size (a corrupt replica), is repaired
  from the member that served the read, in the background.
* A delete must succeed on every member, or it fails and the engine keeps the
  blob queued as garbage; the next sweep retries, so a member that was down
  loses what was deleted meanwhile once it is back.

Members are placements of their own, started and stopped by the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from vaultaire.drivers.copy import copy_blob
from vaultaire.drivers.interface import BlobReader, BlobWriter, Driver
from vaultaire.drivers.members import overall_status, probe_members
from vaultaire.errors import DriverError, DriverUnavailable

log = Logger()


async def _all(ds: Sequence[Deferred[Any]]) -> list[Any]:
    """Wait for every Deferred (never leaving one running), then raise the first failure."""
    results = await DeferredList(list(ds), consumeErrors=True)
    for ok, value in results:
        if not ok:
            value.raiseException()
    return [value for _, value in results]


class MirrorWriter:
    def __init__(self, mirror: MirrorDriver, locator: str, writers: list[tuple[Driver, BlobWriter]]) -> None:
        self._mirror = mirror
        self._locator = locator
        self._writers = writers
        self._committed: list[Driver] = []

    def write(self, data: bytes) -> Deferred[None]:
        async def write() -> None:
            await self._guard(_all([w.write(data) for _, w in self._writers]))

        return Deferred.fromCoroutine(write())

    async def _guard(self, work: Any) -> Any:
        try:
            return await work
        except DriverError:
            raise
        except Exception as e:
            raise DriverError(f"mirror {self._mirror.name}: {e}") from e

    def commit(self) -> Deferred[None]:
        async def commit() -> None:
            results: list[tuple[bool, Any]] = await DeferredList(  # value: a Failure where not ok
                [w.commit() for _, w in self._writers], consumeErrors=True
            )
            failures: list[Failure] = []
            for (member, _), (ok, value) in zip(self._writers, results, strict=True):
                if ok:
                    self._committed.append(member)
                    self._mirror.member_worked(member)
                else:
                    failures.append(value)
                    self._mirror.member_failed(member, value.value)
            if failures:
                # Not acknowledged: abort() (the engine calls it) removes the copies that did commit.
                failures[0].raiseException()

        return Deferred.fromCoroutine(commit())

    def abort(self) -> Deferred[None]:
        async def abort() -> None:
            await DeferredList([w.abort() for _, w in self._writers], consumeErrors=True)
            # A member that failed the commit may have stored the blob and died before
            # answering: delete there too, and say so if that cannot be confirmed.
            left = []
            for member, _ in self._writers:
                try:
                    await member.delete(self._locator)
                except DriverError:
                    left.append(member.name)
            self._committed = []
            if left:
                raise DriverError(f"mirror {self._mirror.name}: an aborted blob may remain on {', '.join(left)}")

        return Deferred.fromCoroutine(abort())


class MirrorDriver:
    """A Driver over member drivers, each holding every blob."""

    def __init__(self, name: str, members: Sequence[Driver], reactor: Any) -> None:
        if len(members) < 2:
            raise ValueError("a mirror needs two or more drivers")
        self.name = name
        self.members = list(members)
        self._reactor = reactor
        self._down: set[str] = set()
        self.repairs = 0  # replicas repaired so far (shown on /health)
        self._repairing: set[str] = set()

    # -- member state

    def member_failed(self, member: Driver, error: BaseException) -> None:
        if isinstance(error, DriverUnavailable):
            self._down.add(member.name)

    def member_worked(self, member: Driver) -> None:
        self._down.discard(member.name)

    def _read_order(self) -> list[Driver]:
        return sorted(self.members, key=lambda m: m.name in self._down)  # stable: config order otherwise

    # -- life cycle: members are the engine's to start and stop

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    # -- blobs

    def open_writer(self, locator: str, size_hint: int | None = None) -> MirrorWriter:
        return MirrorWriter(self, locator, [(m, m.open_writer(locator, size_hint)) for m in self.members])

    def open_reader(self, locator: str, start: int, end: int) -> Deferred[BlobReader]:
        async def open_() -> BlobReader:
            bad: list[Driver] = []
            errors: list[str] = []
            for member in self._read_order():
                try:
                    reader = await member.open_reader(locator, start, end)
                except DriverError as e:
                    self.member_failed(member, e)
                    errors.append(f"{member.name}: {e}")
                    if not isinstance(e, DriverUnavailable):
                        bad.append(member)  # it answered, without the blob (or with a short one)
                    continue
                self.member_worked(member)
                if bad:
                    self._repair_later(locator, member, bad)
                return reader
            raise DriverError(f"mirror {self.name}: no member could read {locator} ({'; '.join(errors)})")

        return Deferred.fromCoroutine(open_())

    def _repair_later(self, locator: str, good: Driver, bad: list[Driver]) -> None:
        if locator in self._repairing:
            return
        self._repairing.add(locator)

        async def repair() -> None:
            try:
                size = await good.stat(locator)
                if size is None:
                    return
                for member in bad:
                    if await member.stat(locator) == size:
                        continue  # repaired meanwhile
                    await member.delete(locator)  # a short replica first goes
                    await copy_blob(good, member, locator, size)
                    self.repairs += 1
                    log.info(
                        "mirror {name}: repaired {locator} on {member} from {good}",
                        name=self.name,
                        locator=locator,
                        member=member.name,
                        good=good.name,
                    )
            except Exception as e:
                log.warn("mirror {name}: repairing {locator} failed: {e}", name=self.name, locator=locator, e=str(e))
            finally:
                self._repairing.discard(locator)

        # After the current read has started: the repair must never delay the client's answer.
        self._reactor.callLater(0, lambda: Deferred.fromCoroutine(repair()))

    def delete(self, locator: str) -> Deferred[None]:
        async def delete() -> None:
            results: list[tuple[bool, Any]] = await DeferredList(  # value: a Failure where not ok
                [m.delete(locator) for m in self.members], consumeErrors=True
            )
            for member, (ok, value) in zip(self.members, results, strict=True):
                if not ok:
                    self.member_failed(member, value.value)
                    value.raiseException()  # stays queued as garbage; the next sweep retries

        return Deferred.fromCoroutine(delete())

    def stat(self, locator: str) -> Deferred[int | None]:
        async def stat() -> int | None:
            last: Exception | None = None
            for member in self._read_order():
                try:
                    size = await member.stat(locator)
                except DriverError as e:
                    last = e
                    continue
                if size is not None:
                    return size
            if last is not None and all(m.name in self._down for m in self.members):
                raise last
            return None

        return Deferred.fromCoroutine(stat())

    def health(self) -> Deferred[dict[str, object]]:
        async def probe() -> dict[str, object]:
            members = await probe_members(self.members)
            for name, member_status in members.items():
                if member_status == "ok":
                    self._down.discard(name)
                else:
                    self._down.add(name)
            status = overall_status(len(self.members) - len(self._down), len(self.members))
            return {"status": status, "policy": "mirror", "members": members, "repairs": self.repairs}

        return Deferred.fromCoroutine(probe())
