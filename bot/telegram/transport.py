"""How the bot talks HTTP to the Bot API: python-telegram-bot's network layer on aiohttp.

PTB's own layer runs on httpx, which spends about three times the CPU per call: a
send cost 0.95 ms of the bot's CPU on httpx and 0.34 ms here (bench/transport.py,
same server, same PTB). Every update costs a getUpdates and one or two sends, so
this is the largest single part of what the bot spends per update.

What PTB asks of a network layer (`BaseRequest.do_request`): the status and the body
of the answer, `TimedOut` when a timeout ran out, `NetworkError` for anything else
that failed. The cause is kept on both, so that `bot.ratelimit.surely_not_delivered`
can tell a connection that never opened (safe to send again) from one that broke
while Telegram may have been reading.
"""

from __future__ import annotations

import json
import ssl
import sys

import aiohttp
import certifi
from aiohttp.helpers import get_env_proxy_for_url
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import JSONDict, ODVInput
from telegram.error import NetworkError, TelegramError, TimedOut
from telegram.request import BaseRequest, RequestData
from yarl import URL

# PTB's defaults for its own layer (HTTPXRequest), in seconds.
READ_TIMEOUT = 5.0
WRITE_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
POOL_TIMEOUT = 1.0
MEDIA_WRITE_TIMEOUT = 20.0
# Seconds an idle connection is kept for the next call: httpx's keep-alive expiry.
KEEP_IDLE = 5.0

# aiohttp's exceptions for a request that never left: the connection could not be
# opened, or no connection of the pool came free in time.
NEVER_CONNECTED: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
)


def parse_json_quietly(payload: bytes) -> JSONDict:
    """The Bot API's answer as JSON. PTB's own logs a body that is not JSON (a proxy's
    HTML 502 page) with a traceback and its whole content; this leaves the failure to
    the caller's one line."""
    try:
        answer = json.loads(payload.decode("utf-8", "replace"))
    except ValueError as exc:
        raise TelegramError("Invalid server response") from exc
    if not isinstance(answer, dict):
        raise TelegramError("Invalid server response")
    return answer


class AiohttpRequest(BaseRequest):
    """A pool of kept-alive connections to the Bot API, opened in `initialize`.

    `connection_pool_size` bounds the connections open at once: 1 for long polling,
    more for the sends of users answered side by side. As PTB's httpx layer does:
    certificates are checked against certifi's, a proxy is taken from the environment
    (HTTP_PROXY/HTTPS_PROXY with an http:// address, NO_PROXY; not SOCKS, which httpx
    did not do without an extra either), redirects are not followed (aiohttp would post
    the message again to the new address), and idle connections are closed after 5 s
    (one the server closed first fails a send that is then never retried).
    """

    def __init__(self, connection_pool_size: int = 1) -> None:
        self._pool_size = connection_pool_size
        self._session: aiohttp.ClientSession | None = None
        # Per scheme and host: the proxy to go through, if any.
        self._proxies: dict[str, tuple[URL, aiohttp.BasicAuth | None] | None] = {}

    @property
    def read_timeout(self) -> float:
        return READ_TIMEOUT

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._pool_size,
                keepalive_timeout=KEEP_IDLE,
                ssl=ssl.create_default_context(cafile=certifi.where()),
                # Python before 3.12.8 can leak a TLS connection whose peer never closes
                # it; aiohttp cleans them up when asked (and warns when asked needlessly).
                enable_cleanup_closed=sys.version_info < (3, 12, 8),
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self.USER_AGENT}
            )

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @staticmethod
    def parse_json_payload(payload: bytes) -> JSONDict:
        return parse_json_quietly(payload)

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        uploads = request_data is not None and request_data.contains_files
        timeout = _timeout(
            read=_given(read_timeout, READ_TIMEOUT),
            write=_given(write_timeout, MEDIA_WRITE_TIMEOUT if uploads else WRITE_TIMEOUT),
            connect=_given(connect_timeout, CONNECT_TIMEOUT),
            pool=_given(pool_timeout, POOL_TIMEOUT),
        )
        proxy, proxy_auth = self._proxy_for(url) or (None, None)
        try:
            async with self._session.request(
                method,
                url,
                data=_body(request_data),
                timeout=timeout,
                proxy=proxy,
                proxy_auth=proxy_auth,
                allow_redirects=False,
            ) as response:
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError as err:
            raise TimedOut(
                "Connect or pool timeout: the request was *not* sent to Telegram"
            ) from err
        except TimeoutError as err:  # aiohttp's read timeout, or the whole request's
            raise TimedOut from err
        except aiohttp.ClientError as err:
            # The class name says what happened when the message is empty.
            raise NetworkError(f"aiohttp.{type(err).__name__}: {err}") from err

    def _proxy_for(self, url: str) -> tuple[URL, aiohttp.BasicAuth | None] | None:
        """The environment's proxy for the URL's host, looked up once per host.

        Not aiohttp's `trust_env`: it looks the environment (and ~/.netrc) up again on
        every request, which costs more than the rest of the request together.
        """
        path_at = url.find("/", url.find("//") + 2)
        origin = url if path_at < 0 else url[:path_at]
        if origin not in self._proxies:
            try:
                self._proxies[origin] = get_env_proxy_for_url(URL(origin))
            except LookupError:
                self._proxies[origin] = None
        return self._proxies[origin]


def _given(value: ODVInput[float], default: float) -> float | None:
    """The timeout asked for, or this layer's default where PTB passed none."""
    return default if isinstance(value, DefaultValue) else value


def _timeout(
    *, read: float | None, write: float | None, connect: float | None, pool: float | None
) -> aiohttp.ClientTimeout:
    """PTB's four timeouts in aiohttp's terms.

    aiohttp's `connect` covers waiting for a free connection and opening one, and
    `sock_read` each wait for the answer. It has no write timeout: the whole request
    is bounded by the sum instead, so a peer that stops reading cannot hang a send.
    """
    parts = (read, write, connect, pool)
    total = None if None in parts else sum(p for p in parts if p is not None)
    waiting = None if connect is None or pool is None else connect + pool
    return aiohttp.ClientTimeout(total=total, connect=waiting, sock_connect=connect, sock_read=read)


def _body(request_data: RequestData | None) -> aiohttp.FormData | dict[str, str] | None:
    """The parameters as a form, as Telegram takes them; multipart when files go with them."""
    if request_data is None:
        return None
    fields = request_data.json_parameters
    if not request_data.contains_files:
        return fields
    # Names as they are (UTF-8), not percent-encoded, as httpx sends them.
    form = aiohttp.FormData(quote_fields=False)
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, content, content_type) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=content_type)
    return form
