"""The statement behind the dual-status helper: set a curation column on chosen rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, bindparam, update
from sqlalchemy.sql.dml import Update

from curate.sql.expressions import pk_in_ids


def set_curation_status(column: Column[Any]) -> Update:
    """``column = curate_value`` on the rows whose primary key is in ``curate_ids``."""
    table = column.table
    (pk,) = table.primary_key.columns
    return (
        update(table)
        .where(pk_in_ids(pk))
        .values({column: bindparam("curate_value", type_=column.type)})
    )


def set_curation_status_params(ids: Sequence[Any], value: Any) -> dict[str, Any]:
    return {"curate_ids": list(ids), "curate_value": value}
