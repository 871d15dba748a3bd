"""The database: engine and sessions, schema and migrations, the conversation store."""
