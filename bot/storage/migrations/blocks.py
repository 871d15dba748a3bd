"""Name blocks written by a migration: the similar-names key (bot/domain/names.py) of
every customer's and registration's name, in batches, so a million rows never sit in
memory at once. A revision that changes the key calls it again (0007 did)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.domain.names import name_block

BATCH = 1000


def fill_name_blocks(table_name: str, key: str, name: str) -> None:
    """Write `name_block` for every row of the table, keyed by its `key` column."""
    table = sa.table(table_name, sa.column(key), sa.column(name), sa.column("name_block"))
    bind = op.get_bind()
    last = None
    while True:
        page = sa.select(table.c[key], table.c[name]).order_by(table.c[key]).limit(BATCH)
        if last is not None:
            page = page.where(table.c[key] > last)
        rows = bind.execute(page).all()
        if not rows:
            return
        bind.execute(
            sa.update(table)
            .where(table.c[key] == sa.bindparam("row_key"))
            .values(name_block=sa.bindparam("block")),
            [{"row_key": row_key, "block": name_block(value or "")} for row_key, value in rows],
        )
        last = rows[-1][0]
