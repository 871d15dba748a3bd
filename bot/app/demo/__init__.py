"""`pai-bot demo`: the real bot in a terminal, against the Bot API that ships in the package.

The same `Application` `pai-bot run` builds (handlers, services, database code), given
the fake Telegram of `bot.app.demo.telegram` in process instead of a network connection, a
SQLite database seeded with a small programme (`bot.demo.seed`), and a `ManualClock`
that `/time` moves. What the user types goes to the bot as a Telegram update from
the person they are speaking as; what the bot sends to that person is printed.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import re
import shutil
import socket
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from bot.app.application import build_application
from bot.app.demo.screen import Screen, Shown, buttons_of
from bot.app.demo.seed import (
    EXAMPLE_NAMES,
    EXAMPLE_NEW_VAT,
    EXAMPLE_PROTECTED_VAT,
    EXAMPLE_RECENT_VAT,
    EXAMPLE_RETURNING_VAT,
    PARTNERS,
    SALESPEOPLE,
    STAFF_ID,
    STAFF_NAME,
    seed_programme,
)
from bot.app.demo.telegram import FakeBotApi, FakeRequest, User
from bot.app.web import guarded_server, listener
from bot.app.webview import WebApp
from bot.config import Settings
from bot.domain.clock import ManualClock, SystemClock
from bot.domain.rules import next_allowed_moment, sending_allowed
from bot.i18n import Texts
from bot.jobs.leadership import LEADER, died_here
from bot.jobs.reminders import run_tick
from bot.logs import configure_logging
from bot.problems import SetupError
from bot.resources import Resources
from bot.storage.database import prepare_sqlite_file
from bot.storage.schema import check_schema
from bot.telegram.context import App
from bot.telegram.initdata import init_data_for
from bot.telegram.updates import checked_updates

__all__ = [
    "EXAMPLE_NEW_VAT",
    "EXAMPLE_PROTECTED_VAT",
    "EXAMPLE_RECENT_VAT",
    "EXAMPLE_RETURNING_VAT",
    "STAFF_ID",
    "main",
]

# The demo's web view: on this machine only, no https, no Telegram to open it.
DEMO_WEBAPP = WebApp(url="http://127.0.0.1/app", path="/app")

log = logging.getLogger(__name__)
# Shaped like a token from @BotFather, so the bot starts as `run` would; nobody checks it.
DEMO_TOKEN = "7000001:PAIdemoNeedsNoTelegramTokenAtAll_k3"
MESSAGE_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "sendDocument", "editMessageText", "editMessageReplyMarkup"}
)
TIME_STEP = re.compile(r"^\+?\s*(\d+)\s*([wdhm])$")
UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}
DEMO_PARTNER = "AURORA"
# Messages whose buttons keep their numbers: the ones a person still looks at.
RECENT = 5


@dataclass(frozen=True)
class Persona:
    """Someone the user can speak as: `/as staff`, `/as CODE`."""

    key: str
    user: User
    title: str


@dataclass(frozen=True)
class Popup:
    """A button's answer shown on the user's screen (answerCallbackQuery with a text)."""

    chat_id: int
    text: str
    alert: bool


Event = Shown | Popup


def personas(language: str) -> dict[str, Persona]:
    texts = Texts(language)
    found: dict[str, Persona] = {}
    companies = {partner.code: partner for partner in PARTNERS}
    for person in SALESPEOPLE:
        if person.partner_code in found:
            continue
        partner = companies[person.partner_code]
        found[partner.code] = Persona(
            partner.code,
            User(
                person.telegram_user_id,
                person.first_name,
                language,
                last_name=person.last_name,
                username=person.username,
            ),
            texts.plain(
                "demo_title_salesperson",
                name=f"{person.first_name} {person.last_name}",
                company=partner.company,
                code=partner.code,
                level=partner.level,
            ),
        )
    first, last = STAFF_NAME
    found["staff"] = Persona(
        "staff",
        User(STAFF_ID, first, language, last_name=last),
        texts.plain("demo_title_staff", name=f"{first} {last}"),
    )
    return found


def demo_settings(database: Path) -> Settings:
    """The demo's own settings: nothing from `.env` or the environment decides where it writes."""
    return Settings(
        _env_file=None,
        telegram_bot_token=DEMO_TOKEN,
        telegram_bot_username=None,
        telegram_api_base_url=None,
        database_url=f"sqlite:///{database}",
        pai_rules_file=None,
        pai_admin_ids=frozenset({STAFF_ID}),
        pai_webhook_url=None,
        pai_webhook_secret=None,
        pai_log_format="text",
        pai_vies=False,  # no network: the demo reaches nothing outside this terminal
    )


def demo_database_problem(database: Path) -> str | None:
    """Why `--db PATH` must not be used: a file that is not a database an earlier demo made.

    The demo writes freely (its clock jumps weeks ahead): it must never touch a real
    programme's database.
    """
    if not database.exists() or database.stat().st_size == 0:
        return None
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            row = connection.execute(
                "SELECT company FROM partner WHERE code = ?", (DEMO_PARTNER,)
            ).fetchone()
    except sqlite3.Error:
        row = None
    if row is None or row[0] != PARTNERS[0].company:
        return (
            f"{database} is not a database an earlier demo made: "
            "give --db a new file (the demo never writes to a real programme's database)"
        )
    if _demo_running_on(database):
        # It would wait for the other to quit (only one may poll), saying nothing.
        return (
            f"another demo is running on {database}: "
            "quit it first (/quit), or give --db another file"
        )
    return None


def _demo_running_on(database: Path) -> bool:
    """Whether a demo still alive holds the database's leader lease (a demo that quit
    handed it back; one that crashed is gone from this machine)."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            row = connection.execute(
                "SELECT holder FROM lease WHERE name = ?", (LEADER,)
            ).fetchone()
    except sqlite3.Error:  # a demo database from before leases
        return False
    return row is not None and not died_here(row[0])


class Demo:
    """The terminal's side of the chat: reads lines, sends them as the current persona."""

    def __init__(
        self,
        *,
        app: App,
        api: FakeBotApi,
        clock: ManualClock,
        screen: Screen,
        people: dict[str, Persona],
        folder: Path,
        interactive: bool,
    ) -> None:
        self.app, self.api, self.clock, self.screen = app, api, clock, screen
        self.people = people
        self.folder = folder
        self.interactive = interactive
        self.current = people[DEMO_PARTNER]
        self.texts = screen.texts
        # Where the web view listens (/web prints the link for whoever speaks now).
        self.web_base: str | None = None
        # The current persona's buttons on screen: number -> (message, button index).
        self.keys: dict[int, tuple[tuple[int, int], int]] = {}
        self.pending: list[Event] = []
        self.unread: dict[int, list[Event]] = {}
        self.saved: dict[tuple[int, int], Path] = {}
        self.idle = False

    @property
    def shared(self) -> Resources:
        return self.app.bot_data.resources

    # --- what the bot does ---------------------------------------------------------

    def on_call(
        self, method: str, params: dict[str, Any], code: int, body: dict[str, Any], _at: float
    ) -> None:
        """Keep what the bot put on someone's screen, as it was at that moment."""
        if code != 200:
            return
        if method in MESSAGE_METHODS:
            result = body["result"]
            key = (int(result["chat"]["id"]), int(result["message_id"]))
            stored = self.api.messages[key]
            markup = stored.get("reply_markup", {})
            kind = "photo" if "photo" in stored else "document" if "document" in stored else "text"
            self.pending.append(
                Shown(
                    chat_id=key[0],
                    message_id=key[1],
                    text_html=str(stored.get("html", "")),
                    keyboard=copy.deepcopy(markup.get("inline_keyboard", [])),
                    edited=method.startswith("edit"),
                    at=self.clock.now(),
                    file=self.api.files.get(key),
                    kind=kind,
                )
            )
        elif method == "answerCallbackQuery" and params.get("text"):
            user = self.api.pressed_by.get(str(params.get("callback_query_id")))
            if user is not None:
                alert = str(params.get("show_alert")).lower() == "true"
                self.pending.append(Popup(user, str(params["text"]), alert))

    def flush(self) -> bool:
        """Print what the bot sent the current persona; note what came for the others."""
        events, self.pending = self.pending, []
        others: dict[int, int] = {}
        chats = {persona.user.id: persona for persona in self.people.values()}
        for event in events:
            if event.chat_id == self.current.user.id:
                self.show(event)
            elif event.chat_id in chats:
                self.unread.setdefault(event.chat_id, []).append(event)
                others[event.chat_id] = others.get(event.chat_id, 0) + 1
        for chat, count in others.items():
            persona = chats[chat]
            self.screen.note(
                self.texts.plain(
                    f"demo_new_for_{'one' if count == 1 else 'other'}",
                    count=count,
                    name=persona.user.first_name,
                    persona=persona.key,
                )
            )
        return bool(events)

    def show(self, event: Event) -> None:
        if isinstance(event, Popup):
            self.screen.popup(event.text, alert=event.alert)
            return
        saved = None
        if event.file is not None:
            saved = self.save(event)
        numbers = self.number(event)
        self.screen.message(event, numbers, saved_to=str(saved) if saved else None)

    def number(self, shown: Shown) -> list[int]:
        """Numbers for a message's buttons that no other button on screen has: any of the
        last RECENT messages with buttons can be pressed, not only the newest (two
        /pending items, say). A message shown again (edited) gets its numbers anew."""
        key = (shown.chat_id, shown.message_id)
        self.keys = {n: where for n, where in self.keys.items() if where[0] != key}
        count = len(buttons_of(shown.keyboard))
        if not count:
            return []
        messages = list(dict.fromkeys(where[0] for where in self.keys.values()))
        for gone in messages[: max(0, len(messages) - (RECENT - 1))]:
            self.keys = {n: where for n, where in self.keys.items() if where[0] != gone}
        start = max(self.keys, default=0) + 1
        numbers = list(range(start, start + count))
        self.keys.update({n: (key, index) for index, n in enumerate(numbers)})
        return numbers

    def save(self, shown: Shown) -> Path:
        """A photo or document the bot sent, written to the demo's folder."""
        key = (shown.chat_id, shown.message_id)
        if key not in self.saved:
            assert shown.file is not None
            name, content = shown.file
            path = self.folder / f"{shown.message_id}-{Path(name).name}"
            path.write_bytes(content)
            self.saved[key] = path
        return self.saved[key]

    async def settle(self) -> None:
        """Hand the queued updates to the bot and wait until it has answered them all."""
        while self.api.pending:
            for update in checked_updates([self.api.take_update()], self.app.bot):
                await self.app.update_queue.put(update)
        await self.app.update_queue.join()
        await self.shared.settle()

    # --- what the user does ----------------------------------------------------------

    async def converse(self, lines: asyncio.Queue[str | None]) -> None:
        self.banner()
        await self.send("/start")
        printer = asyncio.get_running_loop().create_task(self.print_meanwhile())
        try:
            while True:
                self.prompt()
                self.idle = True
                line = await lines.get()
                self.idle = False
                if line is None:
                    if self.interactive:
                        self.screen.write()
                    break
                line = line.strip()
                if not line:
                    continue
                if not self.interactive:
                    self.screen.write(f"{self.current.user.first_name} > {line}")
                if not await self.take(line):
                    break
        finally:
            printer.cancel()
            await self.settle()
            self.flush()

    def prompt(self) -> None:
        if self.interactive:
            self.screen.out.write(f"{self.current.user.first_name} > ")
            self.screen.out.flush()

    async def print_meanwhile(self) -> None:
        """What the bot sends by itself while the user types (a broadcast's progress)."""
        while True:
            await asyncio.sleep(0.3)
            if self.idle and self.pending:
                if self.interactive:
                    self.screen.out.write("\r")
                if self.flush():
                    self.prompt()

    async def take(self, line: str) -> bool:
        """Act on one line; False to end the demo."""
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word in {"/quit", "/exit"}:
            return False
        if word == "/as":
            self.switch(rest)
        elif word == "/time":
            await self.move_clock(rest)
        elif word == "/demo":
            self.banner()
        elif word == "/web":
            self.web_link()
        elif line.isdigit() and self.press(int(line)):
            await self.settle()
        else:
            # A leading backslash sends the rest as it is: a number while buttons are shown.
            await self.send(line[1:] if line.startswith("\\") else line)
            return True
        self.flush()
        return True

    def web_link(self) -> None:
        """The web view as the current persona opens it, in a desktop browser: signed in
        by demo init data in the address's fragment, where Telegram itself puts it."""
        if self.web_base is None:
            return
        user = self.current.user
        signed = init_data_for(
            user.id,
            bot_token=DEMO_TOKEN,
            at=self.clock.now(),
            language=self.texts.language,
            name=user.first_name,
        )
        url = f"{self.web_base}/#tgWebAppData={quote(signed, safe='')}"
        self.screen.note(self.texts.plain("demo_web", title=self.current.title, url=url))

    async def send(self, text: str) -> None:
        self.api.user_sends(self.current.user, text)
        await self.settle()
        self.flush()

    def press(self, number: int) -> bool:
        """Press the button shown with `number`; False when no button on screen has it."""
        where = self.keys.get(number)
        if where is None:
            return False
        key, index = where
        message = self.api.messages.get(key)
        buttons = buttons_of((message or {}).get("reply_markup", {}).get("inline_keyboard", []))
        if message is None or index >= len(buttons):
            self.screen.note(self.texts.plain("demo_button_gone", number=number))
            return True
        button = buttons[index]
        if button.get("url"):
            self.screen.note(self.texts.plain("demo_opens", number=number, url=button["url"]))
            return True
        self.screen.note(
            self.texts.plain("demo_pressed", number=number, label=button.get("text", ""))
        )
        self.api.user_presses(self.current.user, message, button.get("callback_data"))
        return True

    def switch(self, who: str) -> None:
        key = "staff" if who.lower() == "staff" else who.upper()
        persona = self.people.get(key)
        if persona is None:
            choices = ", ".join(f"/as {k}" for k in self.people)
            self.screen.note(self.texts.plain("demo_speak_as", choices=choices))
            return
        self.current = persona
        self.keys = {}  # another chat: its buttons are numbered as they are shown
        self.screen.heading(self.texts.plain("demo_you_are", title=persona.title))
        for event in self.unread.pop(persona.user.id, []):
            self.show(event)

    async def move_clock(self, step: str) -> None:
        """`/time +3w`: the clock goes ahead and the reminders' tick runs at the new moment."""
        matched = TIME_STEP.match(step)
        if matched is None:
            self.screen.note(self.texts.plain("demo_time_usage"))
            return
        amount, unit = int(matched.group(1)), matched.group(2)
        self.clock.advance(dt.timedelta(**{UNITS[unit]: amount}))
        rules = self.shared.rules
        moment = self.clock.now()
        if not sending_allowed(rules, moment):
            allowed = next_allowed_moment(rules, moment)
            weekdays = (
                self.texts.plain("demo_weekdays_only") if rules.reminders.weekdays_only else ""
            )
            self.screen.note(
                self.texts.plain(
                    "demo_quiet",
                    moment=self.when(moment),
                    quiet=rules.reminders.quiet_hours(),
                    weekdays=weekdays,
                    allowed=self.when(allowed),
                )
            )
            self.clock.set(allowed)
        report = await run_tick(self.app)
        await self.settle()
        ended = self.texts.plain("demo_ended", count=report.expired) if report.expired else ""
        self.screen.note(
            self.texts.plain(
                "demo_tick", moment=self.when(self.clock.now()), sent=report.sent, ended=ended
            )
        )

    def when(self, moment: dt.datetime) -> str:
        return f"{self.screen.when(moment)} ({self.shared.rules.timezone.key})"

    def banner(self) -> None:
        texts = self.texts
        self.screen.write(
            texts.plain(
                "demo_banner",
                title=self.current.title,
                new_vat=EXAMPLE_NEW_VAT,
                returning_vat=EXAMPLE_RETURNING_VAT,
                returning_name=EXAMPLE_NAMES[EXAMPLE_RETURNING_VAT],
                recent_vat=EXAMPLE_RECENT_VAT,
                recent_name=EXAMPLE_NAMES[EXAMPLE_RECENT_VAT],
                protected_vat=EXAMPLE_PROTECTED_VAT,
                protected_name=EXAMPLE_NAMES[EXAMPLE_PROTECTED_VAT],
            )
        )
        self.screen.note(texts.plain("demo_commands"))
        self.screen.note(texts.plain("demo_commands_more"))
        self.screen.note(
            texts.plain("demo_clock", when=self.when(self.clock.now()), folder=self.folder)
        )


@contextmanager
def demo_web_view(app: App) -> Iterator[str | None]:
    """The web view on a free port of 127.0.0.1, for a desktop browser on this machine;
    None where this machine has no loopback to listen on (a namespace without network)."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
    except OSError:
        sock.close()
        yield None
        return
    sock.setblocking(False)
    server = guarded_server(lambda guard: listener(app, None, "", guard, DEMO_WEBAPP))
    server.add_sockets([sock])
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}{DEMO_WEBAPP.path}"
    finally:
        server.stop()


def _read_lines(stream: TextIO, put: Callable[[str | None], None]) -> None:
    """In a thread of its own (a daemon: Ctrl-C never waits for it): each line, then None."""
    try:
        for line in iter(stream.readline, ""):
            put(line)
        put(None)
    except (RuntimeError, ValueError, OSError):  # the loop closed, or the stream did
        return


async def run_demo(
    *,
    database: Path,
    fresh: bool,
    folder: Path,
    language: str,
    stdin: TextIO,
    screen: Screen,
    interactive: bool,
) -> None:
    settings = demo_settings(database)
    if not fresh:
        await check_schema(settings.database_url, settings.timeouts)
    start = SystemClock().now().replace(second=0, microsecond=0)
    clock = ManualClock(start)
    people = personas(language)
    api = FakeBotApi(
        # Everyone in the demo has opened the bot once; any other chat is "not found".
        known_chats={persona.user.id for persona in people.values()}
        | {person.telegram_user_id for person in SALESPEOPLE},
        clock=lambda: clock.now().timestamp(),
        username="pai_demo_bot",
        # Past every update a demo on this database had before: seconds since the epoch.
        first_update_id=int(SystemClock().now().timestamp()),
    )
    app = build_application(
        settings,
        request=FakeRequest(api),
        updates_request=FakeRequest(api),
        clock=clock,
        schedule_reminders=False,  # the demo's clock stands still: `/time` runs the tick
    )
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(
        target=_read_lines,
        args=(stdin, lambda line: loop.call_soon_threadsafe(lines.put_nowait, line)),
        daemon=True,
        name="demo input",
    ).start()
    await app.initialize()
    try:
        assert app.post_init is not None
        await app.post_init(app)
        shared = app.bot_data.resources
        screen.timezone = shared.rules.timezone
        if fresh:
            screen.note(screen.texts.plain("demo_setting_up"))
            await seed_programme(
                sessions=shared.sessions,
                rules=shared.rules,
                folder=folder,
                now=start,
                language=language,
            )
        await app.start()
        try:
            demo = Demo(
                app=app,
                api=api,
                clock=clock,
                screen=screen,
                people=people,
                folder=folder,
                interactive=interactive,
            )
            api.after_call = demo.on_call
            with demo_web_view(app) as web_base:
                demo.web_base = web_base
                demo.web_link()
                await demo.converse(lines)
        finally:
            await app.stop()
            assert app.post_stop is not None
            await app.post_stop(app)
    finally:
        await app.shutdown()
        assert app.post_shutdown is not None
        await app.post_shutdown(app)


def main(
    *,
    database: Path | None,
    language: str = "en",
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Run the demo until /quit or the end of input; the database is removed unless kept."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    keep = database is not None
    if database is None:
        folder = Path(tempfile.mkdtemp(prefix="pai-demo-"))
        database = folder / "demo.db"
    else:
        database = database.expanduser().resolve()
        problem = demo_database_problem(database)
        if problem is not None:
            raise SetupError(problem)
        folder = database.parent / f"{database.stem}-files"
        folder.mkdir(parents=True, exist_ok=True)
    fresh = not database.exists() or database.stat().st_size == 0
    prepare_sqlite_file(demo_settings(database).database_url, must_exist=False)
    styled = stdout.isatty()
    screen = Screen(stdout, styled=styled, timezone=dt.UTC, texts=Texts(language))
    log_file = (folder / "demo.log").open("a", encoding="utf-8")
    # The bot's log lines go to a file: the terminal is the chat.
    configure_logging("text", stream=log_file)
    try:
        asyncio.run(
            run_demo(
                database=database,
                fresh=fresh,
                folder=folder,
                language=language,
                stdin=stdin,
                screen=screen,
                interactive=stdin.isatty(),
            )
        )
    except KeyboardInterrupt:
        screen.write()
    finally:
        configure_logging("text")
        log_file.close()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    if keep:
        screen.note(screen.texts.plain("demo_bye_kept", database=database, folder=folder))
    else:
        screen.note(screen.texts.plain("demo_bye_removed"))
    return 0
