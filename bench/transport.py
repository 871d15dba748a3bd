"""The bot's HTTP layer (bot/telegram/transport.py, aiohttp) against PTB's own (httpx).

A Bot API stand-in runs in a child process on 127.0.0.1 and answers every call with
the same Message; this process sends one message after another through PTB's
`Bot.send_message`, first on PTB's HTTPXRequest (the baseline), then on the bot's
AiohttpRequest, and prints the CPU time per send of this process (the server's own
is not counted) and the ratio.

    python -m bench.transport [--sends 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

from telegram import Bot
from telegram.request import BaseRequest, HTTPXRequest

from bot.telegram.transport import AiohttpRequest

PORT = 18555
SERVER = f"""
import json
from aiohttp import web
message = {{"message_id": 5, "date": 1700000000, "text": "hello there",
    "chat": {{"id": 1, "type": "private", "first_name": "Ada"}},
    "from": {{"id": 2, "is_bot": True, "first_name": "PAI", "username": "pai_bot"}}}}
body = json.dumps({{"ok": True, "result": message}}).encode()
async def answer(request):
    await request.read()
    return web.Response(body=body, content_type="application/json")
app = web.Application()
app.router.add_route("POST", "/{{tail:.*}}", answer)
web.run_app(app, host="127.0.0.1", port={PORT}, print=None)
"""


async def cpu_per_send(request: BaseRequest, sends: int) -> float:
    bot = Bot("123:abc", base_url=f"http://127.0.0.1:{PORT}/bot", request=request)
    await request.initialize()
    try:
        for _ in range(sends // 10):  # warm: connections open, caches filled
            await bot.send_message(1, "hello")
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            for _ in range(sends):
                await bot.send_message(1, "hello, how are you there")
            best = min(best, (time.process_time() - started) / sends)
        return best
    finally:
        await request.shutdown()


async def wait_for_server() -> None:
    for _ in range(100):
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise SystemExit("the stand-in Bot API did not start")


async def measure(sends: int) -> None:
    await wait_for_server()
    httpx_cpu = await cpu_per_send(HTTPXRequest(connection_pool_size=256), sends)
    aiohttp_cpu = await cpu_per_send(AiohttpRequest(connection_pool_size=256), sends)
    print(f"CPU per send_message, best of 3 runs of {sends}:")
    print(f"  PTB's HTTPXRequest (baseline): {httpx_cpu * 1e6:.0f} us")
    print(
        f"  the bot's AiohttpRequest:      {aiohttp_cpu * 1e6:.0f} us "
        f"({aiohttp_cpu / httpx_cpu:.2f}x the baseline)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=2000)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER])
    try:
        asyncio.run(measure(args.sends))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
