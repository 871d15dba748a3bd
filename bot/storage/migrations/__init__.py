"""The database's schema history, as Alembic revisions that `pai-bot migrate` runs.

Each revision is written by hand for SQLite and PostgreSQL alike. A new one goes in
versions/ after the last (`down_revision` naming it); tests/test_migrations.py walks
every revision up and down on both databases and compares the head with the models.

Databases made before migrations existed carry no version: RECOGNISED says which
tables and columns each of those versions made, so `pai-bot migrate` can tell where
such a database stands before it upgrades it.
"""

from __future__ import annotations

# The newest revision in versions/ (tests/test_migrations.py holds them to agreeing):
# a database at it is recognised without reading the revisions with Alembic.
HEAD = "0010"

# Table -> its columns.
Shape = dict[str, frozenset[str]]

# The core, the first version on main (commit 214741c): revision 0001.
_CORE = {
    "partner": {"id", "code", "company", "level", "created_at", "updated_at"},
    "salesperson": {
        "id",
        "telegram_user_id",
        "partner_id",
        "language",
        "reminders_enabled",
        "linked_at",
    },
    "invite": {
        "id",
        "token",
        "partner_id",
        "created_at",
        "expires_at",
        "used_at",
        "used_by_salesperson_id",
    },
    "customer": {"vat", "name"},
    "purchase": {"id", "vat", "purchase_date"},
    "registration": {
        "id",
        "partner_id",
        "salesperson_id",
        "vat",
        "customer_name",
        "registered_on",
        "created_at",
        "updated_at",
        "protected_until",
        "protection_key",
        "status",
        "deal_value",
        "product",
        "expected_close",
        "incentive_amount",
        "currency",
        "incentive_version",
        "level",
        "loyalty_min_registrations",
        "loyalty_multiplier",
        "loyalty_count",
    },
    "statuschange": {
        "id",
        "registration_id",
        "from_status",
        "to_status",
        "changed_by",
        "changed_at",
        "note",
    },
    "botstate": {"key", "value"},
}

# What issues 5 to 8 added, as of commit a7dbc48: revision 0002.
_ISSUES_5_TO_8 = {
    "salesperson": {
        "telegram_language",
        "display_name",
        "username",
        "last_seen_at",
        "unlinked_at",
        "unreachable_at",
    },
    "registration": {"reference"},
    "reminder": {
        "id",
        "kind",
        "subject",
        "period",
        "salesperson_id",
        "partner_id",
        "registration_id",
        "due_on",
        "status",
        "claim",
        "attempts",
        "created_at",
        "sent_at",
    },
    "staffnotice": {"id", "registration_id", "chat_id", "message_id"},
    "verdicttally": {"id", "day", "outcome", "count"},
    "broadcast": {
        "id",
        "created_by",
        "created_at",
        "text_html",
        "audience",
        "status",
        "progress_chat_id",
        "progress_message_id",
        "finished_at",
    },
    "broadcastdelivery": {
        "id",
        "broadcast_id",
        "salesperson_id",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "error",
    },
}

# The three tables of commit 46f704f, the last version without migrations: revision 0003.
_ISSUE_9_TABLES = {
    "conversationstate": {"telegram_user_id", "kind", "state", "updated_at"},
    "lease": {"name", "holder", "expires_at"},
    "sendbudget": {"name", "tokens", "refilled_at"},
}


def _with(earlier: Shape, added: dict[str, set[str]]) -> Shape:
    shape = dict(earlier)
    for table, columns in added.items():
        shape[table] = shape.get(table, frozenset()) | columns
    return shape


_SHAPE_0001 = _with({}, _CORE)
_SHAPE_0002 = _with(_SHAPE_0001, _ISSUES_5_TO_8)
_SHAPE_0003 = _with(_SHAPE_0002, _ISSUE_9_TABLES)

# Each revision with the tables and columns an unversioned database has at it, latest
# first: such a database stands at the first one it has in full.
RECOGNISED: tuple[tuple[str, Shape], ...] = (
    ("0003", _SHAPE_0003),
    ("0002", _SHAPE_0002),
    ("0001", _SHAPE_0001),
)
