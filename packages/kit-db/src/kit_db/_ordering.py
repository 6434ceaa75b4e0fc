"""Ordered lists of rows: :class:`OrderingMixin`.

A model with the mixin has an integer ``position``. ``__ordering_scope__`` names the columns
that split the table into independent lists (``("board_id",)``: one list per board; ``()``:
the whole table is one list). Tenant-scoped models are always ordered per tenant:
``tenant_id`` is added to the scope.

Example::

    class Card(UUIDMixin, SoftDeleteMixin, OrderingMixin, Model):
        __tablename__ = "cards"
        __ordering_scope__ = ("board_id",)
        board_id: Mapped[int] = mapped_column(ForeignKey("boards.id"), index=True)

    with db.begin() as session:
        session.add_all([Card(board_id=1), Card(board_id=1)])  # positions 0 and 1
    with db.begin() as session:
        Card.lock_ordering(session, board_id=1)  # optional: lock first, then read
        first, second = session.scalars(Card.ordered(board_id=1))
        second.move_above(first)
        second.move_to(-1)  # last again

**Invariant.** In every scope the *live* rows (not soft-deleted) have positions exactly
``0..n-1``, in a total order, after every flush that goes through the ORM: appends, moves,
soft delete (the row leaves the list, the rows below move up), restore (the row goes to the
end), ``session.delete`` (as soft delete), changing a scope column (the row leaves its old list
and goes to the end of the new one) and assigning ``position`` yourself (taken as a move to
that index, so assigning a whole permutation reorders the list). A soft-deleted row keeps its
last ``position`` but is outside the sequence. A ``position`` set on a *new* row is replaced:
new rows always go to the end. Bulk statements (``session.execute(update(...))``, Core
inserts, raw SQL) bypass the ORM and are not renumbered: call :meth:`OrderingMixin.renumber`
afterwards.

**Concurrency.** Every ordering write (append, move, departure, :meth:`~OrderingMixin.renumber`)
and :meth:`~OrderingMixin.lock_ordering` first takes an exclusive lock on the scope, held
until the transaction ends, and only then reads the scope's latest committed rows. So two
transactions that change the order of one scope are serialized (the second waits for the
first to commit or roll back) and positions stay dense without retries, with one exception
on MariaDB below. The lock, per dialect:

* PostgreSQL: ``pg_advisory_xact_lock`` on a 64-bit hash of (table, scope values), which
  covers an empty scope too, then ``SELECT ... FOR UPDATE`` of the scope's rows (so writers
  that bypass kit-db wait as well). The read after the lock must see other transactions'
  commits: READ COMMITTED (the default) or SERIALIZABLE (which may abort a transaction with a
  serialization error instead); under REPEATABLE READ ordering writes raise
  :class:`~kit_db.ConfigurationError`.
* MariaDB/MySQL (InnoDB): ``SELECT ... FOR UPDATE`` of the scope's rows, then a second
  locking read of them; locking reads see the latest committed rows even under REPEATABLE
  READ. Index the scope columns (a foreign key is indexed anyway): without an index InnoDB
  locks every row of the table, which is correct but serializes all scopes. **Exception:**
  an *empty* scope has no row to lock, only a gap. Two transactions appending the first rows
  of the same empty scope at the same moment can deadlock; InnoDB aborts one of them
  (SQLAlchemy's ``OperationalError``, MariaDB error 1213: retry that transaction). Under READ
  COMMITTED InnoDB takes no gap locks, and those two appends could both get position 0: keep
  the default REPEATABLE READ.
* SQLite: a no-op ``UPDATE ... WHERE 0`` takes the database write lock (waiting up to the
  busy timeout), as ``BEGIN IMMEDIATE`` would. SQLite cannot turn a transaction that has
  already *read* into a writer once another connection has committed since that read: it
  answers "database is locked" at once (``OperationalError``; nothing is written). When
  several connections reorder concurrently, call :meth:`~OrderingMixin.lock_ordering` first
  in the transaction, before reading the rows you will move.

Deadlocks: a flush locks the scopes it can see up front in a fixed order (by table, then
scope values); a scope known only once the flush sets a foreign key is locked when its row is
written. A transaction that updates rows of a scope *before* reordering it, or that reorders
several scopes in separate calls, can deadlock with another; the database aborts one of
them. Calling :meth:`~OrderingMixin.lock_ordering` for those scopes first, in a fixed order,
avoids both.

Moves run through the object's session (``object_session``): they lock, flush the session,
read the scope through it (soft delete and tenant hooks apply; the current
``tenant_context`` must be the row's tenant), and write the new positions with one
executemany ``UPDATE`` of the rows that changed (setting their ``updated_at``, as an ORM
update would); the objects in the session get the same values. Objects in *other* sessions
keep the positions they loaded. With asyncio, run moves in
``await session.run_sync(lambda _: card.move_to(0))``.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, Self

from sqlalchemy import Column, Integer, Select, Table, bindparam, event, false, func, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Mapper, Session, mapped_column, object_session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ColumnElement

from ._scoping import (
    _NO_TENANT,
    INCLUDE_DELETED,
    SoftDeleteMixin,
    TenantScopedMixin,
    _tenant,
    _unscoped,
)
from .exceptions import ConfigurationError, TenantRequired, TenantViolation

__all__ = ["OrderingMixin"]

_FLUSH = "kit_db.ordering.flush"  # session.info: locks and changes of the running flush

_PK = tuple[Any, ...]
_Key = tuple[type, tuple[Any, ...]]


class OrderingMixin:
    """``position``: the row's 0-based place in its list; see :mod:`kit_db._ordering`.

    ``__ordering_scope__`` names the attributes whose values identify a list, e.g.
    ``("board_id",)``; ``()`` (the default) makes the table one list (one per tenant for
    tenant-scoped models).
    """

    __ordering_scope__: ClassVar[tuple[str, ...]] = ()

    position: Mapped[int] = mapped_column(Integer, nullable=False, index=True, sort_order=99)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        scope = cls.__dict__.get("__ordering_scope__")
        if scope is not None and (
            not isinstance(scope, tuple) or not all(isinstance(name, str) for name in scope)
        ):
            raise ConfigurationError(
                f"{cls.__name__}.__ordering_scope__ must be a tuple of attribute names, "
                f'e.g. ("board_id",), got {scope!r}'
            )
        super().__init_subclass__(**kwargs)

    # -- queries ------------------------------------------------------------------------------

    @classmethod
    def ordered(cls, **scope: Any) -> Select[Self]:
        """``select(cls)`` in list order: filtered on the scope values given, ordered by the
        other scope columns, then ``position`` (then the primary key, for a total order).

        ``session.scalars(Card.ordered(board_id=1))`` lists board 1's cards top to bottom.
        """
        info = _info(cls)
        unknown = set(scope) - set(info.scope)
        if unknown:
            raise ConfigurationError(
                f"{cls.__name__} is ordered within {info.scope!r}; cannot filter on "
                f"{sorted(unknown)!r}"
            )
        statement = select(cls)
        for name in info.scope:
            if name in scope:
                column = info.attr(name)
                value = _coerce(info.column(name), scope[name])
                statement = statement.where(column.is_(None) if value is None else column == value)
        rest = [info.attr(name) for name in info.scope if name not in scope]
        return statement.order_by(*rest, info.attr("position"), *info.pk_attrs)

    @classmethod
    def lock_ordering(cls, session: Session, **scope: Any) -> None:
        """Lock the list identified by ``scope`` until ``session``'s transaction ends.

        Every ordering write takes this lock itself; call it first in a transaction that
        reads rows before reordering them, so the lock comes before the reads (required on
        SQLite under concurrent writers, see the module docs). ``tenant_id`` defaults to the
        current tenant.
        """
        info = _info(cls)
        values = info.values_from(scope, cls.__name__)
        _check_tenant(info, values, cls.__name__)
        _lock(_connection(session, info), info, values)

    @classmethod
    def renumber(cls, session: Session, **scope: Any) -> int:
        """Rewrite the list's positions as ``0..n-1`` in their current order (after bulk
        statements that bypassed the ORM); returns ``n``."""
        info = _info(cls)
        values = info.values_from(scope, cls.__name__)
        _check_tenant(info, values, cls.__name__)
        _lock(_connection(session, info), info, values)
        session.flush()
        return len(_reorder(session, info, values, lambda current: current))

    # -- moves --------------------------------------------------------------------------------

    def move_to(self, index: int) -> int:
        """Move to ``index`` (0-based; negative counts from the end: ``-1`` is last). An
        index past either end is clamped, like slicing, since the list may have changed
        since the caller looked at it. Returns the row's new index."""
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"move_to needs an int index, got {index!r}")

        def edit(order: list[_PK], me: _PK) -> list[_PK]:
            order.remove(me)
            order.insert(_clamp(index, len(order) + 1), me)
            return order

        return self._move(edit)

    def move_top(self) -> int:
        """Move to the top (index 0)."""
        return self.move_to(0)

    def move_bottom(self) -> int:
        """Move to the bottom (the last index)."""
        return self.move_to(-1)

    def move_up(self, steps: int = 1) -> int:
        """Move ``steps`` places towards the top (stops at the top)."""
        return self._move(_shift(-steps))

    def move_down(self, steps: int = 1) -> int:
        """Move ``steps`` places towards the bottom (stops at the bottom)."""
        return self._move(_shift(steps))

    def move_above(self, other: OrderingMixin) -> int:
        """Move just above ``other`` (to the index before it). ``other`` must be a live row
        of the same list, else :class:`~kit_db.ConfigurationError`."""
        return self._move_next_to(other, 0)

    def move_below(self, other: OrderingMixin) -> int:
        """Move just below ``other`` (to the index after it). ``other`` must be a live row
        of the same list, else :class:`~kit_db.ConfigurationError`."""
        return self._move_next_to(other, 1)

    def _move_next_to(self, other: OrderingMixin, offset: int) -> int:
        info = _info(type(self))
        if not isinstance(other, OrderingMixin) or _info(type(other)).root is not info.root:
            raise ConfigurationError(
                f"cannot move {type(self).__name__} next to {type(other).__name__}: "
                "not the same ordered table"
            )
        if other is self:
            return self._move(lambda order, me: order)
        other_pk: list[_PK] = []

        def edit(order: list[_PK], me: _PK) -> list[_PK]:
            if other_pk[0] not in order:
                raise ConfigurationError(
                    f"cannot move {type(self).__name__} next to {other!r}: that row is not a "
                    "live row of the list (soft-deleted, deleted, or moved away)"
                )
            order.remove(me)
            order.insert(order.index(other_pk[0]) + offset, me)
            return order

        def check(values: tuple[Any, ...]) -> None:
            other_state = sa_inspect(other)
            if other_state.identity is None:
                raise ConfigurationError(f"cannot move next to {other!r}: it is not saved yet")
            other_values = info.values_of(other)
            if other_values != values:
                raise ConfigurationError(
                    f"cannot move {type(self).__name__} next to a row of another list: "
                    f"{info.describe(values)} vs {info.describe(other_values)}"
                )
            other_pk.append(tuple(other_state.identity))

        return self._move(edit, check)

    def _move(
        self,
        edit: Callable[[list[_PK], _PK], list[_PK]],
        check: Callable[[tuple[Any, ...]], None] | None = None,
    ) -> int:
        session = object_session(self)
        name = type(self).__name__
        if session is None:
            raise ConfigurationError(f"{name} is not in a session: add it before moving it")
        info = _info(type(self))
        values = info.values_of(self)
        _check_tenant(info, values, name)
        connection = _connection(session, info)
        _lock(connection, info, values)  # before the flush: lock first, then write
        session.flush()
        state = sa_inspect(self)
        if state.identity is None or state.deleted or state.was_deleted:
            raise ConfigurationError(f"cannot move {name}: it is deleted or was never saved")
        after = info.values_of(self)
        if after != values:  # the flush set a scope column (e.g. from a relationship)
            values = after
            _check_tenant(info, values, name)
            _lock(connection, info, values)
        if check is not None:
            check(values)
        me: _PK = tuple(state.identity)

        def apply(current: list[_PK]) -> list[_PK]:
            if me not in current:
                raise ConfigurationError(
                    f"cannot move {name}: it is not a live row of {info.describe(values)} "
                    "(soft-deleted, or moved by another transaction)"
                )
            return edit(list(current), me)

        return _reorder(session, info, values, apply).index(me)


def _shift(steps: int) -> Callable[[list[_PK], _PK], list[_PK]]:
    if not isinstance(steps, int) or isinstance(steps, bool):
        raise TypeError(f"steps must be an int, got {steps!r}")

    def edit(order: list[_PK], me: _PK) -> list[_PK]:
        index = order.index(me)
        order.remove(me)
        order.insert(min(max(index + steps, 0), len(order)), me)
        return order

    return edit


def _clamp(index: int, length: int) -> int:
    """``index`` into a list of ``length`` items: negative from the end, clamped."""
    if index < 0:
        index += length
    return min(max(index, 0), length - 1)


# -- model metadata ---------------------------------------------------------------------------


@dataclass(eq=False)
class _Info:
    root: type
    mapper: Mapper[Any]
    table: Table
    scope: tuple[str, ...]  # declared scope, plus tenant_id for tenant-scoped models
    columns: dict[str, Column[Any]]  # attribute name -> column of ``table``
    pk_columns: tuple[Column[Any], ...]
    soft_delete: bool
    tenant: bool
    _attrs: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> Column[Any]:
        return self.columns[name]

    def attr(self, name: str) -> Any:
        if name not in self._attrs:
            self._attrs[name] = getattr(self.root, name)
        return self._attrs[name]

    @property
    def pk_attrs(self) -> list[Any]:
        return [self.mapper.get_property_by_column(c).class_attribute for c in self.pk_columns]

    def values_of(self, obj: Any) -> tuple[Any, ...]:
        values = []
        for name in self.scope:
            value = getattr(obj, name)
            if value is None and name == "tenant_id":
                tenant = _tenant.get()
                value = None if tenant is _NO_TENANT else tenant
            values.append(_coerce(self.columns[name], value))
        return tuple(values)

    def values_from(self, scope: dict[str, Any], model: str) -> tuple[Any, ...]:
        given = dict(scope)
        if self.tenant and "tenant_id" not in given:
            tenant = _tenant.get()
            if tenant is _NO_TENANT:
                raise TenantRequired(
                    f"{model} is tenant-scoped: run this inside tenant_context(), or pass "
                    "tenant_id= inside unscoped()"
                )
            given["tenant_id"] = tenant
        unknown = set(given) - set(self.scope)
        missing = [name for name in self.scope if name not in given]
        if unknown or missing:
            raise ConfigurationError(
                f"{model} lists are identified by {self.scope!r}: "
                f"missing {missing!r}, unknown {sorted(unknown)!r}"
            )
        return tuple(_coerce(self.columns[n], given[n]) for n in self.scope)

    def where(self, values: Sequence[Any], *, orm: bool) -> list[ColumnElement[bool]]:
        clauses = []
        for name, value in zip(self.scope, values, strict=True):
            column = self.attr(name) if orm else self.columns[name]
            clauses.append(column.is_(None) if value is None else column == value)
        return clauses

    def is_known(self, values: Sequence[Any]) -> bool:
        """False when a NOT NULL scope column is still None (set later in the flush)."""
        return not any(
            value is None and not self.columns[name].nullable
            for name, value in zip(self.scope, values, strict=True)
        )

    def describe(self, values: Sequence[Any]) -> str:
        if not self.scope:
            return f"the {self.root.__name__} list"
        pairs = ", ".join(f"{n}={v!r}" for n, v in zip(self.scope, values, strict=True))
        return f"the {self.root.__name__} list ({pairs})"

    def sort_key(self, values: Sequence[Any]) -> tuple[str, str]:
        return (self.table.fullname, repr(tuple(values)))


_infos: dict[type, _Info] = {}


def _info(cls: type) -> _Info:
    found = _infos.get(cls)
    if found is not None:
        return found
    mapper: Mapper[Any] = sa_inspect(cls)
    root = mapper
    while root.inherits is not None and issubclass(root.inherits.class_, OrderingMixin):
        root = root.inherits
    root_cls = root.class_
    if root_cls is not cls:
        info = _info(root_cls)
        _infos[cls] = info
        return info
    declared = tuple(getattr(cls, "__ordering_scope__", ()))
    tenant = issubclass(cls, TenantScopedMixin)
    scope = declared + (("tenant_id",) if tenant and "tenant_id" not in declared else ())
    position = _column_of(root, "position", cls.__name__)
    table = position.table
    if not isinstance(table, Table):
        raise ConfigurationError(f"{cls.__name__}.position must be a column of a table")
    columns = {"position": position}
    if issubclass(cls, SoftDeleteMixin):
        columns["deleted_at"] = _column_of(root, "deleted_at", cls.__name__)
    for name in scope:
        if name == "position":
            raise ConfigurationError(f"{cls.__name__}.__ordering_scope__ cannot name position")
        columns[name] = _column_of(root, name, cls.__name__)
    pk_columns: tuple[Column[Any], ...] = tuple(
        c for c in root.primary_key if isinstance(c, Column)
    )
    if len(pk_columns) != len(root.primary_key):
        raise ConfigurationError(f"{cls.__name__}: the primary key must be table columns")
    for column in [*columns.values(), *pk_columns]:
        if column.table is not table:
            raise ConfigurationError(
                f"{cls.__name__}: the ordering scope, position and primary key columns must "
                f"be in one table ({table.name}); {column.name!r} is not"
            )
    info = _Info(
        root=root_cls,
        mapper=root,
        table=table,
        scope=scope,
        columns=columns,
        pk_columns=pk_columns,
        soft_delete=issubclass(cls, SoftDeleteMixin),
        tenant=tenant,
    )
    _infos[cls] = info
    return info


def _column_of(mapper: Mapper[Any], name: str, model: str) -> Column[Any]:
    prop = mapper.attrs.get(name)
    columns = getattr(prop, "columns", None)
    if prop is None or not columns or len(columns) != 1 or not isinstance(columns[0], Column):
        raise ConfigurationError(
            f"{model}.__ordering_scope__ names {name!r}, which is not a column attribute of {model}"
        )
    column: Column[Any] = columns[0]
    return column


def _coerce(column: Column[Any], value: Any) -> Any:
    """The column's Python type for ``value`` (``"7"`` -> ``7``, str -> UUID), so a scope
    has one lock key and one comparison however the caller spelled it."""
    if value is None:
        return None
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return value
    if isinstance(value, python_type):
        return value
    try:
        return python_type(value)
    except (TypeError, ValueError):
        return value


def _check_tenant(info: _Info, values: tuple[Any, ...], model: str) -> None:
    if not info.tenant or _unscoped.get():
        return
    tenant = _tenant.get()
    if tenant is _NO_TENANT:
        raise TenantRequired(f"{model} is tenant-scoped: reorder it inside tenant_context()")
    row_tenant = values[info.scope.index("tenant_id")]
    if row_tenant != tenant:
        raise TenantViolation(
            f"cannot reorder {model} of tenant {row_tenant!r} inside tenant_context({tenant!r})"
        )


# -- locking, reading, writing ----------------------------------------------------------------


def _connection(session: Session, info: _Info) -> Connection:
    return session.connection(bind_arguments={"mapper": info.mapper})


def _lock_id(info: _Info, values: tuple[Any, ...]) -> int:
    text = f"kit_db.ordering\x00{info.table.fullname}\x00{tuple(values)!r}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)


def _lock(connection: Connection, info: _Info, values: tuple[Any, ...]) -> None:
    """Take the scope's lock for the rest of the transaction (see the module docs)."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        locked = select(
            func.pg_advisory_xact_lock(_lock_id(info, values)),
            func.current_setting("transaction_isolation"),
        )
        isolation = connection.execute(locked).one()[1]
        if isolation == "repeatable read":
            raise ConfigurationError(
                "ordering writes need READ COMMITTED or SERIALIZABLE on PostgreSQL: under "
                "REPEATABLE READ the read after the lock would miss rows committed meanwhile"
            )
    elif dialect in ("mysql", "mariadb"):
        locking = select(*info.pk_columns).where(*info.where(values, orm=False))
        connection.execute(locking.with_for_update()).all()
    elif dialect == "sqlite":
        position = info.columns["position"]
        connection.execute(update(info.table).where(false()).values({position: position}))


def _read(session: Session, info: _Info, values: tuple[Any, ...]) -> list[tuple[_PK, int]]:
    """The live rows of the scope as ``(primary key, position)`` in list order, read through
    the session (tenant hooks apply) with row locks. Soft-deleted rows are filtered here, not
    in SQL, so MariaDB locks through the same scope index as :func:`_lock`."""
    columns = [*info.pk_attrs, info.attr("position")]
    if info.soft_delete:
        columns.append(info.attr("deleted_at"))
    statement = (
        select(*columns)
        .where(*info.where(values, orm=True))
        .with_for_update()
        .execution_options(**{INCLUDE_DELETED: True})
    )
    width = len(info.pk_columns)
    rows = []
    for row in session.execute(statement):
        if info.soft_delete and row[width + 1] is not None:
            continue
        rows.append((tuple(row[:width]), row[width]))
    rows.sort(key=lambda r: (r[1], r[0]))
    return rows


def _reorder(
    session: Session,
    info: _Info,
    values: tuple[Any, ...],
    edit: Callable[[list[_PK]], list[_PK]],
    pending: dict[_PK, Any] | None = None,
) -> list[_PK]:
    """Read the scope (the caller holds its lock), apply ``edit`` to the list of primary
    keys, and store every row's index: one executemany ``UPDATE`` for the rows whose
    position changes (their ``onupdate`` columns, e.g. ``updated_at``, are set too, as an
    ORM update would), and the same values on the objects the session holds, without
    history (``pending``: rows inserted by the running flush, not yet in the identity
    map)."""
    rows = _read(session, info, values)
    stored = dict(rows)
    order = edit([pk for pk, _ in rows])
    stamps = _onupdate_values(info)
    changed: list[dict[str, Any]] = []
    for index, pk in enumerate(order):
        moved = stored.get(pk) != index
        if moved:
            params = {f"kit_pk_{i}": value for i, value in enumerate(pk)}
            params["kit_position"] = index
            changed.append(params)
        obj = session.identity_map.get(info.mapper.identity_key_from_primary_key(pk))
        if obj is None and pending:
            obj = pending.get(pk)
        if obj is not None:
            set_committed_value(obj, "position", index)
            if moved:
                for key, value in stamps.values():
                    set_committed_value(obj, key, value)
    if changed:
        position = info.columns["position"]
        statement = (
            update(info.table)
            .where(*[c == bindparam(f"kit_pk_{i}") for i, c in enumerate(info.pk_columns)])
            .where(*info.where(values, orm=False))
            .values({position: bindparam("kit_position")})
            .values({column: value for column, (_, value) in stamps.items()})
        )
        _connection(session, info).execute(statement, changed)
    return order


def _onupdate_values(info: _Info) -> dict[Column[Any], tuple[str, Any]]:
    """Values for the table's Python-side ``onupdate`` columns (``updated_at``), computed
    once so the database and the objects in the session agree. SQL-side ``onupdate``
    expressions are left to the database."""
    found: dict[Column[Any], tuple[str, Any]] = {}
    for column in info.table.c:
        default: Any = column.onupdate
        if default is None or column is info.columns["position"]:
            continue
        prop = info.mapper.get_property_by_column(column)
        if getattr(default, "is_scalar", False):
            found[column] = (prop.key, default.arg)
        elif getattr(default, "is_callable", False):
            fn = getattr(default, "_fn", None)
            try:
                takes_context = fn is None or any(
                    p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                    for p in inspect.signature(fn).parameters.values()
                )
            except (TypeError, ValueError):
                takes_context = True
            if not takes_context:
                found[column] = (prop.key, default.arg(None))
    return found


# -- flush hooks ------------------------------------------------------------------------------
#
# before_flush    locks, in sorted order, every scope the flush visibly touches
# before_insert   new row: lock its scope (foreign keys are set by now), max(position) + 1
# before_update   departures, arrivals and assigned positions: lock old and new scope, note
# before_delete   departure: lock the scope, note
# after_flush     renumber every noted scope (all rows are written, keys known)


@dataclass
class _FlushState:
    locked: set[_Key] = field(default_factory=set)
    next: dict[_Key, int] = field(default_factory=dict)
    # scope -> (info, values, arriving rows: primary key -> requested index or None)
    changes: dict[_Key, tuple[_Info, tuple[Any, ...], dict[_PK, int | None]]] = field(
        default_factory=dict
    )

    def lock(self, connection: Connection, info: _Info, values: tuple[Any, ...]) -> None:
        key = (info.root, values)
        if key not in self.locked:
            _lock(connection, info, values)
            self.locked.add(key)

    def note(self, info: _Info, values: tuple[Any, ...]) -> dict[_PK, int | None]:
        key = (info.root, values)
        if key not in self.changes:
            self.changes[key] = (info, values, {})
        return self.changes[key][2]


def _flush_state(session: Session | None) -> _FlushState:
    if session is None:
        return _FlushState()
    state = session.info.get(_FLUSH)
    if not isinstance(state, _FlushState):
        state = session.info[_FLUSH] = _FlushState()
    return state


@dataclass
class _RowChange:
    info: _Info
    pk: _PK
    old: tuple[Any, ...]
    new: tuple[Any, ...]
    was_live: bool
    is_live: bool
    requested: int | None

    @property
    def leaves(self) -> bool:
        return self.was_live and (not self.is_live or self.old != self.new)

    @property
    def arrives(self) -> bool:
        return self.is_live and (
            not self.was_live or self.old != self.new or self.requested is not None
        )


def _row_change(connection: Connection, obj: Any, *, deleting: bool = False) -> _RowChange | None:
    """How a persistent row's list membership changes in this flush, or None."""
    state = sa_inspect(obj)
    if state.identity is None:
        return None
    info = _info(type(obj))
    names = [*info.scope, *(["deleted_at"] if info.soft_delete else [])]
    if not deleting and not any(state.attrs[n].history.has_changes() for n in [*names, "position"]):
        return None
    old = _committed(connection, obj, info, names)
    old_values = tuple(_coerce(info.columns[n], old[n]) for n in info.scope)
    was_live = not info.soft_delete or old["deleted_at"] is None
    if deleting:
        return _RowChange(
            info, tuple(state.identity), old_values, old_values, was_live, False, None
        )
    requested = obj.position if state.attrs["position"].history.added else None
    is_live = not info.soft_delete or getattr(obj, "deleted_at", None) is None
    new_values = info.values_of(obj)
    return _RowChange(
        info, tuple(state.identity), old_values, new_values, was_live, is_live, requested
    )


def _committed(connection: Connection, obj: Any, info: _Info, names: list[str]) -> dict[str, Any]:
    """The values ``names`` had in the database before this flush."""
    state = sa_inspect(obj)
    result: dict[str, Any] = {}
    unknown = []
    for name in names:
        history = state.attrs[name].history
        if history.deleted:
            result[name] = history.deleted[0]
        elif history.added:
            unknown.append(name)  # set while unloaded: the old value is only in the database
        else:
            result[name] = getattr(obj, name)
    if unknown:
        columns = [info.columns[n] for n in unknown]
        pk = zip(info.pk_columns, state.identity, strict=True)
        row = connection.execute(select(*columns).where(*[c == v for c, v in pk])).one()
        result.update(zip(unknown, row, strict=True))
    return result


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _flush_context: Any, _instances: Any) -> None:
    flush = session.info[_FLUSH] = _FlushState()
    keys: dict[_Key, tuple[_Info, tuple[Any, ...]]] = {}
    for obj in session.new:
        if isinstance(obj, OrderingMixin):
            info = _info(type(obj))
            keys[(info.root, info.values_of(obj))] = (info, info.values_of(obj))
    touched = [(o, True) for o in session.deleted] + [(o, False) for o in session.dirty]
    connection: Connection | None = None
    for obj, deleting in touched:
        if not isinstance(obj, OrderingMixin):
            continue
        info = _info(type(obj))
        connection = connection or _connection(session, info)
        change = _row_change(connection, obj, deleting=deleting)
        if change is not None:
            for values in {change.old, change.new}:
                keys[(info.root, values)] = (info, values)
    if not keys:
        return
    for info, values in sorted(keys.values(), key=lambda iv: iv[0].sort_key(iv[1])):
        if not info.is_known(values):
            continue  # e.g. a foreign key the flush sets from a relationship: locked later
        _check_tenant(info, values, info.root.__name__)
        flush.lock(_connection(session, info), info, values)


@event.listens_for(OrderingMixin, "before_insert", propagate=True)
def _before_insert(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    """New rows go to the end of their list: ``max(position) + 1`` under the scope lock,
    once per scope and flush; further new rows of the flush count on from there."""
    info = _info(type(target))
    values = info.values_of(target)
    flush = _flush_state(object_session(target))
    key = (info.root, values)
    flush.lock(connection, info, values)
    if key not in flush.next:
        flush.next[key] = _next_position(connection, info, values)
    target.position = flush.next[key]
    if not (info.soft_delete and target.deleted_at is not None):
        flush.next[key] += 1


@event.listens_for(OrderingMixin, "before_update", propagate=True)
def _before_update(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    change = _row_change(connection, target)
    if change is None or not (change.leaves or change.arrives):
        return
    flush = _flush_state(object_session(target))
    info = change.info
    for values in sorted({change.old, change.new}, key=info.sort_key):
        flush.lock(connection, info, values)
    if change.leaves:
        flush.note(info, change.old)
    if change.arrives:
        flush.note(info, change.new)[change.pk] = change.requested


@event.listens_for(OrderingMixin, "before_delete", propagate=True)
def _before_delete(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    change = _row_change(connection, target, deleting=True)
    if change is None or not change.leaves:
        return
    flush = _flush_state(object_session(target))
    flush.lock(connection, change.info, change.old)
    flush.note(change.info, change.old)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush_context: Any) -> None:
    flush = session.info.pop(_FLUSH, None)
    if not isinstance(flush, _FlushState) or not flush.changes:
        return
    inserted: dict[type, dict[_PK, Any]] = {}
    for obj in session.new:
        if isinstance(obj, OrderingMixin):
            info = _info(type(obj))
            pk = tuple(info.mapper.primary_key_from_instance(obj))
            inserted.setdefault(info.root, {})[pk] = obj
    for info, values, arriving in sorted(flush.changes.values(), key=lambda c: c[0].sort_key(c[1])):
        _reorder(session, info, values, partial(_place, arriving), inserted.get(info.root))


def _place(arriving: dict[_PK, int | None], current: list[_PK]) -> list[_PK]:
    """``current`` (the list as written, in position order) with the rows that arrived in
    this flush put in place: at the end in their previous order, or at the index assigned
    to ``position`` (in increasing index order, so assigning a permutation applies it)."""
    order = [pk for pk in current if pk not in arriving]
    present = set(current)
    order += [pk for pk in current if pk in arriving and arriving[pk] is None]
    total = len(order) + sum(1 for pk, i in arriving.items() if i is not None and pk in present)
    placed = sorted(
        (_clamp(index, total), pk)
        for pk, index in arriving.items()
        if index is not None and pk in present
    )
    for index, pk in placed:
        order.insert(min(index, len(order)), pk)
    return order


def _next_position(connection: Connection, info: _Info, values: tuple[Any, ...]) -> int:
    position = info.columns["position"]
    statement = select(func.max(position)).where(*info.where(values, orm=False))
    if info.soft_delete:
        statement = statement.where(info.columns["deleted_at"].is_(None))
    if connection.dialect.name in ("mysql", "mariadb"):
        statement = statement.with_for_update()  # a locking read sees the latest rows
    highest = connection.execute(statement).scalar()
    return 0 if highest is None else int(highest) + 1
