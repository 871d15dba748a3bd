"""Problems an operator fixes (a setting, the database, a file, the rules file), as
opposed to the programme's own refusals (bot/domain/errors.py). Each says in one
sentence what is wrong and how to put it right: the command line prints it, `run`
stops with it."""

from __future__ import annotations


class SetupError(Exception):
    """A setting, the database or a file is not as the bot needs it; the message says why."""
