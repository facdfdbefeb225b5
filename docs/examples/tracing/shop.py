"""An order queues its invoice inside the request's trace; a worker makes the invoice."""

import curate
from curate import Workflow, workflow_mixin
from curate.contrib.tracing import instrument
from curate.trace_context import current_traceparent
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


# docs: start model
class Order(workflow_mixin("invoice", trace_context=True), Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_number: Mapped[str | None]


# docs: end model


# docs: start setup
def setup_tracing(runtime: curate.Runtime, exporter: SpanExporter) -> TracerProvider:
    """At start-up, after curate.configure(), in the app and in every worker process."""
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))  # OTLP in production
    trace.set_tracer_provider(provider)
    instrument(runtime)  # first of the item hooks, so its span wraps the others
    return provider


# docs: end setup


# docs: start service
tracer = trace.get_tracer("shop")


async def process_single_invoice(order_id: int, session: AsyncSession) -> None:
    with tracer.start_as_current_span("render invoice"):  # a child of the item's span
        order = await session.get(Order, order_id)
        assert order is not None
        order.invoice_number = f"INV-{order_id:05d}"


invoice = Workflow("invoice", model=Order, service=process_single_invoice)


async def place_order(session: AsyncSession, order: Order) -> None:
    """Called by the request handler: the row keeps the request's traceparent."""
    session.add(order)
    await session.flush()
    await curate.queue(session, invoice, order.id)


# docs: end service


# docs: start raw-sql
QUEUE_INVOICE = text(
    "UPDATE orders SET invoice_status = 'Queued', invoice_attempts = 0,"
    " invoice_trace_context = :traceparent WHERE id = :id"
)


async def queue_invoice_by_sql(session: AsyncSession, order_id: int) -> None:
    await session.execute(QUEUE_INVOICE, {"id": order_id, "traceparent": current_traceparent()})


# docs: end raw-sql
