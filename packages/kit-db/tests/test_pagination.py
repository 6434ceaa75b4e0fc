"""Offset and keyset pagination on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import json
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from _support import new_base
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict
from sqlalchemy import ForeignKey, Numeric, String, delete, desc, event, select
from sqlalchemy.orm import Mapped, Session, joinedload, mapped_column, relationship

import kit_db.pagination
from kit_db import (
    AsyncDatabase,
    ConfigurationError,
    Database,
    InvalidCursor,
    SoftDeleteMixin,
    TenantRequired,
    TenantScopedMixin,
    UUIDMixin,
    tenant_context,
    unscoped,
)
from kit_db.pagination import (
    CursorPage,
    Page,
    apaginate,
    apaginate_keyset,
    paginate,
    paginate_keyset,
)

Base = new_base()
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


class Article(UUIDMixin, SoftDeleteMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "pagination_articles"
    title: Mapped[str] = mapped_column(default="")
    rank: Mapped[int] = mapped_column(default=0)
    score: Mapped[int | None] = mapped_column(default=None)
    price: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2), default=decimal.Decimal(0))
    created_at: Mapped[dt.datetime] = mapped_column(default=T0)
    comments: Mapped[list[Comment]] = relationship(back_populates="article")


class Comment(UUIDMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "pagination_comments"
    body: Mapped[str] = mapped_column(default="")
    article_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pagination_articles.id"))
    article: Mapped[Article] = relationship(back_populates="comments")


class Doc(UUIDMixin, TenantScopedMixin, SoftDeleteMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "pagination_docs"
    title: Mapped[str] = mapped_column(default="")
    rank: Mapped[int | None] = mapped_column(default=None)


class Counter(Base):  # type: ignore[misc,valid-type]
    """An integer primary key, for a plain Core table select."""

    __tablename__ = "pagination_counters"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    label: Mapped[str] = mapped_column(String(20), default="")


class Pair(Base):  # type: ignore[misc,valid-type]
    """Two nullable integers, for the property test."""

    __tablename__ = "pagination_pairs"
    id: Mapped[int] = mapped_column(primary_key=True)
    a: Mapped[int | None] = mapped_column(default=None)
    b: Mapped[int | None] = mapped_column(default=None)


@pytest.fixture
def db(make_db: Callable[..., Database]) -> Database:
    return make_db(Base.metadata)


def _add_articles(db: Database, count: int, deleted: int = 0) -> None:
    with db.begin() as session:
        session.add_all(Article(title=f"a{i:03d}", rank=i % 3) for i in range(count + deleted))
        session.flush()
        if deleted:
            rows = session.scalars(select(Article).order_by(Article.title)).all()
            for article in rows[-deleted:]:
                article.soft_delete()


def _titles(page: Page[Any] | CursorPage[Any]) -> list[str]:
    return [a.title for a in page.items]


# -- offset pagination: page math -------------------------------------------------------------


def test_page_math_with_a_short_last_page(db: Database) -> None:
    _add_articles(db, 45, deleted=3)  # soft-deleted rows are neither items nor counted
    ordered = select(Article).order_by(Article.title)
    with db.session() as session:
        first = paginate(session, ordered, page=1, per_page=20)
        assert (first.total, first.pages, first.page, first.per_page) == (45, 3, 1, 20)
        assert _titles(first) == [f"a{i:03d}" for i in range(20)]
        assert (first.has_next, first.has_previous) == (True, False)
        second = paginate(session, ordered, page=2, per_page=20)
        assert _titles(second)[0] == "a020"
        assert (second.has_next, second.has_previous) == (True, True)
        last = paginate(session, ordered, page=3, per_page=20)
        assert _titles(last) == [f"a{i:03d}" for i in range(40, 45)]
        assert (last.total, last.pages, last.has_next, last.has_previous) == (45, 3, False, True)
        beyond = paginate(session, ordered, page=4, per_page=20)
        assert beyond.items == []
        assert (beyond.total, beyond.pages, beyond.has_next, beyond.has_previous) == (
            45,
            3,
            False,
            True,
        )


def test_page_math_at_an_exact_multiple(db: Database) -> None:
    _add_articles(db, 40)
    with db.session() as session:
        last = paginate(session, select(Article).order_by(Article.title), page=2, per_page=20)
        assert (len(last.items), last.total, last.pages, last.has_next) == (20, 40, 2, False)
        one = paginate(session, select(Article).order_by(Article.title), page=1, per_page=40)
        assert (one.total, one.pages, one.has_next, one.has_previous) == (40, 1, False, False)


def test_empty_table(db: Database) -> None:
    with db.session() as session:
        page = paginate(session, select(Article))
        assert page.items == []
        assert (page.total, page.pages, page.has_next, page.has_previous) == (0, 0, False, False)
        later = paginate(session, select(Article), page=3)
        assert (later.items, later.total, later.has_previous) == ([], 0, True)
        keyset = paginate_keyset(session, select(Article), [Article.rank])
        assert keyset.items == []
        assert keyset.next_cursor is None and keyset.previous_cursor is None
        assert not keyset.has_next and not keyset.has_previous


def test_count_query_runs_only_when_the_page_cannot_tell(db: Database) -> None:
    _add_articles(db, 45)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.session() as session:
            paginate(session, select(Article).order_by(Article.title), page=3, per_page=20)
            assert len(statements) == 1  # a short last page proves the total
            statements.clear()
            paginate(session, select(Article).order_by(Article.title), page=1, per_page=20)
            assert len(statements) == 2
            assert "count(" in statements[1].lower()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_column_selects_give_rows(db: Database) -> None:
    _add_articles(db, 5)
    with db.session() as session:
        page = paginate(session, select(Article.title, Article.rank).order_by(Article.title))
        assert [(r.title, r.rank) for r in page.items][:2] == [("a000", 0), ("a001", 1)]
        single = paginate(session, select(Article.title).order_by(Article.title), per_page=2)
        assert single.items == ["a000", "a001"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"page": 0}, "page must be >= 1, got 0"),
        ({"page": -2}, "got -2"),
        ({"page": "2"}, "page must be an int >= 1, got '2'"),
        ({"page": 1.5}, "got 1.5"),
        ({"page": True}, "got True"),
        ({"per_page": 0}, "per_page must be >= 1, got 0"),
        ({"per_page": 101}, "per_page=101 is larger than max_per_page=100"),
        ({"per_page": 51, "max_per_page": 50}, "per_page=51"),
        ({"max_per_page": 0}, "max_per_page must be >= 1, got 0"),
    ],
)
def test_bad_page_arguments_raise_configuration_error(kwargs: dict[str, Any], message: str) -> None:
    with Session() as session, pytest.raises(ConfigurationError, match=message.replace(".", r"\.")):
        paginate(session, select(Article), **kwargs)


@pytest.mark.parametrize(
    "stmt",
    [select(Article).limit(5), select(Article).offset(5), Article.__table__.delete()],
    ids=["limit", "offset", "not a select"],
)
def test_statements_paginate_cannot_page_are_refused(stmt: Any) -> None:
    with Session() as session:
        with pytest.raises(ConfigurationError, match="paginate"):
            paginate(session, stmt)
        with pytest.raises(ConfigurationError, match="paginate_keyset"):
            paginate_keyset(session, stmt, [Article.title])


def test_max_per_page_none_lifts_the_limit(db: Database) -> None:
    _add_articles(db, 3)
    with db.session() as session:
        page = paginate(session, select(Article), per_page=1000, max_per_page=None)
        assert page.total == 3


# -- offset pagination: joins ------------------------------------------------------------------


def _add_commented_articles(db: Database, count: int, comments: int) -> None:
    with db.begin() as session:
        for i in range(count):
            session.add(
                Article(
                    title=f"a{i:03d}",
                    comments=[Comment(body="hot" if j == 0 else "x") for j in range(comments)],
                )
            )


def test_joined_eager_loads_neither_inflate_totals_nor_repeat_items(db: Database) -> None:
    _add_commented_articles(db, 7, comments=3)
    stmt = select(Article).options(joinedload(Article.comments)).order_by(Article.title)
    with db.session() as session:
        first = paginate(session, stmt, page=1, per_page=5)
        assert (first.total, first.pages) == (7, 2)
        assert _titles(first) == [f"a{i:03d}" for i in range(5)]
        assert all(len(a.comments) == 3 for a in first.items)
        second = paginate(session, stmt, page=2, per_page=5)
        assert _titles(second) == ["a005", "a006"]


def test_explicit_joins_with_distinct_count_parents(db: Database) -> None:
    _add_commented_articles(db, 7, comments=3)
    joined = (
        select(Article)
        .join(Article.comments)
        .where(Comment.body.in_(["hot", "x"]))
        .distinct()
        .order_by(Article.title)
    )
    with db.session() as session:
        page = paginate(session, joined, page=1, per_page=5)
        assert (page.total, page.pages, len(page.items)) == (7, 2, 5)
        # without .distinct() the statement returns one row per comment, and so do the pages
        per_comment = select(Article).join(Article.comments).order_by(Article.title)
        assert paginate(session, per_comment, per_page=5).total == 21


# -- keyset pagination -------------------------------------------------------------------------


def _add_keyset_rows(db: Database) -> list[uuid.UUID]:
    """31 live rows with repeated sort values and NULL scores, plus 2 soft-deleted ones."""
    with db.begin() as session:
        rows = [
            Article(
                title=f"k{i:02d}",
                rank=i % 3,
                score=None if i % 4 == 0 else i % 5,
                price=decimal.Decimal(i % 4) / 4,
                created_at=T0 + dt.timedelta(minutes=i // 3),
            )
            for i in range(33)
        ]
        session.add_all(rows)
        session.flush()
        rows[5].soft_delete()
        rows[6].soft_delete()
        return [r.id for r in rows if r.deleted_at is None]


def _sort_tuple(article: Article, spec: Sequence[tuple[str, bool, bool]]) -> tuple[Any, ...]:
    """What the database ordering must agree with: (attribute, descending, nulls_last)."""
    parts: list[Any] = []
    for attribute, descending, nulls_last in spec:
        value = getattr(article, attribute)
        parts.append((value is None) if nulls_last else (value is not None))
        if isinstance(value, dt.datetime):
            value = value.timestamp()
        number = float(value) if value is not None else 0.0
        parts.append(-number if descending else number)
    return tuple(parts)


ORDERINGS: dict[str, tuple[Callable[[], list[Any]], list[tuple[str, bool, bool]]]] = {
    "nullable asc (nulls last)": (lambda: [Article.score], [("score", False, True)]),
    "nullable desc (nulls last)": (lambda: [desc(Article.score)], [("score", True, True)]),
    "nullable asc nulls first": (
        lambda: [Article.score.nulls_first()],
        [("score", False, False)],
    ),
    "nullable desc nulls first": (
        lambda: [desc(Article.score).nulls_first()],
        [("score", True, False)],
    ),
    "mixed rank asc, score desc": (
        lambda: [Article.rank, Article.score.desc()],
        [("rank", False, True), ("score", True, True)],
    ),
    "datetime desc": (lambda: [desc(Article.created_at)], [("created_at", True, True)]),
    "decimal asc, rank desc": (
        lambda: [Article.price, desc(Article.rank)],
        [("price", False, True), ("rank", True, True)],
    ),
}


def _walk_forward(
    session: Session, order_by: list[Any], limit: int, **kwargs: Any
) -> list[CursorPage[Any]]:
    pages = [paginate_keyset(session, select(Article), order_by, limit=limit, **kwargs)]
    while pages[-1].has_next:
        assert len(pages) < 100
        pages.append(
            paginate_keyset(
                session,
                select(Article),
                order_by,
                after=pages[-1].next_cursor,
                limit=limit,
                **kwargs,
            )
        )
    return pages


def _walk_backward(
    session: Session, order_by: list[Any], limit: int, last: CursorPage[Any]
) -> list[CursorPage[Any]]:
    pages = [last]
    while pages[-1].has_previous:
        assert len(pages) < 100
        pages.append(
            paginate_keyset(
                session,
                select(Article),
                order_by,
                before=pages[-1].previous_cursor,
                limit=limit,
            )
        )
    return pages[::-1]


@pytest.mark.parametrize("ordering", list(ORDERINGS))
def test_keyset_walks_cover_every_row_once_in_both_directions(db: Database, ordering: str) -> None:
    live = _add_keyset_rows(db)
    make_order, spec = ORDERINGS[ordering]
    with db.session() as session:
        forward = _walk_forward(session, make_order(), limit=4)
        walked = [a for page in forward for a in page.items]
        ids = [a.id for a in walked]
        assert len(ids) == len(set(ids)) == len(live)
        assert set(ids) == set(live)
        keys = [_sort_tuple(a, spec) for a in walked]
        assert keys == sorted(keys)
        assert all(len(p.items) == 4 for p in forward[:-1])
        assert not forward[0].has_previous and forward[0].previous_cursor is None
        assert all(p.has_previous for p in forward[1:])
        assert forward[-1].next_cursor is None

        backward = _walk_backward(session, make_order(), 4, forward[-1])
        assert [a.id for page in backward for a in page.items] == ids
        assert not backward[0].has_previous


def test_keyset_rows_with_null_keys_are_not_skipped(db: Database) -> None:
    _add_keyset_rows(db)
    with db.session() as session:
        walked = [a for p in _walk_forward(session, [Article.score], limit=3) for a in p.items]
        scores = [a.score for a in walked]
        first_null = scores.index(None)
        assert all(s is not None for s in scores[:first_null])
        assert all(s is None for s in scores[first_null:])
        assert len(scores) - first_null == 9  # i % 4 == 0 for i in 0..32; none of them deleted


def test_keyset_primary_key_only_and_desc_default(db: Database) -> None:
    live = _add_keyset_rows(db)
    with db.session() as session:
        pages = _walk_forward(session, [], limit=10)
        ids = [a.id for p in pages for a in p.items]
        assert sorted(ids, key=lambda u: u.hex) == sorted(live, key=lambda u: u.hex)
        assert len(ids) == len(live)
        # a single desc key: the primary key tie-breaker follows its direction
        pages = _walk_forward(session, desc(Article.rank), limit=10)
        ranks = [a.rank for p in pages for a in p.items]
        assert ranks == sorted(ranks, reverse=True)


def test_keyset_on_column_selects_and_core_tables(db: Database) -> None:
    _add_keyset_rows(db)
    with db.begin() as session:
        session.add_all(Counter(id=i, label=f"c{i % 4}") for i in range(1, 12))
    with db.session() as session:
        page = paginate_keyset(
            session, select(Article.title, Article.rank), [Article.rank, Article.title], limit=3
        )
        assert [tuple(r) for r in page.items] == [("k00", 0), ("k03", 0), ("k09", 0)]
        assert page.items[0].title == "k00"  # Row objects without the sort-key columns
        nxt = paginate_keyset(
            session,
            select(Article.title, Article.rank),
            [Article.rank, Article.title],
            after=page.next_cursor,
            limit=3,
        )
        assert [r.title for r in nxt.items] == ["k12", "k15", "k18"]

        table = Counter.__table__
        seen: list[int] = []
        cursor = None
        while True:
            core = paginate_keyset(
                session, select(table), [desc(table.c.label)], after=cursor, limit=4
            )
            seen += [row.id for row in core.items]
            cursor = core.next_cursor
            if cursor is None:
                break
        assert sorted(seen) == list(range(1, 12))
        assert [f"c{i % 4}" for i in seen] == sorted((f"c{i % 4}" for i in seen), reverse=True)


def test_keyset_with_joined_eager_loads(db: Database) -> None:
    _add_commented_articles(db, 7, comments=3)
    stmt = select(Article).options(joinedload(Article.comments))
    with db.session() as session:
        first = paginate_keyset(session, stmt, [Article.title], limit=5)
        assert _titles(first) == [f"a{i:03d}" for i in range(5)]
        assert all(len(a.comments) == 3 for a in first.items)
        second = paginate_keyset(session, stmt, [Article.title], after=first.next_cursor, limit=5)
        assert _titles(second) == ["a005", "a006"]
        assert not second.has_next


_PAIR_KEYS: dict[str, tuple[Any, Callable[[Pair], int | None]]] = {
    "a": (Pair.a, lambda p: p.a),
    "b": (Pair.b, lambda p: p.b),
    "a+b": (Pair.a + Pair.b, lambda p: None if p.a is None or p.b is None else p.a + p.b),
}


@pytest.fixture(scope="module")
def pairs_db() -> Iterator[Database]:
    db = Database("sqlite://")
    db.create_all(Base.metadata)
    yield db
    db.dispose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(
        st.tuples(st.none() | st.integers(0, 3), st.none() | st.integers(0, 3)), max_size=25
    ),
    spec=st.lists(
        st.tuples(st.sampled_from(sorted(_PAIR_KEYS)), st.booleans(), st.booleans()),
        max_size=3,
    ),
    limit=st.integers(1, 6),
)
def test_keyset_property_every_row_once_in_order(
    pairs_db: Database,
    values: list[tuple[int | None, int | None]],
    spec: list[tuple[str, bool, bool]],
    limit: int,
) -> None:
    """Any data, any mix of directions and NULL placements, any page size (SQLite)."""
    order_by = []
    for name, descending, nulls_first in spec:
        expr = _PAIR_KEYS[name][0]
        expr = expr.desc() if descending else expr.asc()
        order_by.append(expr.nulls_first() if nulls_first else expr)

    def sort_tuple(pair: Pair) -> tuple[Any, ...]:
        parts: list[Any] = []
        for name, descending, nulls_first in spec:
            value = _PAIR_KEYS[name][1](pair)
            parts.append((value is not None) if nulls_first else (value is None))
            parts.append(0 if value is None else -value if descending else value)
        return tuple(parts)

    with pairs_db.begin() as session:
        session.execute(delete(Pair))
        session.add_all(Pair(id=i + 1, a=a, b=b) for i, (a, b) in enumerate(values))
    with pairs_db.session() as session:
        pages = [paginate_keyset(session, select(Pair), order_by, limit=limit)]
        while pages[-1].has_next:
            pages.append(
                paginate_keyset(
                    session, select(Pair), order_by, after=pages[-1].next_cursor, limit=limit
                )
            )
        walked = [p for page in pages for p in page.items]
        assert sorted(p.id for p in walked) == list(range(1, len(values) + 1))
        keys = [sort_tuple(p) for p in walked]
        assert keys == sorted(keys)
        back = [pages[-1]]
        while back[-1].has_previous:
            back.append(
                paginate_keyset(
                    session, select(Pair), order_by, before=back[-1].previous_cursor, limit=limit
                )
            )
        assert [p.id for page in back[::-1] for p in page.items] == [p.id for p in walked]


# -- cursors -----------------------------------------------------------------------------------


def _tamper(cursor: str) -> str:
    body, mac = cursor.split(".")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    data = json.loads(raw)
    data["k"][0] = 99  # jump ahead without the secret
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{forged}.{mac}"


def test_tampered_truncated_and_foreign_cursors_are_refused(db: Database) -> None:
    _add_keyset_rows(db)
    order = [Article.rank]
    with db.session() as session:

        def page(**kwargs: Any) -> CursorPage[Any]:
            kwargs.setdefault("secret", "k1")
            return paginate_keyset(session, select(Article), order, limit=3, **kwargs)

        cursor = page().next_cursor
        assert cursor is not None
        assert page(after=cursor).items  # the genuine cursor works
        assert page(before=cursor).items == page().items[:2]

        body, mac = cursor.split(".")
        flipped = body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:]
        bad: dict[str, object] = {
            "tampered payload": _tamper(cursor),
            "changed character": f"{flipped}.{mac}",
            "truncated": cursor[:-5],
            "truncated payload": f"{body[:10]}.{mac}",
            "no signature": body,
            "empty": "",
            "garbage": "not a cursor",
            "extra dots": f"{cursor}.x",
            "bad base64": "!!!.???",
            "too long": "a" * 5000 + "." + mac,
            "not a string": 12345,
        }
        for value in bad.values():
            with pytest.raises(InvalidCursor):
                page(after=value)
            with pytest.raises(InvalidCursor):
                page(before=value)
        with pytest.raises(InvalidCursor, match="signature"):
            page(after=cursor, secret="another secret")
        with pytest.raises(InvalidCursor, match="signature"):
            paginate_keyset(session, select(Article), order, after=cursor)  # process default
        with pytest.raises(InvalidCursor, match="another query"):
            paginate_keyset(
                session, select(Article), [desc(Article.rank)], after=cursor, secret="k1"
            )
        with pytest.raises(InvalidCursor, match="another query"):
            paginate_keyset(session, select(Article), [Article.score], after=cursor, secret="k1")
        with tenant_context("acme"), pytest.raises(InvalidCursor, match="another query"):
            paginate_keyset(session, select(Doc), [Doc.rank], after=cursor, secret="k1")


def test_cursor_without_a_secret_works_in_this_process(db: Database) -> None:
    _add_keyset_rows(db)
    with db.session() as session:
        first = paginate_keyset(session, select(Article), [Article.rank], limit=3)
        second = paginate_keyset(
            session, select(Article), [Article.rank], after=first.next_cursor, limit=3
        )
        assert second.items and second.has_previous
        with pytest.raises(InvalidCursor):
            paginate_keyset(
                session, select(Article), [Article.rank], after=first.next_cursor, secret="x"
            )


def test_cursor_is_url_safe(db: Database) -> None:
    _add_keyset_rows(db)
    with db.session() as session:
        page = paginate_keyset(
            session, select(Article), [desc(Article.created_at), Article.price], limit=3
        )
    assert page.next_cursor is not None
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert set(page.next_cursor) <= allowed


class Colour(enum.Enum):
    RED = "r"


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        (uuid.UUID(int=7), uuid.UUID(int=7)),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC), None),
        (dt.datetime(2024, 1, 2, 3, 4, 5), None),
        (dt.date(2024, 2, 29), None),
        (dt.time(23, 59, 59, 1), None),
        (dt.timedelta(days=-1, seconds=5, microseconds=3), None),
        (decimal.Decimal("12345678901234567890.000000001"), None),
        (0.1, None),
        (float("inf"), None),
        (b"\x00\xff", None),
        (None, None),
        (True, None),
        (-(2**70), None),
        ("ünïcode 💡", None),
        (Colour.RED, "RED"),
    ],
)
def test_cursor_values_round_trip_with_their_types(value: Any, decoded: Any) -> None:
    keys = kit_db.pagination._keys(select(Article), [Article.title])
    tag = kit_db.pagination._query_tag(keys)
    cursor = kit_db.pagination._encode_cursor([value, uuid.UUID(int=1)], tag, b"secret")
    assert cursor.count(".") == 1
    got = kit_db.pagination._decode_cursor(cursor, "after", keys, tag, b"secret")
    expected = value if decoded is None else decoded
    assert got == [expected, uuid.UUID(int=1)]
    assert type(got[0]) is type(expected)


def test_unsupported_sort_key_types_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="dict"):
        kit_db.pagination._encode_cursor([{"a": 1}], "tag", b"secret")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"limit": 0}, ConfigurationError, "limit must be >= 1"),
        ({"limit": 101}, ConfigurationError, "limit=101 is larger than max_limit=100"),
        ({"after": "a", "before": "b"}, ConfigurationError, "not both"),
        ({"order_by": ["title"]}, ConfigurationError, "strings are not accepted"),
        ({"order_by": [Article.title.desc().asc()]}, ConfigurationError, "two directions"),
        ({"secret": ""}, ConfigurationError, "secret"),
    ],
)
def test_bad_keyset_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    order_by = kwargs.pop("order_by", [Article.title])
    with Session() as session, pytest.raises(error, match=message):
        paginate_keyset(session, select(Article), order_by, **kwargs)


# -- soft delete and tenants -------------------------------------------------------------------


def _seed_docs(db: Database) -> dict[str, set[uuid.UUID]]:
    live: dict[str, set[uuid.UUID]] = {}
    for tenant, count in (("acme", 13), ("globex", 9)):
        with tenant_context(tenant), db.begin() as session:
            docs = [Doc(title=f"{tenant}{i:02d}", rank=i % 4 or None) for i in range(count)]
            session.add_all(docs)
            session.flush()
            for doc in docs[:3]:
                doc.soft_delete()
            live[tenant] = {d.id for d in docs[3:]}
    return live


def test_pagination_respects_tenants_and_soft_delete(db: Database) -> None:
    live = _seed_docs(db)
    for tenant, ids in live.items():
        with tenant_context(tenant), db.session() as session:
            page = paginate(session, select(Doc).order_by(Doc.title), per_page=4)
            assert page.total == len(ids)
            collected = {
                d.id
                for n in range(1, page.pages + 1)
                for d in paginate(
                    session, select(Doc).order_by(Doc.title), page=n, per_page=4
                ).items
            }
            assert collected == ids

            seen: list[uuid.UUID] = []
            cursor = None
            while True:
                keyset = paginate_keyset(
                    session, select(Doc), [desc(Doc.rank)], after=cursor, limit=3
                )
                assert all(d.tenant_id == tenant and not d.is_deleted for d in keyset.items)
                seen += [d.id for d in keyset.items]
                if not keyset.has_next:
                    break
                cursor = keyset.next_cursor
            assert len(seen) == len(set(seen)) and set(seen) == ids
    with db.session() as session:
        with pytest.raises(TenantRequired):
            paginate(session, select(Doc))
        with pytest.raises(TenantRequired):
            paginate_keyset(session, select(Doc), [Doc.title])
    with unscoped(), db.session() as session:
        assert paginate(session, select(Doc)).total == len(live["acme"]) + len(live["globex"])


# -- async -------------------------------------------------------------------------------------


async def test_async_variants(make_async_db: Callable[..., Any]) -> None:
    adb: AsyncDatabase = await make_async_db(Base.metadata)
    async with adb.begin() as session:
        session.add_all(Article(title=f"a{i:02d}", rank=i % 3) for i in range(25))
        session.add(Article(title="zz-deleted", deleted_at=T0))
    async with adb.session() as session:
        page = await apaginate(session, select(Article).order_by(Article.title), 2, 10)
        assert (page.total, page.pages, page.has_next) == (25, 3, True)
        assert _titles(page) == [f"a{i:02d}" for i in range(10, 20)]
        last = await apaginate(session, select(Article).order_by(Article.title), 3, 10)
        assert (len(last.items), last.total, last.has_next) == (5, 25, False)

        seen: list[str] = []
        cursor = None
        while True:
            keyset = await apaginate_keyset(
                session, select(Article), [desc(Article.rank)], after=cursor, limit=4
            )
            seen += _titles(keyset)
            if keyset.next_cursor is None:
                break
            cursor = keyset.next_cursor
        assert sorted(seen) == [f"a{i:02d}" for i in range(25)]
        back = await apaginate_keyset(
            session, select(Article), [desc(Article.rank)], before=keyset.previous_cursor, limit=4
        )
        assert len(back.items) == 4 and back.has_next


async def test_async_respects_tenants(make_async_db: Callable[..., Any]) -> None:
    adb: AsyncDatabase = await make_async_db(Base.metadata)
    for tenant in ("acme", "globex"):
        with tenant_context(tenant):
            async with adb.begin() as session:
                session.add_all(Doc(title=f"{tenant}{i}") for i in range(4))
                session.add(Doc(title=f"{tenant}-gone", deleted_at=T0))
    with tenant_context("globex"):
        async with adb.session() as session:
            page = await apaginate(session, select(Doc))
            assert page.total == 4
            keyset = await apaginate_keyset(session, select(Doc), [Doc.title], limit=10)
            assert sorted(d.title for d in keyset.items) == [f"globex{i}" for i in range(4)]


# -- FastAPI -----------------------------------------------------------------------------------


class ArticleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    title: str
    score: int | None


@pytest.fixture
def fastapi_app() -> Iterator[tuple[Any, Database]]:
    fastapi = pytest.importorskip("fastapi")
    db = Database("sqlite://")
    db.create_all(Base.metadata)
    app = fastapi.FastAPI()

    @app.get("/articles", response_model=Page[ArticleOut])
    def articles(page: int = 1) -> Any:
        with db.session() as session:
            return paginate(session, select(Article).order_by(Article.title), page, 2)

    @app.get("/feed", response_model=CursorPage[ArticleOut])
    def feed(after: str | None = None) -> Any:
        with db.session() as session:
            return paginate_keyset(session, select(Article), [Article.title], after=after, limit=2)

    yield app, db
    db.dispose()


def test_fastapi_response_model_schema(fastapi_app: tuple[Any, Database]) -> None:
    app, _ = fastapi_app
    schemas = app.openapi()["components"]["schemas"]
    page = schemas["Page_ArticleOut_"]
    assert page["properties"]["items"] == {
        "items": {"$ref": "#/components/schemas/ArticleOut"},
        "type": "array",
        "title": "Items",
    }
    assert set(page["required"]) == {
        "items",
        "total",
        "page",
        "per_page",
        "pages",
        "has_next",
        "has_previous",
    }
    assert page["properties"]["total"]["type"] == "integer"
    assert page["properties"]["has_next"]["type"] == "boolean"
    cursor_page = schemas["CursorPage_ArticleOut_"]
    assert set(cursor_page["properties"]) == {
        "items",
        "next_cursor",
        "previous_cursor",
        "has_next",
        "has_previous",
        "limit",
    }
    assert {"type": "null"} in cursor_page["properties"]["next_cursor"]["anyOf"]
    assert "ArticleOut" in schemas


def test_fastapi_serializes_model_instances(fastapi_app: tuple[Any, Database]) -> None:
    app, db = fastapi_app
    with db.begin() as session:
        session.add_all(Article(title=f"t{i}", score=i) for i in range(3))
    with warnings.catch_warnings():
        # Starlette >= 1.x warns when its TestClient runs on httpx rather than httpx2
        warnings.filterwarnings("ignore", message=".*httpx2.*")
        from fastapi.testclient import TestClient
    with TestClient(app) as client:
        body = client.get("/articles", params={"page": 2}).json()
        assert body["total"] == 3 and body["pages"] == 2
        assert [(a["title"], a["score"]) for a in body["items"]] == [("t2", 2)]
        assert set(body["items"][0]) == {"id", "title", "score"}
        first = client.get("/feed").json()
        assert [a["title"] for a in first["items"]] == ["t0", "t1"]
        rest = client.get("/feed", params={"after": first["next_cursor"]}).json()
        assert [a["title"] for a in rest["items"]] == ["t2"]
