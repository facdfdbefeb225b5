"""The dual-status pattern, declared once: a curation value and the workflows it queues.

People curate rows (``curation_status``: New → Selected | Rejected); choosing a value
queues the row for the workflows that value starts. Both writes go in the caller's
transaction, so a row is never Selected without being queued, nor queued without being
Selected::

    page_selection = DualStatus(Page.curation_status, {CurationStatus.Selected: page_curation})

    async with session.begin():
        await page_selection.set(session, page_ids, CurationStatus.Selected)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Column
from sqlalchemy.ext.asyncio import AsyncSession

from curate.errors import ConfigurationError
from curate.sql.curation import set_curation_status, set_curation_status_params
from curate.workflow import Workflow


class DualStatus:
    """A curation status column and, per value, the workflows that value queues.

    ``queues`` maps a value to one workflow or several; a value it does not name (say
    Rejected) only sets the column. Every workflow must run over the column's table.
    """

    def __init__(self, column: Any, queues: Mapping[Any, Workflow | Sequence[Workflow]]) -> None:
        self.column = _column_of(column)
        self.queues = {
            value: (targets,) if isinstance(targets, Workflow) else tuple(targets)
            for value, targets in queues.items()
        }
        for targets in self.queues.values():
            for workflow in targets:
                if workflow.binding.table is not self.column.table:
                    raise ConfigurationError(
                        f"DualStatus on {self.column.table.name}.{self.column.name}: workflow"
                        f" {workflow.name} runs over table {workflow.binding.table.name!r};"
                        " a curation value can only queue workflows of its own table"
                    )
        self._statement = set_curation_status(self.column)

    async def set(self, session: AsyncSession, ids: Sequence[Any], value: Any) -> None:
        """Set the curation column of rows ``ids`` to ``value`` and queue them for the
        workflows that value starts, in the caller's transaction."""
        if not ids:
            return
        await session.execute(self._statement, set_curation_status_params(ids, value))
        for workflow in self.queues.get(value, ()):
            await workflow.queue(session, ids)


def _column_of(column: Any) -> Column[Any]:
    found = getattr(column, "__clause_element__", lambda: column)()
    if not isinstance(found, Column) or found.table is None:
        raise ConfigurationError(
            f"DualStatus needs a table column such as Page.curation_status, not {column!r}"
        )
    return found
