"""The operator's actions, for an admin page or a script of the app's own."""

from typing import Any

from curate import Workflow, get_runtime, operations
from curate.sql.cancel import CancelSelection


async def attempts(workflow: Workflow, item_id: Any) -> list[operations.Attempt] | None:
    """The item's attempts, newest first; None when curate_attempts does not exist."""
    engine = await get_runtime().database.engine()
    [typed_id] = operations.item_ids(workflow, [item_id])  # "42" -> 42 for an int key
    return await operations.read_attempts(engine, workflow, typed_id)


async def cancel(workflow: Workflow, ids: list[Any], reason: str) -> operations.CancelCount:
    """Cancel these rows: waiting ones at once, running ones where they run."""
    engine = await get_runtime().database.engine()
    selection = CancelSelection(ids=operations.item_ids(workflow, ids))
    return await operations.cancel(engine, workflow, selection, reason)


async def would_cancel(workflow: Workflow, ids: list[Any]) -> operations.CancelCount:
    """What `cancel` would take now, changing nothing (a dry run, a confirmation)."""
    engine = await get_runtime().database.engine()
    selection = CancelSelection(ids=operations.item_ids(workflow, ids))
    return await operations.count_cancel(engine, workflow, selection)


async def cancel_failed(workflow: Workflow, reason: str) -> operations.CancelCount:
    """Move the rows in Error to the workflow's Cancelled status: given up on rather than
    failed. Raises ConfigurationError for a workflow without a cancelled status."""
    engine = await get_runtime().database.engine()
    return await operations.cancel(engine, workflow, CancelSelection(errors=True), reason)
