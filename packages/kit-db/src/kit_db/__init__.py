"""kit-db: SQLAlchemy 2 toolkit with mixins, soft delete, tenant scoping, transactions,
pagination and repositories, on SQLite, PostgreSQL and MariaDB/MySQL.

Example::

    >>> from sqlalchemy import select
    >>> from sqlalchemy.orm import Mapped
    >>> from kit_db import Database, Model, SoftDeleteMixin, UUIDMixin
    >>> class Note(UUIDMixin, SoftDeleteMixin, Model):
    ...     __tablename__ = "doc_notes"
    ...     text: Mapped[str]
    >>> db = Database("sqlite://")
    >>> db.create_all()
    >>> with db.begin() as session:
    ...     session.add_all([Note(text="keep"), Note(text="drop")])
    >>> with db.begin() as session:
    ...     session.scalars(select(Note).where(Note.text == "drop")).one().soft_delete()
    >>> with db.session() as session:
    ...     [n.text for n in session.scalars(select(Note))]
    ['keep']
"""

from ._database import DEFAULT_URL, AsyncDatabase, Database
from ._model import NAMING_CONVENTION, Model
from ._scoping import (
    INCLUDE_DELETED,
    UNSCOPED,
    KitSession,
    current_tenant,
    tenant_context,
    unscoped,
)
from ._transaction import AsyncTransaction, Transaction, transactional
from ._version import __version__
from .exceptions import (
    ConfigurationError,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    InvalidCursor,
    KitDBError,
    MissingDriver,
    NotFound,
    TenantError,
    TenantRequired,
    TenantViolation,
)
from .mixins import (
    OrderingMixin,
    SoftDeleteMixin,
    TenantScopedMixin,
    TimestampMixin,
    UUIDMixin,
)
from .pagination import CursorPage, Page, apaginate, apaginate_keyset, paginate, paginate_keyset
from .repository import AsyncRepository, Repository
from .types import UTCDateTime, utcnow, uuid7

__all__ = [
    "DEFAULT_URL",
    "INCLUDE_DELETED",
    "NAMING_CONVENTION",
    "UNSCOPED",
    "AsyncDatabase",
    "AsyncRepository",
    "AsyncTransaction",
    "ConfigurationError",
    "Conflict",
    "CursorPage",
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "InvalidCursor",
    "KitDBError",
    "KitSession",
    "MissingDriver",
    "Model",
    "NotFound",
    "OrderingMixin",
    "Page",
    "Repository",
    "SoftDeleteMixin",
    "TenantError",
    "TenantRequired",
    "TenantScopedMixin",
    "TenantViolation",
    "TimestampMixin",
    "Transaction",
    "UTCDateTime",
    "UUIDMixin",
    "__version__",
    "apaginate",
    "apaginate_keyset",
    "current_tenant",
    "paginate",
    "paginate_keyset",
    "tenant_context",
    "transactional",
    "unscoped",
    "utcnow",
    "uuid7",
]
