"""add the thumbnail workflow to photos, and curate's own tables

Revision ID: 0002_add_thumbnail_workflow
Revises: 0001_create_photos
"""

from curate.migrations import (
    add_workflow_columns,
    create_curate_tables,
    drop_curate_tables,
    drop_workflow_columns,
)

revision = "0002_add_thumbnail_workflow"
down_revision = "0001_create_photos"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The thumbnail_status enum type, the eight thumbnail_* columns, the two partial indexes.
    add_workflow_columns("photos", "thumbnail")
    # Once per project: curate's own tables (pause, periodic jobs, attempts, cancels, stats).
    create_curate_tables()


def downgrade() -> None:
    drop_curate_tables()
    drop_workflow_columns("photos", "thumbnail")
