"""How periodic work reports a failure: an outage of the catalog is one line, not a traceback.

Timers (the usage flush, once-per-deployment jobs, upkeep) run again at their next tick. While a
shared catalog's database is down (a PostgreSQL restart) every tick of every timer fails the same
expected way: a warning naming the cause says it; a traceback per tick would bury the lines that
matter. Anything else is a failure, logged with its traceback.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from vaultaire.errors import CatalogUnavailable


def log_periodic_failure(log: Logger, failure: Failure, message: str, **fields: Any) -> None:
    if failure.check(CatalogUnavailable):
        log.warn(message + " ({why}); retried at the next tick", why=failure.getErrorMessage(), **fields)
    else:
        log.failure(message, failure, **fields)
