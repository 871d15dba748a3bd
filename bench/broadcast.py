"""Broadcast benchmark: 5,000 partners against a Bot API that allows 200 messages a second,
while 20 salespeople register deals.

The fake Bot API (the project's own, bot/app/demo/telegram.py) answers 429 past 200
messages in any second. The bot is configured to match (PAI_TELEGRAM_RATE=200).
Prints the achieved broadcast rate as a share of the limit, the 429s received,
duplicates, and the salespeople's time from message to answer: p50 and p95,
with the broadcast running and without (the baseline, measured in the same run).

    python -m bench.broadcast [--partners 5000] [--limit 200] [--salespeople 20]
    python -m bench.broadcast --partners 90000 --limit 30 --paid 1000   # paid broadcasts
    ... --database postgresql://postgres@127.0.0.1:5432/pai_bench_broadcast

The database is a SQLite file in a temporary folder unless --database names a
PostgreSQL one, which is dropped and made again.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from bench import percentile
from bench.e2e import fresh_database
from bench.similar import plain_url
from bot.app.application import build_application
from bot.app.demo.telegram import FakeBotApi, FakeRequest, User
from bot.config import Settings
from bot.domain.clock import ManualClock
from bot.services.broadcasts import ALL, Audience, create_broadcast, report_of
from bot.storage.database import sqlite_file
from bot.telegram.context import App
from bot.telegram.updates import checked_updates
from tests.factories import italian_vat
from tests.harness import TOKEN, button_data

NOW = dt.datetime(2026, 12, 15, 9, 0, tzinfo=dt.UTC)
TEXT = "Programme update: the Gold incentive rises in March"
SALES_BASE = 9_000_000


async def seed(url: str, partners: int) -> None:
    """Partners with one salesperson each; the last `salespeople` ones register deals."""
    path = sqlite_file(url)
    if path is not None:
        seed_sqlite(path, partners)
        return
    stamp = NOW - dt.timedelta(days=100)
    connection = await asyncpg.connect(plain_url(url))
    try:
        await connection.copy_records_to_table(
            "partner",
            records=(
                (p, f"P{p}", f"Partner {p}", "gold", stamp, stamp) for p in range(1, partners + 1)
            ),
            columns=["id", "code", "company", "level", "created_at", "updated_at"],
        )
        await connection.copy_records_to_table(
            "salesperson",
            records=((p, SALES_BASE + p, p, True, stamp, "en") for p in range(1, partners + 1)),
            columns=[
                "id",
                "telegram_user_id",
                "partner_id",
                "reminders_enabled",
                "linked_at",
                "telegram_language",
            ],
        )
        for table in ("partner", "salesperson"):  # past the ids given here
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {partners})"
            )
    finally:
        await connection.close()


def seed_sqlite(path: Path, partners: int) -> None:
    db = sqlite3.connect(path)
    stamp = (NOW - dt.timedelta(days=100)).isoformat()
    db.executemany(
        "INSERT INTO partner (id, code, company, level, created_at, updated_at)"
        " VALUES (?, ?, ?, 'gold', ?, ?)",
        ((p, f"P{p}", f"Partner {p}", stamp, stamp) for p in range(1, partners + 1)),
    )
    db.executemany(
        "INSERT INTO salesperson (id, telegram_user_id, partner_id, reminders_enabled,"
        " linked_at, telegram_language) VALUES (?, ?, ?, 1, ?, 'en')",
        ((p, SALES_BASE + p, p, stamp) for p in range(1, partners + 1)),
    )
    db.commit()
    db.close()


async def send(app: App, update: dict[str, Any]) -> None:
    for checked in checked_updates([update], app.bot):
        await app.update_queue.put(checked)


Done = Callable[[], bool]


class NotifyingRequest(FakeRequest):
    """The fake's network layer, waking whoever waits for a message to a chat."""

    def __init__(self, api: FakeBotApi) -> None:
        super().__init__(api)
        self.arrived: dict[int, asyncio.Event] = {}

    async def do_request(
        self, url: str, method: str, request_data: Any = None, *args: Any, **kwargs: Any
    ) -> tuple[int, bytes]:
        answer = await super().do_request(url, method, request_data, *args, **kwargs)
        chat = request_data.parameters.get("chat_id") if request_data else None
        if chat is not None:
            self.arrived.setdefault(int(chat), asyncio.Event()).set()
        return answer


async def answered(api: FakeBotApi, request: NotifyingRequest, chat: int, done: Done) -> None:
    """Wait until `done()`, woken by each call of the bot to `chat` (a message, an edit)."""
    arrived = request.arrived.setdefault(chat, asyncio.Event())
    async with asyncio.timeout(60):
        while not done():
            arrived.clear()
            if done():
                return
            await arrived.wait()


async def sent_by_the_bot(app: App, broadcast_id: int) -> None:
    """Until the bot has sent the broadcast: the one sender it starts itself when the
    broadcast is created (a second one here would double the senders measured)."""
    state = app.bot_data
    async with asyncio.timeout(60):
        while broadcast_id not in state.sending:  # noqa: ASYNC110 (as below)
            await asyncio.sleep(0.01)
    while broadcast_id in state.sending:  # noqa: ASYNC110 (a set, no event to wait on)
        await asyncio.sleep(0.05)


async def register_deals(
    app: App,
    api: FakeBotApi,
    request: NotifyingRequest,
    user_id: int,
    first_customer: int,
    deals: int,
) -> list[float]:
    """One salesperson registering `deals` deals; the seconds each message waited."""
    user = User(id=user_id, language_code="en")
    waits: list[float] = []

    async def say(text: str) -> dict[str, Any]:
        """Send `text`; wait for the one message a step gets."""
        expected = len(api.sent_to(user_id)) + 1
        started = time.perf_counter()
        update = api.user_sends(user, text)
        api.pending.remove(update)  # handed to the bot directly, as polling would
        await send(app, update)
        await answered(api, request, user_id, lambda: len(api.sent_to(user_id)) >= expected)
        waits.append(time.perf_counter() - started)
        return api.sent_to(user_id)[-1]

    for deal in range(deals):
        vat = italian_vat(first_customer + deal)
        await say(f"/new {vat}")  # the verdict, carrying the first question
        await say("Rossi Srl")
        await say("12500")
        await say("Mouse")
        summary = await say("2027-01-31")
        started = time.perf_counter()
        update = api.user_presses(user, summary, button_data(summary, "Confirm"))
        api.pending.remove(update)
        await send(app, update)
        # The summary itself becomes the confirmation.
        await answered(api, request, user_id, lambda s=summary: "Registered" in s["text"])
        waits.append(time.perf_counter() - started)
    return waits


async def run(
    partners: int,
    limit: float,
    salespeople: int,
    deals: int,
    paid: float | None,
    database: str | None,
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = database or f"sqlite:///{Path(folder) / 'broadcast.db'}"
        if database is not None:
            await fresh_database(url)
        api = FakeBotApi(rate_limit=limit, paid_rate_limit=paid)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            telegram_bot_token=TOKEN,
            database_url=url,
            pai_telegram_rate=limit,
            pai_broadcast_rate=paid or limit,
            pai_paid_broadcast=paid is not None,
        )
        request = NotifyingRequest(api)
        app = build_application(
            settings,
            request=request,
            updates_request=FakeRequest(api),
            clock=ManualClock(NOW),
            schedule_reminders=False,
        )
        await app.initialize()
        assert app.post_init is not None
        await app.post_init(app)
        await app.start()
        await seed(url, partners + salespeople)
        shared = app.bot_data.resources
        people = [SALES_BASE + partners + 1 + i for i in range(salespeople)]

        async def everyone_registers(first_customer: int) -> list[float]:
            """All salespeople at once, each with customers of their own."""
            runs = await asyncio.gather(
                *(
                    register_deals(app, api, request, user, first_customer + i * deals, deals)
                    for i, user in enumerate(people)
                )
            )
            return [wait for waits in runs for wait in waits]

        baseline = await everyone_registers(0)

        async with shared.sessions() as session:
            broadcast_id, recipients = await create_broadcast(
                session=session,
                staff_id=1,
                text_html=TEXT,
                audience=Audience(ALL),
                today=NOW.date(),
                now=NOW,
            )
        too_many_before = api.too_many
        started = time.perf_counter()
        sending = asyncio.create_task(sent_by_the_bot(app, broadcast_id))
        await asyncio.sleep(1.0)  # the broadcast is under way when the salespeople start
        during = await everyone_registers(100_000)
        await sending
        elapsed = time.perf_counter() - started
        async with shared.sessions() as session:
            report = await report_of(session=session, broadcast_id=broadcast_id)
        received: dict[int, int] = {}
        for (chat, _), message in api.messages.items():
            if TEXT in message["text"]:
                received[chat] = received.get(chat, 0) + 1
        copies = [received.get(SALES_BASE + p, 0) for p in range(1, partners + salespeople + 1)]
        await app.stop()
        assert app.post_shutdown is not None
        await app.post_shutdown(app)
        await app.shutdown()

    rate = recipients / elapsed
    allowed = paid or limit
    print(f"database: {make_url(url).get_backend_name()}")
    print(
        f"{'paid ' if paid else ''}broadcast to {recipients:,} salespeople in {elapsed:.1f} s: "
        f"{rate:.0f} messages/s, {rate / allowed:.0%} of the {allowed:.0f}/s limit (goal >= 90%)"
    )
    print(
        f"429s received: {api.too_many - too_many_before} (goal 0); "
        f"duplicates: {sum(1 for c in copies if c > 1)} (must be 0); "
        f"delivered {report.delivered}, failed {report.failed}, unconfirmed "
        f"{report.unconfirmed}, waiting {report.waiting}, missing "
        f"{sum(1 for c in copies if c == 0)}"
    )

    def ms(samples: list[float], fraction: float) -> str:
        return f"{percentile(samples, fraction) * 1000:.0f} ms"

    print(
        f"{salespeople} salespeople registering {deals} deal(s) each, message to answer: "
        f"p50 {ms(during, 0.5)}, p95 {ms(during, 0.95)} during the broadcast "
        f"(goal p95 <= 1 s); without it p50 {ms(baseline, 0.5)}, p95 {ms(baseline, 0.95)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--partners", type=int, default=5_000)
    parser.add_argument("--limit", type=float, default=200)
    parser.add_argument("--salespeople", type=int, default=20)
    parser.add_argument("--deals", type=int, default=2)
    parser.add_argument(
        "--paid",
        type=float,
        metavar="RATE",
        help="paid broadcasts (PAI_PAID_BROADCAST=1) at RATE a second, which the fake allows "
        "beside --limit for everything else (issue 22: --partners 90000 --limit 30 --paid 1000)",
    )
    parser.add_argument(
        "--database", metavar="URL", help="a PostgreSQL database to drop and use (else SQLite)"
    )
    args = parser.parse_args()
    asyncio.run(
        run(args.partners, args.limit, args.salespeople, args.deals, args.paid, args.database)
    )


if __name__ == "__main__":
    main()
