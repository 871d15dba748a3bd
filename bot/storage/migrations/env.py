"""Alembic's entry point: run the revisions on the connection bot.storage.schema hands over.

`pai-bot migrate` opens the connection, takes the schema lock and begins the
transaction; Alembic runs inside it, so a failed revision leaves the database as it
was (on SQLite too: bot.storage.schema begins the transaction itself).
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import models  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("migrations run through `pai-bot migrate`, which hands over a connection")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite alters a table by copying it: autogenerate writes such steps in batches.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
