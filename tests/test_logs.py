"""What operators read: one line per update and per scheduled action, as text or JSON,
with no token, VAT number, name or message text in it."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from telegram.error import BadRequest, NetworkError

from bot.app.application import COMMANDS, STAFF_COMMANDS
from bot.app.demo.telegram import Timeout
from bot.logs import (
    LOGGED_COMMANDS,
    QUIET_LOGGERS,
    configure_logging,
    note_update_failure,
    redact,
    timed_action,
)
from bot.telegram.updates import OnePerUser
from tests.factories import VATS
from tests.harness import TOKEN, running_bot
from tests.test_conversations import SOON, join, load_programme, registrations
from tests.test_updates import update_from

NEW_VAT = VATS[4]  # not among the purchases: the bot asks for the company's name
TYPED = {
    "vat": NEW_VAT,
    "vat digits": NEW_VAT[2:],
    "company": "Rossi Impianti Srl",
    "product": "Firewall Zyxel USG",
    "first name": "Ermenegilda",
}


class Captured:
    """The log as an operator's terminal would get it."""

    def __init__(self, log_format: str) -> None:
        self.stream = io.StringIO()
        self.handler = configure_logging(log_format, stream=self.stream)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines()]

    def updates(self) -> list[dict]:
        return [e for e in self.entries() if e["message"] == "update handled"]


@pytest.fixture
def capture() -> Iterator[Callable[[str], Captured]]:
    """Install the operators' log (text or JSON) for one test, then put things back."""
    root = logging.getLogger()
    level = root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    installed: list[Captured] = []

    def install(log_format: str) -> Captured:
        installed.append(Captured(log_format))
        return installed[-1]

    yield install
    for captured in installed:
        root.removeHandler(captured.handler)
    root.setLevel(level)
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)


async def test_each_update_handled_leaves_one_json_line_with_its_id_kind_timing_and_outcome(
    tmp_path, rules, capture
):
    log = capture("json")
    async with running_bot(tmp_path) as bot:
        await load_programme(bot, rules, tmp_path)
        chat = await join(bot, 11, language="en")
        await chat.send("/help")
        await chat.send("hello there")
        await chat.send(f"/new {NEW_VAT}")
        await chat.edit(chat.said, "hello again")
        await chat.send("/IT12345")  # not a command of the bot's: named as such
    lines = log.updates()
    assert [line["update_id"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert [line["kind"] for line in lines] == [
        "/start",
        "/help",
        "text",
        "/new",
        "edited",
        "/other",
    ]
    for line in lines:
        assert line["level"] == "INFO"
        assert line["logger"] == "bot.updates"
        assert line["outcome"] == "ok"
        assert isinstance(line["ms"], float) and 0 <= line["ms"] < 10_000
        moment = dt.datetime.fromisoformat(line["time"])
        assert moment.utcoffset() == dt.timedelta(0)
        assert set(line) <= {"time", "level", "logger", "message", "update_id", "kind"} | {
            "ms",
            "outcome",
            "wait_ms",
        }
    assert "IT12345" not in log.text


async def test_a_whole_registration_leaves_no_token_vat_name_or_text_in_the_log(
    tmp_path, rules, capture
):
    log = capture("json")
    async with running_bot(tmp_path) as bot:
        await load_programme(bot, rules, tmp_path)
        chat = await join(bot, 11, language="en")
        chat.user.first_name = TYPED["first name"]
        await chat.send(f"/new {NEW_VAT}")
        await chat.send(TYPED["company"])
        await chat.send("2500")
        await chat.send(TYPED["product"])
        await chat.send(SOON.isoformat())
        await chat.press(chat.last, "Confirm")
        [registration] = await registrations(bot)
        assert (registration.vat, registration.product) == (NEW_VAT, TYPED["product"])
        kinds = [line["kind"] for line in log.updates()]
    assert kinds == ["/start", "/new", "text", "text", "text", "text", "button"]
    for what, value in {**TYPED, "token": TOKEN, "token secret": TOKEN.split(":")[1]}.items():
        assert value not in log.text, f"the {what} is in the log"


async def test_the_text_log_has_the_same_fields_as_key_value_pairs(tmp_path, rules, capture):
    log = capture("text")
    async with running_bot(tmp_path) as bot:
        await load_programme(bot, rules, tmp_path)
        chat = await join(bot, 11, language="en")
        await chat.send("/help")
    [line] = [line for line in log.text.splitlines() if "kind=/help" in line]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO bot.updates: update handled "
        r"update_id=2 kind=/help ms=[\d.]+ outcome=ok( wait_ms=[\d.]+)?",
        line,
    ), line


async def test_an_update_whose_handler_fails_is_logged_with_the_errors_type(
    tmp_path, rules, capture
):
    log = capture("json")
    async with running_bot(tmp_path) as bot:

        async def note(update: object, context: Any) -> None:  # as the error handler does
            note_update_failure(context.error)

        bot.app.add_error_handler(note)
        chat = bot.chat(11, "en")
        bot.api.failures["sendMessage"] = [Timeout()]  # maybe delivered: not sent again
        await chat.send("/help")
    [line] = log.updates()
    assert (line["kind"], line["outcome"], line["level"]) == ("/help", "TimedOut", "WARNING")


async def test_a_failed_update_says_which_error_at_warning_level(capture):
    log = capture("json")
    processor = OnePerUser()

    async def fail_inside_ptb() -> None:  # PTB hands the error to the error handler
        note_update_failure(ValueError("Rossi's VAT IT00905811006 is wrong"))

    async def fail_outright() -> None:
        raise KeyError("no")

    await processor.process_update(update_from(5, 41), fail_inside_ptb())
    with pytest.raises(KeyError):
        await processor.process_update(update_from(5, 42), fail_outright())
    lines = log.updates()
    assert [(line["update_id"], line["outcome"], line["level"]) for line in lines] == [
        (41, "ValueError", "WARNING"),
        (42, "KeyError", "WARNING"),
    ]
    assert "IT00905811006" not in log.text


async def test_a_scheduled_action_leaves_one_line_with_its_timing_counts_and_outcome(capture):
    log = capture("json")
    async with timed_action("reminders") as action:
        await asyncio.sleep(0.02)
        action["sent"] = 3
    with pytest.raises(RuntimeError):
        async with timed_action("broadcast", broadcast_id=7, name="clashes with logging"):
            raise RuntimeError("the database went away")
    ok, failed = [e for e in log.entries() if e["message"] == "action done"]
    assert (ok["action"], ok["outcome"], ok["sent"], ok["level"]) == ("reminders", "ok", 3, "INFO")
    assert ok["ms"] >= 20
    assert (failed["action"], failed["outcome"], failed["broadcast_id"]) == (
        "broadcast",
        "RuntimeError",
        7,
    )
    assert failed["level"] == "WARNING"
    assert failed["name_"] == "clashes with logging"  # a field logging keeps for itself


def test_the_token_is_taken_out_of_any_record_and_its_traceback(capture):
    log = capture("json")
    url = f"https://api.telegram.org/bot{TOKEN}/sendMessage"
    logging.getLogger("httpx").warning("HTTP Request: POST %s", url)
    logging.getLogger("telegram.ext.Updater").info(f"polling {url}")
    try:
        raise RuntimeError(f"cannot open {url}")
    except RuntimeError:
        logging.getLogger("some.library").exception("failed")
    text = log.text
    assert TOKEN not in text
    assert TOKEN.split(":")[1] not in text
    assert text.count("<token>") == 3
    [*_, failure] = log.entries()
    assert failure["error"] == "RuntimeError"
    assert "Traceback" in failure["traceback"]
    assert "\n" not in log.text.splitlines()[-1]  # one line, the traceback inside it


def test_a_telegram_network_failure_is_one_line_without_a_traceback(capture):
    log = capture("text")
    for error in (NetworkError("httpx.ConnectError: All connection attempts failed"),):
        try:
            raise error
        except NetworkError:
            logging.getLogger("telegram.ext.Updater").exception("Exception while polling")
    try:
        raise BadRequest("Can't parse entities")
    except BadRequest:  # a refusal points at a bug: its traceback stays
        logging.getLogger("handlers").exception("update 5 failed")
    lines = log.text.splitlines()
    assert lines[0].endswith(
        "Exception while polling (NetworkError: httpx.ConnectError: All connection attempts failed)"
    )
    assert "Traceback" in lines[1] or "Traceback" in lines[2]
    assert log.text.count("Traceback") == 1


def test_configuring_twice_keeps_one_handler_and_quietens_httpx(capture):
    capture("text")
    log = capture("json")
    logging.getLogger("bot.test").info("once")
    assert [e["message"] for e in log.entries()] == ["once"]
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("apscheduler").level == logging.WARNING


def test_every_command_of_the_bot_is_named_in_the_log():
    assert {"start", *COMMANDS, *STAFF_COMMANDS} <= LOGGED_COMMANDS


def test_a_database_errors_detail_quoting_a_row_never_reaches_the_log():
    text = (
        "(sqlalchemy.dialects.postgresql.asyncpg.IntegrityError) <class 'asyncpg.exceptions."
        'UniqueViolationError\'>: duplicate key value violates unique constraint "uq"\n'
        "DETAIL:  Key (protection_key)=(IT12345670587) already exists.\n[SQL: INSERT ...]"
    )
    cleaned = redact(text)
    assert "IT12345670587" not in cleaned
    assert 'violates unique constraint "uq"' in cleaned and "[SQL: INSERT ...]" in cleaned
