"""leave a tenth of each photos page free, for HOT heartbeats of long thumbnail runs

Revision ID: 0003_leave_room_for_hot_updates
Revises: 0002_add_thumbnail_workflow
"""

from curate.migrations import set_fillfactor

revision = "0003_leave_room_for_hot_updates"
down_revision = "0002_add_thumbnail_workflow"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Pages written from now on; VACUUM FULL photos rewrites the existing ones.
    set_fillfactor("photos", 90)


def downgrade() -> None:
    set_fillfactor("photos", 100)  # PostgreSQL's default
