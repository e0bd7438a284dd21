"""The console's session store, CSRF check and login brake, on a controllable clock."""

from __future__ import annotations

from vaultaire.console.sessions import LoginThrottle, SessionStore, check_csrf


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_lives_while_used_and_dies_after_its_idle_time() -> None:
    clock = Clock()
    store = SessionStore(clock, ttl=600)
    s = store.create("AK", "secret", "tid", "acme", "")
    assert store.get(s.id) is s
    clock.now += 599
    assert store.get(s.id) is s  # used: its life starts again
    clock.now += 599
    assert store.get(s.id) is s
    clock.now += 600
    assert store.get(s.id) is None
    assert len(store) == 0


def test_ids_and_tokens_are_random_and_unknown_ids_find_nothing() -> None:
    store = SessionStore(Clock(), ttl=600)
    a, b = store.create("AK", "s", "t", "acme", ""), store.create("AK", "s", "t", "acme", "")
    assert len({a.id, b.id, a.csrf, b.csrf}) == 4 and len(a.id) >= 40
    assert store.get(None) is None and store.get("") is None and store.get(a.id[:-1] + "x") is None


def test_logout_ends_the_session() -> None:
    store = SessionStore(Clock(), ttl=600)
    s = store.create("AK", "s", "t", "acme", "")
    store.end(s.id)
    assert store.get(s.id) is None


def test_the_store_is_bounded_dropping_the_least_recently_used() -> None:
    clock = Clock()
    store = SessionStore(clock, ttl=600, limit=3)
    first, second, third = (store.create(f"AK{i}", "s", "t", "acme", "") for i in range(3))
    store.get(first.id)  # first is now the most recently used
    store.create("AK3", "s", "t", "acme", "")
    assert len(store) == 3
    assert store.get(second.id) is None
    assert store.get(first.id) is first and store.get(third.id) is third


def test_csrf_token_must_match_exactly() -> None:
    store = SessionStore(Clock(), ttl=600)
    s = store.create("AK", "s", "t", "acme", "")
    assert s.csrf_ok(s.csrf)
    for wrong in (None, "", s.csrf[:-1], s.csrf + "x", store.create("AK", "s", "t", "acme", "").csrf):
        assert not s.csrf_ok(wrong)
    assert not check_csrf("", "")


def test_failed_logins_are_braked_per_address_and_per_key() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, limit=3, window=60)
    for _ in range(3):
        assert throttle.blocked("address:1.2.3.4", "key:AK") == 0
        throttle.failed("address:1.2.3.4", "key:AK")
    assert throttle.blocked("address:1.2.3.4", "key:OTHER") > 0  # the address is braked
    assert throttle.blocked("address:5.6.7.8", "key:AK") > 0  # and so is the key
    assert throttle.blocked("address:5.6.7.8", "key:OTHER") == 0
    clock.now += 61
    assert throttle.blocked("address:1.2.3.4", "key:AK") == 0


def test_a_big_body_is_kept_only_for_a_signed_in_session_with_its_token() -> None:
    from twisted.web.test.requesthelper import DummyChannel

    from vaultaire.console.app import SESSION_COOKIE, Console, ConsoleRequest, ConsoleSite

    console = Console.__new__(Console)
    console.sessions = SessionStore(Clock(), ttl=600)
    session = console.sessions.create("AK", "s", "t", "acme", "")
    site = ConsoleSite(console)

    def body_kept(cookie: str | None, token: str | None, length: int | None) -> int:
        channel = DummyChannel()
        channel.site = site  # type: ignore[attr-defined]
        request = ConsoleRequest(channel)
        if cookie is not None:
            request.received_cookies[SESSION_COOKIE] = cookie.encode()
        if token is not None:
            request.requestHeaders.setRawHeaders(b"x-csrf-token", [token.encode()])
        request.gotLength(length)
        for _ in range(4):
            request.handleContentChunk(b"x" * 2**20)
        return int(request.content.tell())

    big = 4 * 2**20
    assert body_kept(None, None, big) == 0  # anyone: read and dropped
    assert body_kept(None, None, None) == 0  # chunked, no length: the same
    assert body_kept(session.id, None, big) == 0  # a session, but no token
    assert body_kept("not-a-session", session.csrf, big) == 0
    assert body_kept(session.id, session.csrf, big) == big  # the console's own upload
    assert body_kept(None, None, 1000) == big  # a small body (a form) is kept as twisted.web keeps it
