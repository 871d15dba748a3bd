"""Configuration from the environment and .env (PRODUCT.md §4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigurationError, Settings
from bot.storage.database import DatabaseUrlError, async_url

EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"
VARIABLES = [
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_BOT_USERNAME",
    "TELEGRAM_API_BASE_URL",
    "DATABASE_URL",
    "PAI_RULES_FILE",
    "PAI_ADMIN_IDS",
]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_env_example_lists_every_variable_with_a_comment():
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for name in VARIABLES:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{name}="))
        assert lines[index - 1].startswith("#"), name


def test_the_example_file_as_is_gives_the_defaults(clean_env):
    (clean_env / ".env").write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    settings = Settings()
    assert settings.database_url == "sqlite:///pai.db"
    assert settings.pai_rules_file is None
    assert settings.pai_admin_ids == frozenset()
    assert settings.api_base_url == "https://api.telegram.org/bot"
    with pytest.raises(ConfigurationError, match="not set"):
        settings.require_token()


def test_dotenv_values_are_read_and_environment_wins(clean_env, monkeypatch):
    (clean_env / ".env").write_text(
        "PAI_ADMIN_IDS=11, 22;33\nTELEGRAM_BOT_USERNAME=@pai_bot\nDATABASE_URL=sqlite:///x.db\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/pai")
    settings = Settings()
    assert settings.pai_admin_ids == frozenset({11, 22, 33})
    assert settings.telegram_bot_username == "pai_bot"
    assert settings.database_url == "postgresql://u:p@db/pai"


@pytest.mark.parametrize(
    "token",
    [
        "changeme",
        "123456:your-token-here",
        "123456789:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "abc:def",
    ],
)
def test_placeholder_tokens_are_refused(clean_env, token):
    with pytest.raises(ConfigurationError, match="placeholder"):
        Settings(telegram_bot_token=token).require_token()


def test_a_real_looking_token_is_accepted(clean_env):
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
    assert Settings(telegram_bot_token=token).require_token() == token


def test_self_hosted_bot_api_sets_both_method_and_file_urls(clean_env):
    settings = Settings(telegram_api_base_url="http://127.0.0.1:8081/bot/")
    assert settings.api_base_url == "http://127.0.0.1:8081/bot"
    assert settings.file_base_url == "http://127.0.0.1:8081/file/bot"


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///pai.db", "sqlite+aiosqlite"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg"),
        ("postgres://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg2://u:p@h/db", "postgresql+asyncpg"),
    ],
)
def test_database_urls_map_to_async_drivers(url, driver):
    assert async_url(url).drivername == driver


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "not a url :("])
def test_other_databases_are_refused_without_echoing_the_url(url):
    with pytest.raises(DatabaseUrlError) as caught:
        async_url(url)
    assert "p@h" not in str(caught.value)


@pytest.mark.parametrize(
    ("environment", "bulk", "paid"),
    [
        ({}, 25, None),
        ({"PAI_BROADCAST_RATE": ""}, 25, None),
        ({"PAI_PAID_BROADCAST": "1", "PAI_BROADCAST_RATE": ""}, 25, 1000),
        ({"PAI_BROADCAST_RATE": "10"}, 10, None),
        ({"PAI_PAID_BROADCAST": "1"}, 25, 1000),
        ({"PAI_PAID_BROADCAST": "1", "PAI_BROADCAST_RATE": "400"}, 25, 400),
        ({"PAI_PAID_BROADCAST": "1", "PAI_BROADCAST_RATE": "5000"}, 25, 1000),
    ],
)
def test_paid_broadcasts_get_their_own_rate_up_to_telegrams_1000_and_reminders_keep_25(
    clean_env, monkeypatch, environment, bulk, paid
):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.bulk_rate, settings.paid_broadcast_rate) == (bulk, paid)
