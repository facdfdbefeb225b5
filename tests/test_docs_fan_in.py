"""Executes docs/examples/fan_in: the how-to on waiting for children."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

import curate
from curate.testing import WorkflowHarness
from tests.helpers import run_migration_step
from tests.test_docs import EXAMPLES

if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


def example(name: str) -> Any:
    return importlib.import_module(f"fan_in.{name}")


async def test_fan_in_examples(runtime: curate.Runtime, engine: AsyncEngine) -> None:
    orders, migration = example("orders"), example("add_shipping_fan_in")
    async with engine.begin() as conn:
        await conn.run_sync(orders.Base.metadata.create_all)
        await conn.execute(insert(orders.Order), [{"id": 1}, {"id": 2}])
        await conn.execute(
            insert(orders.OrderLine),
            [
                {"id": 10, "order_id": 1, "sku": "mug", "pack_status": "Queued"},
                {"id": 11, "order_id": 1, "sku": "tea", "pack_status": "Queued"},
                {"id": 20, "order_id": 2, "sku": "pot", "pack_status": "Queued"},
            ],
        )
    await run_migration_step(engine, migration.upgrade)
    harness = WorkflowHarness(runtime)
    assert await harness.queued(orders.ship) == []
    await harness.run_pending(orders.pack, orders.ship)
    assert await harness.complete(orders.ship) == [1, 2]
    async with engine.connect() as conn:
        packed = dict(
            (await conn.execute(select(orders.Order.id, orders.Order.lines_packed))).all()
        )
    assert packed == {1: 2, 2: 1}
    await run_migration_step(engine, migration.downgrade)
