"""The migration that makes it happen: orders are queued for ``ship`` by triggers on
``order_lines`` as their last line is packed."""

from curate.migrations import create_fan_in, drop_fan_in


def upgrade() -> None:
    create_fan_in(
        "orders",
        "ship",
        child_table="order_lines",
        child_workflow="pack",
        parent_key="order_id",
    )


def downgrade() -> None:
    drop_fan_in("orders", "ship", child_table="order_lines")
