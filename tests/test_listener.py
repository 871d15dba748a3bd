"""The webhook's listener against whoever reaches its port: strangers refused before
their body is read, trickling clients cut off, connections capped with the oldest
stranger closed first, and an accept loop that waits when descriptors run out."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import http.client as http_client
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from telegram import Bot

from bot.app import guard as guard_module
from bot.app import web
from bot.app.demo.telegram import FakeBotApi, User
from bot.app.guard import GuardedServer
from bot.logs import QUIET_LOGGERS
from tests.test_process import api as api  # the fake Bot API, as a fixture
from tests.test_process import environment, invite_for_acme, running
from tests.test_production import Salesperson, free_port, http, wait_for_listener, webhook_env

SECRET = "s3cret-for-the-listener"
PATH = "/tg/hook"
MEGABYTE = 1_000_000
SECRET_LINE = f"X-Telegram-Bot-Api-Secret-Token: {SECRET}\r\n".encode()
UPDATE = {
    "update_id": 7,
    "message": {
        "message_id": 1,
        "date": 0,
        "chat": {"id": 42, "type": "private"},
        "from": {"id": 42, "is_bot": False, "first_name": "Anna"},
        "text": "/start",
    },
}


class Listening(SimpleNamespace):
    port: int
    server: GuardedServer
    queue: asyncio.Queue[Any]
    clients: list[asyncio.StreamWriter]

    async def connect(
        self, port: int | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port or self.port)
        self.clients.append(writer)
        return reader, writer


@pytest.fixture
async def listening(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Listening]:
    """The listener as serve_webhook builds it, on a free port of this process, with a
    stand-in for the application: only its bot and its update queue are used. A test
    may ask for a cap on connections as the fixture's parameter."""
    if hasattr(request, "param"):
        monkeypatch.setattr(web, "connection_cap", lambda: request.param)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    application: Any = SimpleNamespace(bot=Bot("123:abc"), update_queue=queue)
    webhook = web.Webhook(url="https://bot.example.com" + PATH, path=PATH, host="", port=0)
    server = web.guarded_server(lambda guard: web.listener(application, webhook, SECRET, guard))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    server.add_sockets([sock])
    listening = Listening(port=sock.getsockname()[1], server=server, queue=queue, clients=[])
    yield listening
    for writer in listening.clients:
        writer.close()
    server.stop()
    await server.close_all_connections()


def head(length: int, secret: str | None = None, path: str = PATH, method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: bot", f"Content-Length: {length}"]
    if secret is not None:
        lines.append(f"X-Telegram-Bot-Api-Secret-Token: {secret}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def status_of(reader: asyncio.StreamReader) -> int:
    line = await asyncio.wait_for(reader.readline(), 5)
    assert line, "the listener closed the connection without answering"
    status = int(line.split()[1])
    length = 0
    while (header := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = header.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes, secret: str
) -> int:
    writer.write(head(len(body), secret) + body)
    return await status_of(reader)


async def closed_by_the_listener(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 5) == b""
    except ConnectionResetError:
        return True


async def test_a_posted_update_with_the_secret_reaches_the_queue(listening):
    reader, writer = await listening.connect()
    assert await post(reader, writer, json.dumps(UPDATE).encode(), SECRET) == 200
    update = listening.queue.get_nowait()
    assert update.update_id == 7 and update.effective_user.first_name == "Anna"
    # The same connection serves the next update: Telegram and proxies keep theirs open.
    assert await post(reader, writer, b"{not json", SECRET) == 400
    writer.close()


async def test_a_stranger_is_refused_before_a_byte_of_its_body_is_read(listening):
    reader, writer = await listening.connect()
    writer.write(head(900_000))  # announces most of a megabyte, sends none of it
    assert await status_of(reader) == 403
    assert await closed_by_the_listener(reader)  # the body is not waited for
    reader, writer = await listening.connect()
    writer.write(head(900_000, SECRET[:-1] + "x"))
    assert await status_of(reader) == 403
    assert listening.queue.empty()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", PATH, 403), ("PUT", PATH, 403), ("POST", "/healthz", 400), ("POST", "/x", 400)],
)
async def test_no_other_method_or_path_reads_a_strangers_body(listening, method, path, status):
    """Only a request to the webhook that shows the secret is read past a few kB."""
    reader, writer = await listening.connect()
    writer.write(head(900_000, method=method, path=path))  # and none of the body
    assert await status_of(reader) == status
    assert await closed_by_the_listener(reader)


async def test_what_anyone_can_send_by_the_thousand_is_answered_not_logged(listening, caplog):
    caplog.set_level(logging.DEBUG)
    for name, level in QUIET_LOGGERS.items():  # as the bot sets its logging up
        caplog.set_level(level, logger=name)
    reader, writer = await listening.connect()
    for _ in range(50):  # pipelined on one connection: each answered 405
        writer.write(b"DELETE /tg/hook HTTP/1.1\r\nHost: bot\r\n" + SECRET_LINE + b"\r\n")
    statuses = [await status_of(reader) for _ in range(50)]
    assert statuses == [405] * 50
    for request in (b"NOT HTTP\r\n\r\n", head(10) + b"{", head(10**9, SECRET)):
        reader, writer = await listening.connect()
        writer.write(request)
        writer.close()
    await asyncio.sleep(0.1)
    said = [r for r in caplog.records if r.levelno >= logging.WARNING or "tornado" in r.name]
    assert said == []


async def test_a_body_larger_than_any_update_is_refused_unread(listening):
    reader, writer = await listening.connect()
    writer.write(head(web.MAX_BODY + 1, SECRET))
    assert await status_of(reader) == 400
    assert await closed_by_the_listener(reader)
    assert listening.queue.empty()


async def test_headers_without_end_are_cut_off(listening):
    reader, writer = await listening.connect()
    writer.write(b"POST /tg/hook HTTP/1.1\r\nX-Padding: " + b"a" * (web.MAX_HEADERS + 10))
    assert await closed_by_the_listener(reader)


@pytest.fixture
def short_deadlines(monkeypatch: pytest.MonkeyPatch) -> float:
    """Tornado's own deadlines, as the listener sets them, made short to be seen."""
    monkeypatch.setattr(web, "HEADER_TIMEOUT", 0.2)
    monkeypatch.setattr(web, "BODY_TIMEOUT", 0.2)
    return 0.2


async def test_a_client_that_trickles_its_headers_or_its_body_is_cut_off(
    short_deadlines, listening
):
    reader, writer = await listening.connect()
    writer.write(b"POST /tg/hook HTTP/1.1\r\n")  # and the rest never comes
    assert await closed_by_the_listener(reader)
    reader, writer = await listening.connect()
    writer.write(head(1000, SECRET) + b'{"update_id"')  # a body that stops short
    assert await closed_by_the_listener(reader)
    assert listening.queue.empty()
    reader, writer = await listening.connect()  # and the listener still serves
    assert await post(reader, writer, json.dumps(UPDATE).encode(), SECRET) == 200


@pytest.mark.parametrize("listening", [4], indirect=True)
async def test_past_the_cap_the_oldest_stranger_is_closed_never_telegram(listening):
    telegram = await listening.connect()
    assert await post(*telegram, json.dumps(UPDATE).encode(), SECRET) == 200
    strangers = [await listening.connect() for _ in range(3)]
    for _reader, writer in strangers:
        writer.write(b"POST /tg/hook HTTP/1.1\r\n")  # holding their connections
    await asyncio.sleep(0.05)
    newcomer = await listening.connect()  # the fifth: over the cap of 4
    assert await closed_by_the_listener(strangers[0][0])
    # Telegram's connection, opened first but proven, is still served; so is the newcomer.
    assert await post(*telegram, json.dumps({**UPDATE, "update_id": 8}).encode(), SECRET) == 200
    assert await post(*newcomer, json.dumps({**UPDATE, "update_id": 9}).encode(), SECRET) == 200
    assert listening.server.guard.evicted >= 1
    assert [listening.queue.get_nowait().update_id for _ in range(3)] == [7, 8, 9]


def test_the_cap_leaves_half_the_descriptors_to_the_rest_of_the_bot(monkeypatch):
    monkeypatch.setattr(guard_module.resource, "getrlimit", lambda _which: (256, 4096))
    assert guard_module.connection_cap() == 128
    monkeypatch.setattr(guard_module.resource, "getrlimit", lambda _which: (65536, 65536))
    assert guard_module.connection_cap() == guard_module.MOST_CONNECTIONS


class RunsOutOfDescriptors(socket.socket):
    """A listening socket whose first accepts fail as they do when the process has no
    descriptor left."""

    failures = 0

    def accept(self) -> tuple[socket.socket, Any]:
        if self.failures > 0:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


async def test_out_of_descriptors_the_listener_waits_and_says_so_once(
    monkeypatch, caplog, listening
):
    monkeypatch.setattr(guard_module, "ACCEPT_PAUSE", 0.05)
    caplog.set_level(logging.ERROR, logger="bot.app.guard")
    sock = RunsOutOfDescriptors()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    sock.failures = 3
    listening.server.add_sockets([sock])
    reader, writer = await listening.connect(sock.getsockname()[1])
    assert await post(reader, writer, json.dumps(UPDATE).encode(), SECRET) == 200
    assert sock.failures == 0
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "the listener cannot accept connections: Too many open files; it waits for some "
        "to close (said once a minute)"
    ]


class Attack:
    """Strangers at the listener's port, from a thread of their own: some trickle
    headers and come back when cut off (slowloris), some send a megabyte without the
    secret (to the webhook, as a GET, to /healthz), over and over."""

    def __init__(self, port: int, trickling: int, posting: int) -> None:
        self.port, self.trickling, self.posting = port, trickling, posting
        self.connections = 0
        # Where the megabytes go: the webhook, and what else a stranger may try.
        self._targets = itertools.cycle([("POST", PATH), ("GET", PATH), ("POST", "/healthz")])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(),), daemon=True)

    def __enter__(self) -> Attack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def _run(self) -> None:
        attackers = [self._again(self._trickle) for _ in range(self.trickling)]
        attackers += [self._again(self._post_a_megabyte) for _ in range(self.posting)]
        await asyncio.gather(*attackers)

    async def _again(
        self, talk: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    ) -> None:
        """Connect, talk, and when the listener hangs up, connect again."""
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            self.connections += 1
            try:
                await talk(reader, writer)
            except (OSError, TimeoutError):
                pass
            finally:
                writer.close()

    async def _trickle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"POST /tg/hook HTTP/1.1\r\nHost: bot\r\n")
        while not self._stop.is_set() and not reader.at_eof():
            writer.write(b"X-a: b\r\n")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(1), 0.5)

    async def _post_a_megabyte(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        method, path = next(self._targets)
        writer.write(head(MEGABYTE, method=method, path=path) + b"x" * MEGABYTE)
        await writer.drain()
        await asyncio.wait_for(reader.read(), 10)


def resident_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    kilobytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
    return int(kilobytes) / 1024


class Retrying:
    """Telegram and a health checker, which try again when a connection is dropped
    without an answer: past the cap, a newcomer may be the one a flood pushes out."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.tries = self.requests = 0

    def __call__(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, float]:
        self.requests += 1
        started = time.monotonic()
        for _ in range(5):
            self.tries += 1
            try:
                status, _ = http(self.port, path, body, SECRET if body else None)
                return status, time.monotonic() - started
            except (http_client.RemoteDisconnected, ConnectionError):
                time.sleep(0.1)
        raise AssertionError(f"{path} went unanswered five times")


@pytest.mark.slow
def test_under_attack_the_listener_still_serves_telegram_and_healthz(api, tmp_path):
    """As the attack was first seen: 1,100 slow clients and 200 posting a megabyte
    without the secret, at a process allowed the usual 1,024 descriptors. Telegram's
    updates and /healthz are still answered, memory stays put, and the log holds no
    traceback."""
    fake, base_url = api
    port = free_port()
    env = webhook_env(environment(tmp_path, base_url), port)
    env["PAI_WEBHOOK_SECRET"] = SECRET
    payload = invite_for_acme(env, tmp_path)
    person = Salesperson(fake, User(id=505, language_code="en"))
    telegram = Retrying(port)
    log = tmp_path / "bot.log"
    with running(env, tmp_path, log, prefix=("prlimit", "--nofile=1024")) as process:
        wait_for_listener(port, process)
        before = resident_mb(process.pid)
        with Attack(port, trickling=1100, posting=200) as attack:
            fake.wait_for(lambda: attack.connections > 2000, timeout=60)
            started = time.monotonic()
            assert telegram(PATH, taken(fake, fake.user_sends(person.user, f"/start {payload}")))
            person.waits_for("Acme Informatica")
            answered = time.monotonic() - started
            status, healthz = telegram("/healthz")
            assert status == 200
            # Telegram's retry of the same update, as after a lost 200: handled once.
            helped = person.count("/new")
            update = taken(fake, fake.user_sends(person.user, "/help"))
            for _ in range(2):
                assert telegram(PATH, update)[0] == 200
            person.waits_for("/new", seen=helped)
            fake.wait_for(lambda: "outcome=duplicate" in log.read_text(), timeout=30)
            assert person.count("/new") == helped + 1
            during = resident_mb(process.pid)
            seen = attack.connections
        after = resident_mb(process.pid)
        assert process.poll() is None
    text = log.read_text()
    print(
        f"\nunder attack ({seen} connections): update answered in {answered:.2f} s, "
        f"/healthz in {healthz:.2f} s, {telegram.tries} tries for {telegram.requests} "
        f"requests; memory {before:.0f} MB before, {during:.0f} MB during, {after:.0f} MB after"
    )
    assert max(during, after) - before < 50
    assert "Traceback" not in text and "Too many open files" not in text


def taken(fake: FakeBotApi, update: dict[str, Any]) -> dict[str, Any]:
    """The update, out of the fake's queue: it goes to the webhook instead."""
    with fake._changed:
        fake.pending.remove(update)
    return update
