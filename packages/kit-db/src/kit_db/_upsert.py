"""Native one-statement upserts: ``INSERT ... ON CONFLICT DO UPDATE`` on SQLite and
PostgreSQL, ``INSERT ... ON DUPLICATE KEY UPDATE`` on MySQL/MariaDB."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, case
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from .exceptions import ConfigurationError

__all__ = ["upsert_statement"]


def upsert_statement(
    dialect: str,
    model: type[Any],
    rows: Sequence[Mapping[str, Any]],
    *,
    index_columns: Sequence[Column[Any]],
    from_row: Sequence[Column[Any]],
    fixed: Mapping[Column[Any], Any],
    guard: tuple[Column[Any], Any] | None,
) -> Insert:
    """One multi-row upsert of ``model`` (an ORM-enabled statement).

    On conflict with ``index_columns`` (ignored by MySQL, which matches every unique key),
    the ``from_row`` columns take the proposed row's value and the ``fixed`` columns a
    literal value. With a ``guard`` ``(column, value)``, a conflicting row whose column
    differs is left as it is (PostgreSQL/SQLite: ``DO UPDATE ... WHERE``; MySQL: each
    assignment keeps the old value), so one tenant never overwrites another's row.
    """
    if dialect in ("sqlite", "postgresql"):
        module: Any = sqlite if dialect == "sqlite" else postgresql
        pg_stmt = module.insert(model).values(list(rows))
        excluded = pg_stmt.excluded
        pg_set: dict[Any, Any] = {col: excluded[col.key] for col in from_row}
        pg_set.update(fixed)
        where = None if guard is None else guard[0] == guard[1]
        result: Insert = pg_stmt.on_conflict_do_update(
            index_elements=list(index_columns), set_=pg_set, where=where
        )
        return result
    if dialect in ("mysql", "mariadb"):
        my_stmt = mysql.insert(model).values(list(rows))
        inserted = my_stmt.inserted
        my_set: dict[Any, Any] = {col: inserted[col.key] for col in from_row}
        my_set.update(fixed)
        if guard is not None:
            same_tenant: ColumnElement[bool] = guard[0] == guard[1]
            my_set = {col: case((same_tenant, value), else_=col) for col, value in my_set.items()}
        return my_stmt.on_duplicate_key_update(my_set)
    raise ConfigurationError(f"upsert is not supported on {dialect!r}")
