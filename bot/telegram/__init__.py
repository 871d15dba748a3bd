"""Talking to the Bot API: transport, update checks, per-user order, rate limits, send budget."""
