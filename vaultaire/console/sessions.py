"""Console sessions kept on the server, CSRF tokens, and the brake on failed logins.

The browser holds only a random session id (an HttpOnly, SameSite=Strict cookie); the
access key and secret it signed in with stay here, in memory, and die with the session.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable

from attrs import define

# Beyond this many live sessions the least recently used is dropped: logins cannot fill memory.
MAX_SESSIONS = 10_000


@define
class Session:
    id: str
    access_key: str
    secret_key: str
    tenant_id: str
    tenant: str
    user: str  # "" for the tenant's root user
    csrf: str
    expires: float
    operator: bool = False  # the deployment's operator: the /ops pages, no S3 keys

    def csrf_ok(self, token: str | None) -> bool:
        return check_csrf(self.csrf, token)


def check_csrf(expected: str, token: str | None) -> bool:
    """Constant-time comparison; a missing or empty token never passes."""
    if not token or not expected:
        return False
    return hmac.compare_digest(expected.encode(), token.encode())


def new_token() -> str:
    return secrets.token_urlsafe(32)


class SessionStore:
    """Sessions by id, each expiring ``ttl`` seconds after its last use."""

    def __init__(self, clock: Callable[[], float], ttl: float, limit: int = MAX_SESSIONS) -> None:
        self._clock = clock
        self._ttl = ttl
        self._limit = limit
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(
        self, access_key: str, secret_key: str, tenant_id: str, tenant: str, user: str, operator: bool = False
    ) -> Session:
        self._expire()
        while len(self._sessions) >= self._limit:
            self._sessions.popitem(last=False)
        session = Session(
            id=new_token(),
            access_key=access_key,
            secret_key=secret_key,
            tenant_id=tenant_id,
            tenant=tenant,
            user=user,
            csrf=new_token(),
            expires=self._clock() + self._ttl,
            operator=operator,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id, its life extended; None if unknown or expired."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if session.expires <= now:
            del self._sessions[session_id]
            return None
        session.expires = now + self._ttl
        self._sessions.move_to_end(session_id)
        return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def _expire(self) -> None:
        now = self._clock()
        # Least recently used first: stop at the first one still alive.
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.expires > now:
                break
            self._sessions.popitem(last=False)


class LoginThrottle:
    """At most ``limit`` failed logins per ``window`` seconds from one address, and for one key."""

    def __init__(self, clock: Callable[[], float], limit: int = 5, window: float = 300.0) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, name: str) -> deque[float]:
        times = self._failures.get(name)
        if times is None:
            return deque()
        cutoff = self._clock() - self._window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[name]
        return times

    def blocked(self, *names: str) -> float:
        """Seconds to wait before another try is heard (0: go ahead)."""
        wait = 0.0
        for name in names:
            times = self._recent(name)
            if len(times) >= self._limit:
                wait = max(wait, times[0] + self._window - self._clock())
        return wait

    def failed(self, *names: str) -> None:
        if len(self._failures) > MAX_SESSIONS:  # a flood of addresses: forget the stalest
            for name in list(self._failures)[: len(self._failures) // 2]:
                del self._failures[name]
        for name in names:
            self._failures.setdefault(name, deque()).append(self._clock())
