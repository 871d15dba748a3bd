"""What python-telegram-bot hands every callback, typed: the bot's own state (`BotData`),
the application and the callback context built on it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telegram.ext import Application, CallbackContext, ExtBot

if TYPE_CHECKING:
    from bot.jobs.leadership import Leadership
    from bot.resources import Resources
    from bot.telegram.locks import UserLocks


class BotData:
    """The running bot's state for its whole life (PTB's `bot_data`), one typed object
    instead of string keys. Filled by the assembly (bot/app/application.py) at start."""

    def __init__(self) -> None:
        self._resources: Resources | None = None
        # This instance's claim on the leader lease; None in a bot assembled without one
        # (a test driving a single piece), which then leads alone.
        self.leadership: Leadership | None = None
        # Each user's updates one at a time across webhook instances (PostgreSQL only).
        self.user_locks: UserLocks | None = None
        # A poller that lost its lease stopped: `pai-bot run` exits with failure.
        self.lost_lead = False
        # The broadcasts this process is sending now.
        self.sending: set[int] = set()
        # Polling mode's listener for the web view and /healthz (bot/app/web.py).
        self.web_server: Any = None

    @property
    def resources(self) -> Resources:
        """Engine, rules, settings and clock: open from post_init to post_shutdown."""
        if self._resources is None:
            raise RuntimeError("the bot's resources are not open (before start or after stop)")
        return self._resources

    @property
    def started(self) -> bool:
        return self._resources is not None

    def open(self, resources: Resources) -> None:
        self._resources = resources

    def close(self) -> Resources | None:
        """Forget the resources and hand them back to be closed (None if never opened)."""
        resources, self._resources = self._resources, None
        return resources

    def leads(self) -> bool:
        """Whether this instance leads now: it runs the scheduled work and broadcasts."""
        return self.leadership is None or self.leadership.held


class BotContext(CallbackContext[ExtBot[str], dict[Any, Any], dict[Any, Any], BotData]):
    """PTB's context with the bot's state typed; handlers add what an update looks up."""


# The application as every layer sees it; the chat layer's context is its own subclass.
App = Application[ExtBot[str], Any, dict[Any, Any], dict[Any, Any], BotData, Any]
