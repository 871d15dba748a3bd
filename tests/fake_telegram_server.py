"""The embedded Telegram (bot/app/demo/telegram.py) served over HTTP on 127.0.0.1, for the
tests and benchmarks that run the real `pai-bot` process against it."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from bot.app.demo.telegram import FakeBotApi


def _form_value(key: str, value: str) -> Any:
    """A form field as python-telegram-bot sends it: strings as they are, objects and lists
    JSON-encoded."""
    return json.loads(value) if value[:1] in "{[" and key not in {"text", "caption"} else value


def serve_http(
    api: FakeBotApi, token: str, port: int = 0, *, keep_alive: bool = False
) -> tuple[ThreadingHTTPServer, str]:
    """Serve `api` on 127.0.0.1 (a free port unless given); return the server and `…/bot` URL.

    By default each connection carries one call (HTTP/1.0); `keep_alive` keeps it open for
    the next, as Telegram does (HTTP/1.1): a benchmark's way to time the bot, not the connects.
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
        # Headers and body go in separate writes: on a kept connection Nagle's algorithm
        # would hold the body back until the client's delayed ACK, 40 ms later.
        disable_nagle_algorithm = keep_alive

        def do_POST(self) -> None:
            prefix = f"/bot{token}/"
            if not self.path.startswith(prefix):
                self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            params: dict[str, Any] = {}
            if "json" in (self.headers.get("Content-Type") or ""):
                params = json.loads(body or "{}")
            else:
                for key, values in parse_qs(body).items():
                    params[key] = _form_value(key, values[0])
            code, answer = api.handle(self.path[len(prefix) :], params)
            self._answer(code, answer)

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            # A bot that stops mid long-poll hangs up on us: normal, not worth a traceback.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/bot"
