"""Sending to Telegram when it may fail: what a step can do without."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from telegram.error import TelegramError

log = logging.getLogger(__name__)


async def best_effort(what: str, call: Awaitable[object]) -> None:
    """Run a step the user can do without (a spinner stopped, old buttons removed).

    Telegram failing it, for any reason, is logged and skipped: it never costs the
    user the answer that matters.
    """
    try:
        await call
    except TelegramError as exc:
        log.info("%s skipped: %s", what, type(exc).__name__)
