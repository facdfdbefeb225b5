"""Prices from a supplier whose API answers "busy, come back in N seconds" when it is
overloaded: the service snoozes instead of failing."""

import curate
from curate import Workflow, workflow_mixin
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Product(workflow_mixin("price_check"), Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(50))
    price_cents: Mapped[int | None]


class RetryLater(Exception):
    """The supplier's 429 or 503 with a Retry-After header, as its client raises it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"supplier busy, retry after {seconds:g} s")
        self.seconds = seconds


class Supplier:
    """A stand-in for the supplier's client: busy for its first ``busy_answers`` calls."""

    def __init__(self, busy_answers: int = 0, retry_after: float = 30) -> None:
        self.busy_answers = busy_answers
        self.retry_after = retry_after

    async def price(self, sku: str) -> int:
        if self.busy_answers > 0:
            self.busy_answers -= 1
            raise RetryLater(self.retry_after)
        return 100 * len(sku)


supplier = Supplier()


# docs: start service
async def process_single_price_check(product_id: int, session: AsyncSession) -> None:
    product = await session.get(Product, product_id)
    assert product is not None
    try:
        product.price_cents = await supplier.price(product.sku)
    except RetryLater as busy:
        # Not a failure: the supplier asked us to come back. The row waits, Queued, for
        # that long; its attempt is given back and its writes are rolled back.
        raise curate.Snooze(busy.seconds) from busy


price_check = Workflow(
    "price_check",
    model=Product,
    service=process_single_price_check,
    max_snoozes=20,  # then a snooze spends an attempt, so a supplier busy for ever still ends
)
# docs: end service
