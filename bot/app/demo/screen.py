"""The bot's messages in a terminal: Telegram's HTML as terminal styles, buttons numbered."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, TextIO

from babel.dates import format_datetime

from bot.i18n import Texts

RESET = "\033[0m"
STYLES = {
    "b": "\033[1m",
    "strong": "\033[1m",
    "i": "\033[3m",
    "em": "\033[3m",
    "u": "\033[4m",
    "ins": "\033[4m",
    "s": "\033[9m",
    "strike": "\033[9m",
    "del": "\033[9m",
    "code": "\033[36m",
    "pre": "\033[36m",
    "a": "\033[4;34m",
    "tg-spoiler": "\033[7m",
}
DIM, HEADER = "\033[2m", "\033[1;35m"


class _Terminal(HTMLParser):
    """Telegram's HTML as text, with ANSI styles where `styled`."""

    def __init__(self, styled: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.styled = styled
        self.out: list[str] = []
        self.active: list[str] = []
        self.links: list[str | None] = []
        self.quote = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.active.append(tag)
        if tag == "a":
            self.links.append(dict(attrs).get("href"))
        if tag == "blockquote":
            self.quote = True
            self.out.append("│ ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.active:
            del self.active[len(self.active) - 1 - self.active[::-1].index(tag)]
        if tag == "a" and self.links:
            href = self.links.pop()
            if href:
                self.out.append(f" ({href})")
        if tag == "blockquote":
            self.quote = False

    def handle_data(self, data: str) -> None:
        if self.quote:
            data = data.replace("\n", "\n│ ")
        if self.styled:
            codes = "".join(STYLES.get(tag, "") for tag in self.active)
            self.out.append(f"{codes}{data}{RESET}" if codes else data)
        else:
            self.out.append(data)


def terminal_text(text_html: str, *, styled: bool) -> str:
    """A message's HTML as the terminal shows it: bold, italic, code as styles or plain."""
    parser = _Terminal(styled)
    try:
        parser.feed(text_html)
        parser.close()
    except Exception:  # Telegram refuses broken HTML before it is shown; be safe anyway
        return html.unescape(text_html)
    return "".join(parser.out)


@dataclass(frozen=True)
class Shown:
    """A bot message as it was at one moment: sent, or changed in place."""

    chat_id: int
    message_id: int
    text_html: str
    keyboard: list[list[dict[str, Any]]]
    edited: bool
    at: dt.datetime
    file: tuple[str, bytes] | None = None
    kind: str = "text"  # or "photo", "document"


def buttons_of(keyboard: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [button for row in keyboard for button in row]


class Screen:
    """Writes to the terminal: the bot's messages, the user's presses, the demo's notes,
    in the demo's language."""

    def __init__(self, out: TextIO, *, styled: bool, timezone: dt.tzinfo, texts: Texts) -> None:
        self.out = out
        self.styled = styled
        self.timezone = timezone
        self.texts = texts

    def when(self, moment: dt.datetime) -> str:
        """A moment on the programme's clock, as the demo's language writes it."""
        local = moment.astimezone(self.timezone)
        return str(format_datetime(local, "EEE dd MMM y, HH:mm", locale=self.texts.locale))

    def _style(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.styled else text

    def write(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """A line of the demo's own, not of the bot."""
        self.write(self._style(DIM, f"· {text}"))

    def heading(self, text: str) -> None:
        self.write(self._style(HEADER, f"== {text} =="))

    def message(
        self, shown: Shown, numbers: Sequence[int] = (), saved_to: str | None = None
    ) -> None:
        """A bot message; its buttons carry `numbers`, in order, as the demo gave them."""
        texts = self.texts
        edited = texts.plain("demo_edited") if shown.edited else ""
        header = f"── PAI{edited} · {self.when(shown.at)} "
        self.write(self._style(DIM, header + "─" * max(0, 48 - len(header))))
        if shown.kind != "text":
            kind = texts.plain(f"demo_kind_{shown.kind}")
            self.write(f"[{kind}: {saved_to or texts.plain('demo_not_kept')}]")
        if shown.text_html:
            self.write(terminal_text(shown.text_html, styled=self.styled))
        given = iter(numbers)
        for row in shown.keyboard:
            labels = []
            for button in row:
                number = next(given, 0)
                mark = self._style("\033[1;32m", f"[{number}]")
                target = f" → {button['url']}" if button.get("url") else ""
                labels.append(f"{mark} {button.get('text', '')}{target}")
            self.write("   ".join(labels))

    def popup(self, text: str, *, alert: bool) -> None:
        kind = self.texts.plain("demo_alert" if alert else "demo_popup")
        self.write(self._style("\033[33m", f"({kind}) {text}"))
