"""Telegram's sending limits for a bot, as numbers: read by the settings (which must not
import python-telegram-bot) and by the rate limiter."""

# Telegram's documented ceiling for a bot: about 30 messages a second overall.
MESSAGES_PER_SECOND = 30
# Bulk sends (broadcasts, reminders) stay under this, leaving the rest to answers.
BULK_PER_SECOND = 25
# Telegram's ceiling for paid broadcasts (allow_paid_broadcast), which it charges for.
PAID_PER_SECOND = 1000
