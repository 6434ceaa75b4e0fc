"""Soft delete and tenant isolation, enforced by the session for every ORM statement.

Reads: a ``do_orm_execute`` hook adds ``with_loader_criteria(..., include_aliases=True)``
to every ORM SELECT, UPDATE and DELETE, including relationship loads, counts and
``session.get``. Writes: a ``before_flush`` hook stamps new tenant rows and refuses rows of
another tenant. Identity-map lookups, which SQLAlchemy answers without SQL (``session.get``
and many-to-one lazy loads), are checked by ``KitSession._identity_lookup``; a refresh of a
loaded object gets the tenant parameter its propagated criteria need.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import String, bindparam, event, false, inspect
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    QueryableAttribute,
    Session,
    mapped_column,
    with_loader_criteria,
)
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.util import find_tables

from .exceptions import ConfigurationError, KitDBError, TenantRequired, TenantViolation
from .types import UTCDateTime, utcnow

__all__ = [
    "INCLUDE_DELETED",
    "UNSCOPED",
    "KitSession",
    "SoftDeleteMixin",
    "TenantScopedMixin",
    "current_tenant",
    "tenant_context",
    "unscoped",
]

INCLUDE_DELETED = "kit_include_deleted"
"""Execution option: ``select(M).execution_options(kit_include_deleted=True)`` also returns
soft-deleted rows."""

UNSCOPED = "kit_unscoped"
"""Execution option: run one statement without tenant scoping (like :func:`unscoped`)."""


class _NoTenant:
    def __repr__(self) -> str:
        return "<no tenant>"


_NO_TENANT = _NoTenant()
_tenant: ContextVar[Any] = ContextVar("kit_db_tenant", default=_NO_TENANT)
_unscoped: ContextVar[bool] = ContextVar("kit_db_unscoped", default=False)


@contextmanager
def tenant_context(tenant_id: Any) -> Iterator[None]:
    """Scope every ORM statement on tenant models inside the block to ``tenant_id``.

    Example::

        with tenant_context("acme"):
            session.scalars(select(Project)).all()  # only acme's projects
    """
    if tenant_id is None or tenant_id == "":
        raise ConfigurationError("tenant_context needs a tenant id, got an empty value")
    token = _tenant.set(tenant_id)
    try:
        yield
    finally:
        _tenant.reset(token)


@contextmanager
def unscoped() -> Iterator[None]:
    """Turn tenant scoping off inside the block: for admin tools and migrations only."""
    token = _unscoped.set(True)
    try:
        yield
    finally:
        _unscoped.reset(token)


def current_tenant() -> Any | None:
    """The tenant of the innermost :func:`tenant_context`, or ``None``."""
    tenant = _tenant.get()
    return None if tenant is _NO_TENANT else tenant


class SoftDeleteMixin:
    """``deleted_at``; ``soft_delete()`` and ``restore()``. Soft-deleted rows are left out of
    every ORM query of a kit-db session (``session.get``, relationship loads and counts
    included) unless the statement has ``execution_options(kit_include_deleted=True)``."""

    deleted_at: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime(), default=None, index=True, sort_order=102
    )

    def soft_delete(self) -> None:
        """Mark the row deleted; it disappears from every query once flushed."""
        self.deleted_at = utcnow()

    def restore(self) -> None:
        """Undo :meth:`soft_delete`."""
        self.deleted_at = None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class TenantScopedMixin:
    """``tenant_id``; rows are only visible and writable inside ``tenant_context`` of their
    tenant. Redefine ``tenant_id`` in the model for another type (UUID, int)."""

    tenant_id: Mapped[str] = mapped_column(String(64), index=True, nullable=False, sort_order=-90)


def _not_deleted(cls: Any) -> Any:
    return cls.deleted_at.is_(None)


def _no_rows(cls: Any) -> Any:
    return false()


def _is_tenant_scoped(mapper: Any) -> bool:
    return issubclass(mapper.class_, TenantScopedMixin)


_tenant_tables: dict[Any, str] = {}  # table -> model name, for statements naming tables


@event.listens_for(TenantScopedMixin, "instrument_class", propagate=True)
def _remember_tenant_table(mapper: Any, cls: type) -> None:
    table = getattr(mapper, "local_table", None)
    if table is not None:
        _tenant_tables[table] = cls.__name__


def _tenant_models_in(state: ORMExecuteState) -> set[str]:
    """Tenant-scoped models a statement selects, counts or joins explicitly.

    Reads the statement's entities, explicit FROMs (``select_from``) and joins without
    compiling it, so this costs little on every execution.
    """
    found = {m.class_.__name__ for m in state.all_mappers if _is_tenant_scoped(m)}
    if not _tenant_tables:
        return found
    statement = state.statement
    candidates: list[Any] = list(getattr(statement, "_from_obj", ()))
    candidates += [join[0] for join in getattr(statement, "_setup_joins", ())]
    for candidate in candidates:
        if isinstance(candidate, QueryableAttribute):  # .join(Parent.children)
            mapper = getattr(candidate.property, "mapper", None)
        else:
            entity = getattr(candidate, "_annotations", {}).get("parententity")
            if entity is None:
                entity = sa_inspect(candidate, raiseerr=False)
            mapper = getattr(entity, "mapper", None)
        if mapper is not None:
            if _is_tenant_scoped(mapper):
                found.add(mapper.class_.__name__)
            continue
        if not isinstance(candidate, FromClause):
            continue
        for table in find_tables(candidate, include_joins=True, include_aliases=True):
            name = _tenant_tables.get(getattr(table, "element", table))
            if name is not None:
                found.add(name)
    return found


# Built once: a criteria option per statement would cost an analysis and a new cache key
# on every execution. The tenant travels as a bound parameter instead of a closure value.
_TENANT_PARAM = "kit_db_tenant_id"
_SOFT_DELETE_CRITERIA = with_loader_criteria(SoftDeleteMixin, _not_deleted, include_aliases=True)
_TENANT_CRITERIA = with_loader_criteria(
    TenantScopedMixin,
    lambda cls: cls.tenant_id == bindparam("kit_db_tenant_id"),  # a literal: lambdas track names
    include_aliases=True,
)
_NO_TENANT_CRITERIA = with_loader_criteria(TenantScopedMixin, _no_rows, include_aliases=True)


def _with_tenant(parameters: Any, tenant: Any) -> Any:
    if parameters is None:
        return {_TENANT_PARAM: tenant}
    if isinstance(parameters, dict):
        return {**parameters, _TENANT_PARAM: tenant}
    return [{**row, _TENANT_PARAM: tenant} for row in parameters]


@event.listens_for(Session, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    if not isinstance(state.session, KitSession):
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load:
        # a refresh of loaded objects: it may carry criteria propagated from the query that
        # loaded them, whose tenant parameter needs a value (None matches no row)
        state.parameters = _with_tenant(state.parameters, current_tenant())
        return
    options = state.execution_options
    criteria: list[Any] = []
    if not options.get(INCLUDE_DELETED, False):
        criteria.append(_SOFT_DELETE_CRITERIA)
    if not (_unscoped.get() or options.get(UNSCOPED, False)):
        tenant = _tenant.get()
        if tenant is _NO_TENANT:
            involved = _tenant_models_in(state)
            if involved:
                raise TenantRequired(
                    f"{', '.join(sorted(involved))} is tenant-scoped: run this inside "
                    "tenant_context(tenant_id), or inside unscoped() if it really must see "
                    "every tenant"
                )
            # tenant rows reached through joins or relationships: none, never all
            criteria.append(_NO_TENANT_CRITERIA)
        else:
            criteria.append(_TENANT_CRITERIA)
            state.parameters = _with_tenant(state.parameters, tenant)
    if criteria:
        state.statement = state.statement.options(*criteria)


@event.listens_for(Session, "before_flush")
def _check_writes(session: Session, _flush_context: Any, _instances: Any) -> None:
    if not isinstance(session, KitSession) or _unscoped.get():
        return
    tenant = _tenant.get()
    for obj in session.new:
        if not isinstance(obj, TenantScopedMixin):
            continue
        if tenant is _NO_TENANT:
            if obj.tenant_id is None:
                raise TenantRequired(
                    f"cannot add {type(obj).__name__} outside tenant_context(): its tenant "
                    "would be unknown"
                )
            raise TenantRequired(
                f"cannot add {type(obj).__name__} for tenant {obj.tenant_id!r} outside "
                "tenant_context(); use unscoped() for cross-tenant admin writes"
            )
        if obj.tenant_id is None:
            obj.tenant_id = tenant
        elif obj.tenant_id != tenant:
            raise TenantViolation(
                f"cannot add {type(obj).__name__} of tenant {obj.tenant_id!r} inside "
                f"tenant_context({tenant!r})"
            )
    for obj in [*session.dirty, *session.deleted]:
        if not isinstance(obj, TenantScopedMixin):
            continue
        history = inspect(obj).attrs.tenant_id.history
        original = history.deleted[0] if history.deleted else obj.tenant_id
        if tenant is _NO_TENANT:
            raise TenantRequired(
                f"cannot change {type(obj).__name__} of tenant {original!r} outside "
                "tenant_context()"
            )
        if original != tenant or obj.tenant_id != tenant:
            raise TenantViolation(
                f"cannot change {type(obj).__name__} of tenant {original!r} "
                f"(to {obj.tenant_id!r}) inside tenant_context({tenant!r})"
            )


class KitSession(Session):
    """A :class:`~sqlalchemy.orm.Session` whose ORM statements respect soft delete and
    tenant scoping (see the module docstring)."""

    def flush(self, objects: Any = None) -> None:
        """Flush, raising kit-db's own error when a value was refused while binding
        (SQLAlchemy would wrap it in a ``StatementError``)."""
        try:
            super().flush(objects)
        except StatementError as exc:
            if isinstance(exc.orig, KitDBError):
                raise exc.orig from exc
            raise

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        """Execute, unwrapping kit-db errors raised while binding parameters."""
        try:
            return super().execute(statement, *args, **kwargs)
        except StatementError as exc:
            if isinstance(exc.orig, KitDBError):
                raise exc.orig from exc
            raise

    def _identity_lookup(
        self, mapper: Any, primary_key_identity: Any, *args: Any, **kwargs: Any
    ) -> Any:
        """Identity-map lookups (``get`` and many-to-one lazy loads) run no SQL, so the
        scoping hook never sees them: apply the same rules here. An object that must not be
        visible is reported as absent, and SQLAlchemy then asks the database, where the
        statement hook filters it."""
        found = super()._identity_lookup(mapper, primary_key_identity, *args, **kwargs)
        if found is None or not isinstance(found, mapper.class_):
            return found
        options = kwargs.get("execution_options") or {}
        if (
            isinstance(found, SoftDeleteMixin)
            and not options.get(INCLUDE_DELETED, False)
            and found.deleted_at is not None
        ):
            return None
        if isinstance(found, TenantScopedMixin) and not (
            _unscoped.get() or options.get(UNSCOPED, False)
        ):
            tenant = _tenant.get()
            if tenant is not _NO_TENANT and found.tenant_id != tenant:
                return None
            if tenant is _NO_TENANT:
                return None  # the statement hook then raises TenantRequired
        return found
