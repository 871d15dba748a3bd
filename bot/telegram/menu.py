"""The chat's menu button: it opens the web view (PRODUCT.md §7) for staff and for
linked salespeople, set per chat so that strangers never get it."""

from __future__ import annotations

import logging

from telegram import Bot, MenuButtonWebApp, WebAppInfo
from telegram.error import TelegramError

from bot.i18n import Texts

log = logging.getLogger(__name__)


async def offer_web_view(bot: Bot, url: str | None, chat_id: int, texts: Texts) -> None:
    """Set the chat's menu button to open the web view at `url` (none: nothing to do).
    Best effort: the chat works without it."""
    if not url:
        return
    button = MenuButtonWebApp(texts.plain("web_menu_button"), WebAppInfo(url))
    try:
        await bot.set_chat_menu_button(chat_id=chat_id, menu_button=button)
    except TelegramError as exc:
        log.info("the web view's menu button was not set: %s", type(exc).__name__)
