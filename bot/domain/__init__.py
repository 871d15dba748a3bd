"""The programme's rules and vocabulary, pure: no Telegram, no SQL."""
