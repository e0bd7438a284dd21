"""Operations: the event log, Prometheus metrics and the ops HTTP port."""

from vaultaire.ops.events import EventLog, format_time, make_event
from vaultaire.ops.metrics import Metrics
from vaultaire.ops.site import health_document, ops_resource

__all__ = [
    "EventLog",
    "Metrics",
    "format_time",
    "health_document",
    "make_event",
    "ops_resource",
]
