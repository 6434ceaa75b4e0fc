"""Offset pagination (:func:`paginate`) and keyset pagination (:func:`paginate_keyset`).

Both run the statement through the session you pass, so on a kit-db session soft-deleted
rows and rows of other tenants never appear, in the items or in the totals.

**Offset** pages (:class:`Page`) have a ``total`` and random access by page number, and
cost a ``COUNT`` plus an ``OFFSET`` that grows with the page depth. **Keyset** pages
(:class:`CursorPage`) walk forward and backward from an opaque cursor and cost the same at
any depth, given an index matching the ordering.

Example::

    >>> from sqlalchemy import select
    >>> from sqlalchemy.orm import Mapped
    >>> from kit_db import Database, Model, UUIDMixin
    >>> from kit_db.pagination import paginate, paginate_keyset
    >>> class Song(UUIDMixin, Model):
    ...     __tablename__ = "doc_pagination_songs"
    ...     title: Mapped[str]
    >>> db = Database("sqlite://")
    >>> db.create_all()
    >>> with db.begin() as session:
    ...     session.add_all(Song(title=f"song {i:02d}") for i in range(45))
    >>> with db.session() as session:
    ...     page = paginate(session, select(Song).order_by(Song.title), page=3, per_page=20)
    ...     (page.total, page.pages, len(page.items), page.has_next, page.has_previous)
    (45, 3, 5, False, True)
    >>> with db.session() as session:
    ...     first = paginate_keyset(session, select(Song), order_by=[Song.title], limit=20)
    ...     second = paginate_keyset(
    ...         session, select(Song), order_by=[Song.title], after=first.next_cursor, limit=20
    ...     )
    ...     [s.title for s in second.items[:2]], second.has_previous
    (['song 20', 'song 21'], True)
"""

# No ``from __future__ import annotations``: the docstring examples define models, whose
# annotations SQLAlchemy must resolve where they are written.

import base64
import binascii
import datetime as dt
import decimal
import enum
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar, TypeVarTuple, overload

from pydantic import BaseModel
from sqlalchemy import (
    Column,
    ColumnElement,
    Label,
    Result,
    Row,
    Select,
    Table,
    UnaryExpression,
    and_,
    false,
    func,
    inspect,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators

from .exceptions import ConfigurationError, InvalidCursor

__all__ = [
    "DEFAULT_MAX_PER_PAGE",
    "CursorPage",
    "Page",
    "apaginate",
    "apaginate_keyset",
    "paginate",
    "paginate_keyset",
]

T = TypeVar("T")
_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

DEFAULT_MAX_PER_PAGE = 100
"""The largest ``per_page`` / ``limit`` accepted unless ``max_per_page`` / ``max_limit`` says
otherwise: a client asking for a million rows gets an error, not a slow response."""

_MAX_CURSOR_CHARS = 4096
_KEY_LABEL = "kit_keyset_{}"
_MAC_BYTES = 16
_MAC_DOMAIN = b"kit-db keyset cursor v1\x00"
_PROCESS_SECRET = secrets.token_bytes(32)
# The default signing key: random, made once per process. Cursors it signs are rejected by
# any other process (another worker, or this app after a restart): pass ``secret=``.


# --------------------------------------------------------------------------- models


class Page(BaseModel, Generic[T]):
    """One page of an offset-paginated query; a pydantic model, so FastAPI can use
    ``response_model=Page[UserOut]``.

    ``pages`` is 0 when ``total`` is 0. A page past the end has no items, ``has_next`` false
    and ``has_previous`` true.

    Example::

        >>> page = Page[int](items=[1, 2], total=12, page=2, per_page=5, pages=3,
        ...                  has_next=True, has_previous=True)
        >>> page.model_dump()["items"], page.pages
        ([1, 2], 3)
    """

    items: list[T]
    total: int
    page: int
    per_page: int
    pages: int
    has_next: bool
    has_previous: bool


class CursorPage(BaseModel, Generic[T]):
    """One page of a keyset-paginated query.

    Pass ``next_cursor`` as ``after=`` for the next page and ``previous_cursor`` as
    ``before=`` for the previous one; each is ``None`` when there is no such page. Cursors
    are opaque, URL-safe strings, signed but not encrypted: they carry the sort-key values of
    the first or last row of the page.

    Example::

        >>> page = CursorPage[str](items=["a"], next_cursor=None, previous_cursor=None,
        ...                        has_next=False, has_previous=False, limit=20)
        >>> page.has_next
        False
    """

    items: list[T]
    next_cursor: str | None
    previous_cursor: str | None
    has_next: bool
    has_previous: bool
    limit: int


# --------------------------------------------------------------------------- validation


def _positive_int(name: str, value: object, maximum: int | None, maximum_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
    if value < 1:
        raise ConfigurationError(f"{name} must be >= 1, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigurationError(
            f"{name}={value!r} is larger than {maximum_name}={maximum!r}; ask for fewer rows "
            f"or raise {maximum_name}"
        )
    return value


def _check_statement(stmt: object, function: str) -> Select[*tuple[Any, ...]]:
    if not isinstance(stmt, Select):
        raise ConfigurationError(
            f"{function} needs a select() statement, got {type(stmt).__name__}"
        )
    if (
        getattr(stmt, "_limit_clause", None) is not None
        or getattr(stmt, "_offset_clause", None) is not None
    ):
        raise ConfigurationError(
            f"{function} sets LIMIT and OFFSET itself: remove .limit()/.offset() from the statement"
        )
    return stmt


def _check_maximum(name: str, value: object) -> int | None:
    if value is None:
        return None
    return _positive_int(name, value, None, name)


def _rows_of(result: Result[*tuple[Any, ...]]) -> Result[*tuple[Any, ...]]:
    # Joined eager loads of collections repeat the parent once per child row; SQLAlchemy marks
    # such results as needing .unique() (and refuses to return rows otherwise). Only those are
    # de-duplicated: any other result keeps exactly the rows the statement returns, so the
    # items always agree with the COUNT.
    if getattr(result, "_unique_filter_state", None) is not None:
        return result.unique()
    return result


# --------------------------------------------------------------------------- offset


def _offset_statement(
    stmt: Select[*tuple[Any, ...]],
    page: object,
    per_page: object,
    max_per_page: object,
) -> tuple[Select[*tuple[Any, ...]], int, int]:
    stmt = _check_statement(stmt, "paginate")
    maximum = _check_maximum("max_per_page", max_per_page)
    page_no = _positive_int("page", page, None, "")
    size = _positive_int("per_page", per_page, maximum, "max_per_page")
    return stmt.limit(size).offset((page_no - 1) * size), page_no, size


def _count_statement(stmt: Select[*tuple[Any, ...]]) -> Select[int]:
    return select(func.count()).select_from(stmt.order_by(None).subquery())


def _items(result: Result[*tuple[Any, ...]]) -> list[Any]:
    result = _rows_of(result)
    if len(result.keys()) == 1:
        return list(result.scalars().all())
    return list(result.all())


def _known_total(items: int, page: int, per_page: int) -> int | None:
    """The total when this page alone proves it: a short, non-empty page (or an empty
    first page) is the last one, so no COUNT is needed."""
    if items < per_page and (items or page == 1):
        return (page - 1) * per_page + items
    return None


def _page(items: list[Any], total: int, page: int, per_page: int) -> Page[Any]:
    pages = -(-total // per_page)
    return Page[Any].model_construct(
        items=items,
        total=total,
        page=page,
        per_page=per_page,
        pages=pages,
        has_next=page < pages,
        has_previous=page > 1,
    )


@overload
def paginate(
    session: Session,
    stmt: Select[_T],
    page: int = 1,
    per_page: int = 20,
    *,
    max_per_page: int | None = DEFAULT_MAX_PER_PAGE,
) -> Page[_T]: ...
@overload
def paginate(  # type: ignore[overload-cannot-match]
    session: Session,
    stmt: Select[*_Ts],
    page: int = 1,
    per_page: int = 20,
    *,
    max_per_page: int | None = DEFAULT_MAX_PER_PAGE,
) -> "Page[Row[*_Ts]]": ...
def paginate(
    session: Session,
    stmt: Select[*tuple[Any, ...]],
    page: int = 1,
    per_page: int = 20,
    *,
    max_per_page: int | None = DEFAULT_MAX_PER_PAGE,
) -> Page[Any]:
    """Run ``stmt`` for page ``page`` (1-based) of ``per_page`` rows and count all its rows.

    Items are what ``session.scalars(stmt)`` gives for a one-entity or one-column select
    (model instances), else ``Row`` objects. The total is
    ``SELECT count(*) FROM (stmt without ORDER BY)``, run through the same session, so it
    matches the items: joined eager loads (``joinedload``) neither inflate it nor repeat
    items. An explicit join to a collection returns one row per child, in the items and the
    total alike; add ``.distinct()`` (or filter with ``.any()``) for one row per parent. A
    short last page gives the total without running the COUNT. Give ``stmt`` an ORDER BY
    that ends with a unique column, or rows may move between pages.

    Raises :class:`~kit_db.ConfigurationError` for a ``page`` or ``per_page`` below 1, not an
    int, or ``per_page`` above ``max_per_page`` (``None``: no limit), and for a statement
    that is not a ``select()`` or already has LIMIT/OFFSET.

    Example::

        >>> from sqlalchemy import select
        >>> from sqlalchemy.orm import Mapped
        >>> from kit_db import Database, Model, UUIDMixin
        >>> class Tag(UUIDMixin, Model):
        ...     __tablename__ = "doc_paginate_tags"
        ...     name: Mapped[str]
        >>> db = Database("sqlite://")
        >>> db.create_all()
        >>> with db.begin() as session:
        ...     session.add_all(Tag(name=n) for n in "abcde")
        >>> with db.session() as session:
        ...     page = paginate(session, select(Tag).order_by(Tag.name), page=2, per_page=2)
        >>> [t.name for t in page.items], page.total, page.pages, page.has_next
        (['c', 'd'], 5, 3, True)
        >>> with db.session() as session:
        ...     paginate(session, select(Tag.name), page=0)
        Traceback (most recent call last):
        ...
        kit_db.exceptions.ConfigurationError: page must be >= 1, got 0
    """
    limited, page_no, size = _offset_statement(stmt, page, per_page, max_per_page)
    items = _items(session.execute(limited))
    total = _known_total(len(items), page_no, size)
    if total is None:
        total = int(session.scalar(_count_statement(stmt)) or 0)
    return _page(items, total, page_no, size)


@overload
async def apaginate(
    session: AsyncSession,
    stmt: Select[_T],
    page: int = 1,
    per_page: int = 20,
    *,
    max_per_page: int | None = DEFAULT_MAX_PER_PAGE,
) -> Page[_T]: ...
@overload
async def apaginate(  # type: ignore[overload-cannot-match]
    session: AsyncSession,
    stmt: Select[*_Ts],
    page: int = 1,
    per_page: int = 20,
    *,
    max_per_page: int | None = DEFAULT_MAX_PER_PAGE,
) -> "Page[Row[*_Ts]]": ...
async def apaginate(
    session: AsyncSession,
    stmt: Select[*tuple[Any, ...]],
    page: int = 1,
    per_page: int = 20,
    *,
    max_per_page: int | None = DEFAULT_MAX_PER_PAGE,
) -> Page[Any]:
    """The asyncio twin of :func:`paginate`, on an :class:`~sqlalchemy.ext.asyncio.AsyncSession`.

    Example::

        async with db.session() as session:  # db = AsyncDatabase(...)
            page = await apaginate(session, select(User).order_by(User.email), page=2)
    """
    limited, page_no, size = _offset_statement(stmt, page, per_page, max_per_page)
    items = _items(await session.execute(limited))
    total = _known_total(len(items), page_no, size)
    if total is None:
        total = int(await session.scalar(_count_statement(stmt)) or 0)
    return _page(items, total, page_no, size)


# --------------------------------------------------------------------------- keyset


@dataclass(frozen=True)
class _Key:
    expr: ColumnElement[Any]
    descending: bool
    nulls_last: bool
    nullable: bool

    def flipped(self) -> "_Key":
        return replace(self, descending=not self.descending, nulls_last=not self.nulls_last)

    def fingerprint(self) -> str:
        element: Any = self.expr
        if isinstance(element, Column) and isinstance(element.table, Table):
            name = f"{element.table.fullname}.{element.name}"
        else:  # aliases, functions: the SQL text (anonymous aliases render stably)
            name = str(element)
        return f"{name} {'desc' if self.descending else 'asc'} nulls {'last' if self.nulls_last else 'first'}"


_ORDER_MODIFIERS = {
    operators.asc_op: "asc",
    operators.desc_op: "desc",
    operators.nulls_first_op: "first",
    operators.nulls_last_op: "last",
}


def _column_element(item: object) -> Any:
    clause = getattr(item, "__clause_element__", None)
    return clause() if clause is not None else item


def _is_nullable(element: Any) -> bool:
    while isinstance(element, Label):
        element = element.element
    if isinstance(element, Column):
        return bool(element.nullable)
    return True  # an expression: assume it can be NULL


def _parse_key(item: object) -> _Key:
    element = _column_element(item)
    direction: str | None = None
    nulls: str | None = None
    while isinstance(element, UnaryExpression) and element.modifier in _ORDER_MODIFIERS:
        word = _ORDER_MODIFIERS[element.modifier]
        if word in ("asc", "desc"):
            if direction is not None:
                raise ConfigurationError(f"order_by item {item!s} has two directions")
            direction = word
        else:
            if nulls is not None:
                raise ConfigurationError(f"order_by item {item!s} has two NULL placements")
            nulls = word
        element = _column_element(element.element)
    if not isinstance(element, ColumnElement):
        raise ConfigurationError(
            f"order_by items must be columns or desc(column), got {item!r}; strings are not "
            "accepted"
        )
    return _Key(
        expr=element,
        descending=direction == "desc",
        nulls_last=nulls != "first",
        nullable=_is_nullable(element),
    )


def _primary_key(stmt: Select[*tuple[Any, ...]]) -> list[ColumnElement[Any]]:
    descriptions = stmt.column_descriptions
    entity = descriptions[0].get("entity") if descriptions else None
    if entity is not None:
        mapper = inspect(entity).mapper
        return [
            _column_element(getattr(entity, mapper.get_property_by_column(column).key))
            for column in mapper.primary_key
        ]
    froms = stmt.get_final_froms()
    if len(froms) == 1 and list(froms[0].primary_key):
        return list(froms[0].primary_key)
    raise ConfigurationError(
        "paginate_keyset needs the primary key of the rows to make the ordering unique: "
        "select a mapped entity (select(Model), select(Model.a, Model.b)) or one table with a "
        "primary key"
    )


def _keys(stmt: Select[*tuple[Any, ...]], order_by: Sequence[object] | object) -> list[_Key]:
    if isinstance(order_by, (str, bytes)) or not isinstance(order_by, Sequence):
        order_by = [order_by]
    keys = [_parse_key(item) for item in order_by]
    default_descending = keys[-1].descending if keys else False
    for column in _primary_key(stmt):
        if not any(key.expr.compare(column) for key in keys):
            keys.append(
                _Key(column, descending=default_descending, nulls_last=True, nullable=False)
            )
    return keys


def _order_clauses(keys: Sequence[_Key]) -> list[ColumnElement[Any]]:
    clauses: list[ColumnElement[Any]] = []
    for key in keys:
        if key.nullable:  # the same NULL placement on every dialect: sort on "is it NULL"
            clauses.append(key.expr.is_(None) if key.nulls_last else key.expr.is_not(None))
        clauses.append(key.expr.desc() if key.descending else key.expr.asc())
    return clauses


def _after(keys: Sequence[_Key], values: Sequence[Any], i: int = 0) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the ordering ``keys`` (index-friendly form:
    ``a >= x AND (a > x OR <rest after>)``)."""
    key, value = keys[i], values[i]
    rest = _after(keys, values, i + 1) if i + 1 < len(keys) else None
    expr = key.expr
    if value is None:
        if key.nulls_last:  # nothing but NULLs comes after a NULL
            return and_(expr.is_(None), rest) if rest is not None else false()
        if rest is None:
            return expr.is_not(None)
        return or_(expr.is_not(None), rest)
    beyond: ColumnElement[bool] = expr < value if key.descending else expr > value
    reached: ColumnElement[bool] = expr <= value if key.descending else expr >= value
    if key.nullable and key.nulls_last:  # NULLs come after every value
        is_null = expr.is_(None)
        if rest is None:
            return or_(beyond, is_null)
        return and_(or_(reached, is_null), or_(beyond, is_null, rest))
    # NOT NULL, or NULLs first (already passed: the comparisons leave them out)
    if rest is None:
        return beyond
    return and_(reached, or_(beyond, rest))


# ---- cursors


def _secret_bytes(secret: str | bytes | None) -> bytes:
    if secret is None:
        return _PROCESS_SECRET
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes) or not secret:
        raise ConfigurationError("secret must be a non-empty str or bytes")
    return secret


def _query_tag(keys: Sequence[_Key]) -> str:
    shape = "\n".join(key.fingerprint() for key in keys).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(shape).digest()[:9]).decode()


def _encode_value(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, enum.Enum):
        return {"e": value.name}
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return {"f": value.hex()}
    if isinstance(value, decimal.Decimal):
        return {"n": str(value)}
    if isinstance(value, uuid.UUID):
        return {"u": value.hex}
    if isinstance(value, dt.datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"d": value.isoformat()}
    if isinstance(value, dt.time):
        return {"t": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"td": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, bytes):
        return {"b": base64.urlsafe_b64encode(value).decode()}
    raise ConfigurationError(
        f"cannot put a sort key of type {type(value).__name__} in a cursor; order by "
        "columns of type str, int, float, Decimal, bool, UUID, date/time, bytes or Enum"
    )


def _decode_value(raw: Any) -> Any:
    if raw is None or isinstance(raw, bool | int | str):
        return raw
    if isinstance(raw, dict) and len(raw) == 1:
        ((tag, body),) = raw.items()
        if tag == "td" and isinstance(body, list):
            return dt.timedelta(*body)
        if isinstance(body, str):
            decoders: dict[str, Any] = {
                "e": str,  # an Enum member's name: what SQLAlchemy's Enum binds
                "f": float.fromhex,
                "n": decimal.Decimal,
                "u": uuid.UUID,
                "dt": dt.datetime.fromisoformat,
                "d": dt.date.fromisoformat,
                "t": dt.time.fromisoformat,
                "b": base64.urlsafe_b64decode,
            }
            if tag in decoders:
                return decoders[tag](body)
    raise ValueError(f"unknown value {raw!r}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, _MAC_DOMAIN + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _encode_cursor(values: Sequence[Any], tag: str, secret: bytes) -> str:
    payload = json.dumps(
        {"q": tag, "k": [_encode_value(v) for v in values]},
        separators=(",", ":"),
        allow_nan=False,
    ).encode()
    return f"{_b64(payload)}.{_b64(_sign(payload, secret))}"


def _decode_cursor(
    cursor: object, name: str, keys: Sequence[_Key], tag: str, secret: bytes
) -> list[Any]:
    if not isinstance(cursor, str):
        raise InvalidCursor(f"{name} must be a cursor string, got {type(cursor).__name__}")
    if not cursor or len(cursor) > _MAX_CURSOR_CHARS or cursor.count(".") != 1:
        raise InvalidCursor(f"{name} is not a kit-db cursor (empty, truncated or too long)")
    body, mac = cursor.split(".")
    try:
        payload, signature = _unb64(body), _unb64(mac)
    except (binascii.Error, ValueError):
        raise InvalidCursor(f"{name} is not a kit-db cursor (bad base64)") from None
    if not hmac.compare_digest(signature, _sign(payload, secret)):
        raise InvalidCursor(
            f"{name} failed its signature check: it was changed, truncated, or signed with "
            "another secret (another process or a restart: pass the same secret= everywhere)"
        )
    try:
        data = json.loads(payload)
        data_tag, raw_values = data["q"], data["k"]
    except (ValueError, TypeError, KeyError):
        raise InvalidCursor(f"{name} is not a kit-db cursor (bad payload)") from None
    if data_tag != tag or not isinstance(raw_values, list):
        raise InvalidCursor(
            f"{name} belongs to another query: its ordering or model differs from this one"
        )
    if len(raw_values) != len(keys):
        raise InvalidCursor(f"{name} has {len(raw_values)} sort keys, expected {len(keys)}")
    try:
        return [_decode_value(v) for v in raw_values]
    except (ValueError, TypeError, binascii.Error):
        raise InvalidCursor(f"{name} holds a value kit-db cannot read") from None


# ---- plan and page


@dataclass(frozen=True)
class _KeysetPlan:
    stmt: Select[*tuple[Any, ...]]
    keys: list[_Key]
    backward: bool
    given: bool
    limit: int
    tag: str
    secret: bytes


def _keyset_plan(
    stmt: Select[*tuple[Any, ...]],
    order_by: Sequence[object] | object,
    after: str | None,
    before: str | None,
    limit: object,
    max_limit: object,
    secret: str | bytes | None,
) -> _KeysetPlan:
    stmt = _check_statement(stmt, "paginate_keyset")
    size = _positive_int("limit", limit, _check_maximum("max_limit", max_limit), "max_limit")
    if after is not None and before is not None:
        raise ConfigurationError("pass after= or before=, not both")
    key_bytes = _secret_bytes(secret)
    keys = _keys(stmt, order_by)
    tag = _query_tag(keys)
    backward = before is not None
    cursor = before if backward else after
    walk = [k.flipped() for k in keys] if backward else keys
    page_stmt = stmt.order_by(None)
    if cursor is not None:
        values = _decode_cursor(cursor, "before" if backward else "after", keys, tag, key_bytes)
        page_stmt = page_stmt.where(_after(walk, values))
    page_stmt = (
        page_stmt.add_columns(*(k.expr.label(_KEY_LABEL.format(i)) for i, k in enumerate(keys)))
        .order_by(*_order_clauses(walk))
        .limit(size + 1)
    )
    return _KeysetPlan(page_stmt, keys, backward, cursor is not None, size, tag, key_bytes)


def _cursor_page(plan: _KeysetPlan, result: Result[*tuple[Any, ...]]) -> CursorPage[Any]:
    width = len(result.keys()) - len(plan.keys)
    result = _rows_of(result)
    items: list[Any]
    key_rows: list[Sequence[Any]]
    if width == 1:  # select(Model) or one column: the common, cheap case
        rows = result.all()
        items = [row[0] for row in rows]
        key_rows = [row[1:] for row in rows]
    else:  # Row items without the sort-key columns: slice the result twice
        frozen = result.freeze()
        key_rows = list(frozen().columns(*range(width, width + len(plan.keys))).all())
        items = list(frozen().columns(*range(width)).all())
    more = len(items) > plan.limit
    del items[plan.limit :], key_rows[plan.limit :]
    if plan.backward:
        items.reverse()
        key_rows.reverse()
        has_previous, has_next = more, plan.given
    else:
        has_previous, has_next = plan.given, more
    has_next = has_next and bool(items)
    has_previous = has_previous and bool(items)
    return CursorPage[Any].model_construct(
        items=items,
        next_cursor=_encode_cursor(key_rows[-1], plan.tag, plan.secret) if has_next else None,
        previous_cursor=(
            _encode_cursor(key_rows[0], plan.tag, plan.secret) if has_previous else None
        ),
        has_next=has_next,
        has_previous=has_previous,
        limit=plan.limit,
    )


@overload
def paginate_keyset(
    session: Session,
    stmt: Select[_T],
    order_by: Sequence[Any] | Any = (),
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = 20,
    max_limit: int | None = DEFAULT_MAX_PER_PAGE,
    secret: str | bytes | None = None,
) -> CursorPage[_T]: ...
@overload
def paginate_keyset(  # type: ignore[overload-cannot-match]
    session: Session,
    stmt: Select[*_Ts],
    order_by: Sequence[Any] | Any = (),
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = 20,
    max_limit: int | None = DEFAULT_MAX_PER_PAGE,
    secret: str | bytes | None = None,
) -> "CursorPage[Row[*_Ts]]": ...
def paginate_keyset(
    session: Session,
    stmt: Select[*tuple[Any, ...]],
    order_by: Sequence[Any] | Any = (),
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = 20,
    max_limit: int | None = DEFAULT_MAX_PER_PAGE,
    secret: str | bytes | None = None,
) -> CursorPage[Any]:
    """Run ``stmt`` for the ``limit`` rows after cursor ``after`` (or before ``before``; the
    first page when neither is given), ordered by ``order_by``.

    ``order_by`` lists columns or expressions, each optionally ``desc(col)``/``col.desc()``
    and ``.nulls_first()``; directions may be mixed. It replaces any ORDER BY of ``stmt``.
    The primary key of the first selected entity (or of the one table) is appended so the
    ordering is unique, in the direction of the last key. NULL sort keys are ordered
    **NULLS LAST by default, in both directions** (``.nulls_first()`` for the opposite), the
    same on SQLite, PostgreSQL and MariaDB, and rows with NULL keys are never skipped. A
    nullable key adds an ``IS NULL`` sort term; NOT NULL columns keep plain index-friendly
    SQL (a NOT NULL column reached through an outer join can still be NULL: order by
    ``func.coalesce(col, ...)`` there). An index on the ordering columns keeps every page as
    cheap as the first.

    Cursors are signed with HMAC-SHA256 under ``secret``. Without one, a random key made
    once per process is used, so cursors only work in the process that made them: **apps
    with several processes or hosts, or whose cursors must survive a restart, must pass the
    same ``secret``** (e.g. the app's secret key). A cursor that was changed, cut short,
    signed under another secret or made for another ordering or model raises
    :class:`~kit_db.InvalidCursor`. Cursors are not encrypted: they reveal the sort-key
    values of one row of the page.

    ``has_previous`` on a forward page (and ``has_next`` on a backward one) is true when a
    cursor was given: no extra query checks that rows still exist on that side.

    Items are model instances for a one-entity or one-column select, else ``Row`` objects.
    The statement must return one row per primary key (use ``.distinct()`` or ``.any()``
    rather than a join to a collection) and must not have LIMIT/OFFSET; sort keys go into
    the WHERE clause, so they cannot be aggregates.

    Example::

        >>> from sqlalchemy import desc, select
        >>> from sqlalchemy.orm import Mapped
        >>> from kit_db import Database, Model, UUIDMixin
        >>> class Event(UUIDMixin, Model):
        ...     __tablename__ = "doc_keyset_events"
        ...     day: Mapped[int | None]
        >>> db = Database("sqlite://")
        >>> db.create_all()
        >>> with db.begin() as session:
        ...     session.add_all(Event(day=d) for d in [3, None, 1, 2, 2])
        >>> order = [desc(Event.day)]
        >>> with db.session() as session:
        ...     first = paginate_keyset(session, select(Event), order, limit=3, secret="s3cret")
        ...     rest = paginate_keyset(
        ...         session, select(Event), order, after=first.next_cursor, limit=3,
        ...         secret="s3cret",
        ...     )
        ...     back = paginate_keyset(
        ...         session, select(Event), order, before=rest.previous_cursor, limit=3,
        ...         secret="s3cret",
        ...     )
        >>> [e.day for e in first.items], [e.day for e in rest.items], rest.has_next
        ([3, 2, 2], [1, None], False)
        >>> [e.day for e in back.items] == [e.day for e in first.items]
        True
        >>> with db.session() as session:
        ...     paginate_keyset(session, select(Event), order, after="forged.cursor")
        Traceback (most recent call last):
        ...
        kit_db.exceptions.InvalidCursor: after failed its signature check: ...
    """
    plan = _keyset_plan(stmt, order_by, after, before, limit, max_limit, secret)
    return _cursor_page(plan, session.execute(plan.stmt))


@overload
async def apaginate_keyset(
    session: AsyncSession,
    stmt: Select[_T],
    order_by: Sequence[Any] | Any = (),
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = 20,
    max_limit: int | None = DEFAULT_MAX_PER_PAGE,
    secret: str | bytes | None = None,
) -> CursorPage[_T]: ...
@overload
async def apaginate_keyset(  # type: ignore[overload-cannot-match]
    session: AsyncSession,
    stmt: Select[*_Ts],
    order_by: Sequence[Any] | Any = (),
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = 20,
    max_limit: int | None = DEFAULT_MAX_PER_PAGE,
    secret: str | bytes | None = None,
) -> "CursorPage[Row[*_Ts]]": ...
async def apaginate_keyset(
    session: AsyncSession,
    stmt: Select[*tuple[Any, ...]],
    order_by: Sequence[Any] | Any = (),
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = 20,
    max_limit: int | None = DEFAULT_MAX_PER_PAGE,
    secret: str | bytes | None = None,
) -> CursorPage[Any]:
    """The asyncio twin of :func:`paginate_keyset`.

    Example::

        async with db.session() as session:  # db = AsyncDatabase(...)
            page = await apaginate_keyset(
                session, select(User), [desc(User.created_at)], after=cursor, secret=KEY
            )
    """
    plan = _keyset_plan(stmt, order_by, after, before, limit, max_limit, secret)
    return _cursor_page(plan, await session.execute(plan.stmt))
