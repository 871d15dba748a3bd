"""One instance leads: it polls (in polling mode), runs the scheduled work and sends
broadcasts. The others answer users (webhook mode) or wait to take over (polling).

Leadership is a lease row in the database, renewed every RENEW_EVERY; an instance that
dies stops renewing, and another takes over once the lease has run out (LEASE_TTL),
well within a minute. Work done under the lease is claimed row by row (reminders,
broadcast deliveries), so even a leader that lost its lease while busy cannot send
anything twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket

from bot.resources import Resources
from bot.services.leases import give_up_lease, hold_lease, lease_holder

log = logging.getLogger(__name__)
LEADER = "leader"
LEASE_TTL = dt.timedelta(seconds=30)
RENEW_EVERY = dt.timedelta(seconds=10)


def instance_name() -> str:
    """Who holds a lease, as an operator reads it: host, process, and a random part
    (a process id can come back after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def died_here(holder: str) -> bool:
    """Whether `holder` was a process of this machine (or container) that is gone: a
    bot restarted after a crash takes its own lease back at once, not in LEASE_TTL."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True  # a restarted container gives us the pid the crashed process had
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


class Leadership:
    """This instance's claim on the leader lease, as of its last renewal."""

    def __init__(self, shared: Resources, holder: str | None = None) -> None:
        self._shared = shared
        self.holder = holder or instance_name()
        self.held = False
        # Until when the last renewal holds the lease, as this instance's clock reads it.
        self._held_until: dt.datetime | None = None

    async def renew(self) -> bool:
        """Take or renew the lease; say so in the log when that changes.

        A database that cannot be reached for a moment changes nothing while the lease
        last renewed still runs: nobody else can take it before then. Past that, this
        instance stops leading rather than risk two leaders.
        """
        was = self.held
        now = self._shared.now()
        try:
            async with self._shared.sessions() as session:
                current = None if was else await lease_holder(session=session, name=LEADER, now=now)
                self.held = await hold_lease(
                    session=session,
                    name=LEADER,
                    holder=self.holder,
                    now=now,
                    ttl=LEASE_TTL,
                    replacing=current if current and died_here(current) else None,
                )
            self._held_until = now + LEASE_TTL if self.held else None
        except Exception as exc:
            log.warning("cannot renew the leader lease: %s", type(exc).__name__)
            # A margin of one renewal: another instance's clock may run a little ahead.
            self.held = self._held_until is not None and now < self._held_until - RENEW_EVERY
        if self.held and not was:
            log.info("this instance (%s) leads: scheduled work and broadcasts", self.holder)
        elif was and not self.held:
            log.warning("this instance (%s) no longer leads", self.holder)
        return self.held

    async def give_up(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            async with self._shared.sessions() as session:
                await give_up_lease(session=session, name=LEADER, holder=self.holder)
        except Exception as exc:  # it runs out by itself
            log.warning("cannot hand back the leader lease: %s", type(exc).__name__)


LEADERSHIP_KEY = "leadership"


def leads(bot_data: dict[str, object]) -> bool:
    """Whether this instance leads now; a bot assembled without leadership (a test
    driving one piece) leads alone."""
    leadership = bot_data.get(LEADERSHIP_KEY)
    return not isinstance(leadership, Leadership) or leadership.held
