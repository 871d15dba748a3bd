"""The schema: created at head for a new database, recognised, refused or migrated."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from bot.problems import SetupError
from bot.storage.database import Timeouts, make_engine, sqlite_file
from bot.storage.migrations import HEAD, RECOGNISED

if TYPE_CHECKING:  # Alembic costs a third of a second to import: only when it is needed
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).with_name("migrations")
# PostgreSQL advisory lock held while the schema is created or migrated: two instances
# starting on a new database, or a start during `pai-bot migrate`, wait for each other.
SCHEMA_LOCK = 0x5041_4953_4348  # "PAISCH"
FIX = "run `pai-bot migrate` to bring it up to date (keeps every row)"


class SchemaOutdated(SetupError):
    """The database was made by an earlier version: `pai-bot migrate` brings it up to date."""


class SchemaUnknown(SetupError):
    """The database was made by a newer version, or is not one this bot made."""


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: its revision, and whether Alembic recorded it.

    `revision` is None when the database has none of the bot's tables. A database made
    before migrations existed has no record; its revision is recognised from its tables.
    """

    revision: str | None
    recorded: bool


@dataclass(frozen=True)
class Migration:
    """What `migrate_database` did: from which revision to which, through which steps."""

    before: str | None  # None: the database was new, and the schema was created
    after: str
    recognised: bool  # `before` came from the tables: no version was recorded
    steps: tuple[str, ...]  # "0001 -> 0002: what it adds", in order


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the packaged migrations, running on `connection`."""
    from alembic.config import Config

    config = Config()
    # The path goes through configparser, which reads % as interpolation.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def migration_scripts() -> ScriptDirectory:
    """The packaged revisions, read once."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = migration_scripts().get_current_head()
    assert head is not None, "bot/storage/migrations/versions holds no revision"
    return head


async def create_tables(engine: AsyncEngine) -> None:
    """Make sure the database is at this version's schema before anything uses it.

    A new database (none of the bot's tables) gets the schema and its version; one at
    this version is left as it is; anything else is refused: an earlier version's
    database, in one sentence naming `pai-bot migrate`, rather than starting and then
    failing every update with an apology.
    """
    async with engine.begin() as connection:
        await connection.run_sync(_prepare_schema)


async def check_schema(database_url: str, timeouts: Timeouts | None = None) -> None:
    """Refuse a database that needs migrating, or that a newer version made; write nothing.

    For `pai-bot run`, before it contacts Telegram. A database not there yet is fine:
    the bot creates it.
    """
    path = sqlite_file(database_url)
    if path is not None and not path.exists():
        return
    engine = make_engine(database_url, timeouts)
    try:
        async with engine.connect() as connection:
            state = await connection.run_sync(schema_state)
    finally:
        await engine.dispose()
    if state.revision is not None:
        _refuse_unless_current(state.revision, migration_scripts())


async def migrate_database(database_url: str, timeouts: Timeouts | None = None) -> Migration:
    """Bring the database to this version's schema in one transaction, keeping every row.

    A database made before migrations existed is first stamped with the revision its
    tables match; a new one gets the schema at once.
    """
    engine = migration_engine(database_url, timeouts)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(_migrate)
    finally:
        await engine.dispose()


def schema_state(connection: Connection) -> SchemaState:
    """The database's revision: as Alembic recorded it, else as its tables show it."""
    from alembic.runtime.migration import MigrationContext

    recorded = MigrationContext.configure(connection).get_current_heads()
    if len(recorded) > 1:
        raise SchemaUnknown(f"the database records several versions ({', '.join(recorded)})")
    if recorded:
        return SchemaState(revision=recorded[0], recorded=True)
    return SchemaState(revision=_recognise(connection), recorded=False)


def _recognise(connection: Connection) -> str | None:
    """The revision an unversioned database's tables match; None when it has none of ours."""
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    if not tables & set(SQLModel.metadata.tables):
        return None
    columns = {
        table: frozenset(column["name"] for column in inspector.get_columns(table))
        for table in tables
    }
    for revision, shape in RECOGNISED:
        if all(wanted <= columns.get(table, frozenset()) for table, wanted in shape.items()):
            return revision
    oldest = RECOGNISED[-1][1]
    lacking = sorted(
        table for table, wanted in oldest.items() if not wanted <= columns.get(table, frozenset())
    )
    raise SchemaUnknown(
        "the database has some of the bot's tables but not what its first version made "
        f"(lacking or incomplete: {', '.join(lacking)}): check DATABASE_URL"
    )


def _refuse_unless_current(revision: str, scripts: ScriptDirectory) -> None:
    head = scripts.get_current_head()
    if revision == head:
        return
    if revision not in _known(scripts):
        raise _made_by_newer(revision, head)
    raise SchemaOutdated(f"the database was made by an earlier version: {FIX}")


def _made_by_newer(revision: str, head: str | None) -> SchemaUnknown:
    return SchemaUnknown(
        f"the database was made by a newer version of pai-bot (schema {revision}, "
        f"this one knows up to {head}): run that version or a later one"
    )


def _known(scripts: ScriptDirectory) -> set[str]:
    return {script.revision for script in scripts.walk_revisions()}


def _lock_schema(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # A migration in progress elsewhere may take minutes: wait for it (and let its
        # ALTERs wait for running bots) rather than fail after the usual lock timeout.
        connection.execute(text("SET LOCAL lock_timeout = '10min'"))
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})


def _create_at_head(connection: Connection, scripts: ScriptDirectory) -> None:
    SQLModel.metadata.create_all(connection)
    _stamp_head(connection, scripts)


def _stamp_head(connection: Connection, scripts: ScriptDirectory) -> None:
    from alembic.runtime.migration import MigrationContext

    MigrationContext.configure(connection).stamp(scripts, "head")


def _at_head(connection: Connection) -> bool:
    """Whether the database records this version's revision: the usual case, answered
    without Alembic (HEAD is checked against the revisions by the tests)."""
    if not inspect(connection).has_table("alembic_version"):
        return False
    recorded = connection.execute(text("SELECT version_num FROM alembic_version"))
    return list(recorded.scalars()) == [HEAD]


def _prepare_schema(connection: Connection) -> None:
    _lock_schema(connection)
    if _at_head(connection):
        return
    scripts = migration_scripts()
    state = schema_state(connection)
    if state.revision is None:
        _create_at_head(connection, scripts)
        return
    _refuse_unless_current(state.revision, scripts)
    if not state.recorded:
        # Made by the last version before migrations, whose schema is this one's.
        _stamp_head(connection, scripts)


def _migrate(connection: Connection) -> Migration:
    _lock_schema(connection)
    scripts = migration_scripts()
    head = head_revision()
    state = schema_state(connection)
    if state.revision is None:
        _create_at_head(connection, scripts)
        return Migration(before=None, after=head, recognised=False, steps=())
    if state.revision not in _known(scripts):
        raise _made_by_newer(state.revision, head)
    broken_before = _broken_links(connection)
    from alembic import command

    config = alembic_config(connection)
    if not state.recorded:
        command.stamp(config, state.revision)
    steps = tuple(
        f"{script.down_revision} -> {script.revision}: {script.doc}"
        for script in reversed(list(scripts.iterate_revisions(head, state.revision)))
    )
    if steps:
        command.upgrade(config, "head")
    if _broken_links(connection) > broken_before:
        # Raised inside the transaction: everything above is rolled back.
        raise SchemaUnknown("migrating would break links between rows: nothing was changed")
    return Migration(before=state.revision, after=head, recognised=not state.recorded, steps=steps)


def _broken_links(connection: Connection) -> int:
    """Rows whose foreign key points at nothing: SQLite's tables are copied with checks off."""
    if connection.dialect.name != "sqlite":
        return 0  # PostgreSQL checks every link as the migration goes
    return len(connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall())


def migration_engine(database_url: str, timeouts: Timeouts | None = None) -> AsyncEngine:
    """An engine for migrating: on SQLite, DDL inside one transaction, foreign keys off.

    SQLite alters a table by copying it, which foreign keys checked row by row would
    refuse; they are checked once at the end instead. pysqlite begins transactions only
    before INSERT and the like, so the engine says BEGIN itself and DDL joins it.
    """
    limits = timeouts or Timeouts()
    # A migration copies whole tables: more time than an update gets, never forever.
    engine = make_engine(database_url, replace(limits, statement=max(limits.statement, 600.0)))
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _leave_transactions_to_us)
        event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


def _leave_transactions_to_us(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=OFF")  # SQLite ignores it inside a transaction
    cursor.close()


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock now, not halfway through
