"""The statements of ``curate_workflow_controls``: pause flags and rate-limit buckets.

One row per workflow that was ever paused or rate limited; a workflow without a row is
running and unlimited. The table comes from a migration (`curate.sql.own_tables`); the
statements find it on the search_path. Parameters are named ``curate_*``; each
statement's docstring lists them.
"""

from __future__ import annotations

from sqlalchemy import Boolean, ColumnElement, String, bindparam, column, exists, table, text

TABLE = "curate_workflow_controls"

_CONTROLS = table(TABLE, column("workflow", String()), column("paused", Boolean()))


def not_paused() -> ColumnElement[bool]:
    """A claim's condition: the workflow ``curate_workflow`` is not paused (no row: not
    paused). Part of the claim statement, so checking costs no round trip of its own."""
    return ~exists().where(_CONTROLS.c.workflow == bindparam("curate_workflow"), _CONTROLS.c.paused)


# Typed parameters: in least() and arithmetic, PostgreSQL cannot infer them.
_BURST = "CAST(:curate_burst AS double precision)"
_WANTED = "CAST(:curate_wanted AS integer)"
_FIRST_GRANT = "CAST(:curate_first_grant AS integer)"

# The bucket refilled at ``curate_rate`` tokens a second since ``refilled_at``, capped at
# ``curate_burst``; then what of it the ask gets: whole tokens, at most ``curate_wanted``.
_REFILLED = (
    f"least({_BURST}, c.tokens + CAST(:curate_rate AS double precision)"
    " * greatest(0, extract(epoch FROM clock_timestamp() - c.refilled_at)))"
)
_GRANT = f"least({_WANTED}, floor({_REFILLED}))"

TAKE = text(
    f"INSERT INTO {TABLE} AS c (workflow, tokens, refilled_at, last_grant)"
    f" VALUES (:curate_workflow, {_BURST} - {_FIRST_GRANT}, clock_timestamp(), {_FIRST_GRANT})"
    " ON CONFLICT (workflow) DO UPDATE SET"
    f" last_grant = CASE WHEN c.paused THEN 0 ELSE {_GRANT} END,"
    f" tokens = CASE WHEN c.paused THEN c.tokens ELSE {_REFILLED} - {_GRANT} END,"
    " refilled_at = CASE WHEN c.paused THEN c.refilled_at"
    " ELSE greatest(c.refilled_at, clock_timestamp()) END"
    " RETURNING c.paused, c.last_grant AS granted, c.tokens"
)
"""Take up to ``curate_wanted`` tokens from the workflow's bucket, in one atomic statement.

A first ask creates the row with a full bucket (``curate_burst``) less
``curate_first_grant``. A paused workflow grants nothing and its bucket is left as it
is. Params: ``curate_workflow``, ``curate_wanted``, ``curate_rate`` (tokens a second),
``curate_burst``, ``curate_first_grant``. Returns ``paused``, ``granted`` and the
``tokens`` left.
"""

GIVE_BACK = text(
    f"UPDATE {TABLE} SET tokens = least({_BURST}, tokens + CAST(:curate_unused AS integer))"
    " WHERE workflow = :curate_workflow"
)
"""Return tokens a claim did not use (the queue had fewer rows).
Params: ``curate_workflow``, ``curate_unused``, ``curate_burst``."""

PAUSE = text(
    f"INSERT INTO {TABLE} AS c (workflow, paused, paused_at, paused_reason)"
    " VALUES (:curate_workflow, true, now(), :curate_reason)"
    " ON CONFLICT (workflow) DO UPDATE"
    " SET paused = true, paused_at = now(), paused_reason = :curate_reason"
    " WHERE NOT c.paused"
    " RETURNING c.workflow"
)
"""Pause a workflow; a row back means it was running (a paused one keeps its reason and
time). Params: ``curate_workflow``, ``curate_reason``."""

RESUME = text(
    f"UPDATE {TABLE} SET paused = false, paused_at = NULL, paused_reason = NULL"
    " WHERE workflow = :curate_workflow AND paused"
    " RETURNING workflow"
)
"""Resume a workflow; a row back means it was paused. Params: ``curate_workflow``."""

READ = text(
    f"SELECT workflow, paused, paused_at, paused_reason FROM {TABLE}"
    " WHERE workflow = ANY(:curate_workflows)"
)
"""The pause state of the named workflows (those without a row are running).
Params: ``curate_workflows`` (a list of names)."""
