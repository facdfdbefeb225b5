"""add the thumbnail workflow to photos

Revision ID: 0002_add_thumbnail_workflow
Revises: 0001_create_photos
"""

from curate.migrations import add_workflow_columns, drop_workflow_columns

revision = "0002_add_thumbnail_workflow"
down_revision = "0001_create_photos"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The thumbnail_status enum type, the six thumbnail_* columns, the partial index.
    add_workflow_columns("photos", "thumbnail")


def downgrade() -> None:
    drop_workflow_columns("photos", "thumbnail")
