"""The point reads every request repeats, kept by each process until the catalog's generation moves.

Who an access key is, what a bucket name means, the bucket's settings, and for an SSE-KMS
object whether its key is there and enabled: every request asks, and the answers change
only when someone changes them (an admin, an S3 call to a bucket's configuration). So a
process keeps them, and once per request ``refresh`` reads the catalog's generation
(``Catalog.generation``: one point read), which every such change moves in its own
transaction; when it moved, everything kept is forgotten. A change made by any process,
the admin tool included, thus counts on the next request in every process, however many
workers (or gateways over one PostgreSQL) there are.

Only what the request path asks goes through here (the daemon's SSE-KMS key source, which
only requests use, included); background work (lifecycle runs, migrations, the admin tool)
reads the catalog itself. The answers kept are frozen values, and lists are handed out as
copies, so no caller can change what another sees.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from vaultaire.catalog.interface import Catalog
from vaultaire.model import Container, ContainerAccess, Credential, KmsKey, Tenant, User

T = TypeVar("T")

# Keys and names come from clients (an unknown key, a bucket that does not exist, each is
# an answer kept): past this many answers the cache starts again, so it never grows unbounded.
LIMIT = 20_000


class CachedReads:
    """A process's answers to the catalog's request-path point reads; see the module docstring."""

    def __init__(self, catalog: Catalog, limit: int = LIMIT) -> None:
        self._catalog = catalog
        self._limit = limit
        self._answers: dict[tuple[Any, ...], Any] = {}
        # None until the first refresh: until then nothing is known to be current, so nothing is kept.
        self._generation: int | None = None
        # Moves at every forget: a read begun before it is not kept after it (its answer may be
        # older than the change that made us forget).
        self._epoch = 0
        self.reads = 0  # reads that went to the catalog (for tests and benchmarks)

    async def refresh(self) -> None:
        """Forget every answer if the catalog changed since the last refresh: call once per request, first."""
        generation = await self._catalog.generation()
        if generation != self._generation:
            self.forget()
            self._generation = generation

    def forget(self) -> None:
        self._answers.clear()
        self._epoch += 1

    async def _kept(self, key: tuple[Any, ...], read: Callable[[], Awaitable[T]], keep_none: bool = True) -> T:
        try:
            kept: T = self._answers[key]
            return kept
        except KeyError:
            pass
        epoch = self._epoch
        self.reads += 1
        answer = await read()
        # Kept unless the cache forgot everything meanwhile (the answer may predate that change).
        if self._generation is not None and epoch == self._epoch and (keep_none or answer is not None):
            if len(self._answers) >= self._limit:
                self._answers.clear()
            self._answers[key] = answer
        return answer

    async def credential(self, access_key: str) -> tuple[Credential, Tenant] | None:
        return await self._kept(("credential", access_key), lambda: self._catalog.credential(access_key))

    async def user(self, tenant_id: str, name: str) -> User:
        # NoSuchUser is not kept: a key whose user is gone is refused anyway, and rare.
        return await self._kept(("user", tenant_id, name), lambda: self._catalog.user(tenant_id, name))

    async def containers_named(self, name: str) -> list[ContainerAccess]:
        found = await self._kept(("containers_named", name), lambda: _as_tuple(self._catalog.containers_named(name)))
        return list(found)

    async def container(self, tenant_id: str, name: str) -> Container | None:
        return await self._kept(("container", tenant_id, name), lambda: self._catalog.container(tenant_id, name))

    async def container_named(self, name: str) -> Container | None:
        return await self._kept(("container_named", name), lambda: self._catalog.container_named(name))

    async def setting(self, container: Container, name: str) -> str | None:
        # By id and creation: ids are reused after a delete (which moves the generation anyway).
        key = ("setting", container.id, container.created, name)
        return await self._kept(key, lambda: self._catalog.setting(container, name))

    async def kms_key(self, id_or_name: str) -> KmsKey | None:
        """An SSE-KMS key and its state; a name no key has is asked again each time (it is
        about to be made, as the default key is at its first use, or it is a client's mistake)."""
        return await self._kept(("kms_key", id_or_name), lambda: self._catalog.kms_key(id_or_name), keep_none=False)

    async def settings_by_name(self, tenant_id: str | None, container: str, name: str) -> list[str | None]:
        key = ("settings_by_name", tenant_id, container, name)
        found = await self._kept(key, lambda: _as_tuple(self._catalog.settings_by_name(tenant_id, container, name)))
        return list(found)


async def _as_tuple(pending: Awaitable[list[T]]) -> tuple[T, ...]:
    return tuple(await pending)
