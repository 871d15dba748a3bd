"""A Telegram Bot API of our own: users send messages and press buttons, the bot's calls are kept.

It checks what real Telegram checks where a bug would hide (HTML that does not
parse, texts over 4096 characters, captions over 1024, callback data over 64
bytes, edits that change nothing, a chat that never talked to the bot when
`known_chats` is on), so a test fails where Telegram would refuse the call. It
serves in process (`FakeRequest`) or over HTTP on 127.0.0.1 (`serve_http`), for
the real `pai-bot run` process.

It lives in the package, not among the tests: `pai-bot demo` runs the bot against
it, so the end-to-end tests and the demo talk to one and the same Telegram.
"""

from __future__ import annotations

import html
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from telegram.error import TimedOut
from telegram.request import BaseRequest, RequestData

BOT_ID = 7000001
BOT_USERNAME = "pai_test_bot"
MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
# A bot command as Telegram accepts it in setMyCommands.
COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
# An upload as python-telegram-bot hands it over: field name -> (file name, content, type).
Uploads = Mapping[str, tuple[str, bytes, str]]
ALLOWED_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "code",
    "pre",
    "a",
    "tg-spoiler",
    "blockquote",
    "span",
}


class HtmlChecker(HTMLParser):
    """Refuses what Telegram refuses: unknown or unbalanced tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in ALLOWED_TAGS:
            self.error = f"unsupported start tag {tag!r}"
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.error = f"unmatched end tag {tag!r}"


def check_html(text: str) -> str | None:
    if re.search(r"&(?!(amp|lt|gt|quot|#\d+|#x[0-9a-fA-F]+);)", text):
        return "unescaped ampersand"
    if re.search(r"<(?![a-zA-Z/])", text):
        return "unescaped <"
    checker = HtmlChecker()
    checker.feed(text)
    checker.close()
    if checker.error is None and checker.stack:
        return f"unclosed tag {checker.stack[-1]!r}"
    return checker.error


def plain_text(text: str) -> str:
    # Written here again on purpose, not bot.i18n.html_to_text: the fake stands for
    # Telegram, so a mistake in the bot's own reading must not be shared by it.
    return html.unescape(re.sub(r"<[^>]+>", "", text))


@dataclass
class User:
    id: int
    first_name: str = "Giulia"
    language_code: str = "it"
    last_name: str | None = None
    username: str | None = None

    def as_json(self) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": self.id,
            "is_bot": False,
            "first_name": self.first_name,
            "language_code": self.language_code,
        }
        if self.last_name is not None:
            user["last_name"] = self.last_name
        if self.username is not None:
            user["username"] = self.username
        return user


class TelegramError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after


class Timeout(Exception):
    """Queued as a failure: the call times out, as a slow network makes it."""


@dataclass
class FakeBotApi:
    """The state of a small Telegram: chats, the bot's messages, pending updates."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    _by_chat: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)
    # method -> errors to answer with, one per call, before answering normally.
    failures: dict[str, list[TelegramError | Timeout]] = field(default_factory=dict)
    # Called with every call before it is answered (a test's way to act mid-way).
    before_call: Callable[[str, dict[str, Any]], None] | None = None
    # Called with every call once answered: method, parameters, HTTP status, body and the
    # moment (time.monotonic()) the call arrived. A benchmark's way to time the bot.
    after_call: Callable[[str, dict[str, Any], int, dict[str, Any], float], None] | None = None
    # update id -> the moment (time.monotonic()) the update was queued
    queued_at: dict[int, float] = field(default_factory=dict)
    # Messages a second Telegram accepts, as a real bot's limit: beyond it, 429.
    rate_limit: float | None = None
    # The same for paid broadcasts (allow_paid_broadcast), which Telegram counts apart:
    # up to 1,000 a second, for a fee. None: no limit.
    paid_rate_limit: float | None = None
    too_many: int = 0  # 429s answered for the rate limit
    _recent_sends: list[float] = field(default_factory=list)
    _recent_paid: list[float] = field(default_factory=list)
    # chat id -> errors for the bot's next messages to that chat only
    chat_failures: dict[int, list[TelegramError | Timeout]] = field(default_factory=dict)
    # callback query id -> the user who pressed
    pressed_by: dict[str, int] = field(default_factory=dict)
    # The chats the bot may write to, as Telegram knows them: None accepts any chat id
    # (tests reach people linked through the services, who never wrote); a set accepts
    # those and every user who sends or presses something, and answers any other chat
    # 400 "chat not found", as Telegram does for someone who never opened the bot.
    known_chats: set[int] | None = None
    # (chat id, message id) -> (file name, content) of the files the bot sent
    files: dict[tuple[int, int], tuple[str, bytes]] = field(default_factory=dict)
    # file id -> the bytes of a file a user sent (a photo, a PDF), for getFile and download
    user_files: dict[str, bytes] = field(default_factory=dict)
    # The clock of the messages' dates (the demo's moves with its clock).
    clock: Callable[[], float] = time.time
    username: str = BOT_USERNAME
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # Where update ids start. Telegram never gives one twice, and the bot handles each
    # once: a fake that starts again on an old database must start past its ids.
    first_update_id: int = 1
    _update_ids: itertools.count[int] = field(init=False)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._update_ids = itertools.count(self.first_update_id)

    # --- the bot's side ---------------------------------------------------

    def handle(
        self, method: str, params: dict[str, Any], uploads: Uploads | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Answer one call of the bot; `uploads` are the files sent with it (sendPhoto…)."""
        arrived = time.monotonic()
        if self.before_call is not None:
            self.before_call(method, params)
        code, body = self._answer(method, params, uploads or {})
        if self.after_call is not None:
            self.after_call(method, params, code, body, arrived)
        return code, body

    def _answer(
        self, method: str, params: dict[str, Any], uploads: Uploads
    ) -> tuple[int, dict[str, Any]]:
        with self._changed:
            self.calls.append((method, params))
            queued = self.failures.get(method)
            chat = params.get("chat_id")
            if not queued and chat is not None and method == "sendMessage":
                queued = self.chat_failures.get(int(chat))
            if not queued and method == "sendMessage" and self._over_rate(params):
                self.too_many += 1
                return 429, {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests: retry after 1",
                    "parameters": {"retry_after": 1},
                }
            if queued:
                error = queued.pop(0)
                if isinstance(error, Timeout):
                    raise error
                body: dict[str, Any] = {
                    "ok": False,
                    "error_code": error.code,
                    "description": error.description,
                }
                if error.retry_after is not None:
                    body["parameters"] = {"retry_after": error.retry_after}
                return error.code, body
            try:
                self._check_chat(method, params)
                if method in {"sendPhoto", "sendDocument"}:
                    result = getattr(self, f"_{method}")(params, uploads)
                else:
                    result = getattr(self, f"_{method}", self._anything)(params)
            except TelegramError as error:
                return error.code, {
                    "ok": False,
                    "error_code": error.code,
                    "description": error.description,
                }
            self._changed.notify_all()
            return 200, {"ok": True, "result": result}

    def _check_chat(self, method: str, params: dict[str, Any]) -> None:
        """A chat the bot may not write to: one that never talked to it (`known_chats`)."""
        if self.known_chats is None:
            return
        chat = params.get("chat_id")
        if chat is None:  # setMyCommands and the like name a chat in their scope
            scope = params.get("scope")
            if isinstance(scope, str):
                scope = json.loads(scope)
            if isinstance(scope, dict):
                chat = scope.get("chat_id")
        if chat is not None and int(chat) not in self.known_chats:
            raise TelegramError(400, "Bad Request: chat not found")

    def _over_rate(self, params: dict[str, Any]) -> bool:
        """Whether one more message now would exceed its limit in the last second: a paid
        broadcast's `paid_rate_limit`, any other's `rate_limit`."""
        paid = str(params.get("allow_paid_broadcast", "")).lower() == "true"
        limit = self.paid_rate_limit if paid else self.rate_limit
        if limit is None:
            return False
        recent = self._recent_paid if paid else self._recent_sends
        now = time.monotonic()
        while recent and now - recent[0] >= 1.0:
            recent.pop(0)
        if len(recent) >= limit:
            return True
        recent.append(now)
        return False

    def _getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "PAI",
            "username": self.username,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,
        }

    def _anything(self, params: dict[str, Any]) -> bool:
        return True

    def _setMyCommands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands") or []
        if isinstance(commands, str):
            commands = json.loads(commands)
        if len(commands) > 100:
            raise TelegramError(400, "Bad Request: too many commands")
        for command in commands:
            if not COMMAND_NAME.match(str(command.get("command", ""))):
                raise TelegramError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise TelegramError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        return True

    def _answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        if len(str(params.get("text", ""))) > 200:
            raise TelegramError(400, "Bad Request: MESSAGE_TOO_LONG")
        return True

    def _getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = str(params.get("file_id", ""))
        if file_id not in self.user_files:
            raise TelegramError(400, "Bad Request: invalid file_id")
        size = len(self.user_files[file_id])
        if size > 20 * 1024 * 1024:  # the Bot API hands bots nothing larger
            raise TelegramError(400, "Bad Request: file is too big")
        return {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_size": size,
            "file_path": f"uploads/{file_id}",
        }

    def download(self, url: str) -> tuple[int, bytes]:
        """A file's bytes, as Telegram's file URL (`.../file/bot<token>/<path>`) serves them."""
        file_id = url.rsplit("/", 1)[-1]
        with self._changed:
            self.calls.append(("download", {"file_id": file_id}))
        if file_id not in self.user_files:
            return 404, b"Not Found"
        return 200, self.user_files[file_id]

    def _getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        if offset:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 2.0)
        while not self.pending and time.monotonic() < deadline:
            self._changed.wait(timeout=deadline - time.monotonic())
        return list(self.pending)

    def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        text = self._checked_text(params)
        chat_id = int(params["chat_id"])
        message: dict[str, Any] = {
            "message_id": next(self._ids),
            "date": int(self.clock()),
            "chat": {"id": chat_id, "type": "private"},
            "from": self._getMe({}),
            "text": plain_text(text) if params.get("parse_mode") == "HTML" else text,
            "html": text,
        }
        markup = self._checked_markup(params.get("reply_markup"))
        if markup:
            message["reply_markup"] = markup
        self._remember(chat_id, message)
        return {k: v for k, v in message.items() if k != "html"}

    def _sendDocument(self, params: dict[str, Any], uploads: Uploads) -> dict[str, Any]:
        name = self._upload("document", params, uploads)
        document = {"file_id": "doc", "file_unique_id": "doc", "file_name": name}
        return self._media(params, uploads.get("document"), document=document)

    def _sendPhoto(self, params: dict[str, Any], uploads: Uploads) -> dict[str, Any]:
        self._upload("photo", params, uploads)
        photo = {"file_id": "photo", "file_unique_id": "photo", "width": 1, "height": 1}
        return self._media(params, uploads.get("photo"), photo=[photo])

    def _upload(self, kind: str, params: dict[str, Any], uploads: Uploads) -> str:
        """The file's name; a call without the file (nor a file id) is refused."""
        if kind in uploads:
            return uploads[kind][0]
        if isinstance(params.get(kind), str) and params[kind]:
            return str(params[kind])  # a file_id or URL Telegram already has
        raise TelegramError(400, f"Bad Request: there is no {kind} in the request")

    def _media(
        self, params: dict[str, Any], upload: tuple[str, bytes, str] | None, **content: Any
    ) -> dict[str, Any]:
        """A message carrying a file: kept in the chat with its caption as the text."""
        chat_id = int(params["chat_id"])
        caption = str(params.get("caption") or "")
        if caption and params.get("parse_mode") == "HTML":
            problem = check_html(caption)
            if problem:
                raise TelegramError(400, f"Bad Request: can't parse entities: {problem}")
        if len(plain_text(caption)) > CAPTION_LIMIT:
            raise TelegramError(400, "Bad Request: message caption is too long")
        message = {
            "message_id": next(self._ids),
            "date": int(self.clock()),
            "chat": {"id": chat_id, "type": "private"},
            "from": self._getMe({}),
            **content,
            "text": "",
            "html": caption,
        }
        if caption:
            message["caption"] = plain_text(caption) if params.get("parse_mode") else caption
        markup = self._checked_markup(params.get("reply_markup"))
        if markup:
            message["reply_markup"] = markup
        self._remember(chat_id, message)
        if upload is not None:
            self.files[(chat_id, message["message_id"])] = (upload[0], upload[1])
        return {k: v for k, v in message.items() if k not in {"html", "text"}}

    def _editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._message(params)
        text = self._checked_text(params)
        markup = self._checked_markup(params.get("reply_markup"))
        if message["html"] == text and message.get("reply_markup") == markup:
            raise TelegramError(400, "Bad Request: message is not modified")
        message.update(html=text, text=plain_text(text) if params.get("parse_mode") else text)
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        message["edited"] = message.get("edited", 0) + 1
        return {k: v for k, v in message.items() if k not in {"html", "edited"}}

    def _editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._message(params)
        markup = self._checked_markup(params.get("reply_markup"))
        if message.get("reply_markup") == markup:
            raise TelegramError(400, "Bad Request: message is not modified")
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        return {k: v for k, v in message.items() if k not in {"html", "edited"}}

    def _message(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (int(params["chat_id"]), int(params["message_id"]))
        if key not in self.messages:
            raise TelegramError(400, "Bad Request: message to edit not found")
        return self.messages[key]

    def _checked_text(self, params: dict[str, Any]) -> str:
        text = str(params.get("text", ""))
        if not text.strip():
            raise TelegramError(400, "Bad Request: message text is empty")
        if params.get("parse_mode") == "HTML":
            problem = check_html(text)
            if problem:
                raise TelegramError(400, f"Bad Request: can't parse entities: {problem}")
        if len(plain_text(text)) > MESSAGE_LIMIT:
            raise TelegramError(400, "Bad Request: message is too long")
        return text

    def _checked_markup(self, markup: Any) -> dict[str, Any] | None:
        if isinstance(markup, str):
            markup = json.loads(markup)
        if not markup or not markup.get("inline_keyboard"):
            return None
        for row in markup["inline_keyboard"]:
            for button in row:
                if len(button.get("callback_data", "").encode()) > 64:
                    raise TelegramError(400, "Bad Request: BUTTON_DATA_INVALID")
        return dict(markup)

    # --- the users' side ---------------------------------------------------

    def user_sends(
        self, user: User, text: str | None = None, group: int | None = None, **content: Any
    ) -> dict[str, Any]:
        """Queue a message from `user` (text, or sticker=…, photo=…), private or in `group`."""
        self._talked(user)
        chat = (
            {"id": user.id, "type": "private", "first_name": user.first_name}
            if group is None
            else {"id": group, "type": "group", "title": "Sales team"}
        )
        message: dict[str, Any] = {
            "message_id": next(self._ids),
            "date": int(self.clock()),
            "chat": chat,
            "from": user.as_json(),
            **content,
        }
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._queue({"message": message})

    def user_file(
        self,
        content: bytes,
        *,
        kind: str = "photo",
        file_name: str = "invoice.pdf",
        mime_type: str = "application/pdf",
        size: int | None = None,
    ) -> dict[str, Any]:
        """A file as a user's message carries it (`photo=` or `document=` for `user_sends`);
        its bytes wait for the bot's getFile. `size` is what Telegram says, if not the real."""
        file_id = f"{kind}-{next(self._ids)}"
        self.user_files[file_id] = content
        said = len(content) if size is None else size
        if kind == "photo":
            sizes = [(90, 67), (1280, 960)]
            return {
                "photo": [
                    {
                        "file_id": f"{file_id}-thumb" if (w, h) == sizes[0] else file_id,
                        "file_unique_id": f"u-{file_id}-{w}",
                        "width": w,
                        "height": h,
                        "file_size": said if (w, h) == sizes[-1] else 1200,
                    }
                    for w, h in sizes
                ]
            }
        return {
            "document": {
                "file_id": file_id,
                "file_unique_id": f"u-{file_id}",
                "file_name": file_name,
                "mime_type": mime_type,
                "file_size": said,
            }
        }

    def user_inline_query(self, user: User, query: str) -> dict[str, Any]:
        """Queue `@bot query` typed by `user` in any chat."""
        self._talked(user)
        inline = {
            "id": str(next(self._ids)),
            "from": user.as_json(),
            "query": query,
            "offset": "",
            "chat_type": "private",
        }
        return self._queue({"inline_query": inline})

    def user_presses(self, user: User, message: dict[str, Any], data: str | None) -> dict[str, Any]:
        """Queue a button press on one of the bot's messages (data None: a press without data)."""
        self._talked(user)
        shown = {k: v for k, v in message.items() if k not in {"html", "edited"}}
        query: dict[str, Any] = {
            "id": str(next(self._ids)),
            "from": user.as_json(),
            "chat_instance": str(user.id),
            "message": shown,
        }
        if data is not None:
            query["data"] = data
        self.pressed_by[query["id"]] = user.id
        return self._queue({"callback_query": query})

    def user_edits(self, user: User, message: dict[str, Any], text: str) -> dict[str, Any]:
        """Queue the edit of a message the user sent earlier (as `user_sends` returned it)."""
        edited = {**message["message"], "text": text, "edit_date": int(self.clock())}
        return self._queue({"edited_message": edited})

    def queue_raw(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update exactly as given (an id is added): for what Telegram should not send."""
        return self._queue(update)

    def _talked(self, user: User) -> None:
        """The user wrote to the bot: from now on Telegram knows their chat."""
        if self.known_chats is not None:
            self.known_chats.add(user.id)

    def queries_of(self, user_id: int) -> set[str]:
        return {query for query, user in self.pressed_by.items() if user == user_id}

    def _queue(self, update: dict[str, Any]) -> dict[str, Any]:
        with self._changed:
            update["update_id"] = next(self._update_ids)
            self.queued_at[update["update_id"]] = time.monotonic()
            self.pending.append(update)
            self._changed.notify_all()
        return update

    def take_update(self) -> dict[str, Any]:
        """For in-process tests: hand the oldest queued update to the caller instead of polling."""
        with self._changed:
            return self.pending.pop(0)

    def sent_to(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages in the chat, oldest first (as edited since)."""
        return list(self._by_chat.get(chat_id, ()))

    def _remember(self, chat_id: int, message: dict[str, Any]) -> None:
        self.messages[(chat_id, message["message_id"])] = message
        # Per chat too: a benchmark asks for one chat's among 90,000 others.
        self._by_chat.setdefault(chat_id, []).append(message)

    def answers(self) -> list[dict[str, Any]]:
        return [params for method, params in self.calls if method == "answerCallbackQuery"]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("the bot did not answer in time")
                self._changed.wait(timeout=min(remaining, 0.2))


class FakeRequest(BaseRequest):
    """python-telegram-bot's network layer, answered by a FakeBotApi in process."""

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[int, bytes]:
        if "/file/bot" in url:  # a file's download, not a method
            return self.api.download(url)
        params = dict(request_data.parameters) if request_data else {}
        uploads: dict[str, tuple[str, bytes, str]] = {}
        if request_data is not None and request_data.contains_files:
            for name, (filename, content, kind) in request_data.multipart_data.items():
                data = content if isinstance(content, bytes) else content.read()
                uploads[name] = (filename, data, kind)
        try:
            code, body = self.api.handle(url.rsplit("/", 1)[-1], params, uploads)
        except Timeout:
            raise TimedOut() from None
        return code, json.dumps(body).encode()
