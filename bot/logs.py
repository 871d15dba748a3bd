"""Logs for operators: one line per update handled and per scheduled action, as text or JSON.

What a line may carry is decided here: ids, kinds, timings and outcomes. The bot token
is taken out of every record whatever logged it (PTB and httpx put request URLs, which
carry it, in their messages); VAT numbers, names and message texts are never given to
a line in the first place. Telegram user ids are left out too: the update id is enough
to follow one update, and a user id is personal data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:  # the command line logs too, and never loads python-telegram-bot
    from telegram import Message

# Lines of their own, so that an operator can pick them out by logger.
update_log = logging.getLogger("bot.updates")
action_log = logging.getLogger("bot.actions")
# httpx logs every request URL (with the token in it) at INFO; APScheduler a line per
# run; Alembic names its dialect at every start. Tornado's listener logs a line for
# each malformed, cut off or reset request, which anyone can send by the thousand: its
# errors still show.
QUIET_LOGGERS = {
    name: logging.WARNING for name in ("httpx", "apscheduler", "alembic", "matplotlib", "PIL")
} | {"tornado.general": logging.ERROR, "tornado.access": logging.ERROR}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A bot token as @BotFather gives it: the bot's id, a colon, 35 characters of secret.
_TOKEN = re.compile(r"\d{3,}:[A-Za-z0-9_-]{30,}")
REDACTED = "<token>"
# PostgreSQL's DETAIL line of an error quotes the values of the row at fault.
_ROW_DETAIL = re.compile(r"^(\s*DETAIL:\s*).*$", re.MULTILINE)
# Commands named in the log: the bot's own. Anything else a user types after a slash
# (a name, a VAT number) is logged as "/other".
LOGGED_COMMANDS = frozenset(
    {
        "start",
        "new",
        "check",
        "status",
        "settings",
        "help",
        "cancel",
        "pending",
        "find",
        "stats",
        "broadcast",
        "broadcasts",
        "export",
        "payouts",
        "privacy",
    }
)
# What every LogRecord has; any other attribute was given with `extra=` and is a field.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_MARK = "_pai_handler"  # on the handler configure_logging installs, to replace it next time


def redact(text: str) -> str:
    """The text with any bot token in it replaced, and the rows PostgreSQL quotes in an
    error's DETAIL ("Key (vat)=(IT…) already exists", "Failing row contains (…)")."""
    return _ROW_DETAIL.sub(r"\1<row hidden>", _TOKEN.sub(REDACTED, text))


def is_network_failure(error: BaseException) -> bool:
    """Telegram could not be reached or answered badly: worth a line, never a traceback.

    A refusal (400, PTB makes it a NetworkError too) points at a bug: it keeps its traceback.
    """
    from telegram.error import BadRequest, NetworkError

    return isinstance(error, NetworkError) and not isinstance(error, BadRequest)


def describe_failure(error: BaseException) -> str:
    """The error's type and PTB's words for it, short (PTB's words carry no user data)."""
    words = str(error).strip()
    return f"{type(error).__name__}: {words[:200]}" if words else type(error).__name__


class RedactSecrets(logging.Filter):
    """Takes the token out of every record, and the traceback out of a Telegram network failure.

    Installed on the handler, so it sees the records of every logger (PTB's, httpx's,
    ours). A network failure's traceback says nothing the one-line description does
    not, and an outage would write one per failed call.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: logging's own bug report
            message = f"{record.msg} {record.args}"
        if error is not None and is_network_failure(error):
            message = f"{message} ({describe_failure(error)})"
            record.exc_info = None
            record.exc_text = None
        elif record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = redact(message), None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields given to the record with `extra=`."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES}


class TextFormatter(logging.Formatter):
    """The usual line, its fields after the message as key=value."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = fields_of(record)
        if not fields:
            return line
        return line + " " + " ".join(f"{key}={value}" for key, value in fields.items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, the fields, the error."""

    def format(self, record: logging.LogRecord) -> str:
        moment = dt.datetime.fromtimestamp(record.created, dt.UTC)
        entry: dict[str, Any] = {
            **fields_of(record),
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = type(record.exc_info[1]).__name__
            entry["traceback"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(
    log_format: Literal["text", "json"] | str,
    *,
    stream: TextIO | None = None,
    level: int = logging.INFO,
) -> logging.Handler:
    """Send every log line to `stream` (stderr) as text or JSON, with secrets taken out.

    Call it instead of logging.basicConfig; called again, it replaces its own handler
    and leaves any other (a test's capture) alone.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactSecrets())
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(quiet)
    return handler


# --- one line per update ---------------------------------------------------------


@dataclass
class _Outcome:
    error: str | None = None


_current_update: ContextVar[_Outcome | None] = ContextVar("current_update", default=None)


def note_update_outcome(outcome: str) -> None:
    """Say how the update being handled ended, other than "ok" (a "duplicate", say)."""
    current = _current_update.get()
    if current is not None:
        current.error = outcome


def note_update_failure(error: BaseException | None) -> None:
    """Mark the update being handled as failed with `error`, for its log line.

    PTB hands a handler's exception to the error handlers and never lets it reach the
    code around the update: the error handler calls this.
    """
    outcome = _current_update.get()
    if outcome is not None:
        outcome.error = type(error).__name__ if error is not None else "error"


def update_kind(update: object) -> str:
    """What the update is, in words that carry nothing the user typed."""
    from telegram import Update

    if not isinstance(update, Update):
        return "other"
    if update.callback_query is not None:
        return "button"
    if update.edited_message is not None:
        return "edited"
    message = update.message
    if message is None:
        return "other"
    command = _command_of(message)
    if command is not None:
        return f"/{command}" if command in LOGGED_COMMANDS else "/other"
    return "text" if message.text is not None else "other"


def _command_of(message: Message) -> str | None:
    text = message.text
    if not text:
        return None
    for entity in message.entities:
        if entity.type == entity.BOT_COMMAND and entity.offset == 0:
            return text[1 : entity.length].split("@", 1)[0].lower()
    return None


@asynccontextmanager
async def update_handled(update: object, *, waited: float = 0.0) -> AsyncIterator[None]:
    """Time the handling of one update and log its line: id, kind, ms, outcome."""
    outcome = _Outcome()
    reset = _current_update.set(outcome)
    started = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        outcome.error = outcome.error or _name_of(exc)
        raise
    finally:
        _current_update.reset(reset)
        fields = {
            "update_id": getattr(update, "update_id", None),
            "kind": update_kind(update),
            "ms": _ms_since(started),
            "outcome": outcome.error or "ok",
        }
        if waited >= 0.001:
            fields["wait_ms"] = round(waited * 1000, 1)
        level = logging.INFO if outcome.error is None else logging.WARNING
        update_log.log(level, "update handled", extra=fields)


# --- one line per scheduled action -----------------------------------------------


@asynccontextmanager
async def timed_action(name: str, /, **fields: Any) -> AsyncIterator[dict[str, Any]]:
    """Time a scheduled action (a reminders tick, a broadcast) and log one line for it.

    The line says action=NAME ms=… outcome=ok (or the exception's type, which goes on
    up) with `fields` and whatever the block adds to the dict it is given (counts, never
    names or texts):

        async with timed_action("reminders") as action:
            report = await run_tick(application)
            action["sent"] = report.sent
    """
    details: dict[str, Any] = dict(fields)
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield details
    except BaseException as exc:
        outcome = _name_of(exc)
        raise
    finally:
        line = {_safe_key(k): v for k, v in details.items()}
        line.update(action=name, ms=_ms_since(started), outcome=outcome)
        level = logging.INFO if outcome == "ok" else logging.WARNING
        action_log.log(level, "action done", extra=line)


def _name_of(error: BaseException) -> str:
    return "cancelled" if isinstance(error, asyncio.CancelledError) else type(error).__name__


def _safe_key(key: str) -> str:
    """A field name logging accepts (`extra` may not overwrite a record's own attributes)."""
    return f"{key}_" if key in _STANDARD_ATTRIBUTES else key


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
