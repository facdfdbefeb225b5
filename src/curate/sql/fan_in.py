"""The DDL of a fan-in: a parent row is queued for its workflow once every child row has
reached a final status (and, with ``after``, once the parent's own upstream workflow is
complete), by triggers in the children's outcome transactions.

Why triggers: a child reaches a final status by many writers (a completion, a final
failure, a batched completion, the rescue out of attempts, a cancel, a service that sets
its own status); a trigger sees every one of them, in that writer's transaction, at no
cost to the child tables' other updates (claims, heartbeats: the triggers fire only on a
change of the status into a final one).

Why it is race-free: the check "are all of this parent's children final?" must see the
other children's outcomes. Two last children finishing at once on two hosts would each see
the other unfinished if each checked in its own transaction's snapshot. So each
transaction, at its commit (a deferred constraint trigger), first takes an advisory lock
per parent (``pg_advisory_xact_lock``, held to the end of the transaction, which a
transaction pooler keeps), in parent order, then checks in a fresh snapshot (each
statement of a volatile PL/pgSQL function takes one). The second of two racing
transactions waits for the first to commit, then sees its child final: exactly one of
them queues the parent. A row trigger notes the parents of a statement's rows in a
transaction-local setting; the deferred trigger then locks them all, sorted, so two
transactions that each finish children of several parents never deadlock.

The parent is queued (as `Workflow.queue` does: attempts, snoozes, error, claim cleared)
only when it is not Queued or Processing already: a child that finishes again later (re-
queued by hand) queues the parent again, for a fresh aggregate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import TextClause, text

from curate.columns import ColumnNames
from curate.engine.notifier import channel_for

PARENT_COLUMNS_RESET = ("error", "attempts", "run_after", "claimed_by", "lease_until", "snoozes")
"""The parent's workflow columns a queue resets, where the parent table has them."""


@dataclass(frozen=True)
class FanInNames:
    """Everything the DDL names, quoted where it is an identifier."""

    parent_table: str  # qualified and quoted
    parent_pk: str
    parent_pk_type: str  # as format_type prints it: uuid, integer, …
    parent_workflow: str  # the fan-in workflow's name (its columns' prefix)
    parent_columns: frozenset[str]  # the parent table's column names
    child_table: str  # qualified and quoted
    child_status: str
    parent_key: str  # the child column holding the parent's primary key
    final: Sequence[str]  # the children's final statuses, as stored
    queued: str
    processing: str
    after_status: str | None  # the parent's upstream workflow's status column
    after_complete: str | None
    schema: str | None

    def object_name(self, suffix: str) -> str:
        return object_name(self.parent_workflow, suffix)

    def qualified(self, name: str) -> str:
        return qualified(name, self.schema)

    @property
    def setting(self) -> str:
        """The transaction-local setting the row triggers note the parents in."""
        return f"curate.fan_in_{self.parent_workflow}"


def object_name(parent_workflow: str, suffix: str) -> str:
    """A function's, trigger's or index's name: ``curate_fan_in_<workflow>_<suffix>``."""
    return f"curate_fan_in_{parent_workflow}_{suffix}"[:63]


def qualified(name: str, schema: str | None) -> str:
    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def lock_key(parent_table: str, parent_workflow: str, parent_sql: str) -> str:
    """The SQL of the advisory lock key of one parent (``parent_sql``: its id's text)."""
    prefix = literal(f"curate.fan_in:{parent_table}:{parent_workflow}:")
    return f"hashtextextended({prefix} || {parent_sql}, 0)"


def create(names: FanInNames) -> list[TextClause]:
    """The functions, triggers and index of one fan-in (idempotent: replaced if there)."""
    n = names
    final = ", ".join(literal(status) for status in n.final)
    process = n.object_name("queue")
    parent_status = quote(ColumnNames.for_prefix(n.parent_workflow).status)
    resets = _parent_resets(n)
    parent_lock = lock_key(n.parent_table, n.parent_workflow, "parent::text")
    after = ""
    if n.after_status is not None and n.after_complete is not None:
        after = f" AND p.{quote(n.after_status)} = {literal(n.after_complete)}"
    statements = [
        # At commit: lock the noted parents in order, then queue those whose children are
        # all final, in a snapshot taken after the locks.
        f"CREATE OR REPLACE FUNCTION {n.qualified(process)}() RETURNS trigger"
        " LANGUAGE plpgsql AS $$"
        f" DECLARE noted text := current_setting({literal(n.setting)}, true);"
        f" parents {n.parent_pk_type}[]; parent {n.parent_pk_type}; queued integer;"
        " BEGIN"
        " IF noted IS NULL OR noted = '' THEN RETURN NULL; END IF;"
        f" PERFORM set_config({literal(n.setting)}, '', true);"
        f" SELECT array_agg(DISTINCT entry::{n.parent_pk_type}"
        f" ORDER BY entry::{n.parent_pk_type}) INTO parents"
        " FROM jsonb_array_elements_text(noted::jsonb) AS entry;"
        " FOREACH parent IN ARRAY parents LOOP"
        f" PERFORM pg_advisory_xact_lock({parent_lock});"
        " END LOOP;"
        f" UPDATE {n.parent_table} AS p SET {parent_status} = {literal(n.queued)}{resets}"
        f" WHERE p.{quote(n.parent_pk)} = ANY(parents)"
        f" AND (p.{parent_status} IS NULL OR p.{parent_status}"
        f" NOT IN ({literal(n.queued)}, {literal(n.processing)})){after}"
        f" AND NOT EXISTS (SELECT 1 FROM {n.child_table} AS c"
        f" WHERE c.{quote(n.parent_key)} = p.{quote(n.parent_pk)}"
        f" AND c.{quote(n.child_status)} NOT IN ({final}));"
        " GET DIAGNOSTICS queued = ROW_COUNT;"
        f" IF queued > 0 THEN PERFORM pg_notify({literal(channel_for(n.parent_workflow))}, '');"
        " END IF;"
        " RETURN NULL; END $$",
        *_triggers(n, n.child_table, n.child_status, final, "child", n.parent_key),
        # The check reads a parent's unfinished children: one index probe, however many
        # children are final already.
        f"CREATE INDEX IF NOT EXISTS {quote(n.object_name('waiting'))} ON {n.child_table}"
        f" ({quote(n.parent_key)}) WHERE {quote(n.child_status)} NOT IN ({final})",
    ]
    if n.after_status is not None and n.after_complete is not None:
        statements += _triggers(
            n, n.parent_table, n.after_status, literal(n.after_complete), "after", n.parent_pk
        )
    return [text(statement) for statement in statements]


def _parent_resets(names: FanInNames) -> str:
    columns = ColumnNames.for_prefix(names.parent_workflow)
    values = {
        "error": "NULL",
        "attempts": "0",
        "run_after": "NULL",
        "claimed_by": "NULL",
        "lease_until": "NULL",
        "snoozes": "0",
    }
    sets = [
        f"{quote(name)} = {values[field]}"
        for field in PARENT_COLUMNS_RESET
        if (name := getattr(columns, field)) in names.parent_columns
    ]
    if "updated_at" in names.parent_columns:
        sets.append('"updated_at" = now()')
    return "".join(f", {assignment}" for assignment in sets)


def _triggers(
    names: FanInNames, table: str, status: str, into: str, role: str, parent_of_row: str
) -> list[str]:
    """On ``table``, fired when ``status`` changes into one of ``into`` (SQL literals):
    the row trigger noting the row's parent (its column ``parent_of_row``) in a setting
    local to the transaction, and the deferred one queueing the noted parents."""
    when = (
        f"WHEN (NEW.{quote(status)} IS DISTINCT FROM OLD.{quote(status)}"
        f" AND NEW.{quote(status)} IN ({into}))"
    )
    note = names.object_name(f"{role}_note")
    queue = quote(names.object_name(f"{role}_queue"))
    setting = literal(names.setting)
    return [
        f"CREATE OR REPLACE FUNCTION {names.qualified(note)}() RETURNS trigger"
        " LANGUAGE plpgsql AS $$ BEGIN"
        f" PERFORM set_config({setting},"
        f" (coalesce(nullif(current_setting({setting}, true), ''), '[]')::jsonb"
        f" || jsonb_build_array(NEW.{quote(parent_of_row)}))::text, true);"
        " RETURN NULL; END $$",
        f"DROP TRIGGER IF EXISTS {quote(note)} ON {table}",
        f"CREATE TRIGGER {quote(note)} AFTER UPDATE OF {quote(status)} ON {table} FOR EACH ROW"
        f" {when} EXECUTE FUNCTION {names.qualified(note)}()",
        f"DROP TRIGGER IF EXISTS {queue} ON {table}",
        f"CREATE CONSTRAINT TRIGGER {queue} AFTER UPDATE OF {quote(status)} ON {table}"
        f" DEFERRABLE INITIALLY DEFERRED FOR EACH ROW {when}"
        f" EXECUTE FUNCTION {names.qualified(names.object_name('queue'))}()",
    ]


def drop(
    parent_table: str, parent_workflow: str, child_table: str, schema: str | None
) -> list[TextClause]:
    """Undo `create` (the tables qualified and quoted)."""
    statements = [
        f"DROP TRIGGER IF EXISTS {quote(object_name(parent_workflow, f'{role}_{kind}'))} ON {table}"
        for role, table in (("child", child_table), ("after", parent_table))
        for kind in ("note", "queue")
    ]
    statements += [
        f"DROP INDEX IF EXISTS {qualified(object_name(parent_workflow, 'waiting'), schema)}",
        *(
            f"DROP FUNCTION IF EXISTS {qualified(object_name(parent_workflow, name), schema)}()"
            for name in ("queue", "child_note", "after_note")
        ),
    ]
    return [text(statement) for statement in statements]


TRIGGER_EXISTS = text(
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger"
    " WHERE tgrelid = to_regclass(:curate_table) AND tgname = :curate_trigger)"
)
"""Whether the fan-in's deferred trigger is on the children's table (the start-up check)."""
