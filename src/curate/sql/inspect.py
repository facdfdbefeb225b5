"""Read-only statements for tests (`curate.testing`): which rows sit in which status.

Built from the workflow's `TableBinding`, comparing the status through the column's own
type, so enum and string status columns both work and no status literal is in the SQL.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import Select, bindparam, select

from curate.engine.binding import TableBinding


def rows_in_status(binding: TableBinding) -> Select[Any]:
    """``id`` and ``error`` of the rows whose status is ``curate_status``, by id."""
    return (
        select(binding.pk.label("id"), binding.error.label("error"))
        .where(binding.status == bindparam("curate_status", type_=binding.status.type))
        .order_by(binding.pk)
    )


def rows_in_status_params(binding: TableBinding, status: enum.Enum) -> dict[str, Any]:
    return {"curate_status": binding.status_value(status)}
