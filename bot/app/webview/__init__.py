"""The web view inside Telegram (a Mini App, PRODUCT.md §7), served by the bot's own
listener at PAI_WEBAPP_URL's path, in polling and webhook mode alike.

Server-rendered: Jinja2 writes every page's HTML here, and ~150 lines of plain
JavaScript (static/app.js) fetch the fragments and post the decisions. There is no
build step: the README's two commands install everything it needs.

Sign-in: the page itself holds no data. Every data request carries Telegram's init
data (`Authorization: tma <init data>`), checked by bot/telegram/initdata.py; anything
else, and anyone not linked (partner pages) or not staff (staff pages), gets a bare 403.
Staff decisions go through the same services as the chat, so the first decision
counts whichever side makes it, and the chat copies are edited by the same listeners.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import tornado.web
from jinja2 import Environment, PackageLoader, select_autoescape

from bot.config import ConfigurationError, Settings
from bot.domain.errors import (
    AlreadyDecided,
    CustomerTakenMeanwhile,
    DomainError,
    RegistrationNotFound,
    TransitionNotAllowed,
)
from bot.domain.items import ItemKind
from bot.domain.lifecycle import Status
from bot.domain.rules import quote_incentive
from bot.i18n import Texts, language_for
from bot.reports import chart_png, numbers_text
from bot.resources import Resources
from bot.services.accounts import find_account
from bot.services.broadcasts import recent_reports
from bot.services.conflicts import decide_item
from bot.services.history import histories_of
from bot.services.items import open_items
from bot.services.privacy import record_access, staff_who
from bot.services.registrations import get_registration, list_registrations, search_registrations
from bot.services.staff import decide
from bot.services.stats import Numbers, programme_numbers
from bot.services.views import Account
from bot.telegram.context import App
from bot.telegram.initdata import WebAppUser, signed_user

log = logging.getLogger(__name__)

TELEGRAM_SCRIPT = "https://telegram.org/js/telegram-web-app.js"
# Who may frame the page: Telegram's own web clients (desktop and web open Mini Apps in
# an iframe); nobody else.
FRAME_ANCESTORS = "'self' https://web.telegram.org https://*.telegram.org"
CSP = (
    "default-src 'self'; "
    f"script-src 'self' {TELEGRAM_SCRIPT}; "
    "style-src 'self'; "
    "img-src 'self' blob:; "
    "connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; object-src 'none'; "
    f"frame-ancestors {FRAME_ANCESTORS}"
)
SHOWN = 100  # registrations a page lists; the count says how many matched
STATUSES = tuple(s.value for s in Status)
REASON_LENGTH = 500


@dataclass(frozen=True)
class WebApp:
    url: str
    path: str  # "/app", no trailing slash


def webapp_of(settings: Settings) -> WebApp | None:
    """PAI_WEBAPP_URL checked; None when the web view is off."""
    url = (settings.pai_webapp_url or "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigurationError(
            "PAI_WEBAPP_URL must be the public https address of the web view, "
            "such as https://bot.example.com/app"
        )
    path = parts.path.rstrip("/")
    if not path:
        raise ConfigurationError(
            "PAI_WEBAPP_URL needs a path of its own, such as https://bot.example.com/app"
        )
    hook = urlsplit((settings.pai_webhook_url or "").strip()).path.rstrip("/")
    if settings.pai_webhook_url and (hook == path or hook.startswith(path + "/")):
        raise ConfigurationError(
            "PAI_WEBAPP_URL and PAI_WEBHOOK_URL need different paths, "
            "such as /app for the web view and /telegram for the webhook"
        )
    return WebApp(url=url, path=path)


_templates = Environment(
    loader=PackageLoader("bot.app.webview", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def static_file(name: str) -> bytes:
    return resources.files("bot.app.webview").joinpath("static", name).read_bytes()


class Page(tornado.web.RequestHandler):
    """What every response of the web view carries: our security headers, no caching."""

    def initialize(self, bot_application: App, base: str = "") -> None:
        self.app_ = bot_application
        self.base = base

    @property
    def shared(self) -> Resources:
        return self.app_.bot_data.resources

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-store")
        self.clear_header("Server")

    def signed_in(self) -> WebAppUser | None:
        header = self.request.headers.get("Authorization", "")
        scheme, _, init_data = header.partition(" ")
        if scheme.lower() != "tma":
            return None
        settings = self.shared.settings
        token = settings.telegram_bot_token
        if token is None:
            return None
        return signed_user(
            init_data.strip(),
            bot_token=token.get_secret_value(),
            now=self.shared.now(),
            max_age=dt.timedelta(seconds=settings.pai_webapp_max_age),
        )

    def forbid(self) -> None:
        """403 and nothing more: no reason, no body worth reading."""
        self.set_status(HTTPStatus.FORBIDDEN)
        self.finish()

    def texts_for(self, user: WebAppUser, account: Account | None = None) -> Texts:
        return Texts(
            language_for(
                chosen=account.language if account else None, telegram_code=user.language_code
            )
        )

    def render_fragment(self, template: str, **values: Any) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(_templates.get_template(template).render(**values))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish()  # never a traceback, never a reason

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, tornado.web.HTTPError):
            return
        log.error(
            "the web view failed: %s", typ.__name__ if typ else "?", exc_info=(typ, value, tb)
        )


class Shell(Page):
    """The page Telegram opens: no data, only the frame the script fills in."""

    def get(self) -> None:
        self.render_fragment("shell.html", base=self.base, telegram=TELEGRAM_SCRIPT)


STATIC_TYPES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


class Static(Page):
    def get(self, name: str) -> None:
        if name not in STATIC_TYPES:
            raise tornado.web.HTTPError(HTTPStatus.NOT_FOUND)
        self.set_header("Content-Type", STATIC_TYPES[name])
        self.set_header("Cache-Control", "no-cache")
        self.finish(static_file(name))


class Me(Page):
    """Who is signed in: which tabs to show, in which language."""

    async def get(self) -> None:
        user = self.signed_in()
        if user is None:
            return self.forbid()
        async with self.shared.sessions() as session:
            account = await find_account(session=session, telegram_user_id=user.id)
        staff = user.id in self.shared.settings.pai_admin_ids
        if account is None and not staff:
            return self.forbid()
        texts = self.texts_for(user, account)
        tabs = []
        if account is not None:
            tabs += [
                ("registrations", texts.plain("web_tab_registrations")),
                ("loyalty", texts.plain("web_tab_loyalty")),
            ]
        if staff:
            tabs += [
                ("pending", texts.plain("web_tab_pending")),
                ("numbers", texts.plain("web_tab_numbers")),
                ("broadcasts", texts.plain("web_tab_broadcasts")),
            ]
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps(
                {
                    "language": texts.language,
                    "tabs": tabs,
                    "loading": texts.plain("web_loading"),
                    "failed": texts.plain("web_failed"),
                }
            )
        )


class PartnerPage(Page):
    """Partner data: the signed-in salesperson's own partner's, and nobody else's."""

    async def account(self) -> tuple[WebAppUser, Account] | None:
        user = self.signed_in()
        if user is None:
            return None
        async with self.shared.sessions() as session:
            account = await find_account(session=session, telegram_user_id=user.id)
        return None if account is None else (user, account)


class Registrations(PartnerPage):
    async def get(self) -> None:
        signed = await self.account()
        if signed is None:
            return self.forbid()
        user, account = signed
        texts = self.texts_for(user, account)
        status = self.get_query_argument("status", "")
        status = status if status in STATUSES else ""
        search = self.get_query_argument("q", "")[:100]
        async with self.shared.sessions() as session:
            count, shown = await search_registrations(
                session=session,
                rules=self.shared.rules,
                account=account,
                now=self.shared.now(),
                status=status or None,
                text=search,
                limit=SHOWN,
            )
        self.render_fragment(
            "registrations.html",
            t=texts.plain,
            texts=texts,
            rows=shown,
            count=count,
            status=status,
            search=search,
            statuses=STATUSES,
        )


class RegistrationDetail(PartnerPage):
    async def get(self, reference: str) -> None:
        signed = await self.account()
        if signed is None:
            return self.forbid()
        user, account = signed
        texts = self.texts_for(user, account)
        try:
            async with self.shared.sessions() as session:
                registration = await get_registration(
                    session=session, account=account, reference=reference.upper()
                )
                history = (await histories_of(session=session, ids=[registration.id]))[
                    registration.id
                ]
        except RegistrationNotFound:
            raise tornado.web.HTTPError(HTTPStatus.NOT_FOUND) from None
        zone = self.shared.rules.timezone
        self.render_fragment(
            "registration.html",
            t=texts.plain,
            texts=texts,
            r=registration,
            history=[
                (texts.moment(e.at, zone), texts.status(e.to_status), texts.actor(e.by), e.note)
                for e in history
            ],
        )


class Loyalty(PartnerPage):
    """Loyalty progress, totals, and the what-if calculator by the rules in force."""

    async def get(self) -> None:
        signed = await self.account()
        if signed is None:
            return self.forbid()
        user, account = signed
        texts = self.texts_for(user, account)
        shared = self.shared
        async with shared.sessions() as session:
            page = await list_registrations(
                session=session, rules=shared.rules, account=account, now=shared.now(), limit=1
            )
        level = self.get_query_argument("level", account.level)
        level = level if level in shared.rules.levels else account.level
        try:
            count = max(
                0, min(int(self.get_query_argument("count", str(page.standing.count))), 10_000)
            )
        except ValueError:
            count = page.standing.count
        try:
            quote = quote_incentive(
                shared.rules, on=shared.today(), level=level, earlier_registrations=count
            )
            what_if = texts.money(quote.amount, quote.currency)
        except DomainError:
            what_if = texts.plain("web_no_incentive")
        self.render_fragment(
            "loyalty.html",
            t=texts.plain,
            texts=texts,
            standing=page.standing,
            totals=page.totals,
            levels=[(lvl, texts.level(lvl)) for lvl in shared.rules.levels],
            level=level,
            count=count,
            what_if=what_if,
            company=account.company,
        )


class StaffPage(Page):
    def staff(self) -> WebAppUser | None:
        user = self.signed_in()
        if user is None or user.id not in self.shared.settings.pai_admin_ids:
            return None
        return user

    async def numbers(self) -> Numbers:
        """The programme's numbers now, as /stats has them (the page and its chart)."""
        shared = self.shared
        async with shared.sessions() as session:
            return await programme_numbers(session=session, rules=shared.rules, now=shared.now())


class Pending(StaffPage):
    async def get(self) -> None:
        user = self.staff()
        if user is None:
            return self.forbid()
        texts = self.texts_for(user)
        shared = self.shared
        async with shared.sessions() as session:
            items = await open_items(session=session)
            await record_access(
                session=session, who=staff_who(user.id), what="web pending", now=shared.now()
            )
        now = shared.now()
        self.render_fragment(
            "pending.html",
            t=texts.plain,
            texts=texts,
            items=items,
            now=now,
            due=lambda i: texts.moment(i.due_at, shared.rules.timezone),
            late=lambda i: i.due_at < now,
        )


class Decide(StaffPage):
    """POST a decision: the same services as the chat's buttons; the first counts."""

    async def post(self) -> None:
        user = self.staff()
        if user is None:
            return self.forbid()
        texts = self.texts_for(user)
        try:
            body = json.loads(self.request.body or b"{}")
            item_id, grant = body["item"], body["grant"]
            # Exactly what the page sends: a whole number and true or false, nothing
            # that Python would read as one ("false" is not false).
            if type(item_id) is not int or type(grant) is not bool or not 0 < item_id < 2**31:
                raise ValueError("not a decision")
            reason = str(body.get("reason") or "").strip()[:REASON_LENGTH] or None
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
            raise tornado.web.HTTPError(HTTPStatus.BAD_REQUEST) from None
        if not grant and reason is None:
            return self.answer(False, texts.plain("web_reason_needed"))
        shared = self.shared
        try:
            async with shared.sessions() as session:
                items = {i.id: i for i in await open_items(session=session)}
            item = items.get(item_id)
            if item is None:
                return self.answer(False, texts.plain("web_already_decided"))
            async with shared.sessions() as session:
                if item.kind == ItemKind.WON:
                    await decide(
                        session=session,
                        reference=item.registration.reference,
                        approve=grant,
                        staff_id=user.id,
                        now=shared.now(),
                        reason=reason,
                    )
                else:
                    await decide_item(
                        session=session,
                        rules=shared.rules,
                        item_id=item_id,
                        grant=grant,
                        staff_id=user.id,
                        now=shared.now(),
                        reason=reason,
                    )
        except (AlreadyDecided, TransitionNotAllowed, RegistrationNotFound):
            return self.answer(False, texts.plain("web_already_decided"))
        except CustomerTakenMeanwhile as taken:
            return self.answer(False, texts.plain("web_taken_meanwhile", reference=taken.reference))
        key = "web_decided_yes" if grant else "web_decided_no"
        self.answer(True, texts.plain(key, reference=item.registration.reference))

    def answer(self, done: bool, said: str) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"done": done, "said": said}))


class NumbersPage(StaffPage):
    async def get(self) -> None:
        user = self.staff()
        if user is None:
            return self.forbid()
        texts = self.texts_for(user)
        numbers = await self.numbers()
        # The chat's own text (Telegram's HTML: <b> and line breaks), already escaped.
        self.render_fragment(
            "numbers.html",
            t=texts.plain,
            lines=numbers_text(texts, self.shared.rules, numbers).split("\n"),
        )


class Chart(StaffPage):
    async def get(self) -> None:
        user = self.staff()
        if user is None:
            return self.forbid()
        texts = self.texts_for(user)
        numbers = await self.numbers()
        png = await _in_thread(chart_png, numbers, self.shared.rules.levels, texts)
        self.set_header("Content-Type", "image/png")
        self.finish(png)


class Broadcasts(StaffPage):
    async def get(self) -> None:
        user = self.staff()
        if user is None:
            return self.forbid()
        texts = self.texts_for(user)
        async with self.shared.sessions() as session:
            reports = await recent_reports(session=session)
        zone = self.shared.rules.timezone
        self.render_fragment(
            "broadcasts.html",
            t=texts.plain,
            reports=reports,
            when=lambda r: texts.moment(r.created_at, zone),
        )


async def _in_thread(function: Any, *args: Any) -> Any:
    """Drawing a chart takes matplotlib a few hundred ms: beside the loop."""
    return await asyncio.to_thread(function, *args)


def routes(application: App, webapp: WebApp) -> list[tuple[str, type, dict[str, Any]]]:
    """The web view's paths under PAI_WEBAPP_URL's, for the listener."""
    base = re.escape(webapp.path)
    given = {"bot_application": application, "base": webapp.path}
    return [
        (rf"{base}/?", Shell, given),
        (rf"{base}/static/([a-z.]+)", Static, given),
        (rf"{base}/api/me", Me, given),
        (rf"{base}/api/decide", Decide, given),
        (rf"{base}/api/chart.png", Chart, given),
        (rf"{base}/page/registrations", Registrations, given),
        (rf"{base}/page/registration/([A-Za-z0-9-]{{1,20}})", RegistrationDetail, given),
        (rf"{base}/page/loyalty", Loyalty, given),
        (rf"{base}/page/pending", Pending, given),
        (rf"{base}/page/numbers", NumbersPage, given),
        (rf"{base}/page/broadcasts", Broadcasts, given),
    ]
