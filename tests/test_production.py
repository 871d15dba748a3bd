"""Production: the real process restarted mid-conversation, killed mid-Confirm, in
webhook mode, as two instances — on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from tests.conftest import reset_postgresql
from tests.factories import VATS
from tests.fake_bot_api import FakeBotApi, User
from tests.harness import button_data
from tests.test_process import api, environment, invite_for_acme, running  # noqa: F401

WEBHOOK_URL = "https://bot.example.com/tg/hook"


@pytest.fixture
async def database(database_url: str) -> str:
    if database_url.startswith("postgresql"):
        await reset_postgresql(database_url)
    return database_url


def env_for(tmp_path: Path, base_url: str, database_url: str, **extra: str) -> dict[str, str]:
    env = environment(tmp_path, base_url)
    env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def webhook_env(env: dict[str, str], port: int) -> dict[str, str]:
    return {**env, "PAI_WEBHOOK_URL": WEBHOOK_URL, "PAI_WEBHOOK_LISTEN": f"127.0.0.1:{port}"}


def http(
    port: int, path: str, body: dict[str, Any] | None = None, secret: str | None = None
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for_listener(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the bot stopped"
        try:
            if http(port, "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("the webhook listener did not come up")


def webhook_secret(fake: FakeBotApi) -> str:
    calls = [params for method, params in fake.calls if method == "setWebhook"]
    assert calls, "the webhook was not registered"
    return str(calls[-1]["secret_token"])


class Salesperson:
    """A salesperson chatting with the bot through the fake, by polling or by webhook."""

    def __init__(self, fake: FakeBotApi, user: User) -> None:
        self.fake, self.user = fake, user
        self.port: int | None = None  # set: updates are posted to this instance
        self.secret = ""

    def _deliver(self, update: dict[str, Any]) -> None:
        if self.port is None:
            return  # the process polls it
        with self.fake._changed:
            self.fake.pending.remove(update)
        status, _ = http(self.port, "/tg/hook", update, self.secret)
        assert status == 200

    def says(self, text: str) -> None:
        self._deliver(self.fake.user_sends(self.user, text))

    def presses(self, label: str) -> None:
        message = self.message_with_button(label)
        self._deliver(self.fake.user_presses(self.user, message, button_data(message, label)))

    def message_with_button(self, label: str) -> dict[str, Any]:
        found = self._with_button(label)
        if found is None:
            raise AssertionError(f"no message with a {label!r} button")
        return found

    def _with_button(self, label: str) -> dict[str, Any] | None:
        for message in reversed(self.fake.sent_to(self.user.id)):
            keyboard = message.get("reply_markup", {}).get("inline_keyboard", [])
            if any(label in button["text"] for row in keyboard for button in row):
                return message
        return None

    def waits_for_button(self, label: str, timeout: float = 30) -> None:
        self.fake.wait_for(lambda: self._with_button(label) is not None, timeout=timeout)

    def count(self, fragment: str) -> int:
        return sum(fragment in m.get("text", "") for m in self.fake.sent_to(self.user.id))

    def waits_for(self, fragment: str, seen: int = 0, timeout: float = 30) -> None:
        """Wait until more than `seen` of the bot's messages contain `fragment`."""
        self.fake.wait_for(lambda: self.count(fragment) > seen, timeout=timeout)


def registrations(database_url: str) -> list[tuple[str, str]]:
    query = "SELECT vat, product FROM registration ORDER BY id"
    if database_url.startswith("sqlite"):
        with sqlite3.connect(str(make_url(database_url).database)) as connection:
            return [tuple(row) for row in connection.execute(query)]
    import asyncio

    import asyncpg

    async def read() -> list[tuple[str, str]]:
        connection = await asyncpg.connect(database_url)
        try:
            return [tuple(row) for row in await connection.fetch(query)]
        finally:
            await connection.close()

    return asyncio.run(read())


def start_registration(person: Salesperson) -> None:
    """/new, the VAT, the company and the deal value: the bot then asks for the product."""
    person.says(f"/new {VATS[3]}")
    person.waits_for("company name")
    person.says("Rossi Srl")
    person.waits_for("Estimated deal value")
    person.says("2000")
    person.waits_for("What are you selling")


def finish_registration(person: Salesperson) -> None:
    person.says("Gestionale cloud")
    person.waits_for("Expected close date")
    person.presses("In 30 days")
    person.waits_for_button("Confirm")
    person.presses("Confirm")
    person.waits_for("Registered")


def test_a_registration_half_typed_survives_a_sigkill(api, tmp_path, database):  # noqa: F811
    fake, base_url = api
    env = env_for(tmp_path, base_url, database)
    payload = invite_for_acme(env, tmp_path)
    person = Salesperson(fake, User(id=501, language_code="en"))
    with running(env, tmp_path, tmp_path / "first.log") as process:
        person.says(f"/start {payload}")
        person.waits_for("Acme Informatica")
        start_registration(person)
        process.kill()  # SIGKILL: no chance to save anything on the way out
        process.wait()
    with running(env, tmp_path, tmp_path / "second.log"):
        # The next answer is read as the product, as if nothing had happened.
        finish_registration(person)
    assert registrations(database) == [(VATS[3], "Gestionale cloud")]
    assert person.count("Which customer") == 0  # never asked to start over
    assert person.count("Something went wrong") == 0
