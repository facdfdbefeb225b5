"""Create the photos table.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("url", sa.String(200), nullable=False),
        sa.Column("caption", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("photos")
