"""PAI Assistant: the partner incentive programme behind the Telegram bot."""
