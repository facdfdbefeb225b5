"""curate's own tables: pause flags and rate-limit buckets, the record of periodic runs.

From a migration, so the demo's app role needs no right to create tables; databases where
an older curate created them at run time keep them as they are.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from curate.migrations import create_curate_tables, drop_curate_tables

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_curate_tables()


def downgrade() -> None:
    drop_curate_tables()
