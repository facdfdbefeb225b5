"""link invoice spans to the requests that queued them

Revision ID: 0005_invoice_trace_context
Revises: 0004_add_invoice_workflow
"""

from curate.migrations import add_trace_context_column, drop_trace_context_column

revision = "0005_invoice_trace_context"
down_revision = "0004_add_invoice_workflow"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_trace_context_column("orders", "invoice")


def downgrade() -> None:
    drop_trace_context_column("orders", "invoice")
