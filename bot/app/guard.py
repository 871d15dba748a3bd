"""The web listener's defences against whoever reaches its port: a bounded number of
connections, the oldest that has not shown its credentials closed first; accepting
paused, not spun, when the process runs out of file descriptors.

Tornado gives the rest: header and body timeouts, a cap on the body, and a handler
that sees the headers before the body (bot/app/web.py checks the secret there).
"""

from __future__ import annotations

import errno
import logging
import resource
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

log = logging.getLogger(__name__)
# Seconds a client has to send its request's headers, then its body: Telegram and a
# proxy send at once; a client that trickles holds a descriptor for nothing.
HEADER_TIMEOUT = 5.0
BODY_TIMEOUT = 5.0
# Connections at most: half the process's file descriptors, so that the database,
# the sends to Telegram (up to 256 connections) and the logs always have theirs.
MOST_CONNECTIONS = 1024
# Connections accepted at a time before the loop reads what the accepted ones sent
# (tornado takes 128): a newcomer's headers, the secret among them, are read before a
# flood of later connections can push it out as the oldest stranger.
ACCEPT_BATCH = 8
# Out of descriptors: accepting pauses this long, and it is said once a minute.
ACCEPT_PAUSE = 0.5
SAID_EVERY = 60.0
# Descriptors run out in these ways; the accept loop waits for one to be given back.
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def connection_cap() -> int:
    """How many connections the listener keeps open at once, below the descriptor limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MOST_CONNECTIONS
    return max(16, min(MOST_CONNECTIONS, soft // 2))


class Guard:
    """The connections open on the listener, and those whose last request to the webhook
    showed its secret (anyone may ask for /healthz: that proves nothing)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: list[IOStream] = []
        self._trusted: set[IOStream] = set()
        self.evicted = 0

    def admit(self, stream: IOStream) -> bool:
        """Keep the new connection if there is room, or make room by closing the oldest
        one that has not shown its credentials (a slow client, a scanner); False when
        every open one is a trusted one: the newcomer is closed instead."""
        if len(self._open) >= self.cap:
            # Closed ones are forgotten only when the count matters: at every accept,
            # under a flood, it would walk the whole list for nothing.
            self._open = [s for s in self._open if not s.closed()]
            self._trusted = {s for s in self._trusted if not s.closed()}
        if len(self._open) >= self.cap:
            victim = next((s for s in self._open if s not in self._trusted), None)
            if victim is None:
                stream.close()
                return False
            victim.close()
            self._open.remove(victim)
            self.evicted += 1
        self._open.append(stream)
        return True

    def trust(self, stream: IOStream) -> None:
        self._trusted.add(stream)

    def distrust(self, stream: IOStream) -> None:
        """A wrong secret on a connection once trusted (a proxy's, reused for anyone)."""
        self._trusted.discard(stream)


class GuardedServer(HTTPServer):
    """Tornado's HTTP server, with the `Guard` at the door and an accept loop that
    pauses when the process is out of descriptors (tornado's raises, and the event
    loop logs a traceback for every try, thousands a second)."""

    guard: Guard
    _said_at = 0.0

    def handle_stream(self, stream: IOStream, address: tuple[str, int]) -> None:
        if self.guard.admit(stream):
            super().handle_stream(stream, address)

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = self._accept_on(sock)

    def _accept_on(self, sock: socket.socket) -> Callable[[], None]:
        io_loop = IOLoop.current()
        removed = False

        def accept(fd: Any, events: int) -> None:
            for _ in range(ACCEPT_BATCH):
                if removed:
                    return
                try:
                    connection, address = sock.accept()
                except BlockingIOError:
                    return
                except ConnectionAbortedError:
                    continue
                except OSError as exc:
                    if exc.errno not in _EXHAUSTED:
                        raise
                    self._out_of_descriptors(exc)
                    io_loop.remove_handler(sock)
                    io_loop.call_later(ACCEPT_PAUSE, resume)
                    return
                self._handle_connection(connection, address)  # tornado's own next step

        def resume() -> None:
            if not removed:
                io_loop.add_handler(sock, accept, IOLoop.READ)

        def remove() -> None:
            nonlocal removed
            removed = True
            io_loop.remove_handler(sock)

        io_loop.add_handler(sock, accept, IOLoop.READ)
        return remove

    def _out_of_descriptors(self, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._said_at >= SAID_EVERY:
            self._said_at = now
            log.error(
                "the listener cannot accept connections: %s; it waits for some to close "
                "(said once a minute)",
                exc.strerror,
            )
