"""Configuration from the environment and `.env` (PRODUCT.md §4)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.problems import SetupError
from bot.storage.database import Timeouts
from bot.telegram.limits import BULK_PER_SECOND, PAID_PER_SECOND

# What @BotFather hands out: the bot's numeric id, a colon, 35 URL-safe characters.
_TOKEN_SHAPE = re.compile(r"^\d{5,}:[A-Za-z0-9_-]{30,}$")
_PLACEHOLDER_WORDS = ("changeme", "change-me", "your-token", "your_token", "placeholder", "example")
TELEGRAM_API = "https://api.telegram.org/bot"
DEFAULT_DATABASE_URL = "sqlite:///pai.db"
# VIES's REST interface: POST {"countryCode": "IT", "vatNumber": "00743110157"}.
VIES_URL = "https://ec.europa.eu/taxation_customs/vies/rest-api/check-vat-number"


class ConfigurationError(SetupError):
    """A setting is missing or wrong; the message is one sentence for the operator."""


def describe_setting_error(error: ValidationError) -> str:
    """A wrong setting in one sentence, without pydantic's own words around it."""
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem["loc"]).upper()
    message = str(problem["msg"]).removeprefix("Value error, ")
    if message.startswith(where):  # our own sentences name the setting already
        return message
    return f"setting {where}: {message}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    telegram_bot_token: SecretStr | None = None
    telegram_bot_username: str | None = None
    telegram_api_base_url: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    pai_rules_file: Path | None = None
    pai_admin_ids: Annotated[frozenset[int], NoDecode] = Field(default_factory=frozenset)
    # People beyond staff (a manager) who also get the daily digest of overdue items.
    pai_escalation_ids: Annotated[frozenset[int], NoDecode] = Field(default_factory=frozenset)
    # Seconds a statement may wait (PostgreSQL lock_timeout / statement_timeout, SQLite's
    # busy timeout): past them the user gets an apology instead of a bot that hangs.
    pai_pg_lock_timeout: float = Field(default=Timeouts.lock, gt=0)
    pai_pg_statement_timeout: float = Field(default=Timeouts.statement, gt=0)
    pai_sqlite_busy_timeout: float = Field(default=Timeouts.busy, gt=0)
    # Messages a second: Telegram's overall limit for the bot, and the share broadcasts
    # may use of it (answers to people always come first).
    pai_telegram_rate: float = Field(default=30, gt=0)
    pai_broadcast_rate: float | None = Field(default=None, gt=0)
    # Broadcasts as Telegram's paid broadcasts (allow_paid_broadcast): outside the overall
    # limit, up to 1,000 a second, charged by Telegram in Stars (PRODUCT.md §9).
    pai_paid_broadcast: bool = False
    # Webhook mode (production behind a proxy): unset means long polling.
    pai_webhook_url: str | None = None
    pai_webhook_secret: SecretStr | None = None
    pai_webhook_listen: str = "127.0.0.1:8080"
    # "text" for people reading a terminal, "json" for a log collector.
    pai_log_format: Literal["text", "json"] = "text"
    # The EU's VIES look-up beside every verdict (PRODUCT.md §6): `off` turns it off.
    pai_vies: bool = True
    pai_vies_url: str = VIES_URL
    # The web view inside Telegram (PRODUCT.md §7): its public https address, served by
    # the bot's own listener at that path; and how long Telegram's sign-in stays good.
    pai_webapp_url: str | None = None
    pai_webapp_max_age: int = Field(default=86400, gt=0)

    @field_validator("pai_admin_ids", "pai_escalation_ids", mode="before")
    @classmethod
    def _split_admin_ids(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.replace(";", ",").split(",")]
            try:
                return frozenset(int(part) for part in parts if part)
            except ValueError as exc:
                name = (info.field_name or "").upper()
                raise ValueError(f"{name} must be Telegram user ids separated by commas") from exc
        return value

    @field_validator(
        "telegram_bot_username",
        "telegram_api_base_url",
        "pai_rules_file",
        "pai_webhook_url",
        "pai_webhook_secret",
        "pai_broadcast_rate",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """`NAME=` in .env (as .env.example has it) means "not set", not an empty value."""
        if isinstance(value, str):
            value = value.strip().lstrip("@") or None
        return value

    @field_validator("database_url", "pai_webhook_listen", "pai_log_format", mode="before")
    @classmethod
    def _blank_is_default(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and not value.strip():
            return cls.model_fields[info.field_name or ""].default
        return value.strip() if isinstance(value, str) else value

    def require_token(self) -> str:
        """Return the bot token, or say in one sentence what is wrong with it."""
        if (
            self.telegram_bot_token is None
            or not self.telegram_bot_token.get_secret_value().strip()
        ):
            raise ConfigurationError(
                "TELEGRAM_BOT_TOKEN is not set: ask @BotFather for a token and put it in .env."
            )
        token = self.telegram_bot_token.get_secret_value().strip()
        lowered = token.lower()
        secret = token.partition(":")[2]
        if (
            not _TOKEN_SHAPE.match(token)
            or any(word in lowered for word in _PLACEHOLDER_WORDS)
            or len(set(secret)) < 10  # "AAAAAAAA…" or "xxxx…": filled in, not issued
        ):
            raise ConfigurationError(
                "TELEGRAM_BOT_TOKEN looks like a placeholder, not a token from @BotFather "
                "(which looks like 123456789:AAE...): put the real one in .env."
            )
        return token

    @property
    def bulk_rate(self) -> float:
        """Messages a second for reminders, and for broadcasts unless they are paid."""
        if self.pai_broadcast_rate is None or self.pai_paid_broadcast:
            return BULK_PER_SECOND
        return self.pai_broadcast_rate

    @property
    def paid_broadcast_rate(self) -> float | None:
        """Messages a second for paid broadcasts; None when broadcasts are not paid."""
        if not self.pai_paid_broadcast:
            return None
        return min(self.pai_broadcast_rate or PAID_PER_SECOND, PAID_PER_SECOND)

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(
            lock=self.pai_pg_lock_timeout,
            statement=self.pai_pg_statement_timeout,
            busy=self.pai_sqlite_busy_timeout,
        )

    @property
    def api_base_url(self) -> str:
        return (self.telegram_api_base_url or TELEGRAM_API).rstrip("/")

    @property
    def file_base_url(self) -> str:
        """Files live beside the methods: `…/bot` becomes `…/file/bot`, as on Telegram."""
        base = self.api_base_url
        if base.endswith("/bot"):
            return base[: -len("/bot")] + "/file/bot"
        return base + "/file/bot"
