"""`python -m bot.app.cli`: the same as `pai-bot`."""

import sys

from bot.app.cli import main

sys.exit(main())
