"""How updates reach the handlers: checked first, each user's in order, users side by side."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from http import HTTPStatus
from typing import Any, Protocol

from telegram import Bot, Update
from telegram._utils.types import JSONDict
from telegram.error import NetworkError, TelegramError
from telegram.ext import BaseUpdateProcessor, ExtBot
from telegram.request import BaseRequest, RequestData

from bot.logs import describe_failure, note_update_outcome, update_handled
from bot.problems import SetupError
from bot.telegram.transport import parse_json_quietly

log = logging.getLogger(__name__)
# Pauses between getUpdates calls while the Bot API cannot be reached, the last one
# repeated: answers resume at most this long after it comes back. (PTB's own loop
# waits 1 s, then half as long again after each failure, up to 30 s.)
POLL_RETRY_DELAYS = (0.5, 1.0, 2.0)
# While another process takes this bot's updates (409): the pause between polls, and
# how often the log says it is still so.
CONFLICT_PAUSE = 5.0
CONFLICT_SAID_EVERY = 60.0
# A long poll that failed, as PTB is told: "no updates this time". It asks again at once.
_NO_UPDATES = (200, b'{"ok": true, "result": []}')
# Handlers running at the same moment, across users: enough that one user's slow
# database call or 429 wait never holds up the others.
MAX_CONCURRENT_UPDATES = 256
# Updates accepted at once, most of them waiting for their user's turn.
MAX_WAITING_UPDATES = 100_000


class UpdateLedger(Protocol):
    """Which updates have been taken to handle, across restarts and instances."""

    async def first_sight(self, update_id: int, now: dt.datetime) -> bool: ...


class UserTurns(Protocol):
    """One update of a user at a time among all instances (bot/telegram/locks.py)."""

    def turn(self, user_id: int) -> AbstractAsyncContextManager[None]: ...


class OnePerUser(BaseUpdateProcessor):
    """Handle different users' updates concurrently, and each user's one at a time, in order.

    A conversation must never see two updates of its user at once (two taps on
    Confirm, a message sent while the previous one is still being answered).
    Updates start in the order they arrive and wait for their user's turn on an
    asyncio.Lock, first come, first served. Only then do they take one of the
    `working` slots that bound how many handlers run at once: a user with a backlog
    waits on their own lock and leaves every slot to the others. (PTB's own bound,
    taken before do_process_update, is set far above it for that reason.)
    """

    def __init__(self, working: int = MAX_CONCURRENT_UPDATES) -> None:
        super().__init__(max_concurrent_updates=MAX_WAITING_UPDATES)
        self._working = asyncio.Semaphore(working)
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}  # updates waiting or running, per user
        self._across: UserTurns | None = None
        self._ledger: UpdateLedger | None = None
        self._now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    def take_turns_across(self, turns: UserTurns) -> None:
        """Also keep each user's updates one at a time across instances (webhook mode
        behind a load balancer: the next update may reach another instance while this
        one still handles the last)."""
        self._across = turns

    def remember_updates_in(self, ledger: UpdateLedger, now: Callable[[], dt.datetime]) -> None:
        """Handle each update once, though Telegram send it again: a webhook whose 200
        never reached Telegram (an instance dying behind the proxy, a timeout), a poller
        that died before its next poll confirmed the last batch."""
        self._ledger, self._now = ledger, now

    async def _once(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run the update's handlers, unless it was taken already: then only say so."""
        update_id = getattr(update, "update_id", None)
        if self._ledger is not None and isinstance(update_id, int):
            try:
                first = await self._ledger.first_sight(update_id, self._now())
            except Exception:  # the database away: handled, and the handlers say so
                first = True
            if not first:
                if inspect.iscoroutine(coroutine):
                    coroutine.close()
                note_update_outcome("duplicate")
                return
        await coroutine

    def _turn_across(self, user_id: int) -> AbstractAsyncContextManager[None]:
        return nullcontext() if self._across is None else self._across.turn(user_id)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run the update's handlers in its user's turn; log one line when they are done."""
        arrived = time.perf_counter()
        key = _user_of(update)
        if key is None:
            async with self._working, update_handled(update, waited=_since(arrived)):
                await self._once(update, coroutine)
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            # The wait is measured once both are held: the expression runs after them.
            async with (
                lock,
                self._working,
                self._turn_across(key),
                update_handled(update, waited=_since(arrived)),
            ):
                await self._once(update, coroutine)
        finally:
            self._users[key] -= 1
            if not self._users[key]:  # nobody waits: forget the lock, memory stays flat
                del self._users[key]
                del self._locks[key]

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None


def _since(moment: float) -> float:
    return time.perf_counter() - moment


def _user_of(update: object) -> int | None:
    if not isinstance(update, Update):
        return None
    if update.effective_user is not None:
        return update.effective_user.id
    return update.effective_chat.id if update.effective_chat is not None else None


def checked_updates(raw: list[Any], bot: Bot | None) -> list[Update]:
    """Updates as Telegram sent them, each read once, with the ones it should never send
    emptied.

    An update PTB cannot read (a message without a date) would fail the whole batch,
    and PTB would fetch and log it again and again, other users' texts included; one
    without a chat cannot be answered. Each such update keeps only its id, so the
    offset still moves past it, and leaves one log line without its content.
    """
    checked = []
    for data in raw:
        update_id = data.get("update_id") if isinstance(data, dict) else None
        update, problem = _read(data, bot)
        if update is not None:
            checked.append(update)
        elif isinstance(update_id, int):
            log.warning("update %s skipped: %s", update_id, problem)
            checked.append(Update(update_id))
        else:
            log.warning("an update without an id skipped: %s", problem)
    return checked


def read_update(data: Any, bot: Bot) -> Update | None:
    """One update posted to the webhook, read once; None (and a log line) when it is one
    Telegram should never send."""
    update, problem = _read(data, bot)
    if update is None:
        log.warning("a posted update skipped: %s", problem)
    return update


def _read(data: Any, bot: Bot | None) -> tuple[Update | None, str]:
    try:
        update = Update.de_json(data, bot)
    except Exception as exc:  # PTB raises whatever the missing field causes
        return None, f"unreadable ({type(exc).__name__})"
    if update is None:
        return None, "empty"
    if update.effective_message is not None and update.effective_chat is None:
        return None, "a message without a chat"
    return update, ""


class CheckedBot(ExtBot[str]):
    """The bot, reading each polled update once, through `checked_updates`.

    PTB reads a batch of updates as a whole: one it cannot read fails them all. This
    takes getUpdates' answer as PTB does and reads the updates one by one instead.
    """

    async def initialize(self) -> None:
        """Open the connections and ask who the bot is; a start that fails closes them
        again (PTB leaves them open: "Unclosed client session" at exit) and an answer
        that is not a bot is one sentence, not a traceback."""
        try:
            await super().initialize()
        except BaseException as exc:
            await asyncio.gather(*(request.shutdown() for request in self._request))
            if isinstance(exc, TelegramError | asyncio.CancelledError):
                raise
            if isinstance(exc, Exception):
                raise SetupError(
                    f"the Bot API at {self.base_url.removesuffix(self.token)} did not answer "
                    f"getMe with a bot ({type(exc).__name__}): check TELEGRAM_API_BASE_URL"
                ) from None
            raise

    async def get_updates(
        self,
        offset: int | None = None,
        limit: int | None = None,
        timeout: float | dt.timedelta | None = None,  # noqa: ASYNC109 (the long poll's, PTB's name)
        allowed_updates: Sequence[str] | None = None,
        *,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
        api_kwargs: dict[str, Any] | None = None,
    ) -> tuple[Update, ...]:
        data: dict[str, Any] = {
            "timeout": timeout,
            "offset": offset,
            "limit": limit,
            "allowed_updates": allowed_updates,
        }
        # As PTB does: the long poll's own seconds on top of the read timeout.
        if isinstance(read_timeout, int | float):
            waited = float(read_timeout)
        else:  # not given: the getUpdates layer's own
            waited = self._request[0].read_timeout or 0.0
        seconds = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else timeout or 0
        result = await self._post(
            "getUpdates",
            data,
            read_timeout=waited + seconds,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
            api_kwargs=api_kwargs,
        )
        updates = checked_updates(result if isinstance(result, list) else [], self)
        for update in updates:
            self.insert_callback_data(update)
        return tuple(updates)


class CheckedUpdates(BaseRequest):
    """The network layer for getUpdates: rides out a Bot API that cannot be reached.

    PTB's polling loop logs each failed getUpdates and waits longer after each one, up
    to 30 s, so the bot could stay deaf that long after Telegram is back. A long poll
    that fails here (no connection, a timeout, a 5xx) is logged in one line, waited
    for (POLL_RETRY_DELAYS) and reported to PTB as a poll that brought nothing: PTB
    asks again at once and never backs off. getUpdates asks for nothing to be done:
    calling it again is always safe. A poll refused because something else takes
    the updates (409) is said once a minute and asked again every 5 s. Other failures
    (a 429, a wrong token) and the last call at shutdown (no long poll) go to PTB as
    they are.
    """

    def __init__(self, inner: BaseRequest) -> None:
        self._inner = inner
        self._failures = 0
        self._failing_since = 0.0
        self._conflicts = 0
        self._conflict_said_at = 0.0

    @property
    def read_timeout(self) -> float | None:
        return self._inner.read_timeout

    async def initialize(self) -> None:
        await self._inner.initialize()

    async def shutdown(self) -> None:
        await self._inner.shutdown()

    @staticmethod
    def parse_json_payload(payload: bytes) -> JSONDict:
        return parse_json_quietly(payload)

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        polling = url.endswith("/getUpdates")
        long_poll = polling and _long_poll_seconds(request_data) > 0
        try:
            code, body = await self._inner.do_request(
                url,
                method,
                request_data,
                read_timeout=read_timeout,
                write_timeout=write_timeout,
                connect_timeout=connect_timeout,
                pool_timeout=pool_timeout,
            )
        except NetworkError as exc:
            if not long_poll:
                raise
            return await self._poll_failed(describe_failure(exc))
        if long_poll and code >= 500:
            return await self._poll_failed(f"HTTP {code}")
        if long_poll and code == HTTPStatus.CONFLICT:
            return await self._poll_refused()
        if polling and code == 200:
            self._poll_answered()
        return code, body

    async def _poll_failed(self, problem: str) -> tuple[int, bytes]:
        if not self._failures:
            self._failing_since = asyncio.get_running_loop().time()
        delay = POLL_RETRY_DELAYS[min(self._failures, len(POLL_RETRY_DELAYS) - 1)]
        self._failures += 1
        log.warning("the Bot API cannot be reached (%s): polling again in %.1f s", problem, delay)
        await asyncio.sleep(delay)
        return _NO_UPDATES

    async def _poll_refused(self) -> tuple[int, bytes]:
        """Telegram refused the poll because something else takes this bot's updates (a
        poller not of this deployment, or a webhook set since): say so in one line a
        minute, not PTB's traceback on every poll, and keep asking, slowly."""
        now = asyncio.get_running_loop().time()
        if not self._conflicts or now - self._conflict_said_at >= CONFLICT_SAID_EVERY:
            log.warning(
                "Telegram refuses this poll (HTTP 409): another process is polling this "
                "bot's token, or a webhook was set; polling again every %.0f s",
                CONFLICT_PAUSE,
            )
            self._conflict_said_at = now
        self._conflicts += 1
        await asyncio.sleep(CONFLICT_PAUSE)
        return _NO_UPDATES

    def _poll_answered(self) -> None:
        if self._conflicts:
            log.info("Telegram takes this poll again, after %d refused", self._conflicts)
            self._conflicts = 0
        if self._failures:
            log.info(
                "the Bot API answers again, after %d failed polls in %.0f s",
                self._failures,
                asyncio.get_running_loop().time() - self._failing_since,
            )
            self._failures = 0


def _long_poll_seconds(request_data: RequestData | None) -> float:
    """The getUpdates call's `timeout`: 0 for the call PTB makes at shutdown."""
    if request_data is None:
        return 0.0
    timeout = request_data.parameters.get("timeout")
    return float(timeout) if isinstance(timeout, int | float | str) and timeout else 0.0
