"""The statement behind the dual-status helper: set a curation column on chosen rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, any_, bindparam, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.dml import Update


def set_curation_status(column: Column[Any]) -> Update:
    """``column = curate_value`` on the rows whose primary key is in ``curate_ids``."""
    table = column.table
    (pk,) = table.primary_key.columns
    return (
        update(table)
        .where(pk_in_ids(pk))
        .values({column: bindparam("curate_value", type_=column.type)})
    )


def pk_in_ids(pk: Column[Any]) -> ColumnElement[bool]:
    """``pk = ANY(curate_ids)``: the ids as one array parameter. An expanding IN list takes
    a parameter per id, and the protocol allows 32,767, so a longer list would fail."""
    return pk == any_(bindparam("curate_ids", type_=ARRAY(pk.type)))


def set_curation_status_params(ids: Sequence[Any], value: Any) -> dict[str, Any]:
    return {"curate_ids": list(ids), "curate_value": value}
