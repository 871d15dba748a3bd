"""The web view (PRODUCT.md §7) over HTTP: Telegram's sign-in checked as documented,
403 and nothing more for everyone else, security headers, the partner's and staff's
pages with their data, and a decision taken in the page that the chat sees."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from urllib.parse import quote, urlencode

import aiohttp
import pytest

from bot.domain.lifecycle import Status
from bot.telegram.initdata import init_data_for, sign, signed_user
from models import Registration
from tests.conftest import BACKENDS, database_url_for, reset_postgresql
from tests.factories import VATS, link_salesperson, register, report
from tests.harness import TOKEN, Harness, running_bot
from tests.test_conversations import load_programme
from tests.webview_helpers import Served, serving_web_view

STAFF = 900
NOW = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)

# --- Telegram's sign-in -----------------------------------------------------------------

# The fields of the example in Telegram's documentation of init data
# (core.telegram.org/bots/webapps#webappinitdata), with the Bot API docs' example token.
EXAMPLE_TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
EXAMPLE_USER = (
    '{"id":279058397,"first_name":"Vladislav","last_name":"Kibenko",'
    '"username":"vdkfrost","language_code":"ru","is_premium":true}'
)
EXAMPLE = {"query_id": "AAHdF6IQAAAAAN0XohDhrOrc", "user": EXAMPLE_USER, "auth_date": "1662771648"}


def documented_hash(fields: dict[str, str], token: str) -> str:
    """The hash as the documentation spells it out, written here on its own."""
    check = "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    return hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()


def example_init_data(**changes: str) -> str:
    fields = {**EXAMPLE, **changes}
    return urlencode([*fields.items(), ("hash", documented_hash(fields, EXAMPLE_TOKEN))])


SIGNED_AT = dt.datetime.fromtimestamp(1662771648, dt.UTC)
FRESH = {"bot_token": EXAMPLE_TOKEN, "now": SIGNED_AT + dt.timedelta(minutes=5), "max_age": DAY}


def test_telegrams_documented_example_signs_in_its_user():
    user = signed_user(example_init_data(), **FRESH)  # type: ignore[arg-type]
    assert user is not None
    assert (user.id, user.language_code, user.first_name) == (279058397, "ru", "Vladislav")
    assert user.signed_at == SIGNED_AT


# Init data signed by real Telegram clients for throw-away test bots, published with their
# tokens in public validators' tests: a check of our reading against Telegram's own.
REAL = [
    (
        "6887590696:AAEf6UL8lV5qhveK_dFNEOtjLTosCrErM8Q",
        "user=%7B%22id%22%3A308131758%2C%22first_name%22%3A%22ALEX%22%2C%22last_name%22%3A"
        "%22IVANNIKOV.PRO%22%2C%22username%22%3A%22ivannikovPro%22%2C%22language_code%22%3A"
        "%22ru%22%2C%22allows_write_to_pm%22%3Atrue%7D&chat_instance=-1857114464680496286"
        "&chat_type=private&auth_date=1716232213"
        "&hash=7d31991a605ab5e265b40ebbccc09c28bfb59366d2ac5cee9ca288c24a2ed3c3",
        308131758,
    ),
    (
        "7673642218:AAH-h1sgk3FJhWng0IqH01A2jWmILKSTJ9k",
        "user=%7B%22id%22%3A398015313%2C%22first_name%22%3A%22Alex%22%2C%22last_name%22%3A"
        "%22J%22%2C%22username%22%3A%22ElexShepard%22%2C%22language_code%22%3A%22ru%22%2C"
        "%22allows_write_to_pm%22%3Atrue%7D&chat_instance=8396920176790796100"
        "&chat_type=sender&auth_date=1730309229"
        "&hash=1a40892a83232c7e070fee6689e6bcc4f772c9ce28a0d52d4e8816bfd871a1c8",
        398015313,
    ),
]


@pytest.mark.parametrize(("token", "init_data", "user_id"), REAL)
def test_init_data_signed_by_real_telegram_clients_signs_in_their_user(token, init_data, user_id):
    signed_at = dt.datetime.fromtimestamp(
        int(init_data.split("auth_date=")[1].split("&")[0]), dt.UTC
    )
    user = signed_user(init_data, bot_token=token, now=signed_at, max_age=DAY)
    assert user is not None and user.id == user_id
    assert signed_user(init_data, bot_token=REAL[0][0] + "x", now=signed_at, max_age=DAY) is None


def test_the_fields_in_another_order_sign_in_the_same():
    pairs = example_init_data().split("&")
    assert signed_user("&".join(reversed(pairs)), **FRESH) is not None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(example_init_data().replace("279058397", "279058398"), id="another user"),
        pytest.param(example_init_data()[:-1] + "0", id="hash changed"),
        pytest.param(example_init_data().rsplit("&hash=", 1)[0], id="no hash"),
        pytest.param(example_init_data()[:60], id="truncated"),
        pytest.param(example_init_data() + "&auth_date=1999999999", id="a field twice"),
        pytest.param(example_init_data() + "&extra=1", id="a field added"),
        pytest.param(sign(EXAMPLE, bot_token="654321:another-bot-s-token"), id="another bot"),
        pytest.param(example_init_data(user="not json"), id="user not json"),
        pytest.param(example_init_data(user='{"first_name":"x"}'), id="user without id"),
        pytest.param(example_init_data(auth_date="soon"), id="auth_date not a number"),
        pytest.param("", id="empty"),
        pytest.param("%%%&&&==", id="garbage"),
        pytest.param("a=" + "x" * 5000, id="huge"),
        pytest.param("auth_date=1&user=%7B%7D&hash=%C3%A9", id="a hash not in ASCII"),
    ],
)
def test_forged_altered_or_truncated_init_data_signs_in_nobody(forged):
    assert signed_user(forged, **FRESH) is None  # type: ignore[arg-type]


def test_stale_or_future_init_data_signs_in_nobody():
    late = {**FRESH, "now": SIGNED_AT + DAY + dt.timedelta(seconds=1)}
    assert signed_user(example_init_data(), **late) is None  # type: ignore[arg-type]
    early = {**FRESH, "now": SIGNED_AT - dt.timedelta(hours=1)}
    assert signed_user(example_init_data(), **early) is None  # type: ignore[arg-type]


# --- over HTTP ------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
async def served(request, tmp_path, rules):
    url = database_url_for(request.param, tmp_path)
    if request.param == "postgresql":
        await reset_postgresql(url)
    async with running_bot(
        tmp_path,
        database_url=url,
        pai_admin_ids=frozenset({STAFF}),
        pai_webapp_url="https://bot.example.com/app",
    ) as bot:
        await load_programme(bot, rules, tmp_path)
        async with serving_web_view(bot) as view:
            yield view


async def get(
    view: Served, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.get(view.base + path, headers=headers) as r:
        return r.status, await r.text(), dict(r.headers)


async def linked_with_deals(bot: Harness, rules, count: int = 3) -> list[str]:
    account = await link_salesperson(bot.sessions, "ACME", 11, now=bot.clock.now())
    references = []
    names = ["Bianchi SpA", "Rossi Impianti", "Verdi Costruzioni"]
    for n in range(count):
        made = await register(
            bot.sessions,
            rules,
            account,
            VATS[n + 3] if n < 3 else f"IT{n:011d}",
            now=bot.clock.now(),
            name=names[n % 3],
        )
        references.append(made.reference)
    return references


async def test_the_page_itself_holds_no_data_and_carries_the_security_headers(served):
    status, body, headers = await get(served, "/")
    assert status == 200
    assert "telegram-web-app.js" in body and "/app/static/app.js" in body
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self' https://telegram.org" in csp
    assert "frame-ancestors 'self' https://web.telegram.org" in csp
    assert "default-src 'self'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "path",
    [
        "/api/me",
        "/page/registrations",
        "/page/loyalty",
        "/page/pending",
        "/page/numbers",
        "/page/broadcasts",
        "/api/chart.png",
    ],
)
async def test_without_a_valid_sign_in_every_data_request_is_a_bare_403(served, rules, path):
    await linked_with_deals(served.bot, rules, 1)
    stale = init_data_for(11, bot_token=TOKEN, at=served.bot.clock.now() - 2 * DAY)
    forged = served.init_data(11).replace("hash=", "hash=0")
    for headers in (
        None,
        {"Authorization": f"tma {stale}"},
        {"Authorization": f"tma {forged}"},
        {"Authorization": served.init_data(11)},
    ):  # no scheme
        status, body, _ = await get(served, path, headers)
        assert (status, body) == (403, "")


async def test_partner_pages_answer_only_the_linked_and_staff_pages_only_staff(served, rules):
    await linked_with_deals(served.bot, rules, 1)
    stranger = served.auth(77)
    assert (await get(served, "/page/registrations", stranger))[:2] == (403, "")
    assert (await get(served, "/api/me", stranger))[:2] == (403, "")
    salesperson = served.auth(11)
    for path in ("/page/pending", "/page/numbers", "/page/broadcasts", "/api/chart.png"):
        assert (await get(served, path, salesperson))[:2] == (403, "")
    staff_only = served.auth(STAFF)
    assert (await get(served, "/page/registrations", staff_only))[:2] == (403, "")
    status, body, _ = await get(served, "/api/me", staff_only)
    assert status == 200
    assert [key for key, _ in json.loads(body)["tabs"]] == ["pending", "numbers", "broadcasts"]


async def test_a_partner_sees_its_registrations_filtered_and_searched_with_their_history(
    served, rules
):
    references = await linked_with_deals(served.bot, rules, 3)
    other = await link_salesperson(served.bot.sessions, "BETA", 21, now=served.bot.clock.now())
    await register(
        served.bot.sessions,
        rules,
        other,
        VATS[1],
        now=served.bot.clock.now(),
        name="Secret Customer of Beta",
    )
    me = served.auth(11)
    status, body, _ = await get(served, "/page/registrations", me)
    assert status == 200
    assert all(reference in body for reference in references)
    assert "Secret Customer of Beta" not in body  # another partner's, never
    assert "3 of 3" in body
    _, found, _ = await get(served, "/page/registrations?q=" + quote("rossi"), me)
    assert "Rossi Impianti" in found and "Bianchi SpA" not in found and "1 of 1" in found
    _, literal, _ = await get(served, "/page/registrations?q=" + quote("%"), me)
    assert "0 of 0" in literal  # a % typed is a %, not "anything"
    _, none, _ = await get(served, "/page/registrations?status=paid", me)
    assert "No registration matches." in none
    status, detail, _ = await get(served, f"/page/registration/{references[0]}", me)
    assert status == 200 and "History" in detail and "open" in detail
    beta_ref = next(r for r in await _rows(served.bot) if r.partner_id == 2).reference
    assert (await get(served, f"/page/registration/{beta_ref}", me))[0] == 404


async def _rows(bot: Harness) -> list[Registration]:
    from sqlalchemy import select

    async with bot.sessions() as session:
        return list((await session.execute(select(Registration))).scalars())


async def test_loyalty_totals_and_the_what_if_calculator_follow_the_rules(served, rules):
    await linked_with_deals(served.bot, rules, 3)
    me = served.auth(11, "it")
    status, body, _ = await get(served, "/page/loyalty", me)
    assert status == 200
    assert "3 registrazioni nel periodo del bonus fedeltà" in body  # Italian for an Italian
    _, certified, _ = await get(served, "/page/loyalty?level=certified&count=0", me)
    _, gold, _ = await get(served, "/page/loyalty?level=gold&count=0", me)
    assert "Un cliente nuovo varrebbe" in certified
    assert certified != gold
    _, silly, _ = await get(served, "/page/loyalty?level=emperor&count=-5", me)
    assert "Un cliente nuovo varrebbe" in silly  # back to the partner's own level, 0


async def test_approve_in_the_page_decides_the_deal_and_edits_the_staff_chat_copies(served, rules):
    bot = served.bot
    account = await link_salesperson(bot.sessions, "ACME", 11, now=bot.clock.now())
    made = await register(bot.sessions, rules, account, VATS[3], now=bot.clock.now())
    await report(bot.sessions, rules, account, made, Status.WON, now=bot.clock.now())
    await bot.deliver()
    [notice] = [m for m in bot.api.sent_to(STAFF) if made.reference in m["text"]]
    status, pending, _ = await get(served, "/page/pending", served.auth(STAFF))
    assert status == 200 and made.reference in pending
    item = int(pending.split('id="item-')[1].split('"')[0])
    async with aiohttp.ClientSession() as http:
        async with http.post(
            served.base + "/api/decide",
            headers=served.auth(STAFF),
            json={"item": item, "grant": True},
        ) as r:
            answer = await r.json()
        assert answer["done"] is True
        await bot.deliver()
        # The chat's copy now says who decided, its buttons gone; the partner is told.
        assert "Approved by" in notice["text"] and not notice.get("reply_markup")
        assert [r.status for r in await _rows(bot)] == ["approved"]
        # The first decision counts: a second, from the page or the chat, changes nothing.
        async with http.post(
            served.base + "/api/decide",
            headers=served.auth(STAFF),
            json={"item": item, "grant": False, "reason": "late"},
        ) as r:
            again = await r.json()
    assert again["done"] is False and "Already decided" in again["said"]
    assert [r.status for r in await _rows(bot)] == ["approved"]


async def test_refuse_without_a_reason_is_asked_for_one_and_a_partner_cannot_decide(served, rules):
    bot = served.bot
    account = await link_salesperson(bot.sessions, "ACME", 11, now=bot.clock.now())
    made = await register(bot.sessions, rules, account, VATS[3], now=bot.clock.now())
    await report(bot.sessions, rules, account, made, Status.WON, now=bot.clock.now())
    await bot.deliver()
    _, pending, _ = await get(served, "/page/pending", served.auth(STAFF))
    item = int(pending.split('id="item-')[1].split('"')[0])
    async with aiohttp.ClientSession() as http:
        async with http.post(
            served.base + "/api/decide",
            headers=served.auth(STAFF),
            json={"item": item, "grant": False},
        ) as r:
            assert (await r.json())["done"] is False
        async with http.post(
            served.base + "/api/decide", headers=served.auth(11), json={"item": item, "grant": True}
        ) as r:
            assert r.status == 403
        async with http.post(
            served.base + "/api/decide", headers=served.auth(STAFF), data=b"{not json"
        ) as r:
            assert r.status == 400
    assert [r.status for r in await _rows(bot)] == ["won"]


async def test_staff_numbers_chart_and_broadcasts(served, rules):
    await linked_with_deals(served.bot, rules, 2)
    staff = served.auth(STAFF)
    status, numbers, _ = await get(served, "/page/numbers", staff)
    assert status == 200 and 'id="chart"' in numbers
    async with (
        aiohttp.ClientSession() as http,
        http.get(served.base + "/api/chart.png", headers=staff) as r,
    ):
        assert r.status == 200 and r.headers["Content-Type"] == "image/png"
        assert (await r.read())[:4] == b"\x89PNG"
    status, broadcasts, _ = await get(served, "/page/broadcasts", staff)
    assert status == 200 and "No broadcast yet." in broadcasts


async def test_the_menu_button_opens_the_web_view_for_staff_and_newly_linked_salespeople(served):
    from tests.test_conversations import join

    bot = served.bot
    await bot.resources.settle()
    await join(bot, 11, language="en")
    menus = {
        int(p["chat_id"]): json.loads(p["menu_button"])
        if isinstance(p["menu_button"], str)
        else p["menu_button"]
        for m, p in bot.api.calls
        if m == "setChatMenuButton"
    }
    assert set(menus) == {STAFF, 11}  # never a stranger's chat, never everyone's
    assert menus[11]["type"] == "web_app"
    assert menus[11]["web_app"]["url"] == "https://bot.example.com/app"


async def test_in_polling_mode_the_bots_own_listener_serves_the_web_view(tmp_path, rules):
    import socket

    from bot.app.web import serve_web_view_while_polling

    with socket.socket() as probe:  # a port free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with running_bot(
        tmp_path,
        pai_webapp_url="https://bot.example.com/app",
        pai_webhook_listen=f"127.0.0.1:{port}",
    ) as bot:
        server = serve_web_view_while_polling(bot.app, bot.resources.settings)
        assert server is not None
        try:
            view = Served(f"http://127.0.0.1:{port}/app", bot)
            status, body, _ = await get(view, "/")
            assert status == 200 and "app.js" in body
            assert (await get(view, "/api/me"))[:2] == (403, "")
            status, health, _ = await get(Served(f"http://127.0.0.1:{port}", bot), "/healthz")
            assert status == 200 and json.loads(health)["database"] == "ok"
        finally:
            server.stop()
            await server.close_all_connections()


def test_the_web_view_needs_a_path_of_its_own(tmp_path):
    from bot.app.webview import webapp_of
    from bot.config import ConfigurationError
    from tests.harness import settings_for

    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ConfigurationError, match="path of its own"):
        webapp_of(settings_for(url, pai_webapp_url="https://bot.example.com/"))
    with pytest.raises(ConfigurationError, match="different paths"):
        webapp_of(
            settings_for(
                url, pai_webapp_url="https://b.example/app", pai_webhook_url="https://b.example/app"
            )
        )
    with pytest.raises(ConfigurationError, match="public https"):
        webapp_of(settings_for(url, pai_webapp_url="http://b.example/app"))
