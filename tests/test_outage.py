"""The real `pai-bot run` process while the Bot API is away for a while, and after."""

from __future__ import annotations

import time

import pytest

from bot.app.demo.telegram import FakeBotApi, User
from tests.fake_telegram_server import serve_http
from tests.harness import TOKEN
from tests.test_process import environment, invite_for_acme, running, wait_for_reply

# Every test here starts the real process.
pytestmark = pytest.mark.slow

OUTAGE = 8.0  # seconds the Bot API is away
ANSWER_WITHIN = 5.0  # seconds after it is back


def test_an_outage_logs_a_line_per_failure_and_answers_resume_within_seconds(tmp_path):
    fake = FakeBotApi()
    server, base_url = serve_http(fake, TOKEN)
    port = server.server_port
    env = environment(tmp_path, base_url)
    payload = invite_for_acme(env, tmp_path)
    user = User(id=99, language_code="en")
    log = tmp_path / "bot.log"
    try:
        with running(env, tmp_path, log) as process:
            fake.user_sends(user, f"/start {payload}")
            wait_for_reply(fake, user, 1)
            before = log.stat().st_size
            server.shutdown()
            server.server_close()
            time.sleep(OUTAGE / 2)
            fake.user_sends(user, "/help")  # sent while the bot cannot poll: Telegram keeps it
            time.sleep(OUTAGE / 2)
            during = log.read_bytes()[before:].decode()
            assert process.poll() is None
            server, _ = serve_http(fake, TOKEN, port=port)
            back = time.monotonic()
            wait_for_reply(fake, user, 2)
            kept_answered = time.monotonic() - back
            fake.user_sends(user, "/help")
            sent = time.monotonic()
            wait_for_reply(fake, user, 3)
            new_answered = time.monotonic() - sent
    finally:
        server.shutdown()
        server.server_close()
    lines = during.splitlines()
    failures = [line for line in lines if "cannot be reached" in line]
    # The in-flight long poll ends first (the fake holds it up to 2 s); then one failure
    # every 2 s at most, each one line.
    assert 2 <= len(failures) <= OUTAGE / 0.5
    assert len(lines) <= len(failures) + 2
    assert len(during) < 300 * len(failures) + 600
    assert "Traceback" not in during
    assert kept_answered < ANSWER_WITHIN
    assert new_answered < ANSWER_WITHIN
    assert "Traceback" not in log.read_text()
