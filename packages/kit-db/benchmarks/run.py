"""kit-db against hand-written SQLAlchemy, on SQLite and PostgreSQL, in one process and one run.

    python packages/kit-db/benchmarks/run.py --out kit-db.json [--quick]

Writes ``{"package": "kit-db", "results": [...]}`` for ``tools/bench_table.py`` and prints a
summary. Missing a target is reported, never an error: the exit status is non-zero only when
something breaks (PostgreSQL cannot be started, kit-db returns different rows than the
hand-written query, ...). See README.md next to this file for what each row compares.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy
from harness import Contender, Mode, Row, measure, print_summary
from sqlalchemy import Index, String, and_, insert, or_, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

import kit_db
from kit_db import (
    Database,
    Model,
    SoftDeleteMixin,
    TenantScopedMixin,
    TimestampMixin,
    UTCDateTime,
    UUIDMixin,
    tenant_context,
)
from kit_db.pagination import paginate, paginate_keyset
from pytest_kit_services import in_ci, postgresql_service

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PER_PAGE = 50
SIGNING_KEY = "kit-db benchmark"  # cursors are signed with it
TENANTS = 20
TENANT = "t07"


@dataclass(frozen=True)
class Size:
    """How much data: rows inserted per add_many call, rows of the pagination table, the page
    depths (rows skipped) measured, and rows of the tenant table."""

    mode: Mode
    insert_rows: int
    insert_rounds: int
    table_rows: int
    depths: tuple[int, ...]
    docs: int


FULL = Size(Mode(rounds=21, batch_s=0.1), 100_000, 7, 1_000_000, (0, 10_000, 500_000), 100_000)
QUICK = Size(Mode(rounds=7, batch_s=0.02), 20_000, 3, 100_000, (0, 1_000, 50_000), 20_000)


# --------------------------------------------------------------------------- models


class BenchItem(UUIDMixin, TimestampMixin, Model):
    """(a) bulk insert: a typical kit model, UUIDv7 key and timestamps made in Python."""

    __tablename__ = "kitbench_items"
    name: Mapped[str] = mapped_column(String(100))
    qty: Mapped[int]


class BenchEvent(Model):
    """(b) pagination: an integer key and a timestamp shared by every 3 rows."""

    __tablename__ = "kitbench_events"
    __table_args__ = (Index("ix_kitbench_events_created_id", "created_at", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    title: Mapped[str] = mapped_column(String(100))


class BenchDoc(SoftDeleteMixin, TenantScopedMixin, Model):
    """(c) scoping: 20 tenants, every 10th row soft-deleted."""

    __tablename__ = "kitbench_docs"
    __table_args__ = (Index("ix_kitbench_docs_tenant_created", "tenant_id", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    title: Mapped[str] = mapped_column(String(100))


TABLES = [BenchItem.__table__, BenchEvent.__table__, BenchDoc.__table__]


def _check(what: str, got: object, expected: object) -> None:
    if got != expected:
        raise RuntimeError(f"{what}: got {got!r}, expected {expected!r}")


# --------------------------------------------------------------------------- data


# The text format SQLAlchemy stores DateTime in on SQLite, so generated rows compare like
# the ones SQLAlchemy writes.
_SQLITE_STAMP = (
    "strftime('%Y-%m-%d %H:%M:%S', '2024-01-01', '+' || ({}) || ' seconds') || '.000000'"
)
_SQLITE_SEQ = "WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < :n) "
_PG_STAMP = "timestamptz '2024-01-01 00:00:00+00' + ({}) * interval '1 second'"
_PG_SEQ = " FROM generate_series(1, :n) AS x"
_EVENTS = "INSERT INTO kitbench_events (id, created_at, title) SELECT x, {}, 'event ' || x"
_DOCS = (
    "INSERT INTO kitbench_docs (id, tenant_id, created_at, title, deleted_at) "
    "SELECT x, {}, {}, 'doc ' || x, CASE WHEN x % 10 = 0 THEN {} END"
)
FILL_SQL = {
    "sqlite": (
        _SQLITE_SEQ + _EVENTS.format(_SQLITE_STAMP.format("x / 3")) + " FROM seq",
        _SQLITE_SEQ
        + _DOCS.format(
            "printf('t%02d', x % :tenants)", _SQLITE_STAMP.format("x"), _SQLITE_STAMP.format("x")
        )
        + " FROM seq",
    ),
    "postgresql": (
        _EVENTS.format(_PG_STAMP.format("x / 3")) + _PG_SEQ,
        _DOCS.format(
            "'t' || lpad((x % :tenants)::text, 2, '0')",
            _PG_STAMP.format("x"),
            _PG_STAMP.format("x"),
        )
        + _PG_SEQ,
    ),
}


def _fill(db: Database, size: Size) -> None:
    """Generate the pagination and tenant tables inside the database (fast, no Python rows)."""
    events, docs = FILL_SQL[db.dialect]
    with db.engine.begin() as conn:
        conn.execute(text(events), {"n": size.table_rows})
        conn.execute(text(docs), {"n": size.docs, "tenants": TENANTS})
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE" if db.dialect == "sqlite" else "VACUUM ANALYZE")


@contextmanager
def _database(name: str, url: str, size: Size) -> Iterator[Database]:
    db = Database(url)
    Model.metadata.drop_all(db.engine, tables=TABLES)
    Model.metadata.create_all(db.engine, tables=TABLES)
    try:
        started = time.perf_counter()
        _fill(db, size)
        print(
            f"[{name}] {size.table_rows:,} events and {size.docs:,} docs generated in "
            f"{time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        yield db
    finally:
        Model.metadata.drop_all(db.engine, tables=TABLES)
        db.dispose()


# --------------------------------------------------------------------------- (a) bulk insert


def _repository() -> Any | None:
    try:
        from kit_db.repository import Repository
    except ImportError:
        return None
    return Repository


def _make_repository(repository: Any, session: Session) -> Any:
    """``Repository(Model, session)``; the other argument order if that is what it takes."""
    first = next(iter(inspect.signature(repository).parameters))
    return repository(session, BenchItem) if first == "session" else repository(BenchItem, session)


def insert_rows(name: str, db: Database, size: Size) -> list[Row]:
    n = size.insert_rows
    source = [{"name": f"item {i}", "qty": i} for i in range(n)]
    table = BenchItem.__table__
    empty = "DELETE FROM kitbench_items" if db.dialect == "sqlite" else "TRUNCATE kitbench_items"
    batches: dict[str, list[dict[str, Any]]] = {}

    def setup() -> None:
        with db.engine.begin() as conn:
            conn.exec_driver_sql(empty)
        batches["rows"] = [dict(row) for row in source]  # fresh dicts, made untimed

    def core() -> None:
        with db.engine.begin() as conn:
            conn.execute(insert(table), batches["rows"])

    peer = Contender(f"Core insert(table) executemany, {n:,} rows", core, setup, number=1)
    repository = _repository()
    if repository is None:
        measure([peer], Mode(rounds=size.insert_rounds, batch_s=0))
        return [
            Row(
                name=f"[{name}] add_many {n:,} rows (skipped: Repository not available)",
                kit="Repository.add_many (kit_db.repository missing)",
                peer=peer.label,
                kit_us=0.0,
                peer_us=peer.min_us,
                target=">= 0.9x throughput (<= 1.11x time)",
                verdict="skipped: Repository not available",
            )
        ]

    def kit() -> None:
        with db.begin() as session:
            _make_repository(repository, session).add_many(batches["rows"])

    contender = Contender(f"Repository.add_many, {n:,} rows", kit, setup, number=1)
    setup()
    kit()
    with db.engine.connect() as conn:
        _check(
            "add_many row count", conn.scalar(select(sqlalchemy.func.count()).select_from(table)), n
        )
    measure([contender, peer], Mode(rounds=size.insert_rounds, batch_s=0))
    row = Row.compare(
        f"[{name}] add_many {n:,} rows vs Core executemany",
        contender,
        peer,
        target=">= 0.9x throughput (<= 1.11x time)",
        meets=lambda r: r <= 1 / 0.9,
        kit_rows_per_s=round(n / (contender.min_us / 1e6)),
        peer_rows_per_s=round(n / (peer.min_us / 1e6)),
    )
    return [row]


# --------------------------------------------------------------------------- (b) pagination


def _position(db: Database, depth: int) -> tuple[dt.datetime, int]:
    """(created_at, id) of the row at 1-based position ``depth`` in the ordering."""
    with db.session() as session:
        found = session.execute(
            select(BenchEvent.created_at, BenchEvent.id)
            .order_by(BenchEvent.created_at, BenchEvent.id)
            .offset(depth - 1)
            .limit(1)
        ).one()
        return found[0], found[1]


def _cursor_at(db: Database, depth: int) -> str | None:
    """A cursor that continues after the ``depth``-th row (made with the public API only:
    cursors are positions, so a narrower WHERE gives the same cursor)."""
    if depth == 0:
        return None
    created, ident = _position(db, depth)
    with db.session() as session:
        page = paginate_keyset(
            session,
            select(BenchEvent).where(
                BenchEvent.created_at >= created,
                or_(BenchEvent.created_at > created, BenchEvent.id >= ident),
            ),
            [BenchEvent.created_at],
            limit=1,
            secret=SIGNING_KEY,
        )
    _check("cursor row", page.items[0].id, ident)
    return page.next_cursor


def pagination_rows(name: str, db: Database, size: Size) -> list[Row]:
    """Every depth and both paginators in one interleaved group, so drift in the machine's
    load cannot fake "flat" or "growing"."""
    order = [BenchEvent.created_at]
    offset_stmt = select(BenchEvent).order_by(BenchEvent.created_at, BenchEvent.id)
    groups: list[tuple[int, Contender, Contender, Contender]] = []
    for depth in size.depths:
        cursor = _cursor_at(db, depth)
        page_no = depth // PER_PAGE + 1

        def keyset(cursor: str | None = cursor) -> list[int]:
            with db.session() as session:
                page = paginate_keyset(
                    session,
                    select(BenchEvent),
                    order,
                    after=cursor,
                    limit=PER_PAGE,
                    secret=SIGNING_KEY,
                )
                return [e.id for e in page.items]

        def offset(page_no: int = page_no) -> list[int]:
            with db.session() as session:
                page = paginate(session, offset_stmt, page=page_no, per_page=PER_PAGE)
                return [e.id for e in page.items]

        def offset_select(depth: int = depth) -> list[int]:
            with db.session() as session:
                found = session.scalars(offset_stmt.offset(depth).limit(PER_PAGE))
                return [e.id for e in found]

        expected = offset()
        _check(f"offset page at depth {depth}", expected, list(range(depth + 1, depth + 51)))
        _check(f"keyset page at depth {depth}", keyset(), expected)
        _check(f"offset SELECT at depth {depth}", offset_select(), expected)
        groups.append(
            (
                depth,
                Contender(f"paginate_keyset(limit={PER_PAGE}) after a cursor", keyset),
                Contender(
                    f"paginate(per_page={PER_PAGE}) page {page_no:,} (OFFSET + COUNT)", offset
                ),
                Contender("OFFSET page SELECT alone (no COUNT)", offset_select),
            )
        )
    measure([c for group in groups for c in group[1:]], size.mode)
    return [
        Row.compare(
            f"[{name}] keyset vs offset page, {depth:,} of {size.table_rows:,} rows skipped",
            kit,
            peer,
            target="info: keyset flat, offset growing",
            meets=None,
            depth=depth,
            table_rows=size.table_rows,
            offset_select_only_us=round(bare.min_us, 4),
            offset_select_only_median_us=round(bare.median_us, 4),
        )
        for depth, kit, peer, bare in groups
    ]


# --------------------------------------------------------------------------- (c) scoping


def scoping_rows(name: str, db: Database, size: Size) -> list[Row]:
    plain = sessionmaker(db.engine, expire_on_commit=False)  # a stock Session, no kit hooks
    listing = select(BenchDoc).order_by(BenchDoc.created_at).limit(PER_PAGE)
    by_hand = (
        select(BenchDoc)
        .where(BenchDoc.deleted_at.is_(None), BenchDoc.tenant_id == TENANT)
        .order_by(BenchDoc.created_at)
        .limit(PER_PAGE)
    )
    with db.session() as session, tenant_context(TENANT):
        ids = session.scalars(select(BenchDoc.id).order_by(BenchDoc.id).limit(200)).all()
    target_id = ids[len(ids) // 2]

    def kit_list() -> list[int]:
        with db.session() as session:
            return [d.id for d in session.scalars(listing)]

    def hand_list() -> list[int]:
        with plain() as session:
            return [d.id for d in session.scalars(by_hand)]

    def kit_one() -> int:
        with db.session() as session:
            return session.scalars(select(BenchDoc).where(BenchDoc.id == target_id)).one().id

    def hand_one() -> int:
        with plain() as session:
            found = session.scalars(
                select(BenchDoc).where(
                    and_(
                        BenchDoc.id == target_id,
                        BenchDoc.deleted_at.is_(None),
                        BenchDoc.tenant_id == TENANT,
                    )
                )
            )
            return found.one().id

    rows: list[Row] = []
    # the tenant is set once, as a web request would; the plain session ignores it
    with tenant_context(TENANT):
        expected = hand_list()
        _check("scoped list", kit_list(), expected)
        _check("scoped list size", len(expected), PER_PAGE)
        _check("scoped get", kit_one(), hand_one())
        for label, kit_fn, hand_fn, what in (
            ("list 50 rows", kit_list, hand_list, f"ORDER BY created_at LIMIT {PER_PAGE}"),
            ("one row by id", kit_one, hand_one, "WHERE id = :id"),
        ):
            kit = Contender(f"kit session, tenant_context: select(Doc) {what}", kit_fn)
            peer = Contender(
                f"plain Session: WHERE deleted_at IS NULL AND tenant_id = :t, {what}", hand_fn
            )
            # twice the rounds: two cheap contenders, and the closest target of the run
            measure([kit, peer], Mode(rounds=2 * size.mode.rounds, batch_s=size.mode.batch_s))
            rows.append(
                Row.compare(
                    f"[{name}] soft delete + tenant scoping, {label} ({size.docs:,}-row table)",
                    kit,
                    peer,
                    target="<= 1.1x",
                    meets=lambda r: r <= 1.1,
                )
            )
    return rows


# --------------------------------------------------------------------------- main


def run_dialect(name: str, url: str, size: Size) -> list[Row]:
    rows: list[Row] = []
    with _database(name, url, size) as db:
        started = time.perf_counter()
        rows += insert_rows(name, db, size)
        rows += pagination_rows(name, db, size)
        rows += scoping_rows(name, db, size)
        print(f"[{name}] measured in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    size_group = parser.add_mutually_exclusive_group()
    size_group.add_argument(
        "--quick",
        action="store_true",
        help="small tables, few rounds (well under a minute; the default when CI is set)",
    )
    size_group.add_argument("--full", action="store_true", help="full run even when CI is set")
    parser.add_argument(
        "--only", choices=["sqlite", "postgresql"], help="run one database (default: both)"
    )
    args = parser.parse_args(argv)
    quick = args.quick or (in_ci() and not args.full)
    size = QUICK if quick else FULL

    started = time.perf_counter()
    rows: list[Row] = []
    status = 0
    try:
        with ExitStack() as stack:
            if args.only in (None, "sqlite"):
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="kitdb-bench-"))
                rows += run_dialect("sqlite", f"sqlite:///{folder}/bench.db", size)
            if args.only in (None, "postgresql"):
                url = stack.enter_context(postgresql_service())
                rows += run_dialect("postgresql", url, size)
    except Exception:
        traceback.print_exc()
        print("kit-db benchmarks: error (see above); partial results written", file=sys.stderr)
        status = 1

    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "kit_db": kit_db.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "mode": "quick" if quick else "full",
        "rounds": size.mode.rounds,
        "batch_s": size.mode.batch_s,
        "insert_rows": size.insert_rows,
        "insert_rounds": size.insert_rounds,
        "table_rows": size.table_rows,
        "docs": size.docs,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"package": "kit-db", "results": [r.as_json() for r in rows], "info": info}, indent=2
        )
        + "\n"
    )
    header = (
        f"kit-db benchmarks ({info['mode']}: {size.mode.rounds} interleaved rounds for queries, "
        f"{size.insert_rounds} for inserts, fastest round per call; Python {info['python']}, "
        f"SQLAlchemy {info['sqlalchemy']}; {info['seconds']} s)"
    )
    print_summary(rows, header)
    print(f"wrote {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
