"""The sitemap finalise workflow: its columns on sitemap_files, the counts it writes, and
the fan-in that queues a sitemap file once its pages are all curated.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from curate.migrations import (
    add_workflow_columns,
    create_fan_in,
    drop_fan_in,
    drop_workflow_columns,
)

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_workflow_columns("sitemap_files", "sitemap_finalise")
    op.add_column("sitemap_files", sa.Column("pages_complete", sa.Integer()))
    op.add_column("sitemap_files", sa.Column("pages_failed", sa.Integer()))
    create_fan_in(
        "sitemap_files",
        "sitemap_finalise",
        child_table="pages",
        child_workflow="page_curation",
        parent_key="sitemap_file_id",
        after_workflow="sitemap_import",
    )


def downgrade() -> None:
    drop_fan_in("sitemap_files", "sitemap_finalise", child_table="pages")
    op.drop_column("sitemap_files", "pages_failed")
    op.drop_column("sitemap_files", "pages_complete")
    drop_workflow_columns("sitemap_files", "sitemap_finalise")
