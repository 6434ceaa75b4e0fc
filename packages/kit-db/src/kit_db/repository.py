"""Repositories: the everyday queries and writes of one model, sync and async.

``Repository(Model, session)`` and ``AsyncRepository(Model, async_session)`` have the same
methods; the async ones are awaited. They run on a kit-db session, so soft-deleted rows are
left out and tenant models are scoped to ``tenant_context`` by the session itself.

Writes flush but never commit: wrap them in :func:`kit_db.transactional` (or
``db.begin()``). ``add_many`` is the bulk path: one executemany per batch of plain dicts,
no ORM object per row. ``upsert`` and ``upsert_many`` are one native statement per batch
(``ON CONFLICT DO UPDATE`` / ``ON DUPLICATE KEY UPDATE``) and return the affected rows.
"""

import builtins
import decimal
import enum
import sqlite3
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import uuid_utils.compat
from sqlalchemy import (
    JSON,
    Column,
    ColumnExpressionArgument,
    Table,
    UniqueConstraint,
    func,
    insert,
    select,
    tuple_,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Mapper, Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement

from ._scoping import SoftDeleteMixin, TenantScopedMixin, _unscoped, current_tenant
from ._upsert import upsert_statement
from .exceptions import ConfigurationError, NotFound, TenantRequired, TenantViolation
from .types import utcnow, uuid7

__all__ = ["AsyncRepository", "Repository"]

T = TypeVar("T")

OrderBy = str | ColumnExpressionArgument[Any]
"""An attribute name (``"-name"`` for descending) or a column expression."""

IndexElement = str | InstrumentedAttribute[Any] | Column[Any]
"""An upsert conflict column: an attribute name, ``Model.attr`` or a ``Column``."""

_SQLITE_OLD_LIMIT = 999  # SQLITE_MAX_VARIABLE_NUMBER before SQLite 3.32
_MAX_BATCH = 10_000
_UPSERT_BATCH = 1_000
_POPULATE = {"populate_existing": True}
_FASTER: dict[Any, Any] = {uuid7: uuid_utils.compat.uuid7}  # the same values, one call less


# -- what kit-db needs to know about a model, computed once --------------------------------


@dataclass(slots=True, eq=False)
class _Model:
    model: type[Any]
    name: str
    mapper: Mapper[Any]
    table: Table | None  # a single plain table: bulk inserts go to Core
    columns: dict[str, Column[Any]]  # attribute key -> column
    attribute_of: dict[Any, str]  # column -> attribute key
    relationships: frozenset[str]
    pk: tuple[str, ...]
    rename: dict[str, str]  # attribute key -> column key, where they differ
    constants: dict[str, Any]  # scalar Python defaults
    now_keys: tuple[str, ...]  # default=utcnow: one timestamp per call
    pk_factories: tuple[tuple[str, Any], ...]  # zero-argument defaults of the primary key
    factories: tuple[tuple[str, Any], ...]  # other zero-argument defaults, called per row
    onupdate: dict[str, Any]  # attribute key -> zero-argument callable or constant
    tenant_key: str | None
    soft_delete: bool
    unique_keys: list[frozenset[str]]
    python_types: dict[str, type | None]
    checked_keys: set[frozenset[str]] = field(default_factory=set)


_models: weakref.WeakKeyDictionary[type, _Model] = weakref.WeakKeyDictionary()


def _describe(model: Any) -> _Model:
    try:
        return _models[model]
    except (KeyError, TypeError):
        pass
    try:
        mapper = sa_inspect(model)
    except NoInspectionAvailable:
        mapper = None
    if not isinstance(model, type) or not isinstance(mapper, Mapper):
        raise ConfigurationError(f"{model!r} is not a mapped model class")
    columns: dict[str, Column[Any]] = {}
    for prop in mapper.column_attrs:
        if len(prop.columns) == 1 and isinstance(prop.columns[0], Column):
            columns[prop.key] = prop.columns[0]
    attribute_of: dict[Any, str] = {column: key for key, column in columns.items()}
    local = mapper.local_table
    single = (
        isinstance(local, Table)
        and mapper.inherits is None
        and mapper.polymorphic_on is None
        and mapper.version_id_col is None
        and all(column.table is local for column in columns.values())
    )
    constants: dict[str, Any] = {}
    now_keys: list[str] = []
    pk_factories: list[tuple[str, Any]] = []
    factories: list[tuple[str, Any]] = []
    onupdate: dict[str, Any] = {}
    python_types: dict[str, type | None] = {}
    pk_columns = set(mapper.primary_key)
    for key, column in columns.items():
        python_types[key] = _python_type(column)
        default: Any = column.default
        if default is not None and getattr(default, "is_scalar", False):
            constants[key] = default.arg
        elif default is not None and getattr(default, "is_callable", False):
            plain = getattr(default.arg, "__wrapped__", None)  # zero-argument callables
            if plain is utcnow:
                now_keys.append(key)
            elif plain is not None:
                plain = _FASTER.get(plain, plain)
                (pk_factories if column in pk_columns else factories).append((key, plain))
            # callables taking the execution context are left to SQLAlchemy
        update: Any = column.onupdate
        if update is not None and getattr(update, "is_scalar", False):
            onupdate[key] = update.arg
        elif update is not None and getattr(update, "is_callable", False):
            plain = getattr(update.arg, "__wrapped__", None)
            if plain is not None:
                onupdate[key] = plain
    unique_keys: list[frozenset[str]] = [
        frozenset(attribute_of[c] for c in mapper.primary_key if c in attribute_of)
    ]
    if isinstance(local, Table):
        candidates: list[Any] = [
            *(c for c in local.constraints if isinstance(c, UniqueConstraint)),
            *(i for i in local.indexes if i.unique),
        ]
        for candidate in candidates:
            cols = list(candidate.columns)
            if cols and all(c in attribute_of for c in cols):
                unique_keys.append(frozenset(attribute_of[c] for c in cols))
    info = _Model(
        model=model,
        name=model.__name__,
        mapper=mapper,
        table=local if single and isinstance(local, Table) else None,
        columns=columns,
        attribute_of=attribute_of,
        relationships=frozenset(mapper.relationships.keys()),
        pk=tuple(attribute_of[c] for c in mapper.primary_key),
        rename={k: c.key for k, c in columns.items() if c.key != k},
        constants=constants,
        now_keys=tuple(now_keys),
        pk_factories=tuple(pk_factories),
        factories=tuple(factories),
        onupdate=onupdate,
        tenant_key="tenant_id" if issubclass(model, TenantScopedMixin) else None,
        soft_delete=issubclass(model, SoftDeleteMixin),
        unique_keys=unique_keys,
        python_types=python_types,
    )
    _models[model] = info
    return info


def _python_type(column: Column[Any]) -> type | None:
    if isinstance(column.type, JSON):
        return None
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return None
    return python_type if isinstance(python_type, type) else None


def _coerce(info: _Model, key: str, value: Any, *, convert: bool = True) -> Any:
    """``value`` checked (and a UUID string parsed) for attribute ``key``."""
    expected = info.python_types.get(key)
    if value is None or expected is None or isinstance(value, expected):
        return value
    if expected is uuid.UUID and isinstance(value, str) and convert:
        try:
            return uuid.UUID(value)
        except ValueError:
            raise ConfigurationError(f"{info.name}.{key} is a UUID; {value!r} is not one") from None
    if (expected is float and isinstance(value, int | decimal.Decimal)) or (
        expected is decimal.Decimal and isinstance(value, int | float)
    ):
        return value
    if issubclass(expected, enum.Enum) and isinstance(value, str):
        return value  # SQLAlchemy's Enum takes member names
    raise ConfigurationError(
        f"{info.name}.{key} expects {expected.__name__}, got {type(value).__name__} {value!r}"
    )


def _unknown(info: _Model, names: Iterable[str], what: str) -> ConfigurationError:
    names = sorted(names)
    shown = ", ".join(repr(n) for n in names)
    plural = "s" if len(names) > 1 else ""
    if any(n in info.relationships for n in names):
        hint = "relationships cannot be used here; set or filter the foreign-key column"
    else:
        hint = f"its columns are {', '.join(info.columns)}"
    return ConfigurationError(f"{info.name} has no column{plural} {shown} ({what}); {hint}")


def _attribute(info: _Model, element: Any, what: str) -> str:
    if isinstance(element, str):
        key = element
    elif isinstance(element, Column):
        key = info.attribute_of.get(element, element.key)
    else:
        key = getattr(element, "key", None) or repr(element)
    if key not in info.columns:
        raise _unknown(info, [key], what)
    return key


# -- statements shared by the sync and async repositories ----------------------------------


def _criteria(info: _Model, where: Sequence[Any], filters: Mapping[str, Any]) -> list[Any]:
    clauses: list[Any] = list(where)
    unknown = [key for key in filters if key not in info.columns]
    if unknown:
        raise _unknown(info, unknown, "in filters")
    for key, value in filters.items():
        attribute = getattr(info.model, key)
        value = _coerce(info, key, value)
        clauses.append(attribute.is_(None) if value is None else attribute == value)
    return clauses


def _order(info: _Model, order_by: OrderBy | Sequence[OrderBy] | None) -> list[Any]:
    if order_by is None:
        return [getattr(info.model, key) for key in info.pk]
    items: Sequence[Any] = (
        order_by if isinstance(order_by, Sequence) and not isinstance(order_by, str) else [order_by]
    )
    ordering: list[Any] = []
    for item in items:
        if isinstance(item, str):
            descending = item.startswith("-")
            key = item[1:] if descending else item
            if key not in info.columns:
                raise _unknown(info, [key], "in order_by")
            attribute = getattr(info.model, key)
            ordering.append(attribute.desc() if descending else attribute.asc())
        else:
            ordering.append(item)
    return ordering


def _non_negative(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigurationError(f"{name} must be a non-negative int or None, got {value!r}")


def _list_statement(
    info: _Model,
    where: Sequence[Any],
    order_by: OrderBy | Sequence[OrderBy] | None,
    limit: int | None,
    offset: int | None,
    filters: Mapping[str, Any],
) -> Select[Any]:
    _non_negative("limit", limit)
    _non_negative("offset", offset)
    statement = select(info.model).where(*_criteria(info, where, filters))
    statement = statement.order_by(*_order(info, order_by))
    if limit is not None:
        statement = statement.limit(limit)
    if offset:
        statement = statement.offset(offset)
    return statement


def _count_statement(info: _Model, where: Sequence[Any], filters: Mapping[str, Any]) -> Select[Any]:
    return select(func.count()).select_from(info.model).where(*_criteria(info, where, filters))


def _exists_statement(
    info: _Model, where: Sequence[Any], filters: Mapping[str, Any]
) -> Select[Any]:
    first_pk = getattr(info.model, info.pk[0])
    return select(first_pk).where(*_criteria(info, where, filters)).limit(1)


def _identity(info: _Model, id: Any) -> Any:
    """``id`` checked against the primary key: a value, or a tuple for composite keys."""
    if isinstance(id, info.model):
        raise ConfigurationError(f"pass the primary key of {info.name}, not the object")
    if len(info.pk) == 1:
        if isinstance(id, tuple | list | dict):
            raise ConfigurationError(f"{info.name} has a single-column key; got {id!r}")
        return _coerce(info, info.pk[0], id)
    if isinstance(id, Mapping):
        missing = set(info.pk) - set(id)
        if missing:
            raise ConfigurationError(f"{info.name} key lacks {', '.join(sorted(missing))}")
        return {k: _coerce(info, k, id[k]) for k in info.pk}
    if not isinstance(id, tuple | list) or len(id) != len(info.pk):
        raise ConfigurationError(
            f"{info.name} has a composite key ({', '.join(info.pk)}): pass a tuple, got {id!r}"
        )
    return tuple(_coerce(info, k, v) for k, v in zip(info.pk, id, strict=True))


def _not_found(info: _Model, id: Any) -> NotFound:
    return NotFound(f"{info.name} {id!r} not found")


def _checked_values(info: _Model, values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = [k for k in values if k not in info.columns and k not in info.relationships]
    if unknown:
        raise _unknown(info, unknown, "in update")
    return {k: v if k in info.relationships else _coerce(info, k, v) for k, v in values.items()}


def _max_parameters(session: Session, info: _Model) -> int:
    dialect = session.get_bind(info.mapper).dialect
    if dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 32, 0):
        return _SQLITE_OLD_LIMIT
    return int(getattr(dialect, "insertmanyvalues_max_parameters", 32_000) or 32_000)


# -- bulk rows -----------------------------------------------------------------------------


def _tenant_rule(info: _Model) -> tuple[bool, Any]:
    """``(guard, tenant)``: whether rows must belong to ``tenant``, and the tenant to stamp."""
    if info.tenant_key is None:
        return False, None
    tenant = current_tenant()
    if _unscoped.get():
        return False, tenant
    if tenant is None:
        raise TenantRequired(
            f"{info.name} is tenant-scoped: write it inside tenant_context(tenant_id), or "
            "inside unscoped() with an explicit tenant_id per row"
        )
    return True, tenant


class _Rows:
    """Turns user rows into complete dicts: defaults filled, tenant checked."""

    __slots__ = ("base", "factories", "guard", "info", "pk_factories", "tenant", "tkey")

    def __init__(self, info: _Model) -> None:
        self.info = info
        self.guard, self.tenant = _tenant_rule(info)
        now = utcnow()
        base = dict(info.constants)
        for key in info.now_keys:
            base[key] = now
        self.tkey = info.tenant_key
        if self.tkey is not None and self.tenant is not None:
            base[self.tkey] = self.tenant
        self.base = base
        self.pk_factories = info.pk_factories
        self.factories = info.factories

    def source(self, index: int, row: Any) -> Mapping[str, Any]:
        if isinstance(row, Mapping):
            return row
        if isinstance(row, self.info.model):
            allowed = self.info.columns
            return {k: v for k, v in row.__dict__.items() if k in allowed}
        raise ConfigurationError(
            f"row {index} of {self.info.name} rows is a {type(row).__name__}; pass dicts or "
            f"{self.info.name} instances"
        )

    def fill(self, index: int, given: Mapping[str, Any]) -> dict[str, Any]:
        new = {**self.base, **given}
        for key, factory in self.pk_factories:
            if new.get(key) is None:
                new[key] = factory()
        for key, factory in self.factories:
            if key not in new:
                new[key] = factory()
        tkey = self.tkey
        if tkey is not None:
            self.check_tenant(index, new, tkey)
        return new

    def check_tenant(self, index: int, new: dict[str, Any], tkey: str) -> None:
        value = new.get(tkey)
        if value is None:
            if self.tenant is None:
                raise TenantRequired(
                    f"row {index} of {self.info.name} has no tenant_id, and there is no "
                    "tenant_context() to take it from"
                )
            new[tkey] = self.tenant
        elif self.guard and value != self.tenant:
            raise TenantViolation(
                f"row {index} of {self.info.name} belongs to tenant {value!r}, inside "
                f"tenant_context({self.tenant!r})"
            )

    def check_keys(self, keys: Iterable[str], first: Mapping[str, Any], what: str) -> None:
        info = self.info
        frozen = frozenset(keys)
        if frozen not in info.checked_keys:
            unknown = frozen - info.columns.keys()
            if unknown:
                raise _unknown(info, unknown, what)
            if len(info.checked_keys) < 64:
                info.checked_keys.add(frozen)
        for key, value in first.items():  # one row per batch: catches systematic mistakes
            _coerce(info, key, value, convert=False)


def _insert_batches(
    info: _Model, rows: Iterable[Any], max_parameters: int, batch_size: int | None
) -> Iterator[tuple[Insert, list[Any]]]:
    """``(statement, rows)`` to executemany: rows that share one set of keys, within the
    parameter limit, defaults and tenant settled."""
    if isinstance(rows, (Mapping, str, bytes, info.model)):
        raise ConfigurationError(f"add_many takes an iterable of rows, got {type(rows).__name__}")
    if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
        raise ConfigurationError(f"batch_size must be a positive int, got {batch_size!r}")
    prepare = _Rows(info)
    if info.table is not None and not info.rename:
        return _core_batches(info, prepare, rows, max_parameters, batch_size)
    return _copied_batches(info, prepare, rows, max_parameters, batch_size)


def _core_batches(
    info: _Model,
    prepare: _Rows,
    rows: Iterable[Any],
    max_parameters: int,
    batch_size: int | None,
) -> Iterator[tuple[Insert, list[Any]]]:
    """The fast path: the caller's dicts go to Core ``insert(table)`` as they are.

    Values shared by every row (scalar defaults, the call's timestamp, the tenant) are
    bound once on the statement; per-row defaults (the UUIDv7 key) are made by SQLAlchemy
    as the rows are sent. A row is copied only when it needs a change: a ``None`` key to
    generate, a ``None`` tenant to stamp, or it is not a plain dict.
    """
    assert info.table is not None
    table = info.table
    shared = prepare.base
    pk_factories = dict(prepare.pk_factories)
    pk_keys = tuple(pk_factories)
    tkey = prepare.tkey
    tenant = prepare.tenant
    guard = prepare.guard
    batch: list[Any] = []
    keys: Any = None
    statement: Insert = insert(table)
    limit = 0
    for index, row in enumerate(rows):
        if type(row) is not dict:
            row = dict(prepare.source(index, row))
        for key in pk_keys:
            if key in row and row[key] is None:
                row = {**row, key: pk_factories[key]()}
        if tkey is not None:
            value = row.get(tkey)
            if value is None:
                if tenant is None:
                    prepare.check_tenant(index, row, tkey)  # raises TenantRequired
                if tkey in row:
                    row = {**row, tkey: tenant}
            elif guard and value != tenant:
                prepare.check_tenant(index, row, tkey)  # raises TenantViolation
        if keys is None or row.keys() != keys:
            if batch:
                yield statement, batch
                batch = []
            keys = row.keys()
            prepare.check_keys(keys, row, "in add_many rows")
            bound = {k: v for k, v in shared.items() if k not in keys}
            statement = insert(table).values(bound) if bound else insert(table)
            width = max(1, len(keys) + len(bound))
            limit = max(1, min(batch_size or _MAX_BATCH, max_parameters // width))
        batch.append(row)
        if len(batch) >= limit:
            yield statement, batch
            batch = []
            keys = None
    if batch:
        yield statement, batch


def _copied_batches(
    info: _Model,
    prepare: _Rows,
    rows: Iterable[Any],
    max_parameters: int,
    batch_size: int | None,
) -> Iterator[tuple[Insert, list[Any]]]:
    """Models with inheritance or renamed columns: complete copies of the rows, sent to the
    ORM bulk INSERT (inheritance) or to Core with column keys (renamed columns)."""
    statement = insert(info.table if info.table is not None else info.model)
    rename = info.rename if info.table is not None else {}
    base = prepare.base
    pk_factories = prepare.pk_factories
    factories = prepare.factories
    tkey = prepare.tkey
    batch: list[Any] = []
    keys: Any = None
    limit = 0
    for index, row in enumerate(rows):
        new = {**base, **(row if type(row) is dict else prepare.source(index, row))}
        for key, factory in pk_factories:
            if new.get(key) is None:
                new[key] = factory()
        for key, factory in factories:
            if key not in new:
                new[key] = factory()
        if tkey is not None:
            prepare.check_tenant(index, new, tkey)
        if keys is None or new.keys() != keys:
            if batch:
                yield statement, batch
                batch = []
            keys = new.keys()
            prepare.check_keys(keys, new, "in add_many rows")
            limit = max(1, min(batch_size or _MAX_BATCH, max_parameters // max(1, len(new))))
        batch.append({rename.get(k, k): v for k, v in new.items()} if rename else new)
        if len(batch) >= limit:
            yield statement, batch
            batch = []
            keys = None
    if batch:
        yield statement, batch


# -- upsert --------------------------------------------------------------------------------


@dataclass(slots=True)
class _UpsertBatch:
    statement: Insert
    keys: list[tuple[Any, ...]]


class _Upsert:
    """Plans upsert statements: validation, defaults, grouping, dedupe, batching."""

    def __init__(
        self,
        info: _Model,
        session: Session,
        index_elements: Sequence[IndexElement],
        update_fields: Sequence[IndexElement] | None,
    ) -> None:
        if info.table is None:
            raise ConfigurationError(
                f"upsert supports models on one table; {info.name} uses inheritance"
            )
        if isinstance(index_elements, str) or not index_elements:
            raise ConfigurationError(
                "index_elements must be a non-empty list of the columns of a primary key or "
                f"unique constraint of {info.name}, e.g. index_elements=['email']"
            )
        self.info = info
        self.index = tuple(_attribute(info, e, "in index_elements") for e in index_elements)
        if frozenset(self.index) not in info.unique_keys:
            known = " or ".join(str(sorted(k)) for k in info.unique_keys if k)
            raise ConfigurationError(
                f"index_elements {list(self.index)} of {info.name} match no primary key or "
                f"unique constraint; use {known}"
            )
        self.update_fields: tuple[str, ...] | None = None
        if update_fields is not None:
            if isinstance(update_fields, str):
                raise ConfigurationError("update_fields must be a list of column names")
            fields = tuple(_attribute(info, e, "in update_fields") for e in update_fields)
            clash = set(fields) & set(self.index)
            if clash:
                raise ConfigurationError(
                    f"update_fields {sorted(clash)} are the conflict target; they cannot change"
                )
            self.update_fields = fields
        bind = session.get_bind(info.mapper)
        self.dialect = bind.dialect.name
        self.returning = bool(bind.dialect.insert_returning)
        self.max_parameters = _max_parameters(session, info)
        self.rows = _Rows(info)
        self.index_columns = [info.columns[k] for k in self.index]

    def key(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in self.index)

    def _update_columns(
        self, supplied: frozenset[str]
    ) -> tuple[list[Column[Any]], dict[Column[Any], Any]]:
        info = self.info
        protected = {*self.index, *info.pk}
        if info.tenant_key is not None:
            protected.add(info.tenant_key)
        if self.update_fields is not None:
            chosen = [k for k in self.update_fields if k not in protected or k in supplied]
        else:
            chosen = [k for k in info.columns if k in supplied and k not in protected]
        fixed: dict[Column[Any], Any] = {}
        now = self.rows.base.get(info.now_keys[0]) if info.now_keys else utcnow()
        for key, value in info.onupdate.items():
            if key not in chosen:
                if callable(value):
                    value = now if value is utcnow else value()
                fixed[info.columns[key]] = value
        if info.soft_delete and "deleted_at" not in chosen:
            fixed[info.columns["deleted_at"]] = None  # an upsert brings a deleted row back
        if not chosen and not fixed:
            chosen = [self.index[0]]  # a no-op assignment, so RETURNING still has the row
        return [info.columns[k] for k in chosen], fixed

    def batches(self, rows: Iterable[Any]) -> Iterator[_UpsertBatch]:
        if isinstance(rows, Mapping | str | bytes):
            raise ConfigurationError(
                f"upsert_many takes an iterable of rows, got {type(rows).__name__}"
            )
        groups: dict[tuple[frozenset[str], frozenset[str]], dict[tuple[Any, ...], Any]] = {}
        for index, row in enumerate(rows):
            given = self.rows.source(index, row)
            new = self.rows.fill(index, given)
            missing = [k for k in self.index if k not in new]
            if missing:
                raise ConfigurationError(
                    f"row {index} of {self.info.name} lacks {', '.join(missing)}, part of "
                    "index_elements"
                )
            group = groups.setdefault((frozenset(new), frozenset(given)), {})
            try:
                group[self.key(new)] = new  # the last row of a key wins
            except TypeError:
                raise ConfigurationError(
                    f"row {index} of {self.info.name}: index values must be hashable"
                ) from None
        guard = None
        if self.rows.guard and self.info.tenant_key is not None:
            guard = (self.info.columns[self.info.tenant_key], self.rows.tenant)
        for (keys, supplied), by_key in groups.items():
            first = next(iter(by_key.values()))
            self.rows.check_keys(keys, first, "in upsert rows")
            from_row, fixed = self._update_columns(supplied)
            size = max(1, min(_UPSERT_BATCH, self.max_parameters // max(1, len(keys) + 1)))
            items = list(by_key.items())
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                statement = upsert_statement(
                    self.dialect,
                    self.info.model,
                    [row for _, row in chunk],
                    index_columns=self.index_columns,
                    from_row=from_row,
                    fixed=fixed,
                    guard=guard,
                )
                yield _UpsertBatch(statement, [key for key, _ in chunk])

    def reselect(self, keys: list[tuple[Any, ...]]) -> Select[Any]:
        model = self.info.model
        if len(self.index) == 1:
            condition: ColumnElement[bool] = getattr(model, self.index[0]).in_([k[0] for k in keys])
        else:
            condition = tuple_(*(getattr(model, k) for k in self.index)).in_(keys)
        return select(model).where(condition).execution_options(**_POPULATE)

    def collect(self, batch: _UpsertBatch, found: Sequence[Any], into: dict[Any, Any]) -> None:
        """Match the rows a batch affected to its keys; refuse rows of another tenant."""
        info = self.info
        tkey = info.tenant_key
        if tkey is not None and self.rows.guard:
            foreign = [obj for obj in found if getattr(obj, tkey) != self.rows.tenant]
            if foreign or len(found) < len(batch.keys):
                raise TenantViolation(
                    f"upsert of {info.name} on {list(self.index)} matched rows of another "
                    f"tenant; nothing of theirs was changed (tenant_context({self.rows.tenant!r}))"
                )
        for obj in found:
            into[tuple(getattr(obj, k) for k in self.index)] = obj

    @staticmethod
    def ordered(order: Iterable[tuple[Any, ...]], into: dict[Any, Any]) -> builtins.list[Any]:
        result = [into.pop(key) for key in order if key in into]
        result.extend(into.values())
        return result


# -- the repositories ----------------------------------------------------------------------


class _Base(Generic[T]):
    __slots__ = ("_info", "model")

    def __init__(self, model: type[T]) -> None:
        self._info = _describe(model)
        self.model: type[T] = model

    def _check_instance(self, obj: Any, what: str) -> T:
        if not isinstance(obj, self.model):
            raise ConfigurationError(
                f"{what} of {self._info.name} repository got a {type(obj).__name__}"
            )
        return obj

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._info.name})"


class Repository(_Base[T]):
    """Queries and writes of one model on a kit-db session.

    Reads leave soft-deleted rows out and stay inside the current tenant (the session
    does that). Writes flush, so errors such as :class:`~kit_db.Conflict` surface at the
    call, and never commit: run them inside :func:`~kit_db.transactional` or ``db.begin()``.

    Example::

        >>> from sqlalchemy.orm import Mapped, mapped_column
        >>> from kit_db import Database, Model, Repository, UUIDMixin, transactional
        >>> class Pet(UUIDMixin, Model):
        ...     __tablename__ = "doc_repo_pets"
        ...     name: Mapped[str] = mapped_column(unique=True)
        ...     legs: Mapped[int] = mapped_column(default=4)
        >>> db = Database("sqlite://")
        >>> db.create_all()
        >>> with transactional(db) as session:
        ...     pets = Repository(Pet, session)
        ...     pets.add_many([{"name": "rex"}, {"name": "tweety", "legs": 2}])
        ...     tom = pets.add(Pet(name="tom"))
        ...     [p.name for p in pets.list(legs=4, order_by="name")]
        2
        ['rex', 'tom']
        >>> with transactional(db) as session:
        ...     pets = Repository(Pet, session)
        ...     pets.upsert({"name": "tweety", "legs": 3}, index_elements=["name"]).legs
        3
    """

    __slots__ = ("session",)

    def __init__(self, model: type[T], session: Session) -> None:
        super().__init__(model)
        if not isinstance(session, Session):
            hint = " (use AsyncRepository)" if isinstance(session, AsyncSession) else ""
            raise ConfigurationError(
                f"Repository needs a Session, got {type(session).__name__}{hint}"
            )
        self.session = session

    # reads

    def get(self, id: Any) -> T | None:
        """The row with primary key ``id`` (a tuple for composite keys), or ``None``.

        Example: ``users.get(user_id)``"""
        found: T | None = self.session.get(self.model, _identity(self._info, id))
        return found

    def get_or_raise(self, id: Any) -> T:
        """Like :meth:`get`, but a missing row raises :class:`~kit_db.NotFound`.

        Example: ``users.get_or_raise(user_id)``"""
        found = self.get(id)
        if found is None:
            raise _not_found(self._info, id)
        return found

    def list(
        self,
        *where: ColumnExpressionArgument[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        **filters: Any,
    ) -> builtins.list[T]:
        """Rows matching every ``where`` clause and ``attribute=value`` filter (``None``
        matches NULL), ordered by ``order_by`` (names, ``"-name"`` for descending, or
        expressions; the primary key by default).

        Example: ``users.list(User.age >= 18, country="NZ", order_by="-created_at", limit=20)``
        """
        statement = _list_statement(self._info, where, order_by, limit, offset, filters)
        return builtins.list(self.session.scalars(statement).all())

    def count(self, *where: ColumnExpressionArgument[bool], **filters: Any) -> int:
        """How many rows match (same arguments as :meth:`list`).

        Example: ``users.count(country="NZ")``"""
        return int(self.session.scalar(_count_statement(self._info, where, filters)) or 0)

    def exists(self, *where: ColumnExpressionArgument[bool], **filters: Any) -> bool:
        """Whether any row matches (same arguments as :meth:`list`).

        Example: ``users.exists(email="a@example.com")``"""
        statement = _exists_statement(self._info, where, filters)
        return self.session.execute(statement).first() is not None

    # writes

    def add(self, obj: T) -> T:
        """Add ``obj`` and flush: its defaults (id, timestamps, tenant) are set on return.

        Example: ``user = users.add(User(email="a@example.com"))``"""
        self.session.add(self._check_instance(obj, "add"))
        self.session.flush()
        return obj

    def add_many(
        self, rows: Iterable[Mapping[str, Any] | T], *, batch_size: int | None = None
    ) -> int:
        """Insert many rows fast and return how many: dicts of attribute values (or model
        instances, read as data and left untouched) go to the database in executemany
        batches, with no ORM object per row.

        Python-side defaults are filled in (UUIDv7 ids, one ``created_at``/``updated_at``
        for the whole call, scalar defaults) and tenant models get the current tenant; a
        row of another tenant raises :class:`~kit_db.TenantViolation`, and outside
        ``tenant_context`` (unless ``unscoped()``) :class:`~kit_db.TenantRequired`. Rows are
        checked and inserted batch by batch: after an error, roll the transaction back.

        Example: ``users.add_many({"email": e} for e in emails)``"""
        info = self._info
        session = self.session
        session.flush()
        count = 0
        for statement, batch in _insert_batches(
            info, rows, _max_parameters(session, info), batch_size
        ):
            session.execute(statement, batch)
            count += len(batch)
        return count

    def update(self, target: T | Any, /, **values: Any) -> T:
        """Set attributes of ``target`` (an object or a primary key) and flush.

        Example: ``users.update(user_id, name="Ada")``"""
        checked = _checked_values(self._info, values)
        obj = self._resolve(target, "update")
        for key, value in checked.items():
            setattr(obj, key, value)
        self.session.flush()
        return obj

    def delete(self, target: T | Any, /, *, hard: bool = False) -> None:
        """Delete ``target`` (an object or a primary key) and flush: a soft delete for
        :class:`~kit_db.SoftDeleteMixin` models unless ``hard=True``.

        Example: ``users.delete(user_id)``"""
        obj = self._resolve(target, "delete")
        if self._info.soft_delete and not hard:
            obj.soft_delete()  # type: ignore[attr-defined]
        else:
            self.session.delete(obj)
        self.session.flush()

    def upsert(self, values: Mapping[str, Any] | T, *, index_elements: Sequence[IndexElement]) -> T:
        """Insert ``values``, or update the row that has the same ``index_elements`` (a
        primary key or unique constraint), in one statement; return the row.

        Example: ``users.upsert({"email": e, "name": n}, index_elements=["email"])``"""
        result = self.upsert_many([values], index_elements=index_elements)
        if not result:
            raise NotFound(f"upsert of {self._info.name} returned no row")
        return result[0]

    def upsert_many(
        self,
        rows: Iterable[Mapping[str, Any] | T],
        *,
        index_elements: Sequence[IndexElement],
        update_fields: Sequence[IndexElement] | None = None,
    ) -> builtins.list[T]:
        """Insert rows, or update those whose ``index_elements`` exist, with one native
        statement per batch; return the affected rows (input order, one per key; a key
        given twice keeps the last row).

        On conflict the columns each row gives are updated (or only ``update_fields``),
        never the key, primary key, tenant or untouched defaults such as ``created_at``;
        ``onupdate`` columns (``updated_at``) are refreshed and a soft-deleted row is
        brought back. MySQL/MariaDB match any unique key, not only ``index_elements``.

        Example: ``users.upsert_many(rows, index_elements=["email"], update_fields=["name"])``
        """
        session = self.session
        session.flush()
        plan = _Upsert(self._info, session, index_elements, update_fields)
        found: dict[Any, Any] = {}
        order: dict[tuple[Any, ...], None] = {}
        for batch in plan.batches(rows):
            order.update(dict.fromkeys(batch.keys))
            if plan.returning:
                statement = batch.statement.returning(self.model)
                objs = session.scalars(statement, execution_options=_POPULATE).all()
            else:
                session.execute(batch.statement)
                objs = session.scalars(plan.reselect(batch.keys)).all()
            plan.collect(batch, objs, found)
        return plan.ordered(order, found)

    def _resolve(self, target: Any, what: str) -> T:
        if isinstance(target, self.model):
            state = sa_inspect(target)
            if state.transient or state.pending:
                raise ConfigurationError(
                    f"cannot {what} a {self._info.name} that was never saved; add() it first"
                )
            if target not in self.session:
                self.session.add(target)
            return target
        return self.get_or_raise(target)


class AsyncRepository(_Base[T]):
    """The asyncio twin of :class:`Repository`: the same methods, awaited, on an
    :class:`~sqlalchemy.ext.asyncio.AsyncSession` from :class:`~kit_db.AsyncDatabase`.

    Example::

        async with transactional(async_db) as session:
            users = AsyncRepository(User, session)
            await users.add_many({"email": e} for e in emails)
            adults = await users.list(User.age >= 18, order_by="-created_at", limit=20)
    """

    __slots__ = ("session",)

    def __init__(self, model: type[T], session: AsyncSession) -> None:
        super().__init__(model)
        if not isinstance(session, AsyncSession):
            raise ConfigurationError(
                f"AsyncRepository needs an AsyncSession, got {type(session).__name__}"
            )
        self.session = session

    async def get(self, id: Any) -> T | None:
        """See :meth:`Repository.get`."""
        found: T | None = await self.session.get(self.model, _identity(self._info, id))
        return found

    async def get_or_raise(self, id: Any) -> T:
        """See :meth:`Repository.get_or_raise`."""
        found = await self.get(id)
        if found is None:
            raise _not_found(self._info, id)
        return found

    async def list(
        self,
        *where: ColumnExpressionArgument[bool],
        order_by: OrderBy | Sequence[OrderBy] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        **filters: Any,
    ) -> builtins.list[T]:
        """See :meth:`Repository.list`."""
        statement = _list_statement(self._info, where, order_by, limit, offset, filters)
        return builtins.list((await self.session.scalars(statement)).all())

    async def count(self, *where: ColumnExpressionArgument[bool], **filters: Any) -> int:
        """See :meth:`Repository.count`."""
        return int(await self.session.scalar(_count_statement(self._info, where, filters)) or 0)

    async def exists(self, *where: ColumnExpressionArgument[bool], **filters: Any) -> bool:
        """See :meth:`Repository.exists`."""
        result = await self.session.execute(_exists_statement(self._info, where, filters))
        return result.first() is not None

    async def add(self, obj: T) -> T:
        """See :meth:`Repository.add`."""
        self.session.add(self._check_instance(obj, "add"))
        await self.session.flush()
        return obj

    async def add_many(
        self, rows: Iterable[Mapping[str, Any] | T], *, batch_size: int | None = None
    ) -> int:
        """See :meth:`Repository.add_many`."""
        info = self._info
        session = self.session
        await session.flush()
        count = 0
        limit = _max_parameters(session.sync_session, info)
        for statement, batch in _insert_batches(info, rows, limit, batch_size):
            await session.execute(statement, batch)
            count += len(batch)
        return count

    async def update(self, target: T | Any, /, **values: Any) -> T:
        """See :meth:`Repository.update`."""
        checked = _checked_values(self._info, values)
        obj = await self._resolve(target, "update")
        for key, value in checked.items():
            setattr(obj, key, value)
        await self.session.flush()
        return obj

    async def delete(self, target: T | Any, /, *, hard: bool = False) -> None:
        """See :meth:`Repository.delete`."""
        obj = await self._resolve(target, "delete")
        if self._info.soft_delete and not hard:
            obj.soft_delete()  # type: ignore[attr-defined]
        else:
            await self.session.delete(obj)
        await self.session.flush()

    async def upsert(
        self, values: Mapping[str, Any] | T, *, index_elements: Sequence[IndexElement]
    ) -> T:
        """See :meth:`Repository.upsert`."""
        result = await self.upsert_many([values], index_elements=index_elements)
        if not result:
            raise NotFound(f"upsert of {self._info.name} returned no row")
        return result[0]

    async def upsert_many(
        self,
        rows: Iterable[Mapping[str, Any] | T],
        *,
        index_elements: Sequence[IndexElement],
        update_fields: Sequence[IndexElement] | None = None,
    ) -> builtins.list[T]:
        """See :meth:`Repository.upsert_many`."""
        session = self.session
        await session.flush()
        plan = _Upsert(self._info, session.sync_session, index_elements, update_fields)
        found: dict[Any, Any] = {}
        order: dict[tuple[Any, ...], None] = {}
        for batch in plan.batches(rows):
            order.update(dict.fromkeys(batch.keys))
            if plan.returning:
                statement = batch.statement.returning(self.model)
                objs = (await session.scalars(statement, execution_options=_POPULATE)).all()
            else:
                await session.execute(batch.statement)
                objs = (await session.scalars(plan.reselect(batch.keys))).all()
            plan.collect(batch, objs, found)
        return plan.ordered(order, found)

    async def _resolve(self, target: Any, what: str) -> T:
        if isinstance(target, self.model):
            state = sa_inspect(target)
            if state.transient or state.pending:
                raise ConfigurationError(
                    f"cannot {what} a {self._info.name} that was never saved; add() it first"
                )
            if target not in self.session:
                self.session.add(target)
            return target
        return await self.get_or_raise(target)
