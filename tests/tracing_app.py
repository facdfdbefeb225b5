"""A table with the trace-context column and a workflow over it, for tests/test_tracing.py
and its worker process (tests/tracing_worker.py).

The service fails as each row's ``kind`` says: ``ok`` never, ``flaky`` on its first
attempt, ``broken`` on every attempt (two in all). It notes which span was current while
it ran, to check that the item's span is.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from sqlalchemy import Integer, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from curate import RetryPolicy, Workflow, workflow_mixin


class Base(DeclarativeBase):
    pass


class TracedJob(workflow_mixin("job", trace_context=True), Base):  # type: ignore[misc]
    __tablename__ = "traced_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), default="ok")


current_spans: dict[tuple[int, int], int] = {}
"""(job id, attempt) -> the span id current while the service ran."""


async def process_single_job(job_id: int, session: AsyncSession) -> None:
    job = await session.get(TracedJob, job_id)
    assert job is not None
    current_spans[(job_id, job.job_attempts)] = trace.get_current_span().get_span_context().span_id
    if job.kind == "broken" or (job.kind == "flaky" and job.job_attempts == 1):
        raise ValueError(f"job {job_id} failed on attempt {job.job_attempts}")


def job_workflow(**overrides: Any) -> Workflow:
    return Workflow(
        "job",
        model=TracedJob,
        service=process_single_job,
        batch_size=10,
        retry=RetryPolicy(max_attempts=2, base_seconds=0, jitter=False),
        **overrides,
    )
