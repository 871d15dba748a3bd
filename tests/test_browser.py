"""The web view in a real browser: Debian's Chromium driven by Playwright (pointed at
/usr/bin/chromium; nothing downloaded), Telegram's script stubbed with init data the
test signs. Pages render with the right data, filters and the calculator work, Approve
decides and the chat sees it, Italian for Italians, dark for a dark theme, 360 px wide,
and nothing is asked of any host but ours and Telegram's.

Screenshots at 390×844 are saved in the test's folder, and in $PAI_SCREENSHOTS when set
(the README's come from there: PAI_SCREENSHOTS=docs/screenshots)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import expect

from bot.domain.lifecycle import Status
from tests.factories import VATS, link_salesperson, register, report
from tests.harness import running_bot
from tests.test_conversations import load_programme
from tests.webview_helpers import Served, serving_web_view

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]
STAFF = 900
PHONE = {"width": 390, "height": 844}
NAMES = ["Bianchi SpA", "Rossi Impianti S.r.l.", "Verdi Costruzioni"]
STUB_METHODS = "{ready() {}, expand() {}, onEvent() {}}"


@pytest.fixture
async def served(tmp_path, rules) -> AsyncIterator[Served]:
    async with running_bot(
        tmp_path, pai_admin_ids=frozenset({STAFF}), pai_webapp_url="https://bot.example.com/app"
    ) as bot:
        await load_programme(bot, rules, tmp_path)
        account = await link_salesperson(bot.sessions, "ACME", 11, now=bot.clock.now())
        for n, name in enumerate(NAMES):
            made = await register(
                bot.sessions, rules, account, VATS[n + 3], now=bot.clock.now(), name=name
            )
            if n == 0:
                await report(bot.sessions, rules, account, made, Status.WON, now=bot.clock.now())
        await bot.deliver()
        async with serving_web_view(bot) as view:
            yield view


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        await launched.close()


def telegram_stub(init_data: str, scheme: str = "light") -> str:
    """What Telegram's web-app script gives a Mini App, as far as ours uses it."""
    theme = (
        {"bg_color": "#17212b", "text_color": "#f5f5f5", "button_color": "#5288c1"}
        if scheme == "dark"
        else {"bg_color": "#ffffff", "text_color": "#000000", "button_color": "#2481cc"}
    )
    given = json.dumps({"initData": init_data, "colorScheme": scheme, "themeParams": theme})
    return f"window.Telegram = {{WebApp: Object.assign({given}, {STUB_METHODS})}};"


async def open_as(
    browser,
    view: Served,
    user_id: int,
    language: str = "en",
    scheme: str = "light",
    hosts: list[str] | None = None,
):  # type: ignore[no-untyped-def]
    context = await browser.new_context(viewport=PHONE, locale=language)
    stub = telegram_stub(view.init_data(user_id, language), scheme)

    async def telegram(route):  # type: ignore[no-untyped-def]
        await route.fulfill(status=200, content_type="text/javascript", body=stub)

    await context.route("https://telegram.org/js/telegram-web-app.js", telegram)
    if hosts is not None:
        context.on("request", lambda request: hosts.append(urlsplit(request.url).netloc))
    page = await context.new_page()
    page.set_default_timeout(10_000)
    await page.goto(view.base + "/")
    return page


async def shot(page, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    await page.screenshot(path=str(path), full_page=False)
    keep_copy(path)


def keep_copy(path: Path) -> None:
    wanted = os.environ.get("PAI_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(wanted) / path.name)


async def test_a_partner_browses_filters_searches_and_opens_a_registration(
    served, browser, tmp_path
):
    hosts: list[str] = []
    page = await open_as(browser, served, 11, hosts=hosts)
    await page.wait_for_selector("#count")
    assert await page.inner_text("#count") == "3 of 3"
    for name in NAMES:
        assert name in await page.inner_text("#view")
    await shot(page, tmp_path, "partner-registrations.png")
    await page.select_option("#status", "won")
    await expect(page.locator("#count")).to_have_text("1 of 1")
    assert "Bianchi SpA" in await page.inner_text("#view")
    await page.select_option("#status", "")
    await expect(page.locator("#count")).to_have_text("3 of 3")
    await page.fill("#q", "rossi")
    await expect(page.locator("#count")).to_have_text("1 of 1")
    await page.click("button.row")
    await page.wait_for_selector("ol.history")
    assert "Rossi Impianti S.r.l." in await page.inner_text("h2")
    assert "open" in await page.inner_text("ol.history")
    # Nothing was asked of any host but ours and Telegram's (its script, stubbed here).
    ours = urlsplit(served.base).netloc
    assert set(hosts) <= {ours, "telegram.org"}


async def test_the_what_if_calculator_follows_the_level_and_count(served, browser, tmp_path):
    page = await open_as(browser, served, 11)
    await page.wait_for_selector("nav button[data-tab='loyalty']")
    await page.click("nav button[data-tab='loyalty']")
    await page.wait_for_selector("#what-if")
    gold = await page.inner_text("#what-if")
    await page.select_option("select[name='level']", "certified")
    await expect(page.locator("#what-if")).not_to_have_text(gold)
    certified = await page.inner_text("#what-if")
    assert certified.startswith("A new customer would earn €") and certified != gold
    assert "3 registrations in the loyalty window" in await page.inner_text("#view")
    await shot(page, tmp_path, "partner-loyalty.png")


async def test_approve_in_the_page_decides_and_the_staff_chat_copy_says_so(
    served, browser, tmp_path
):
    bot = served.bot
    [notice] = [m for m in bot.api.sent_to(STAFF) if "PAI-" in m["text"]]
    page = await open_as(browser, served, STAFF, scheme="dark")
    await page.wait_for_selector("li.item button.yes")
    await expect(page.locator("html")).to_have_class(re.compile("dark"))
    await shot(page, tmp_path, "staff-pending-dark.png")
    await page.click("li.item button.yes")
    await expect(page.locator(".said")).to_contain_text("done")
    await bot.resources.settle()
    assert "Approved by" in notice["text"]
    await page.click("nav button[data-tab='numbers']")
    await expect(page.locator("#chart")).to_have_attribute("src", re.compile("^blob:"))


async def test_an_italian_user_sees_italian_and_360_px_is_enough(served, browser, tmp_path):
    page = await open_as(browser, served, 11, language="it")
    await page.set_viewport_size({"width": 360, "height": 740})
    await page.wait_for_selector("#count")
    assert await page.inner_text("nav button[data-tab='registrations']") == "Registrazioni"
    assert "3 su 3" in await page.inner_text("#count")
    # Nothing wider than the screen: no sideways scrolling on a small phone.
    wide = await page.locator("html").evaluate("html => html.scrollWidth")
    assert wide <= 360
    await shot(page, tmp_path, "partner-italian-360.png")
