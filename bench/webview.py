"""Web view benchmark: the registrations page for a partner with 200 registrations,
loaded in Debian's Chromium through Playwright, as a phone opens it from the chat.

Measures, N times each, from `page.goto` to the list on screen (the shell, Telegram's
script stubbed, /api/me, the fragment, the DOM): p50 and p95. Beside it, measured in
the same run: the same page for a partner with 3 registrations (the floor: what the
page costs with next to no data), and the fragment alone over HTTP (no browser).

    python -m bench.webview [--loads 40] [--registrations 200]

Goal (issue "Staff's files in chat and a web view"): p95 <= 300 ms at 200.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp
from playwright.async_api import async_playwright

from bench import percentile
from bot.domain.rules import load_rules
from tests.factories import italian_vat, link_salesperson, register
from tests.harness import running_bot
from tests.test_browser import PHONE, telegram_stub
from tests.test_conversations import load_programme
from tests.webview_helpers import Served, serving_web_view


async def page_loads(browser, view: Served, user_id: int, loads: int) -> list[float]:  # type: ignore[no-untyped-def]
    context = await browser.new_context(viewport=PHONE)
    stub = telegram_stub(view.init_data(user_id))

    async def telegram(route):  # type: ignore[no-untyped-def]
        await route.fulfill(status=200, content_type="text/javascript", body=stub)

    await context.route("https://telegram.org/js/telegram-web-app.js", telegram)
    page = await context.new_page()
    took = []
    for n in range(loads + 2):
        started = time.perf_counter()
        await page.goto(view.base + "/")
        await page.wait_for_selector("#count")
        if n >= 2:  # two warm-ups: the first load compiles the script
            took.append(time.perf_counter() - started)
    await context.close()
    return took


async def fragment_loads(view: Served, user_id: int, loads: int) -> list[float]:
    took = []
    async with aiohttp.ClientSession() as http:
        for _ in range(loads):
            started = time.perf_counter()
            async with http.get(view.base + "/page/registrations", headers=view.auth(user_id)) as r:
                await r.read()
            took.append(time.perf_counter() - started)
    return took


async def main(loads: int, count: int) -> None:
    rules = load_rules()
    folder = Path(tempfile.mkdtemp(prefix="pai-bench-web-"))
    try:
        async with running_bot(folder, pai_webapp_url="https://bot.example.com/app") as bot:
            await load_programme(bot, rules, folder)
            big = await link_salesperson(bot.sessions, "ACME", 11, now=bot.clock.now())
            small = await link_salesperson(bot.sessions, "BETA", 21, now=bot.clock.now())
            for n in range(count):
                await register(
                    bot.sessions,
                    rules,
                    big,
                    italian_vat(50_000 + n),
                    now=bot.clock.now(),
                    name=f"Cliente {n} S.r.l.",
                )
            for n in range(3):
                await register(
                    bot.sessions,
                    rules,
                    small,
                    italian_vat(90_000 + n),
                    now=bot.clock.now(),
                    name=f"Piccolo {n}",
                )
            async with serving_web_view(bot) as view, async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"]
                )
                full = await page_loads(browser, view, 11, loads)
                floor = await page_loads(browser, view, 21, loads)
                await browser.close()
                fragment = await fragment_loads(view, 11, loads)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ms = 1000
    print(
        f"page load, {count} registrations: p50 {percentile(full, 0.5) * ms:.0f} ms, "
        f"p95 {percentile(full, 0.95) * ms:.0f} ms   (goal p95 <= 300 ms)"
    )
    print(
        f"page load, 3 registrations (floor): p50 {percentile(floor, 0.5) * ms:.0f} ms, "
        f"p95 {percentile(floor, 0.95) * ms:.0f} ms"
    )
    print(f"ratio p95: {percentile(full, 0.95) / percentile(floor, 0.95):.2f}x")
    print(
        f"the fragment alone over HTTP, {count} registrations: "
        f"p50 {percentile(fragment, 0.5) * ms:.1f} ms, p95 {percentile(fragment, 0.95) * ms:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=40)
    parser.add_argument("--registrations", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.loads, args.registrations))
