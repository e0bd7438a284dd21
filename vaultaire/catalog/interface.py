"""The catalog contract. SQLite implements it; a PostgreSQL one can for several gateways.

A second implementation is written from this module alone; ``tests/test_catalog_contract.py``
checks the SQLite one against it, and mypy checks every caller uses only what is here.

Guarantees every implementation gives:

* **Deferreds, never blocking.** Every method returns a Deferred at once; the blocking
  work (I/O, locks, fsync) runs off the reactor thread. Errors arrive as failures of that
  Deferred, never as a synchronous raise.
* **One write, one transaction.** Each method that changes something is atomic: either
  all of its effects are committed or none (a refused write changes nothing), and it is
  durable before its Deferred fires. Reads see every commit that fired before they were
  called, from any process sharing the catalog.
* **Domain errors only.** Refusals are the ``vaultaire.errors`` types named in each
  method's docstring; anything else is a failure of the store itself.
* **Bytes are accounted in the transaction that changes them.** Every change to what a
  container stores (artifacts and the parts of unfinished uploads) updates its tenant's
  stored totals and metered byte-seconds in the same transaction, and is refused with
  ``QuotaExceeded`` there if it would take the tenant past its quota, however many
  writers race.
* **No blob is lost track of.** A blob a change stops referencing (replaced, deleted,
  aborted, moved) is queued as garbage ``(placement, locator)`` in that same transaction;
  the engine frees it later and only then forgets it.
* **Keys are compared as UTF-8 bytes** (S3's listing order), containers by id.

The contract is split by concern, so each part can be read (and implemented) on its own:
accounts (interface_accounts.py), objects (interface_objects.py) and what lies under them
(interface_storage.py); :class:`Catalog` is all of them.
"""

from __future__ import annotations

from typing import Protocol

from vaultaire.catalog.interface_accounts import Containers, Lifecycle, Tenants, Users
from vaultaire.catalog.interface_objects import Artifacts, Uploads
from vaultaire.catalog.interface_storage import (
    Accounting,
    EncryptionKeys,
    Garbage,
    Generations,
    InlineBlobs,
    Leases,
    LifecycleScans,
    Migrations,
)

__all__ = [
    "Accounting",
    "Artifacts",
    "Catalog",
    "Containers",
    "EncryptionKeys",
    "Garbage",
    "Generations",
    "InlineBlobs",
    "Leases",
    "Lifecycle",
    "LifecycleScans",
    "Migrations",
    "Tenants",
    "Uploads",
    "Users",
]


class Catalog(
    Lifecycle,
    Leases,
    Tenants,
    Users,
    Containers,
    Artifacts,
    Uploads,
    Garbage,
    Migrations,
    Accounting,
    LifecycleScans,
    EncryptionKeys,
    Generations,
    InlineBlobs,
    Protocol,
):
    """The whole contract: every method the engine, the services and the admin tool call."""
