"""curate's priority column (and the queued index ordered by it) on the demo's tables.

Databases made before curate had priorities get the column here; on a fresh database,
where 0001 already added it, this only rebuilds the queued indexes.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from curate.migrations import add_missing_workflow_columns

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORKFLOWS = (
    ("domains", "sitemap_discovery"),
    ("sitemap_files", "sitemap_import"),
    ("pages", "page_curation"),
)


def upgrade() -> None:
    for table, workflow in WORKFLOWS:
        add_missing_workflow_columns(table, workflow)


def downgrade() -> None:
    """Nothing to undo: 0001's downgrade drops every workflow column, priority included."""
