"""The console's core: security headers, sign-in, sessions, CSRF, static files, errors."""

from __future__ import annotations

import hmac
import io
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from vaultaire.console import pages
from vaultaire.console.buckets import BucketPages
from vaultaire.console.object_settings import ObjectSettingsPages
from vaultaire.console.objects import ObjectPages
from vaultaire.console.operator_metrics import OperatorMetricsPages
from vaultaire.console.operator_pages import OperatorPages
from vaultaire.console.pages import tags
from vaultaire.console.routes import app, arg
from vaultaire.console.s3client import Keys, S3Client, S3Failed, S3Unreachable
from vaultaire.console.sessions import LoginThrottle, Session, SessionStore, check_csrf, new_token
from vaultaire.console.settings import SettingsPages
from vaultaire.console.uploads import PART_SIZE, UploadPages
from vaultaire.console.usage import UsagePages
from vaultaire.engine import Engine
from vaultaire.ops.history import MetricsHistory
from vaultaire.ops.workers import WorkerStatuses

log = Logger()

SESSION_COOKIE = b"vaultaire_console"
LOGIN_COOKIE = b"vaultaire_login"
STATIC = os.path.join(os.path.dirname(__file__), "static")
STATIC_TYPES = {"console.css": b"text/css; charset=utf-8", "console.js": b"text/javascript; charset=utf-8"}


class NeedLogin(Exception):
    pass


class OperatorElsewhere(Exception):
    """The operator opened a tenant's page: the operator has no buckets; to the operator's pages."""


class Refused(Exception):
    """A request the console refuses itself (bad CSRF token, bad form): status and a line why."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


class Console(
    BucketPages,
    SettingsPages,
    ObjectPages,
    ObjectSettingsPages,
    UploadPages,
    UsagePages,
    OperatorPages,
    OperatorMetricsPages,
):
    """The console as one Klein app, bound to one engine and one S3 endpoint."""

    app = app

    def __init__(
        self,
        engine: Engine,
        s3: S3Client,
        s3_public: Callable[[], str],
        clock: Callable[[], float],
        price_per_tb_month: float,
        session_seconds: float = 3600.0,
        operator: tuple[str, str] | None = None,
        part_size: int = PART_SIZE,
        history: MetricsHistory | None = None,
        workers: WorkerStatuses | None = None,
    ) -> None:
        self.engine = engine
        self.s3 = s3
        self.s3_public = s3_public
        self.clock = clock
        self.price_per_tb_month = price_per_tb_month
        self.sessions = SessionStore(clock, session_seconds)
        self.part_size = part_size  # of the browser's multipart uploads (console.js)
        self.operator = operator  # (access key, secret) of the deployment's operator, if configured
        self.history = history  # the ops site's numbers over the last hours (operator's charts)
        self.workers = workers  # the processes serving S3, as they are now
        # Failed logins: 5 per 5 minutes from one address; 20 for one key from anywhere, looser
        # so that someone else's failures cannot lock a user out as easily.
        self.address_throttle = LoginThrottle(clock, limit=5)
        self.key_throttle = LoginThrottle(clock, limit=20)

    def resource(self) -> IResource:
        return self.app.resource()

    # -- every response

    def secure_headers(self, request: IRequest) -> None:
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.s3_public()))
        request.setHeader(b"content-security-policy", pages.CONTENT_SECURITY_POLICY.format(s3=origin).encode())
        request.setHeader(b"x-frame-options", b"DENY")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"cache-control", b"no-store")

    async def html(
        self, request: IRequest, title: str, session: Session | None, *body: Any, status: int = 200
    ) -> bytes:
        self.secure_headers(request)
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return await pages.render(pages.layout(title, session, *body))

    def redirect(self, request: IRequest, location: str) -> bytes:
        self.secure_headers(request)
        request.setResponseCode(303)
        request.setHeader(b"location", location.encode("utf-8"))
        return b""

    # -- sessions

    def session(self, request: IRequest, operator: bool = False) -> Session:
        """The signed-in session, or NeedLogin (sent to the login page). The operator's session
        opens only the operator's pages (``operator``), and a tenant's never opens those."""
        found = self.sessions.get(_cookie(request, SESSION_COOKIE))
        if found is None:
            raise NeedLogin()
        if found.operator and not operator:
            raise OperatorElsewhere()
        return found

    def operator_session(self, request: IRequest, posted: bool = False) -> Session:
        session = self.posted(request, operator=True) if posted else self.session(request, operator=True)
        if not session.operator:
            raise Refused(403, "Only the deployment's operator sees these pages; you are signed in as a tenant's user.")
        return session

    def posted(self, request: IRequest, operator: bool = False) -> Session:
        """A state-changing request: signed in, and carrying this session's CSRF token."""
        session = self.session(request, operator)
        token = arg(request, "csrf") or _header(request, b"x-csrf-token")
        if not session.csrf_ok(token):
            raise Refused(403, "This form has expired or did not come from the console (CSRF token missing or wrong).")
        return session

    @staticmethod
    def keys(session: Session) -> Keys:
        return Keys(session.access_key, session.secret_key)

    def _cookie_out(self, request: IRequest, name: bytes, value: bytes, max_age: int | None = None) -> None:
        request.addCookie(  # type: ignore[call-arg]  # IRequest declares fewer keywords than Request takes
            name,
            value,
            path=b"/",
            httpOnly=True,
            secure=bool(request.isSecure()),
            sameSite="strict",
            max_age=str(max_age).encode() if max_age is not None else None,
        )

    @app.handle_errors(NeedLogin)
    def _need_login(self, request: IRequest, failure: Any) -> bytes:
        return self.redirect(request, "/login")

    @app.handle_errors(OperatorElsewhere)
    def _operator_elsewhere(self, request: IRequest, failure: Any) -> bytes:
        return self.redirect(request, "/ops")

    @app.handle_errors(Refused)
    def _refused(self, request: IRequest, failure: Any) -> Any:
        e: Refused = failure.value
        return ensureDeferred(
            self.html(
                request, "Refused", None, pages.message("error", str(e)), tags.a(href="/")("Back"), status=e.status
            )
        )

    @app.handle_errors(S3Failed)
    def _s3_failed(self, request: IRequest, failure: Any) -> Any:
        e: S3Failed = failure.value
        session = self.sessions.get(_cookie(request, SESSION_COOKIE))
        status = e.reply.status if 400 <= e.reply.status < 600 else 502
        return ensureDeferred(
            self.html(
                request,
                "Not done",
                session,
                pages.message("error", f"The server refused this: {e}"),
                tags.p(tags.a(href="/")("Back to the buckets")),
                status=status,
            )
        )

    @app.handle_errors(S3Unreachable)
    def _s3_unreachable(self, request: IRequest, failure: Any) -> Any:
        e: S3Unreachable = failure.value
        log.warn("console: the S3 endpoint {url} is unreachable: {why}", url=e.url, why=e.why)
        session = self.sessions.get(_cookie(request, SESSION_COOKIE))
        return ensureDeferred(
            self.html(
                request,
                "S3 service unreachable",
                session,
                pages.message(
                    "error",
                    f"The console could not reach the S3 service it works through, at {e.url}: {e.why}. "
                    "Nothing was changed by this request. The daemon may be starting, stopping or overloaded: "
                    "try again in a moment; if it lasts, its operator will find the cause in its log.",
                ),
                tags.p(tags.a(href=url_of(request))("Try again"), " · ", tags.a(href="/")("Buckets")),
                status=502,
            )
        )

    # -- sign in and out

    @app.route("/login", methods=["GET"])
    async def login_page(self, request: IRequest, error: str = "", status: int = 200) -> bytes:
        token = new_token()
        self._cookie_out(request, LOGIN_COOKIE, token.encode(), max_age=3600)
        form = tags.form(method="post", action="/login", id="login")(
            pages.hidden("csrf", token),
            tags.p(
                tags.label(
                    "Access key",
                    tags.br(),
                    tags.input(type="text", name="access_key", autocomplete="username", required="required"),
                )
            ),
            tags.p(
                tags.label(
                    "Secret key",
                    tags.br(),
                    tags.input(
                        type="password", name="secret_key", autocomplete="current-password", required="required"
                    ),
                )
            ),
            pages.button("Log in"),
        )
        hint = tags.p(
            "Any user's access key and secret: the console then does exactly what that user's policy allows. "
            "On a development server, the keys are the ones it printed at its first start (dev-credentials.json)."
        )
        return await self.html(request, "Log in", None, pages.message("error", error), form, hint, status=status)

    @app.route("/login", methods=["POST"])
    async def login(self, request: IRequest) -> bytes:
        if not check_csrf(_cookie(request, LOGIN_COOKIE) or "", arg(request, "csrf")):
            raise Refused(403, "The login form has expired or did not come from the console: load it again.")
        access, secret = arg(request, "access_key").strip(), arg(request, "secret_key")
        address = getattr(request.getClientAddress(), "host", "?")
        wait = max(self.address_throttle.blocked(address), self.key_throttle.blocked(access))
        if wait > 0:
            request.setHeader(b"retry-after", str(int(wait) + 1).encode())
            return await self.login_page(request, f"Too many failed logins: try again in {int(wait) + 1} seconds.", 429)
        if self.operator is not None and hmac.compare_digest(access.encode(), self.operator[0].encode()):
            # The operator's key names no tenant: its secret alone decides, and only this one.
            if not hmac.compare_digest(secret.encode(), self.operator[1].encode()):
                self.address_throttle.failed(address)
                self.key_throttle.failed(access)
                log.info("console: failed operator login from {address}", address=address)
                return await self.login_page(request, "Wrong access key or secret key.", 403)
            self.sessions.end(_cookie(request, SESSION_COOKIE))
            session = self.sessions.create(access, "", "", "", "operator", operator=True)
            self._cookie_out(request, SESSION_COOKIE, session.id.encode())
            self._cookie_out(request, LOGIN_COOKIE, b"", max_age=0)
            return self.redirect(request, "/ops")
        await self.engine.refresh()  # a key revoked in any process counts now
        found = await self.engine.credential(access) if access else None
        if found is None or not hmac.compare_digest(found[0].secret_key.encode(), secret.encode()):
            self.address_throttle.failed(address)
            self.key_throttle.failed(access)
            log.info("console: failed login for access key {access} from {address}", access=access, address=address)
            return await self.login_page(request, "Wrong access key or secret key.", 403)
        credential, tenant = found
        if tenant.status != "active":
            return await self.login_page(request, f"The account {tenant.name!r} is suspended.", 403)
        self.sessions.end(_cookie(request, SESSION_COOKIE))  # a new id at every sign-in
        session = self.sessions.create(access, secret, tenant.id, tenant.name, credential.user)
        self._cookie_out(request, SESSION_COOKIE, session.id.encode())
        self._cookie_out(request, LOGIN_COOKIE, b"", max_age=0)
        return self.redirect(request, "/")

    @app.route("/logout", methods=["POST"])
    def logout(self, request: IRequest) -> bytes:
        session = self.posted(request, operator=True)
        self.sessions.end(session.id)
        self._cookie_out(request, SESSION_COOKIE, b"", max_age=0)
        return self.redirect(request, "/login")

    @app.route("/static/<name>", methods=["GET"])
    def static(self, request: IRequest, name: str) -> bytes:
        self.secure_headers(request)
        kind = STATIC_TYPES.get(name)
        if kind is None:
            request.setResponseCode(404)
            return b"not found"
        request.setHeader(b"content-type", kind)
        with open(os.path.join(STATIC, name), "rb") as f:
            return f.read()


def url_of(request: IRequest) -> str:
    """The page to try again: this one if it was a GET, else the home page."""
    if request.method != b"GET":
        return "/"
    uri = request.uri.decode("utf-8", "replace") if isinstance(request.uri, bytes) else str(request.uri)
    return uri if uri.startswith("/") and not uri.startswith("//") else "/"


def _cookie(request: IRequest, name: bytes) -> str | None:
    value = request.getCookie(name)
    return value.decode("ascii", "replace") if value else None


def _header(request: IRequest, name: bytes) -> str:
    value = request.getHeader(name)
    return value.decode("latin-1") if isinstance(value, bytes) else (value or "")


# Bodies up to this size (forms) are kept as twisted.web keeps them; a bigger one (an upload)
# only from a signed-in session that sent its CSRF token, or it is read and dropped.
SMALL_BODY = 1024 * 1024


class ConsoleRequest(Request):
    """A request whose big body is spooled only for a signed-in session: twisted.web spools
    every body to a temporary file before any route runs, so without this anyone who can
    reach the console could fill its disk."""

    dropping_body = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length <= SMALL_BODY:
            super().gotLength(length)
            return
        console: Console | None = getattr(getattr(self.channel, "site", None), "console", None)
        session = console.sessions.get(_cookie(self, SESSION_COOKIE)) if console is not None else None
        if session is None or not session.csrf_ok(_header(self, b"x-csrf-token")):
            self.dropping_body = True
            self.content = io.BytesIO()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if not self.dropping_body:
            super().handleContentChunk(data)


class ConsoleSite(Site):
    """No tracebacks to the browser; requests logged by path only (never a form body)."""

    displayTracebacks = False
    requestFactory = ConsoleRequest

    def __init__(self, console: Console) -> None:
        super().__init__(console.resource())
        self.console = console
