"""An order ships once every one of its lines is packed (or could not be): a fan-in."""

from typing import Any

from curate import Workflow, workflow_mixin
from curate.fan_in import Children
from sqlalchemy import ForeignKey, Integer, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Order(workflow_mixin("ship"), Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    lines_packed: Mapped[int | None] = mapped_column(Integer)


class OrderLine(workflow_mixin("pack"), Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    sku: Mapped[str] = mapped_column(String(40))


async def pack_line(line_id: Any, session: AsyncSession) -> None:
    """Pick the line's item off the shelf (here: nothing to do)."""


async def ship_order(order_id: Any, session: AsyncSession) -> None:
    """Every line is done: count the packed ones and hand the parcel over."""
    order = await session.get_one(Order, order_id)
    packed = select(func.count()).where(
        OrderLine.order_id == order_id, OrderLine.pack_status == "Complete"
    )
    order.lines_packed = await session.scalar(packed)


pack = Workflow("pack", model=OrderLine, service=pack_line)
ship = Workflow(
    "ship",
    model=Order,
    service=ship_order,
    waits_for=Children(pack, parent_key="order_id"),
)
