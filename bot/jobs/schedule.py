"""Work repeated at an interval, timed on the monotonic clock.

A scheduler on the wall clock (APScheduler, which PTB's JobQueue uses) waits for the
next run's date: after the system clock steps back an hour (NTP, a virtual machine
resumed), it waits an hour more, and the lease and the reminders stop with it. The
monotonic clock never steps, so neither does this: the work's own sense of the date
(`Resources.now()`) follows the wall clock, its rhythm does not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def every(
    seconds: float,
    work: Callable[[], Awaitable[None]],
    *,
    stopping: asyncio.Event,
    name: str,
    first: float | None = None,
) -> None:
    """Run `work` every `seconds` (the first time after `first`, by default one interval)
    until `stopping` is set: never two runs at once; a run that took longer than the
    interval is followed by one more at once, not by a burst. A failure is logged; the
    next run comes as usual."""
    loop = asyncio.get_running_loop()
    due = loop.time() + (seconds if first is None else first)
    while True:
        try:
            await asyncio.wait_for(stopping.wait(), max(0.0, due - loop.time()))
        except TimeoutError:
            pass
        else:
            return
        try:
            await work()
        except Exception:
            log.exception("%s failed", name)
        due = max(due + seconds, loop.time())
