"""Request ids: a new one for every request, cheap to mint.

S3's ``x-amz-request-id`` is an opaque 16-character id that a client quotes back when it
reports a problem, and that our event log carries. A random one per request
(``secrets.token_hex``) cost a ``getrandom`` system call on every request (~5 µs of a 4 KiB
GET's ~300). Here: a random 32-bit prefix per process, drawn again in a forked child, then
a counter: 16 upper-case hex digits, never repeated within a process, shared by two
processes with odds of 2^-32 per pair. Nothing trusts an id (S3's are not secrets either).
"""

from __future__ import annotations

import itertools
import os
import secrets

_prefix = ""
_counter = itertools.count()


def _restart() -> None:
    global _prefix, _counter
    _prefix = secrets.token_hex(4).upper()
    _counter = itertools.count(secrets.randbits(32))


_restart()
os.register_at_fork(after_in_child=_restart)


def next_request_id() -> str:
    """The next request's id."""
    return f"{_prefix}{next(_counter) & 0xFFFFFFFF:08X}"
