"""What runs without a user: leadership, broadcast delivery, the reminders tick."""
