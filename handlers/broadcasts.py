"""/broadcast: staff write a programme update, pick who gets it, preview it, send it.

Sending is bot/jobs/broadcasts.py's: storing the broadcast is all this asks for.
"""

from __future__ import annotations

import logging

from telegram import InlineKeyboardMarkup, Update
from telegram.error import TelegramError

from bot.i18n import Texts
from bot.services.broadcasts import (
    Audience,
    count_audience,
    create_broadcast,
    recent_reports,
    release_broadcast,
)
from bot.storage.conversations import BROADCAST
from handlers.callbacks import (
    INACTIVE_DAYS,
    BroadcastCancel,
    BroadcastSend,
    BroadcastTo,
    keyboard,
)
from handlers.common import (
    Context,
    answer_query,
    remove_buttons,
    reply,
    resources,
    texts_for,
    user_id_of,
)
from handlers.render import describe_audience, report_text

log = logging.getLogger(__name__)
TEXT, AUDIENCE, PREVIEW = "text", "audience", "preview"


# --- writing it --------------------------------------------------------------------


async def start_broadcast(update: Update, context: Context, texts: Texts) -> None:
    shared = resources(context)
    await shared.conversations.save(user_id_of(update), BROADCAST, {"step": TEXT}, shared.now())
    await reply(update, texts("broadcast_ask_text"))


async def take_broadcast_text(
    update: Update, context: Context, texts: Texts, draft: dict[str, str]
) -> None:
    """The message to broadcast, with its formatting (bold, links) as HTML."""
    message = update.effective_message
    assert message is not None
    shared = resources(context)
    draft.update(step=AUDIENCE, text=message.text_html)
    await shared.conversations.save(user_id_of(update), BROADCAST, draft, shared.now())
    await reply(update, texts("broadcast_ask_audience"), audience_buttons(texts, context))


def audience_buttons(texts: Texts, context: Context) -> InlineKeyboardMarkup:
    levels = resources(context).rules.levels
    return keyboard(
        [(texts.plain("audience_all"), BroadcastTo("all"))],
        [(texts.level(level), BroadcastTo(f"level:{level}")) for level in levels],
        [
            (texts.plain("audience_inactive", days=days), BroadcastTo(f"inactive:{days}"))
            for days in INACTIVE_DAYS
        ],
        [(texts.plain("audience_open"), BroadcastTo("open"))],
    )


async def pick_audience(
    update: Update, context: Context, texts: Texts, button: BroadcastTo
) -> None:
    """Show the message exactly as partners will see it, and how many will get it."""
    shared = resources(context)
    draft = await shared.conversations.load(user_id_of(update), BROADCAST)
    if draft is None or "text" not in draft:
        await answer_query(update, texts.plain("stale_button"))
        return
    await answer_query(update)
    await remove_buttons(update)
    audience = Audience(button.audience)
    if audience.kind == "level" and audience.value not in shared.rules.levels:
        return
    async with shared.sessions() as session:
        count = await count_audience(session=session, audience=audience, today=shared.today())
    draft.update(step=PREVIEW, audience=audience.code)
    await shared.conversations.save(user_id_of(update), BROADCAST, draft, shared.now())
    await reply(update, draft["text"])  # the preview: what partners will read
    markup = keyboard(
        [
            (texts.plain("button_send", count=count), BroadcastSend()),
            (texts.plain("button_cancel"), BroadcastCancel()),
        ]
    )
    await reply(
        update,
        texts.plural("broadcast_preview", count, audience=describe_audience(texts, audience)),
        markup,
    )


async def cancel_broadcast(update: Update, context: Context, texts: Texts) -> None:
    await resources(context).conversations.take(user_id_of(update), BROADCAST)
    await answer_query(update)
    await remove_buttons(update)
    await reply(update, texts("broadcast_cancelled"))


async def send_now(update: Update, context: Context, texts: Texts) -> None:
    """Store the broadcast and a delivery row per recipient, then send in the background."""
    shared = resources(context)
    draft = await shared.conversations.take(user_id_of(update), BROADCAST)
    if draft is None or draft.get("step") != PREVIEW:
        await answer_query(update, texts.plain("stale_button"))
        return
    await answer_query(update)
    await remove_buttons(update)
    async with shared.sessions() as session:
        broadcast_id, count = await create_broadcast(
            session=session,
            staff_id=user_id_of(update),
            text_html=draft["text"],
            audience=Audience(draft["audience"]),
            today=shared.today(),
            now=shared.now(),
        )
    try:
        progress = await reply(update, texts("broadcast_progress", sent=0, total=count))
    except TelegramError as exc:  # sending goes on; the report comes as a new message
        log.warning("the progress message of broadcast %s failed: %s", broadcast_id, exc)
        progress = None
    async with shared.sessions() as session:
        await release_broadcast(
            session=session,
            broadcast_id=broadcast_id,
            progress=None if progress is None else (progress.chat_id, progress.message_id),
        )


async def list_broadcasts(update: Update, context: Context, texts: Texts) -> None:
    async with resources(context).sessions() as session:
        reports = await recent_reports(session=session)
    if not reports:
        await reply(update, texts("broadcasts_none"))
        return
    zone = resources(context).rules.timezone
    await reply(update, "\n\n".join(report_text(texts, report, zone) for report in reports))


async def press_broadcast_button(
    update: Update, context: Context, button: BroadcastTo | BroadcastSend | BroadcastCancel
) -> None:
    texts = texts_for(update, None)
    if isinstance(button, BroadcastTo):
        await pick_audience(update, context, texts, button)
    elif isinstance(button, BroadcastSend):
        await send_now(update, context, texts)
    else:
        await cancel_broadcast(update, context, texts)
