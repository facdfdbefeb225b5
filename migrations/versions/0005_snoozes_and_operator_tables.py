"""curate's snoozes column on the demo's tables, and curate's newer tables of its own: the
attempt history, the cancel requests and the dashboard's per-minute figures.

Databases made before curate had them get them here; on a fresh database, where 0001 and
0003 already made everything, this only rebuilds the queued indexes.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from curate.migrations import add_missing_workflow_columns, create_curate_tables

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
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
    create_curate_tables()


def downgrade() -> None:
    """Nothing to undo: 0001's downgrade drops every workflow column, snoozes included,
    and 0003's drops curate's tables."""
