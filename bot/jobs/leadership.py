"""One instance leads: it polls (in polling mode), runs the scheduled work and sends
broadcasts. The others answer users (webhook mode) or wait to take over (polling).

Leadership is a lease row in the database, renewed every RENEW_EVERY; an instance that
dies stops renewing, and another takes over once the lease has run out (LEASE_TTL),
well within a minute. Work done under the lease is claimed row by row (reminders,
broadcast deliveries), so even a leader that lost its lease while busy cannot send
anything twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import secrets
import socket
from pathlib import Path

from bot.resources import Resources
from bot.services.leases import give_up_lease, hold_lease, lease_holder
from bot.storage.database import describe_database_trouble

log = logging.getLogger(__name__)
LEADER = "leader"
LEASE_TTL = dt.timedelta(seconds=30)
RENEW_EVERY = dt.timedelta(seconds=10)
# Seconds a renewal may take before it counts as failed.
RENEW_TIMEOUT = 5.0


def instance_name() -> str:
    """Who holds a lease, as an operator reads it: host, process, where that process id
    means something (`_pid_space`), and a random part (a process id comes back)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_pid_space()}:{secrets.token_hex(3)}"


def _pid_space() -> str:
    """This boot of this machine and this process-id namespace, in a few characters:
    two machines cloned with one hostname, or containers sharing the host's name, never
    mistake each other's processes for their own."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return "unknown"
    return hashlib.sha256(f"{boot}:{namespace}".encode()).hexdigest()[:8]


def died_here(holder: str) -> bool:
    """Whether `holder` was a process that lived where this one does (same host, same
    boot, same process-id namespace) and is gone: a bot restarted after a crash takes
    its own lease back at once, not LEASE_TTL later."""
    host, pid, space, *_rest = [*holder.split(":"), "", "", ""]
    if host != socket.gethostname() or space != _pid_space() or space == "unknown":
        return False
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
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
        # The last renewal found another instance holding the lease (not merely failed).
        self.taken = False
        # Until when the last renewal holds the lease, as this instance's clock reads it.
        self._held_until: dt.datetime | None = None

    async def renew(self) -> bool:
        """Take or renew the lease; say so in the log when that changes.

        A database that cannot be reached for a moment (or is busy: an import holding
        SQLite's write lock) changes nothing while the lease last renewed still runs:
        nobody else can take it before then. Past that, this instance stops leading
        rather than risk two leaders, but the lease is not `taken`: nobody else was seen
        to hold it, and the next renewal that reaches the database takes it back.
        """
        was = self.held
        now = self._shared.now()
        try:
            # A renewal that hangs (a network cut) must not keep an ended lead alive.
            async with asyncio.timeout(RENEW_TIMEOUT), self._shared.sessions() as session:
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
            self.taken = not self.held
        except Exception as exc:
            log.warning(
                "cannot %s the leader lease: %s; %s",
                "renew" if was else "take",
                describe_database_trouble(exc),
                "leading goes on while the lease runs" if was else "trying again",
            )
            # Read the clock again, after the wait; a margin of one renewal: another
            # instance's clock may run a little ahead.
            later = self._shared.now()
            self.held = self._held_until is not None and later < self._held_until - RENEW_EVERY
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
