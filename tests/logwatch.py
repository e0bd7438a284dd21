"""Watch the Twisted log for what a client must never cause: tracebacks and critical lines."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twisted.logger import LogLevel, formatEvent, globalLogPublisher


class LogWatch:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def bad(self) -> list[str]:
        """Every event a client could have caused that is not allowed: a failure, or warn and above."""
        out = []
        for event in self.events:
            level = event.get("log_level")
            if "log_failure" in event or (level is not None and level >= LogLevel.warn):
                failure = event.get("log_failure")
                text = formatEvent(event) or ""
                if failure is not None:
                    text += " | " + failure.getTraceback()
                out.append(text)
        return out

    def text(self) -> str:
        return "\n".join(formatEvent(e) or "" for e in self.events)


@contextmanager
def watching() -> Iterator[LogWatch]:
    watch = LogWatch()
    globalLogPublisher.addObserver(watch)
    try:
        yield watch
    finally:
        globalLogPublisher.removeObserver(watch)
