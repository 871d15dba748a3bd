"""What happened, said by the services and heard once their transaction has committed.

A service says what happened (`emit(session, DealWon(...))`) and nothing more; what
follows from it (telling staff, sending a broadcast) is wired once, where the bot is
assembled, by whoever listens. An event of a transaction that rolls back is never
heard; one emitted where nobody listens (the command line, a test of one service) is
dropped.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DealWon:
    """A partner reported a deal won: staff are to approve or reject it."""

    reference: str


@dataclass(frozen=True)
class DealDecided:
    """Staff approved or rejected a won deal (`by`: the staff member's Telegram id)."""

    reference: str
    approved: bool
    reason: str | None
    by: int


@dataclass(frozen=True)
class ItemArrived:
    """A dispute or a request for more time waits for staff."""

    item_id: int


@dataclass(frozen=True)
class ItemDecided:
    """Staff granted or refused a dispute or a request for more time (`by`: Telegram id)."""

    item_id: int
    by: int


@dataclass(frozen=True)
class ProofAdded:
    """A partner sent proof of a won deal staff already have before them."""

    reference: str


@dataclass(frozen=True)
class BroadcastReady:
    """Staff sent a broadcast: its deliveries wait for a sender."""

    broadcast_id: int


Event = DealWon | DealDecided | ItemArrived | ItemDecided | ProofAdded | BroadcastReady
E = TypeVar("E", DealWon, DealDecided, ItemArrived, ItemDecided, ProofAdded, BroadcastReady)
# How listeners run: beside the work that emitted the event, never holding it up.
Runner = Callable[[Coroutine[Any, Any, None], str], None]

_BUS = "events"
_PENDING = "events pending"


class Events:
    """Who listens to which event; each listener runs on its own, a failure logged."""

    def __init__(self, run: Runner) -> None:
        self._run = run
        self._listeners: dict[type[Any], list[Callable[[Any], Awaitable[None]]]] = defaultdict(list)

    def listen(self, kind: type[E], listener: Callable[[E], Awaitable[None]]) -> None:
        self._listeners[kind].append(listener)

    def publish(self, happened: Event) -> None:
        for listener in self._listeners.get(type(happened), []):
            self._run(_awaited(listener(happened)), f"hearing {type(happened).__name__}")

    def session_info(self) -> dict[str, Any]:
        """What a session factory carries so that its sessions' events reach this bus."""
        return {_BUS: self}


async def _awaited(listening: Awaitable[None]) -> None:
    await listening


def emit(session: AsyncSession, happened: Event) -> None:
    """Say that `happened`, to be heard once the session's transaction commits."""
    info = session.info
    if _BUS in info:
        info.setdefault(_PENDING, []).append(happened)


@sqlalchemy_event.listens_for(Session, "after_commit")
def _publish_committed(session: Session) -> None:
    pending: list[Event] = session.info.pop(_PENDING, [])
    bus = session.info.get(_BUS)
    if isinstance(bus, Events):
        for happened in pending:
            bus.publish(happened)


@sqlalchemy_event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)
