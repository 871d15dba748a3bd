"""A VIES of our own over HTTP, from the EU's published REST interface: POST
`/check-vat-number` with `{"countryCode": "IT", "vatNumber": "00743110157"}`.

Answers as VIES does: 200 with `valid`, `name` and `address` ("---" where a member
state withholds them); errors as `{"actionSucceed": false, "errorWrappers": [{"error":
"MS_UNAVAILABLE", ...}]}` with a 4xx or 5xx status. Each VAT number's behaviour is set
by the test; a number with none is valid and named after itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

# What a VAT number gets: ("valid", name) / ("invalid",) / ("error", CODE) / ("html",) /
# ("garbage",) / ("deep",) / ("hang",) — the last waits until the test ends.
Behaviour = tuple[str, ...]


@dataclass
class FakeVies:
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    # Held by every request while set: to see how many wait at once.
    gate: asyncio.Event | None = None
    url: str = ""

    async def check(self, request: web.Request) -> web.Response:
        body = await request.json()
        vat = f"{body['countryCode']}{body['vatNumber']}"
        self.asked.append(vat)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            return await self._answer(vat, body)
        finally:
            self.in_flight -= 1

    async def _answer(self, vat: str, body: dict[str, str]) -> web.Response:
        behaviour = self.behaviours.get(vat, ("valid", f"COMPANY {vat}"))
        kind = behaviour[0]
        if kind == "hang":
            await asyncio.sleep(3600)
        if kind == "html":
            return web.Response(
                status=503,
                text="<html><body>Service Unavailable</body></html>",
                content_type="text/html",
            )
        if kind == "deep":  # nested past any parser's recursion
            return web.Response(status=200, text="[" * 100_000, content_type="application/json")
        if kind == "garbage":
            return web.Response(status=200, text="{not json", content_type="application/json")
        if kind == "error":
            status = 400 if behaviour[1] == "INVALID_INPUT" else 500
            return web.json_response(
                {
                    "actionSucceed": False,
                    "errorWrappers": [{"error": behaviour[1], "message": "fake"}],
                },
                status=status,
            )
        valid = kind == "valid"
        return web.json_response(
            {
                "countryCode": body["countryCode"],
                "vatNumber": body["vatNumber"],
                "requestDate": "2026-11-24T10:30:00.000Z",
                "valid": valid,
                "requestIdentifier": "",
                "name": behaviour[1] if valid and len(behaviour) > 1 else "---",
                "address": "VIA ROMA 12\n20121 MILANO MI\n" if valid else "---",
                "traderName": "---",
            },
            dumps=json.dumps,
        )


@asynccontextmanager
async def serving_vies() -> AsyncIterator[FakeVies]:
    """The fake on a free port of 127.0.0.1, in the test's event loop."""
    fake = FakeVies()
    app = web.Application()
    app.router.add_post("/check-vat-number", fake.check)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}/check-vat-number"
    try:
        yield fake
    finally:
        if fake.gate is not None:
            fake.gate.set()
        await runner.cleanup()
