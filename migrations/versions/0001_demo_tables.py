"""The demo's tables: domains, sitemap_files, pages, each with one workflow.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from curate.migrations import add_workflow_columns, drop_workflow_columns

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out, not imported from the models: a migration is a snapshot of its day.
curation_status = postgresql.ENUM(
    "New", "Selected", "Rejected", name="curation_status", create_type=False
)

WORKFLOWS = (
    ("domains", "sitemap_discovery"),
    ("sitemap_files", "sitemap_import"),
    ("pages", "page_curation"),
)


def common_columns() -> list[sa.Column[object]]:
    """Key, curation status and timestamps: what every demo table starts with."""
    return [
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("curation_status", curation_status, nullable=False, server_default="New"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    ]


def parent_column(name: str, parent: str) -> sa.Column[object]:
    """A required reference to ``parent``'s id; rows go with their parent."""
    return sa.Column(
        name,
        sa.Uuid(),
        sa.ForeignKey(f"{parent}.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


def upgrade() -> None:
    curation_status.create(op.get_bind())
    op.create_table(
        "domains",
        *common_columns(),
        sa.Column("name", sa.String(253), nullable=False, unique=True),
        sa.Column("url", sa.Text(), nullable=False),
    )
    op.create_table(
        "sitemap_files",
        *common_columns(),
        parent_column("domain_id", "domains"),
        sa.Column("url", sa.Text(), nullable=False, unique=True),
        sa.Column("url_count", sa.Integer()),
    )
    op.create_table(
        "pages",
        *common_columns(),
        parent_column("domain_id", "domains"),
        parent_column("sitemap_file_id", "sitemap_files"),
        sa.Column("url", sa.Text(), nullable=False, unique=True),
        sa.Column("title", sa.Text()),
        sa.Column("word_count", sa.Integer()),
    )
    for table, workflow in WORKFLOWS:
        add_workflow_columns(table, workflow)


def downgrade() -> None:
    for table, workflow in reversed(WORKFLOWS):
        drop_workflow_columns(table, workflow)
    for table, _ in reversed(WORKFLOWS):
        op.drop_table(table)
    curation_status.drop(op.get_bind())
