"""The processing indexes, which the rescue of expired leases reads, on the demo's tables.

Databases made before curate had them get them here; on a fresh database, where 0001
already made them, this does nothing.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from curate.migrations import create_processing_index, drop_processing_index

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORKFLOWS = (
    ("domains", "sitemap_discovery"),
    ("sitemap_files", "sitemap_import"),
    ("pages", "page_curation"),
)


def upgrade() -> None:
    for table, workflow in WORKFLOWS:
        create_processing_index(table, workflow)


def downgrade() -> None:
    for table, workflow in WORKFLOWS:
        drop_processing_index(table, workflow)
