"""The contracts say everything their implementations do, and the zope interfaces are really provided.

mypy checks the other direction (an implementation lacking a member, or with another
signature, is not assignable to its protocol: see ``vaultaire/admin/context.py`` and
``vaultaire/drivers/build.py``); these checks keep a protocol from falling behind as the
implementation grows, and check ``@implementer`` claims that mypy takes on trust.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.logger import ILogObserver
from twisted.web.iweb import IBodyProducer, IPolicyForHTTPS
from zope.interface.verify import verifyClass, verifyObject

from vaultaire.catalog.interface import Catalog
from vaultaire.catalog.postgres import PostgresCatalog
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.drivers import s3, s3_reader, s3_writers
from vaultaire.drivers.bytes_reader import BytesReader
from vaultaire.drivers.copy import WriterConsumer
from vaultaire.drivers.interface import BlobReader, BlobWriter, Driver
from vaultaire.drivers.local import LocalBlobReader, LocalBlobWriter, LocalDriver
from vaultaire.drivers.memory import MemoryBlobWriter, MemoryDriver
from vaultaire.drivers.rclone import RcloneDriver
from vaultaire.engine.pipe import _PipeConsumer
from vaultaire.worker import JSONLinesObserver


def _public_methods(cls: type) -> dict[str, Any]:
    return {name: member for name, member in vars(cls).items() if callable(member) and not name.startswith("_")}


def _protocol_methods(protocol: type) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for klass in reversed(protocol.__mro__):
        if klass is object or not getattr(klass, "_is_protocol", False):
            continue
        found.update(_public_methods(klass))
    return found


@pytest.mark.parametrize(
    "implementation, protocol",
    [
        (SQLiteCatalog, Catalog),
        (PostgresCatalog, Catalog),
        (LocalDriver, Driver),
        (MemoryDriver, Driver),
        (s3.S3Driver, Driver),
        (RcloneDriver, Driver),
        (LocalBlobWriter, BlobWriter),
        (MemoryBlobWriter, BlobWriter),
        (BytesReader, BlobReader),
        (LocalBlobReader, BlobReader),
        (s3_reader.S3BlobReader, BlobReader),
    ],
)
def test_implementations_take_the_parameters_their_contract_names(implementation: type, protocol: type) -> None:
    for name, declared in _protocol_methods(protocol).items():
        implemented = getattr(implementation, name, None)
        assert implemented is not None, f"{implementation.__name__} lacks {name}"
        assert list(inspect.signature(implemented).parameters) == list(inspect.signature(declared).parameters), name


# Upkeep only SQLite needs, which its callers ask for by isinstance: the space kept beside the file.
SQLITE_ONLY = {"restore_headroom"}


def test_the_catalog_contract_lists_every_public_method_of_sqlite() -> None:
    """Whatever SQLiteCatalog offers, callers may come to use: a second catalog must offer it too."""
    extra = sorted(set(_public_methods(SQLiteCatalog)) - set(_protocol_methods(Catalog)) - SQLITE_ONLY)
    assert not extra, f"SQLiteCatalog has public methods the Catalog protocol lacks: {extra}"


@pytest.mark.parametrize("protocol", [Catalog, Driver, BlobWriter, BlobReader])
def test_every_contract_method_documents_its_guarantee(protocol: type) -> None:
    undocumented = [name for name, method in _protocol_methods(protocol).items() if not inspect.getdoc(method)]
    assert not undocumented, f"{protocol.__name__} methods without a docstring: {undocumented}"


@pytest.mark.parametrize(
    "cls, interface",
    [
        (BytesReader, IPushProducer),
        (LocalBlobReader, IPushProducer),
        (s3_reader.S3BlobReader, IPushProducer),
        (WriterConsumer, IConsumer),
        (_PipeConsumer, IConsumer),
        (JSONLinesObserver, ILogObserver),
        (s3._InsecurePolicy, IPolicyForHTTPS),
        (s3_writers.StreamedBody, IBodyProducer),
    ],
)
def test_declared_interfaces_are_implemented(cls: type, interface: Any) -> None:
    assert interface.implementedBy(cls)
    assert verifyClass(interface, cls)


def test_a_blob_reader_is_a_push_producer_instance() -> None:
    assert verifyObject(IPushProducer, BytesReader(b"abc"))


def test_a_pull_producer_is_refused_by_blob_consumers() -> None:
    from twisted.internet.interfaces import IPullProducer
    from zope.interface import implementer

    @implementer(IPullProducer)
    class Pull:
        def resumeProducing(self) -> None:
            pass

        def stopProducing(self) -> None:
            pass

    for consumer in (WriterConsumer(MemoryDriver().open_writer("x")), _PipeConsumer()):
        with pytest.raises(TypeError):
            consumer.registerProducer(Pull(), False)


def test_optional_capabilities_are_where_callers_look_for_them(tmp_path: Any) -> None:
    """The engine and the periodic work find these by isinstance: a rename would silently turn them off."""
    from twisted.internet import reactor

    from vaultaire.drivers.failover import FailoverDriver
    from vaultaire.drivers.interface import Composite, KeepsBlobsForReaders, OnLocalDisk, Reconciling
    from vaultaire.drivers.mirror import MirrorDriver
    from vaultaire.engine.space import local_roots

    memory = MemoryDriver("m")
    assert isinstance(memory, KeepsBlobsForReaders) and memory.readers_keep_blobs
    disks = [LocalDriver(str(tmp_path / name), reactor, name=name) for name in ("a", "b")]
    assert all(isinstance(d, OnLocalDisk) for d in disks)
    mirror = MirrorDriver("mirror", [disks[0], memory], reactor)
    failover = FailoverDriver("failover", [mirror, disks[1]], reactor, journal_dir=str(tmp_path / "journal"))
    assert isinstance(mirror, Composite) and isinstance(failover, Composite)
    assert isinstance(failover, Reconciling) and not isinstance(mirror, Reconciling)
    # The free-space guard watches every local disk a placement writes to, however nested.
    assert local_roots(failover) == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert local_roots(memory) == []


def test_the_remembered_capabilities_answer_as_isinstance_does(tmp_path: Any) -> None:
    """What callers ask (is_on_local_disk & co.) is remembered per driver: the same answers,
    asked again and again, for drivers of every kind; and an unhashable one is still asked."""
    from twisted.internet import reactor

    from vaultaire.drivers import interface
    from vaultaire.drivers.mirror import MirrorDriver

    memory = MemoryDriver("m")
    disk = LocalDriver(str(tmp_path / "a"), reactor, name="a")
    mirror = MirrorDriver("mirror", [disk, memory], reactor)

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]  # a driver that cannot be a dictionary key
        disk_root = "/somewhere"

    asks = {
        interface.is_on_local_disk: interface.OnLocalDisk,
        interface.is_composite: interface.Composite,
        interface.keeps_blobs_for_readers: interface.KeepsBlobsForReaders,
        interface.is_reconciling: interface.Reconciling,
    }
    for driver in (memory, disk, mirror, Unhashable()):
        for _ in range(2):
            assert [ask(driver) for ask in asks] == [isinstance(driver, kind) for kind in asks.values()]
    assert interface.is_on_local_disk(disk) and not interface.is_on_local_disk(memory)
    assert interface.is_composite(mirror) and not interface.is_reconciling(mirror)
