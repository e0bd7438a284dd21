"""The operator's pages: tenants with their status, quota, stored bytes and bill; a tenant's
users and keys (create, revoke); its usage this month and its stored bytes hour by hour; the
health of the catalog and every placement.

The operator signs in with the deployment's own credential ([console] admin_key and
admin_secret), not a tenant's key: these pages change the catalog directly, as
``vaultaire-admin`` does, and no S3 request is made with it. A new key's secret is shown
once, on the page that made it, never again.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from twisted.web.iweb import IRequest
from twisted.web.template import Tag

from vaultaire.access.policy import MalformedPolicy, parse_policy
from vaultaire.admin.context import AdminError
from vaultaire.admin.quota import limit
from vaultaire.admin.users import _check_name as check_user_name
from vaultaire.billing import Bill, month_hours, monthly_bill
from vaultaire.bootstrap import generate_keys
from vaultaire.console import pages
from vaultaire.console.pages import shown, size_text, tags, url
from vaultaire.console.routes import app, arg
from vaultaire.console.sessions import Session
from vaultaire.console.usage import bar_chart, days_of
from vaultaire.errors import NoSuchTenant, NoSuchUser, TenantExists, UserExists
from vaultaire.model import StoredTotals, Tenant, UsageRow

if TYPE_CHECKING:
    from vaultaire.engine import Engine

HISTORY_HOURS = 48  # the stored-bytes chart's span


def tenant_path(name: str, action: str = "") -> str:
    return "/ops/t/" + quote(name, safe="") + (f"/{action}" if action else "")


def hourly_stored(rows: list[UsageRow], now: float, hours: int = HISTORY_HOURS) -> tuple[list[str], list[float]]:
    """Average stored bytes of each of the last ``hours`` UTC hours (the current one so far)."""
    last = int(now // 3600)
    first = last - hours + 1
    seconds = [0] * hours
    for row in rows:
        if first <= row.hour <= last:
            seconds[row.hour - first] += row.byte_seconds
    labels, values = [], []
    for i in range(hours):
        hour = first + i
        elapsed = min(3600.0, max(1.0, now - hour * 3600))
        labels.append(time.strftime("%Y-%m-%d %H:00", time.gmtime(hour * 3600)))
        values.append(seconds[i] / elapsed)
    return labels, values


class OperatorFailed(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


class OperatorPages:
    if TYPE_CHECKING:
        engine: Engine
        price_per_tb_month: float
        clock: Callable[[], float]

        async def html(
            self, request: IRequest, title: str, session: Session | None, *body: Any, status: int = 200
        ) -> bytes: ...

        def redirect(self, request: IRequest, location: str) -> bytes: ...

        def operator_session(self, request: IRequest, posted: bool = False) -> Session: ...

    def _this_month(self) -> str:
        return time.strftime("%Y-%m", time.gmtime(self.clock()))

    async def _bill(self, tenant: Tenant, month: str) -> tuple[Bill, list[UsageRow]]:
        first, end = month_hours(month)
        rows = await self.engine.catalog.usage(tenant.id, first, end)
        return monthly_bill(tenant.name, month, rows, Decimal(str(self.price_per_tb_month))), rows

    # -- every tenant

    @app.route("/ops", methods=["GET"])
    async def operator_home(self, request: IRequest) -> bytes:
        session = self.operator_session(request)
        return await self._home(request, session)

    async def _home(self, request: IRequest, session: Session, error: str = "", status: int = 200) -> bytes:
        catalog = self.engine.catalog
        tenants = await catalog.tenants()
        totals = await catalog.all_tenant_totals()
        month = self._this_month()
        rows = []
        everything = StoredTotals()
        for t in tenants:
            stored = totals.get(t.id, StoredTotals())
            everything = StoredTotals(
                bytes=everything.bytes + stored.bytes, objects=everything.objects + stored.objects
            )
            bill, _ = await self._bill(t, month)
            rows.append(
                [
                    tags.a(href=url(tenant_path(t.name)), class_="tenant")(shown(t.name)),
                    tags.span(class_=f"status {t.status}")(t.status),
                    size_text(stored.bytes),
                    str(stored.objects),
                    _quota(t),
                    f"${bill.amount(bill.total)}",
                ]
            )
        create = tags.fieldset(
            tags.legend("New tenant"),
            pages.post_form(
                session,
                "/ops/tenants",
                tags.label("Name ", tags.input(type="text", name="tenant", required="required", maxlength="64")),
                " ",
                pages.button("Create"),
                id="create-tenant",
            ),
        )
        return await self.html(
            request,
            "Tenants",
            session,
            pages.message("error", error),
            tags.p(
                f"{len(tenants)} tenants storing {size_text(everything.bytes)} in {everything.objects} objects; "
                f"bills for {month} so far at ${self.price_per_tb_month} per TB-month."
            ),
            pages.table(["Tenant", "Status", "Stored", "Objects", "Quota", f"Bill {month}"], rows, id="tenants"),
            create,
            status=status,
        )

    @app.route("/ops/tenants", methods=["POST"])
    async def create_tenant(self, request: IRequest) -> bytes:
        session = self.operator_session(request, posted=True)
        name = arg(request, "tenant").strip()
        if not name or len(name) > 64 or not name.isprintable():
            return await self._home(request, session, "A tenant's name is 1 to 64 printable characters.", 400)
        try:
            await self.engine.catalog.create_tenant(name)
        except TenantExists:
            return await self._home(request, session, f"A tenant named {name!r} exists already.", 409)
        return self.redirect(request, url(tenant_path(name)))

    # -- one tenant

    @app.route("/ops/t/<name>", methods=["GET"])
    async def tenant_page(self, request: IRequest, name: str) -> bytes:
        session = self.operator_session(request)
        return await self._tenant(request, session, name)

    async def _tenant(self, request: IRequest, session: Session, name: str, *notes: Any, status: int = 200) -> bytes:
        catalog = self.engine.catalog
        try:
            tenant = await catalog.tenant(name)
        except NoSuchTenant:
            return await self._home(request, session, f"No tenant named {name!r}.", 404)
        stored = await catalog.tenant_totals(tenant.id)
        month = self._this_month()
        bill, rows = await self._bill(tenant, month)
        history_rows = await catalog.usage(
            tenant.id, int(self.clock() // 3600) - HISTORY_HOURS, int(self.clock() // 3600) + 1
        )

        def form(action: str, *children: Any, **attributes: str) -> Tag:
            return pages.post_form(session, tenant_path(tenant.name, action), *children, **attributes)

        turn = "suspended" if tenant.status == "active" else "active"
        summary = pages.table(
            ["", ""],
            [
                ["Status", tags.strong(id="tenant-status")(tenant.status)],
                ["Stored now", f"{size_text(stored.bytes)} ({stored.bytes} bytes) in {stored.objects} objects"],
                ["Quota", tags.span(id="quota")(_quota(tenant))],
                ["Bill so far", [tags.strong(id="tenant-bill")(f"${bill.amount(bill.total)}"), f" ({month})"]],
                [
                    "Requests, data in / out",
                    f"{bill.total.class_a} class A, {bill.total.class_b} class B; "
                    f"{size_text(bill.total.bytes_in)} / {size_text(bill.total.bytes_out)}",
                ],
            ],
            id="tenant-summary",
        )
        controls = tags.fieldset(id="tenant-controls")(
            tags.legend("Status and quota"),
            form(
                "status",
                pages.hidden("state", turn),
                pages.button("Suspend (every request refused, data kept)" if turn == "suspended" else "Resume"),
                id="toggle-status",
            ),
            form(
                "quota",
                tags.label(
                    "Max bytes ",
                    tags.input(type="text", name="max_bytes", value=_limit_text(tenant.max_bytes), size="10"),
                ),
                " ",
                tags.label(
                    "max objects ",
                    tags.input(type="text", name="max_objects", value=_limit_text(tenant.max_objects), size="10"),
                ),
                " (10G = 10^9 bytes, 1Ti = 2^40, none = no limit) ",
                pages.button("Set quota"),
                id="set-quota",
            ),
        )
        people = await self._people(session, tenant, form)
        days = days_of(month, rows, self.clock())
        labels, hourly = hourly_stored(history_rows, self.clock())
        charts = [
            bar_chart(
                f"Stored bytes, hourly average, the last {HISTORY_HOURS} hours (this hour: so far)",
                labels,
                hourly,
                lambda v: size_text(int(v)),
                "chart-hourly",
            ),
            bar_chart(
                "Stored bytes (daily average)",
                [d.date for d in days],
                [d.stored_bytes for d in days],
                lambda v: size_text(int(v)),
                "chart-stored",
            ),
            bar_chart(
                "Requests per day",
                [d.date for d in days],
                [float(d.requests) for d in days],
                lambda v: f"{int(v)}",
                "chart-requests",
            ),
        ]
        return await self.html(
            request,
            f"Tenant {tenant.name}",
            session,
            tags.p(tags.a(href="/ops")("All tenants")),
            *notes,
            summary,
            controls,
            *people,
            tags.h2("Usage"),
            *charts,
            status=status,
        )

    async def _people(self, session: Session, tenant: Tenant, form: Callable[..., Tag]) -> list[Any]:
        catalog = self.engine.catalog
        users = await catalog.users(tenant.id)
        every_key = [key for key, _, _ in await catalog.credentials(tenant.id)]
        by_user: dict[str, list[str]] = {}
        for u in users:
            by_user[u.name] = await catalog.user_keys(tenant.id, u.name)
        taken = {k for keys in by_user.values() for k in keys}
        by_user = {"": [k for k in every_key if k not in taken], **by_user}

        def key_cell(key: str) -> Tag:
            return tags.li(
                tags.code(key),
                " ",
                form("revoke", pages.hidden("access_key", key), pages.button("Revoke"), class_="inline"),
            )

        rows = []
        for user, keys in by_user.items():
            policy = next((u.policy for u in users if u.name == user), None)
            rows.append(
                [
                    shown(user) if user else tags.em("root (may do everything)"),
                    "—" if not user else ("yes" if policy else "none: nothing allowed"),
                    tags.ul([key_cell(k) for k in keys]) if keys else "no keys",
                    form(
                        "keys",
                        pages.hidden("user", user),
                        pages.button("New key"),
                        class_="inline",
                    ),
                ]
            )
        return [
            tags.h2("Users and keys"),
            pages.table(["User", "Policy", "Access keys", ""], rows, id="users"),
            tags.fieldset(
                tags.legend("New user"),
                form(
                    "users",
                    tags.p(
                        tags.label("Name ", tags.input(type="text", name="user", required="required", maxlength="64"))
                    ),
                    tags.p(
                        tags.label(
                            "Identity policy (JSON; empty: the user may do nothing) ",
                            tags.br(),
                            tags.textarea(name="policy", rows="8", cols="90"),
                        )
                    ),
                    pages.button("Create user and its key"),
                    id="create-user",
                ),
            ),
        ]

    # -- changes to one tenant

    @app.route("/ops/t/<name>/<action>", methods=["POST"])
    async def change_tenant(self, request: IRequest, name: str, action: str) -> bytes:
        session = self.operator_session(request, posted=True)
        catalog = self.engine.catalog
        try:
            tenant = await catalog.tenant(name)
            if action == "status":
                state = "suspended" if arg(request, "state") == "suspended" else "active"
                await catalog.set_tenant_status(tenant.name, state)
            elif action == "quota":
                try:
                    max_bytes = limit(arg(request, "max_bytes") or "none")
                    max_objects = limit(arg(request, "max_objects") or "none")
                except argparse.ArgumentTypeError as e:
                    raise OperatorFailed(400, str(e)) from None
                await catalog.set_quota(tenant.name, max_bytes, max_objects)
            elif action == "users":
                return await self._new_user(request, session, tenant)
            elif action == "keys":
                user = arg(request, "user")
                if user:
                    await catalog.user(tenant.id, user)  # NoSuchUser before a key is made
                access, secret = generate_keys()
                await catalog.add_credential(tenant.id, access, secret, user)
                return await self._new_key(request, session, tenant, user, access, secret)
            elif action == "revoke":
                key = arg(request, "access_key")
                if key not in [k for k, _, _ in await catalog.credentials(tenant.id)]:
                    raise OperatorFailed(404, f"{tenant.name} has no access key {key!r}.")
                await catalog.revoke_credential(key)
            else:
                raise OperatorFailed(404, f"No such change: {action!r}.")
        except NoSuchTenant:
            return await self._home(request, session, f"No tenant named {name!r}.", 404)
        except NoSuchUser:
            return await self._failed(request, session, name, 404, "No such user in this tenant.")
        except OperatorFailed as e:
            return await self._failed(request, session, name, e.status, str(e))
        return self.redirect(request, url(tenant_path(name)))

    async def _failed(self, request: IRequest, session: Session, name: str, status: int, why: str) -> bytes:
        return await self._tenant(request, session, name, pages.message("error", why), status=status)

    async def _new_user(self, request: IRequest, session: Session, tenant: Tenant) -> bytes:
        try:
            user = check_user_name(arg(request, "user").strip())
        except AdminError as e:
            raise OperatorFailed(400, str(e)) from None
        policy = arg(request, "policy").strip() or None
        if policy is not None:
            try:
                parse_policy(policy, resource_policy=False)
            except MalformedPolicy as e:
                raise OperatorFailed(400, f"MalformedPolicy: {e.message}") from None
        try:
            await self.engine.catalog.create_user(tenant.id, user, policy)
        except UserExists:
            raise OperatorFailed(409, f"A user named {user!r} exists already in {tenant.name}.") from None
        access, secret = generate_keys()
        await self.engine.catalog.add_credential(tenant.id, access, secret, user)
        return await self._new_key(request, session, tenant, user, access, secret)

    async def _new_key(
        self, request: IRequest, session: Session, tenant: Tenant, user: str, access: str, secret: str
    ) -> bytes:
        """The one page that ever shows this secret (no-store, like every console page)."""
        return await self.html(
            request,
            "New access key",
            session,
            pages.message(
                "info",
                f"A new key for {'user ' + user if user else 'the root user'} of {tenant.name}. "
                "Copy the secret now: it is not shown again.",
            ),
            pages.table(
                ["", ""],
                [
                    ["Access key", tags.code(id="new-access-key")(access)],
                    [
                        "Secret key",
                        [
                            tags.input(type="text", readonly="readonly", value=secret, id="new-secret", size="50"),
                            " ",
                            tags.button(type="button", **{"data-copy": "new-secret"})("Copy"),
                        ],
                    ],
                ],
            ),
            tags.p(tags.a(href=url(tenant_path(tenant.name)))(f"Back to {tenant.name}")),
        )

    # -- the deployment

    @app.route("/ops/health", methods=["GET"])
    async def health_page(self, request: IRequest) -> bytes:
        session = self.operator_session(request)
        report = await self.engine.health()
        drivers: Any = report.get("drivers", {})
        rows = [
            ["catalog", _status(report.get("catalog")), _details(report.get("catalog"))],
            *([name, _status(h), _details(h)] for name, h in sorted(drivers.items())),
        ]
        return await self.html(
            request,
            "Health",
            session,
            tags.p("Overall: ", tags.strong(id="health")(str(report.get("status", "?")))),
            pages.table(["Part", "Status", "Details"], rows, id="placements"),
        )


def _quota(t: Tenant) -> str:
    parts = [
        f"{size_text(t.max_bytes)}" if t.max_bytes is not None else "no byte limit",
        f"{t.max_objects} objects" if t.max_objects is not None else "no object limit",
    ]
    return ", ".join(parts)


def _limit_text(value: int | None) -> str:
    return "none" if value is None else str(value)


def _status(h: object) -> str:
    return str(h.get("status", "?")) if isinstance(h, dict) else "?"


def _details(h: object) -> str:
    if not isinstance(h, dict):
        return ""
    return ", ".join(f"{k}: {v}" for k, v in sorted(h.items()) if k != "status")
