"""The Italian and English catalogues, and locale-aware money, numbers and dates."""

from __future__ import annotations

import datetime as dt
import html
import re
import string
import tomllib
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal

from bot.domain.actors import Actor
from bot.domain.errors import InvalidInput, InvalidText
from bot.domain.parsing import vat_digits_for

LANGUAGES = ("it", "en")
DEFAULT_LANGUAGE = "en"
# en_GB: English words with day-first dates, as the programme's partners write them.
LOCALES = {"it": "it_IT", "en": "en_GB"}


# Italian elides the article before a day that starts with a vowel sound: "all'8 gen",
# "dall'11 mar", "l'1 giu". Catalogues write "al {until}"; this puts it right.
_ITALIAN_MONTHS = "gen|feb|mar|apr|mag|giu|lug|ago|set|ott|nov|dic"
# A name that ends in a full stop (S.r.l., S.p.A.) at the end of a sentence, with or
# without its bold: one stop, not two; an ellipsis ("...") is left alone.
_DOUBLED_STOP = re.compile(r"(?<!\.)\.((?:</[bi]>)?)\.(?!\.)")
_ITALIAN_ELISION = re.compile(
    rf"\b(?:(a|da|su|ne|de)l|(il)) ((?:<[a-z]+>)?)(1|8|11)(?= (?:{_ITALIAN_MONTHS}))"
)


# The euphonic d: "a" and "e" before a word that starts with the same vowel become "ad"
# and "ed" ("collegato ad Aurora", "Rossi ed Esposito"), whatever the name; before another
# vowel they stay as they are, as the Accademia della Crusca advises ("a Ermes").
_EUPHONIC_D = re.compile(
    r"(?<![\w'\u2019])(?:([aA])(?= (?:<[a-z]+>)?[aAàÀ])|([eE])(?= (?:<[a-z]+>)?[eEèÈéÉ]))"
)


def _with_d(match: re.Match[str]) -> str:
    return (match.group(1) or match.group(2)) + "d"


def _elide(match: re.Match[str]) -> str:
    preposition, article, tag, day = match.groups()
    return f"{tag}l'{day}" if article else f"{preposition}ll'{tag}{day}"


def language_for(*, chosen: str | None, telegram_code: str | None) -> str:
    """The language a user reads: their choice, else Italian for Italian Telegram, else English."""
    if chosen in LANGUAGES:
        return chosen
    if telegram_code and telegram_code.lower().startswith("it"):
        return "it"
    return DEFAULT_LANGUAGE


@cache
def catalogue(language: str) -> dict[str, str]:
    text = resources.files("bot").joinpath(f"catalogues/{language}.toml").read_text("utf-8")
    return {key: str(value) for key, value in tomllib.loads(text).items()}


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class Texts:
    """Everything a user reads, in their language."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self.locale = LOCALES[self.language]
        self._messages = catalogue(self.language)

    def __call__(self, key: str, **values: Any) -> str:
        """The message `key` with its placeholders filled; text values are HTML-escaped."""
        safe = {name: _escape(value) for name, value in values.items()}
        return self._polish(self._messages[key].format(**safe))

    def plural(self, key: str, count: int, **values: Any) -> str:
        """The message `key_one`, `key_other`… that the language uses for `count` things."""
        form = Locale.parse(self.locale).plural_form(count)
        chosen = f"{key}_{form}" if self.has(f"{key}_{form}") else f"{key}_other"
        return self(chosen, count=count, **values)

    def plain(self, key: str, **values: Any) -> str:
        """The message for plain-text places (buttons, pop-ups): nothing escaped."""
        return self._polish(self._messages[key].format(**values))

    def _polish(self, text: str) -> str:
        # "set up for Aurora S.r.l." ends the sentence with the name's own full stop.
        text = _DOUBLED_STOP.sub(r".\1", text)
        if self.language == "it":
            return _EUPHONIC_D.sub(_with_d, _ITALIAN_ELISION.sub(_elide, text))
        return text

    def has(self, key: str) -> bool:
        return key in self._messages

    def money(self, amount: Decimal, currency: str = "EUR") -> str:
        return str(format_currency(amount, currency, locale=self.locale))

    def number(self, value: Decimal | int) -> str:
        return str(format_decimal(value, locale=self.locale))

    def multiplier(self, value: Decimal) -> str:
        """A loyalty multiplier as the programme writes it: ×1.00, ×1.10."""
        return "×" + str(format_decimal(value, format="0.00", locale=self.locale))

    def date(self, day: dt.date) -> str:
        return str(format_date(day, format="medium", locale=self.locale))

    def moment(self, when: dt.datetime, zone: dt.tzinfo) -> str:
        """A moment as the programme's clock shows it: "6 Dec 2026, 14:05"."""
        local = when.astimezone(zone)
        return f"{self.date(local.date())}, {local:%H:%M}"

    def level(self, level: str) -> str:
        key = f"level_{level}"
        return self(key) if self.has(key) else level.title()

    def actor(self, actor: Actor) -> str:
        """Who did something, by name where the bot knows it: never an internal id."""
        return actor.name or self.plain(f"actor_{actor.kind}")

    def status(self, status: str) -> str:
        key = f"status_{status}"
        return self(key) if self.has(key) else status


def describe_invalid(texts: Texts, error: InvalidInput, *, country: str) -> str:
    """Why a typed or loaded value was refused, in words (no example: callers add theirs)."""
    digits = vat_digits_for(country)
    if error.reason in ("vat_digits", "vat_length") and digits is not None:
        return texts(f"{error.reason}_count", digits=digits)
    if isinstance(error, InvalidText):
        return texts(error.reason, max=error.limit)
    return texts(error.reason)


_TAG = re.compile(r"<[^>]+>")


def html_to_text(text: str) -> str:
    """A message written in Telegram's HTML as the reader sees it: tags off, entities back
    to characters."""
    return html.unescape(_TAG.sub("", text))


class Markup(str):
    """Text that is already HTML and must not be escaped again."""


def _escape(value: Any) -> Any:
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return html.escape(value, quote=False)
    return value
