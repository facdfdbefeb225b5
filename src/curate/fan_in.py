"""Fan-in: a workflow whose items wait for their children.

    sitemap_finalise = Workflow(
        "sitemap_finalise",
        model=SitemapFile,
        service=finalise_sitemap,
        waits_for=Children(page_curation, parent_key="sitemap_file_id", after=sitemap_import),
    )

A sitemap file is queued for ``sitemap_finalise`` when every page whose
``sitemap_file_id`` is its id has reached a final status of ``page_curation`` (rows never
queued for it, whose status is NULL, do not count), and, with ``after``, once the file's
own ``sitemap_import`` is Complete (so the pages it creates are all there). No worker
polls the parents: triggers in the children's outcome transactions queue each parent
once, race-free across workers and hosts (`curate.sql.fan_in`). A migration creates them
(`curate.migrations.create_fan_in`); the start-up check says when they are missing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from curate.errors import ConfigurationError

if TYPE_CHECKING:
    from curate.workflow import Workflow


@dataclass(frozen=True)
class Children:
    """What the items of a fan-in workflow wait for.

    ``workflow``: the children's workflow; ``parent_key``: the column of its table that
    holds the parent's primary key; ``after``: the parent's own workflow that must be
    Complete first (the one that creates the children), if any; ``final``: the children's
    statuses that count as done (default: the children's workflow's complete and failed
    statuses, and its cancelled one if it has one).
    """

    workflow: Workflow
    parent_key: str
    after: Workflow | None = None
    final: tuple[enum.Enum, ...] | None = None

    def final_statuses(self) -> tuple[enum.Enum, ...]:
        if self.final is not None:
            return self.final
        statuses = self.workflow.statuses
        cancelled = () if statuses.cancelled is None else (statuses.cancelled,)
        return (statuses.complete, statuses.failed, *cancelled)

    def check(self, parent: Workflow) -> None:
        """Refuse a parent key the children's table lacks; a clear error at start-up."""
        table = self.workflow.binding.table
        if self.parent_key not in table.c:
            raise ConfigurationError(
                f"workflow {parent.name}: waits_for=Children({self.workflow.name},"
                f" parent_key={self.parent_key!r}): table {table.name!r} has no such column"
            )
