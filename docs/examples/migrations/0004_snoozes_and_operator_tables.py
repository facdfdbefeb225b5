"""bring photos up to this curate: the snoozes column, and curate's newer tables

Revision ID: 0004_snoozes_and_operator_tables
Revises: 0003_leave_room_for_hot_updates
"""

from curate.migrations import add_missing_workflow_columns, create_curate_tables

revision = "0004_snoozes_and_operator_tables"
down_revision = "0003_leave_room_for_hot_updates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # thumbnail_snoozes (integer NOT NULL DEFAULT 0) where photos lacks it; the queued
    # index is rebuilt, the processing index made if missing.
    add_missing_workflow_columns("photos", "thumbnail")
    # curate_attempts, curate_cancellations and curate_workflow_stats where missing;
    # the tables an earlier curate made are kept as they are, rows and all.
    create_curate_tables()


def downgrade() -> None:
    # Nothing to undo: 0002's downgrade drops every thumbnail column, thumbnail_snoozes
    # included, and curate's tables.
    pass
