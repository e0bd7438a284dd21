"""Pieces of the s3 driver's HTTP exchanges shared by its requests, writers and readers."""

from __future__ import annotations

from typing import cast
from xml.etree import ElementTree

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()


def error_code(body: bytes) -> str:
    try:
        # An upstream is a server on the network like any other: no DTDs, no entities.
        root = safe_fromstring(body, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException):
        return ""
    for child in root:
        if child.tag.rpartition("}")[2] == "Code":
            return child.text or ""
    return ""


def body_producer(protocol: Protocol | None) -> IPushProducer | None:
    """The transport ``deliverBody`` gave a body protocol: a push producer (Twisted's
    TransportProxyProducer) that its ``transport: ITransport`` annotation does not say."""
    if protocol is None or protocol.transport is None:
        return None
    return cast(IPushProducer, protocol.transport)


class Discard(Protocol):
    """Takes an unwanted response body by closing its connection, not by reading it."""

    def connectionMade(self) -> None:
        producer = body_producer(self)
        assert producer is not None
        producer.stopProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        pass
