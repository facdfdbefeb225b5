"""create the photos table

Revision ID: 0001_create_photos
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_create_photos"
down_revision = None
branch_labels = None
depends_on = None

curation_status = sa.Enum("New", "Selected", "Rejected", name="curation_status")


def upgrade() -> None:
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("curation_status", curation_status, nullable=False, server_default="New"),
        sa.Column("thumb_width", sa.Integer()),
        sa.Column("thumb_height", sa.Integer()),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("photos")
    curation_status.drop(op.get_bind(), checkfirst=True)
