"""The JSON shapes of `curate_router`'s endpoints (pydantic models: the OpenAPI schema).

Plain data, mapped from the dataclasses of `curate.operations` (``from_attributes``).
Needs the ``fastapi`` extra.
"""

from datetime import datetime
from typing import Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from curate import operations


class StatusCounts(BaseModel):
    """Rows per processing status; ``other``: a status outside the workflow's four;
    ``unset``: rows whose status is NULL (never queued for this workflow)."""

    queued: int
    processing: int
    complete: int
    error: int
    other: int
    unset: int


class ErrorGroup(BaseModel):
    """Failed rows whose errors' first lines differ only in ids and numbers."""

    model_config = ConfigDict(from_attributes=True)

    message: str = Field(description="The first line, with UUIDs as <uuid> and numbers as N.")
    rows: int
    last_seen: datetime | None = Field(description="Null without an updated_at column.")
    example: str = Field(description="One of the real first lines.")


class WorkflowStatus(BaseModel):
    """One workflow's queue; null where the table lacks the column the figure needs."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    table: str
    counts: StatusCounts
    oldest_queued_seconds: float | None = Field(
        description="Age of the oldest queued row, from updated_at."
    )
    expired_leases: int | None = Field(description="Rows Processing past their lease.")
    throughput_per_minute: float | None = Field(
        description=(
            f"Rows completed per minute over the last "
            f"{int(operations.THROUGHPUT_WINDOW.total_seconds())} s, from updated_at."
        )
    )
    errors: list[ErrorGroup] = Field(
        description=f"The {operations.ERROR_GROUPS} largest groups of rows in Error."
    )
    failures_found: bool = Field(description="Rows in Error or past their lease.")
    paused: bool = Field(description="No worker claims its rows until it is resumed.")
    paused_at: datetime | None = Field(description="When it was paused; null: not paused.")
    paused_reason: str | None = Field(description="Why, as given to the pause.")
    rate_limit: float | None = Field(
        description="Items per second it may start across all workers; null: unlimited."
    )


class StatusReport(BaseModel):
    """Every workflow, read in one snapshot at the database's time."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    failures_found: bool
    workflows: list[WorkflowStatus]


class Attempt(BaseModel):
    """One attempt of the item, as it ended."""

    model_config = ConfigDict(from_attributes=True)

    attempt: int
    started_at: datetime | None = Field(description="Null: rescued, or a batched completion.")
    ended_at: datetime
    worker: str | None
    outcome: str = Field(
        description="completed, failed, retried, interrupted, lease expired, snoozed, cancelled."
    )
    error: str | None
    error_type: str | None = Field(description="The exception's class, module.Name.")
    traceback: str | None = Field(description="The innermost frames where it was raised.")


class ItemState(BaseModel):
    """One row's processing state; null where the table lacks the column."""

    model_config = ConfigDict(from_attributes=True)

    id: int | UUID | str
    status: str | None
    error: str | None
    attempts: int | None
    run_after: datetime | None = Field(description="Not before this time; null: now.")
    claimed_by: str | None = Field(
        description="The token of the last claim: the worker id, `#`, 16 hex digits."
    )
    lease_until: datetime | None
    updated_at: datetime | None
    history: list[Attempt] | None = Field(
        description=(
            f"The newest {operations.ATTEMPTS_SHOWN} attempts, newest first; null: the"
            " attempt history is not recorded (no curate_attempts table)."
        )
    )


class _RowSelection(BaseModel):
    """The row choosers requeue and cancel share."""

    model_config = ConfigDict(extra="forbid")

    ids: list[int | str] = Field(default=[], max_length=10_000, description="Primary keys.")
    errors: bool = Field(default=False, description="Rows in the failed status.")
    where_error: str | None = Field(
        default=None,
        min_length=1,
        max_length=1_000,
        pattern="^[^\x00]*$",
        description="Rows whose error contains this text (any case).",
    )


class RequeueRequest(_RowSelection):
    """Which rows to put back to Queued: ``errors`` and ``stuck`` choose by status (either
    matches); ``ids`` and ``where_error`` narrow the choice, or choose on their own from
    every status but a running row."""

    stuck: bool = Field(default=False, description="Rows Processing past their lease.")

    @model_validator(mode="after")
    def _says_which(self) -> Self:
        if not (self.errors or self.stuck or self.ids or self.where_error is not None):
            raise ValueError("say which rows to re-queue: errors, stuck, ids or where_error")
        return self


class Problem(BaseModel):
    """An error: FastAPI's ``{"detail": ...}``."""

    detail: str


class RequeueResult(BaseModel):
    workflow: str
    requeued: int = Field(description="How many rows were put back to Queued.")


class PauseRequest(BaseModel):
    """Why the workflow is paused (shown by the status until it is resumed)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1_000, pattern="^[^\x00]*$")


class PauseResult(BaseModel):
    workflow: str
    paused: bool = Field(description="Whether the workflow is paused now.")
    changed: bool = Field(description="False when it already was in that state.")


class CancelRequest(_RowSelection):
    """Which rows to cancel: ``ids`` and ``where_error`` choose among rows Queued or
    Processing; with ``errors``, rows in the failed status instead (only for a workflow
    with a cancelled status). ``reason`` is stored in the rows' error."""

    reason: str | None = Field(default=None, max_length=1_000, pattern="^[^\x00]*$")

    @model_validator(mode="after")
    def _says_which(self) -> Self:
        if not (self.errors or self.ids or self.where_error is not None):
            raise ValueError("say which rows to cancel: ids, where_error or errors")
        return self


class CancelResult(BaseModel):
    workflow: str
    cancelled: int = Field(description="Rows that ended cancelled at once (not running).")
    asked: int = Field(
        description="Running rows whose worker was asked to cancel them where they run."
    )
