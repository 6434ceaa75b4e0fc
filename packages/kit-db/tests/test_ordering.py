"""OrderingMixin on SQLite, PostgreSQL and MariaDB: appends, moves, scopes, soft delete,
tenants, and dense positions under concurrent moves from several connections."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from _support import new_base
from sqlalchemy import ForeignKey, delete, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from kit_db import (
    ConfigurationError,
    Database,
    SoftDeleteMixin,
    TenantRequired,
    TenantScopedMixin,
    TenantViolation,
    TimestampMixin,
    UUIDMixin,
    tenant_context,
    unscoped,
)
from kit_db._ordering import OrderingMixin

Base = new_base()


class Board(Base):  # type: ignore[misc,valid-type]
    __tablename__ = "ordering_boards"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(default="")
    cards: Mapped[list[Card]] = relationship(back_populates="board", order_by="Card.position")
    pins: Mapped[list[Pin]] = relationship()  # no back reference: board_id is set in the flush


class Card(UUIDMixin, TimestampMixin, SoftDeleteMixin, OrderingMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "ordering_cards"
    __ordering_scope__ = ("board_id",)
    title: Mapped[str] = mapped_column(default="")
    board_id: Mapped[int] = mapped_column(ForeignKey("ordering_boards.id"), index=True)
    board: Mapped[Board] = relationship(back_populates="cards")

    def __repr__(self) -> str:
        return f"<Card {self.title} @{self.position}>"


class Pin(OrderingMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "ordering_pins"
    __ordering_scope__ = ("board_id",)
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(default="")
    board_id: Mapped[int] = mapped_column(ForeignKey("ordering_boards.id"), index=True)


class Step(OrderingMixin, Base):  # type: ignore[misc,valid-type]
    """One list for the whole table, integer key, no soft delete."""

    __tablename__ = "ordering_steps"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(default="")


class Lane(UUIDMixin, TenantScopedMixin, SoftDeleteMixin, OrderingMixin, Base):  # type: ignore[misc,valid-type]
    """Tenant-scoped: one list per tenant."""

    __tablename__ = "ordering_lanes"
    name: Mapped[str] = mapped_column(default="")


@pytest.fixture
def db(make_db: Callable[..., Database]) -> Database:
    return make_db(Base.metadata)


def new_board(db: Database, *titles: str) -> int:
    with db.begin() as session:
        board = Board(cards=[Card(title=t) for t in titles])
        session.add(board)
        session.flush()
        return board.id


def titles(db: Database, board_id: int) -> list[str]:
    """The board's live cards in list order, after checking positions are 0..n-1."""
    with db.session() as session:
        cards = session.scalars(Card.ordered(board_id=board_id)).all()
    assert [c.position for c in cards] == list(range(len(cards))), cards
    return [c.title for c in cards]


def card(session: Any, board_id: int, title: str) -> Card:
    found: Card = session.scalars(
        select(Card).where(Card.board_id == board_id, Card.title == title)
    ).one()
    return found


# -- appends ----------------------------------------------------------------------------------


def test_new_rows_go_to_the_end_in_the_order_they_were_added(db: Database) -> None:
    board_id = new_board(db, "a", "b", "c")  # pending parent: the relationship sets board_id
    assert titles(db, board_id) == ["a", "b", "c"]
    with db.begin() as session:
        session.add_all([Card(title="d", board_id=board_id), Card(title="e", board_id=board_id)])
    with db.begin() as session:
        session.add(Card(title="f", board_id=board_id))
        session.flush()
        session.add(Card(title="g", board=session.get(Board, board_id)))
    assert titles(db, board_id) == ["a", "b", "c", "d", "e", "f", "g"]


def test_rows_added_through_a_collection_without_back_reference(db: Database) -> None:
    board_id = new_board(db)
    with db.begin() as session:
        board = session.get(Board, board_id)
        assert board is not None
        board.pins.extend([Pin(label="x"), Pin(label="y")])
    with db.begin() as session:
        board = session.get(Board, board_id)
        assert board is not None
        board.pins.append(Pin(label="z"))
    with db.session() as session:
        pins = session.scalars(Pin.ordered(board_id=board_id)).all()
        assert [(p.label, p.position) for p in pins] == [("x", 0), ("y", 1), ("z", 2)]


def test_a_position_given_to_a_new_row_is_replaced(db: Database) -> None:
    board_id = new_board(db, "a")
    with db.begin() as session:
        session.add(Card(title="b", board_id=board_id, position=0))
    assert titles(db, board_id) == ["a", "b"]


# -- moves ------------------------------------------------------------------------------------


def test_move_to_counts_from_either_end_and_clamps(db: Database) -> None:
    board_id = new_board(db, "a", "b", "c", "d", "e")
    moves = [
        ("c", 0, 0, ["c", "a", "b", "d", "e"]),
        ("c", -1, 4, ["a", "b", "d", "e", "c"]),
        ("a", 2, 2, ["b", "d", "a", "e", "c"]),
        ("b", 99, 4, ["d", "a", "e", "c", "b"]),
        ("b", -99, 0, ["b", "d", "a", "e", "c"]),
        ("e", -2, 3, ["b", "d", "a", "e", "c"]),  # already there: nothing changes
    ]
    for title, index, landed, expected in moves:
        with db.begin() as session:
            assert card(session, board_id, title).move_to(index) == landed
        assert titles(db, board_id) == expected
    with db.session() as session, pytest.raises(TypeError):
        card(session, board_id, "a").move_to("1")  # type: ignore[arg-type]


def test_move_above_below_top_bottom_up_down(db: Database) -> None:
    board_id = new_board(db, "a", "b", "c", "d", "e")
    with db.begin() as session:
        a, b, c, d, e = (card(session, board_id, t) for t in "abcde")
        assert e.move_above(b) == 1
        assert [x.position for x in (a, e, b, c, d)] == [0, 1, 2, 3, 4]  # objects are updated
        assert a.move_below(c) == 3
        assert d.move_top() == 0
        assert d.move_bottom() == 4
        assert b.move_down() == 2
        assert b.move_down(10) == 4
        assert c.move_up(2) == 0
        assert c.move_above(c) == 0
    assert titles(db, board_id) == ["c", "e", "a", "d", "b"]


def test_moves_in_one_session_see_each_other_and_unflushed_rows(db: Database) -> None:
    board_id = new_board(db, "a", "b")
    with db.begin() as session:
        fresh = Card(title="new", board_id=board_id)
        session.add(fresh)
        assert fresh.move_top() == 0  # flushed, numbered, then moved
        other = card(session, board_id, "b")
        other.title = "b2"  # a pending change is flushed, not lost
        assert other.move_above(fresh) == 0
    assert titles(db, board_id) == ["b2", "new", "a"]


def test_rows_that_move_get_updated_at_in_the_database_and_in_memory(db: Database) -> None:
    board_id = new_board(db, "a", "b", "c")
    with db.session() as session:
        before = {c.title: c.updated_at for c in session.scalars(Card.ordered(board_id=board_id))}
    with db.begin() as session:
        a, b, c = (card(session, board_id, t) for t in "abc")
        c.move_above(b)  # a stays where it is
        in_memory = {x.title: x.updated_at for x in (a, b, c)}
    with db.session() as session:
        stored = {c.title: c.updated_at for c in session.scalars(Card.ordered(board_id=board_id))}
    assert stored == in_memory
    assert stored["a"] == before["a"]
    assert stored["b"] > before["b"] and stored["c"] > before["c"]


def test_scopes_are_independent(db: Database) -> None:
    one = new_board(db, "a", "b", "c")
    two = new_board(db, "x", "y")
    with db.begin() as session:
        card(session, one, "c").move_top()
        session.add(Card(title="z", board_id=two))
        card(session, two, "x").move_bottom()
    assert titles(db, one) == ["c", "a", "b"]
    assert titles(db, two) == ["y", "z", "x"]
    with db.session() as session:
        everything = session.scalars(Card.ordered()).all()
        assert [(c.board_id, c.title) for c in everything] == [
            (one, "c"),
            (one, "a"),
            (one, "b"),
            (two, "y"),
            (two, "z"),
            (two, "x"),
        ]


def test_moving_next_to_a_row_of_another_list_is_refused(db: Database) -> None:
    one = new_board(db, "a", "b")
    two = new_board(db, "x")
    with db.session() as session:
        a, x = card(session, one, "a"), card(session, two, "x")
        with pytest.raises(ConfigurationError, match="another list"):
            a.move_above(x)
        with pytest.raises(ConfigurationError, match="another list"):
            x.move_below(a)
        session.rollback()
        step = Step(label="s")
        session.add(step)
        with pytest.raises(ConfigurationError, match="not the same ordered table"):
            a.move_below(step)
        session.rollback()
        b = card(session, one, "b")
        b.soft_delete()
        session.flush()
        with pytest.raises(ConfigurationError, match="not a live row"):
            a.move_below(b)
        with pytest.raises(ConfigurationError, match="not a live row"):
            b.move_top()
        session.rollback()
    assert titles(db, one) == ["a", "b"]
    with pytest.raises(ConfigurationError, match="not in a session"):
        Card(title="loose").move_to(0)


# -- leaving and joining a list ---------------------------------------------------------------


def test_soft_delete_restore_and_delete_keep_positions_dense(db: Database) -> None:
    board_id = new_board(db, "a", "b", "c", "d")
    with db.begin() as session:
        card(session, board_id, "b").soft_delete()
    assert titles(db, board_id) == ["a", "c", "d"]
    with db.session() as session:
        gone = session.scalars(
            select(Card).where(Card.title == "b").execution_options(kit_include_deleted=True)
        ).one()
        assert gone.position == 1  # a soft-deleted row keeps its last position
        gone.restore()
        session.commit()
    assert titles(db, board_id) == ["a", "c", "d", "b"]
    with db.begin() as session:
        session.delete(card(session, board_id, "a"))
        card(session, board_id, "d").soft_delete()
    assert titles(db, board_id) == ["c", "b"]
    with db.begin() as session:  # leave and join in one flush
        card(session, board_id, "c").soft_delete()
        new = Card(title="e", board_id=board_id)
        session.add(new)
        session.flush()
        b = card(session, board_id, "b")
        assert (b.position, new.position) == (0, 1)  # the objects agree with the database
    assert titles(db, board_id) == ["b", "e"]


def test_changing_the_scope_moves_the_row_to_the_end_of_the_other_list(db: Database) -> None:
    one = new_board(db, "a", "b", "c")
    two = new_board(db, "x", "y")
    with db.begin() as session:
        card(session, one, "a").board_id = two
    assert titles(db, one) == ["b", "c"]
    assert titles(db, two) == ["x", "y", "a"]
    with db.begin() as session:
        moved = card(session, two, "y")
        moved.board = session.get(Board, one)  # through the relationship, with a position
        moved.position = 0
    assert titles(db, one) == ["y", "b", "c"]
    assert titles(db, two) == ["x", "a"]


def test_assigning_positions_is_a_move(db: Database) -> None:
    board_id = new_board(db, "a", "b", "c", "d")
    with db.begin() as session:
        card(session, board_id, "d").position = 1
    assert titles(db, board_id) == ["a", "d", "b", "c"]
    with db.begin() as session:  # a whole permutation, as a drag-and-drop UI would send it
        wanted = ["c", "a", "b", "d"]
        for index, title in enumerate(wanted):
            card(session, board_id, title).position = index
    assert titles(db, board_id) == ["c", "a", "b", "d"]
    with db.begin() as session:
        card(session, board_id, "c").position = -1
    assert titles(db, board_id) == ["a", "b", "d", "c"]


def test_renumber_repairs_what_bulk_statements_leave(db: Database) -> None:
    board_id = new_board(db, "a", "b", "c", "d")
    with db.begin() as session:
        session.execute(delete(Card).where(Card.title.in_(["a", "c"])))
        session.execute(update(Card).where(Card.title == "d").values(position=7))
    with db.begin() as session:
        assert Card.renumber(session, board_id=board_id) == 2
        assert Card.renumber(session, board_id=str(board_id)) == 2  # coerced to the column type
    assert titles(db, board_id) == ["b", "d"]
    with db.session() as session:
        with pytest.raises(ConfigurationError, match="missing"):
            Card.renumber(session)
        with pytest.raises(ConfigurationError, match="unknown"):
            Card.lock_ordering(session, board_id=board_id, colour="red")
        with pytest.raises(ConfigurationError, match="cannot filter"):
            Card.ordered(colour="red")


def test_whole_table_list_with_integer_keys(db: Database) -> None:
    with db.begin() as session:
        session.add_all([Step(label=x) for x in "pqrs"])
    with db.begin() as session:
        steps = session.scalars(Step.ordered()).all()
        steps[3].move_above(steps[0])
        steps[1].move_bottom()
    with db.session() as session:
        assert [(s.label, s.position) for s in session.scalars(Step.ordered())] == [
            ("s", 0),
            ("p", 1),
            ("r", 2),
            ("q", 3),
        ]


def test_bad_scope_declarations_are_refused() -> None:
    other = new_base()
    with pytest.raises(ConfigurationError, match="tuple of attribute names"):

        class Loose(OrderingMixin, other):  # type: ignore[misc,valid-type]
            __tablename__ = "ordering_loose"
            __ordering_scope__ = "board_id"  # type: ignore[assignment]
            id: Mapped[int] = mapped_column(primary_key=True)

    class Typo(OrderingMixin, other):  # type: ignore[misc,valid-type]
        __tablename__ = "ordering_typo"
        __ordering_scope__ = ("bord_id",)
        id: Mapped[int] = mapped_column(primary_key=True)

    with pytest.raises(ConfigurationError, match="bord_id"):
        Typo.ordered()


@pytest.mark.parametrize("dialect", ["postgresql"])  # MariaDB's locking reads need no check
def test_postgresql_repeatable_read_is_refused(make_db: Callable[..., Database]) -> None:
    db = make_db(Base.metadata, isolation_level="REPEATABLE READ")
    with db.begin() as session:
        session.add(Board(id=1))
    with db.session() as session:
        session.add(Card(title="a", board_id=1))
        with pytest.raises(ConfigurationError, match="READ COMMITTED"):
            session.flush()
    with db.engine.connect() as connection:
        serializable = connection.execution_options(isolation_level="SERIALIZABLE")
        with Session(serializable) as session:
            session.add(Card(title="a", board_id=1))
            session.commit()
    assert titles(db, 1) == ["a"]


# -- tenants ----------------------------------------------------------------------------------


def test_tenant_scoped_models_are_ordered_per_tenant(db: Database) -> None:
    for tenant, names in (("acme", "abc"), ("globex", "xy")):
        with tenant_context(tenant), db.begin() as session:
            session.add_all([Lane(name=n) for n in names])
    with tenant_context("acme"), db.begin() as session:
        lanes = session.scalars(Lane.ordered()).all()
        assert [(lane.name, lane.position) for lane in lanes] == [("a", 0), ("b", 1), ("c", 2)]
        lanes[2].move_top()
        lanes[0].soft_delete()
        Lane.lock_ordering(session)
        session.add(Lane(name="d"))
    with tenant_context("acme"), db.session() as session:
        lanes = session.scalars(Lane.ordered()).all()
        assert [(lane.name, lane.position) for lane in lanes] == [("c", 0), ("b", 1), ("d", 2)]
        acme_lane = lanes[0]
    with tenant_context("globex"), db.session() as session:
        lanes = session.scalars(Lane.ordered()).all()
        assert [(lane.name, lane.position) for lane in lanes] == [("x", 0), ("y", 1)]
        with pytest.raises(TenantViolation):
            Lane.lock_ordering(session, tenant_id="acme")
        session.add(acme_lane)
        with pytest.raises(TenantViolation):
            acme_lane.move_bottom()  # a row of another tenant
        session.rollback()
    with db.session() as session:
        with pytest.raises(TenantRequired):
            Lane.lock_ordering(session)
        with pytest.raises(TenantRequired):
            session.scalars(Lane.ordered()).all()
    with unscoped(), db.begin() as session:
        assert Lane.renumber(session, tenant_id="globex") == 2
        everything = session.scalars(Lane.ordered()).all()
        assert [(lane.tenant_id, lane.name) for lane in everything] == [
            ("acme", "c"),
            ("acme", "b"),
            ("acme", "d"),
            ("globex", "x"),
            ("globex", "y"),
        ]


# -- many moves, one connection ---------------------------------------------------------------


def _apply(order: list[str], title: str, move: str, arg: Any) -> list[str]:
    """The Python model of a move."""
    order = list(order)
    index = order.index(title)
    order.remove(title)
    if move == "to":
        target = arg + len(order) + 1 if arg < 0 else arg
        order.insert(min(max(target, 0), len(order)), title)
    elif move == "up":
        order.insert(max(index - arg, 0), title)
    elif move == "down":
        order.insert(min(index + arg, len(order)), title)
    elif move == "above":
        order.insert(order.index(arg), title)
    elif move == "below":
        order.insert(order.index(arg) + 1, title)
    return order


def _random_move(rng: random.Random, order: list[str]) -> tuple[str, str, Any]:
    title = rng.choice(order)
    move = rng.choice(["to", "to", "up", "down", "above", "below"])
    if move == "to":
        return title, move, rng.randint(-len(order) - 2, len(order) + 2)
    if move in ("up", "down"):
        return title, move, rng.randint(1, 3)
    return title, move, rng.choice([t for t in order if t != title] or [title])


def _do(session: Any, board_id: int, title: str, move: str, arg: Any) -> None:
    row = card(session, board_id, title)
    if move == "to":
        row.move_to(arg)
    elif move == "up":
        row.move_up(arg)
    elif move == "down":
        row.move_down(arg)
    elif move == "above":
        row.move_above(card(session, board_id, arg))
    else:
        row.move_below(card(session, board_id, arg))


def test_random_moves_appends_and_deletes_keep_positions_dense(db: Database) -> None:
    rng = random.Random(20240611)
    model = [f"c{i}" for i in range(6)]
    board_id = new_board(db, *model)
    deleted: list[str] = []
    counter = len(model)
    for _ in range(150):
        roll = rng.random()
        with db.begin() as session:
            if roll < 0.1:
                title = f"c{counter}"
                counter += 1
                session.add(Card(title=title, board_id=board_id))
                model.append(title)
            elif roll < 0.17 and len(model) > 2:
                title = rng.choice(model)
                card(session, board_id, title).soft_delete()
                model.remove(title)
                deleted.append(title)
            elif roll < 0.22 and deleted:
                title = deleted.pop(rng.randrange(len(deleted)))
                row = session.scalars(
                    select(Card)
                    .where(Card.title == title)
                    .execution_options(kit_include_deleted=True)
                ).one()
                row.restore()
                model.append(title)
            else:
                title, move, arg = _random_move(rng, model)
                _do(session, board_id, title, move, arg)
                model = _apply(model, title, move, arg)
        assert titles(db, board_id) == model


# -- concurrency ------------------------------------------------------------------------------


def _run_threads(count: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(number: int) -> None:
        try:
            start.wait()
            work(number)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    if errors:
        raise errors[0]


THREADS = 8
MOVES = 20


def test_concurrent_moves_are_serialized(db: Database) -> None:
    """Each transaction locks the list, reads it, moves one card and reads it again. The
    (before, after) pairs must chain into one serial history from the first list to the last
    (Euler path degree condition), each after must be its before with the move applied, and
    positions end as 0..n-1."""
    initial = [f"c{i:02}" for i in range(10)]
    board_id = new_board(db, *initial)
    history: list[tuple[tuple[str, ...], tuple[str, ...]]] = []

    def work(number: int) -> None:
        rng = random.Random(number)
        for _ in range(MOVES):
            with db.begin() as session:
                Card.lock_ordering(session, board_id=board_id)
                before = [c.title for c in session.scalars(Card.ordered(board_id=board_id))]
                title, move, arg = _random_move(rng, before)
                _do(session, board_id, title, move, arg)
                after = [c.title for c in session.scalars(Card.ordered(board_id=board_id))]
                assert after == _apply(before, title, move, arg)
            history.append((tuple(before), tuple(after)))

    _run_threads(THREADS, work)
    final = titles(db, board_id)
    assert sorted(final) == initial
    assert len(history) == THREADS * MOVES
    balance = Counter(before for before, _ in history)
    balance.subtract(after for _, after in history)
    expected = Counter({tuple(initial): 1})
    expected.subtract({tuple(final): 1})
    assert +balance == +expected
    assert -balance == -expected


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])  # SQLite: see the next test
def test_concurrent_moves_after_plain_reads(db: Database) -> None:
    """Without lock_ordering first: each transaction reads the row, then moves it. PostgreSQL
    and MariaDB lock and re-read the list inside the move, so this is serialized too."""
    initial = [f"c{i:02}" for i in range(8)]
    board_id = new_board(db, *initial)
    with db.session() as session:
        ids = [c.id for c in session.scalars(Card.ordered(board_id=board_id))]

    def work(number: int) -> None:
        rng = random.Random(100 + number)
        for _ in range(MOVES):
            with db.begin() as session:
                row = session.get(Card, rng.choice(ids))
                assert row is not None
                row.title = f"{row.title[:3]}-{number}"  # an edit flushed with the move
                row.move_to(rng.randint(-9, 9))

    _run_threads(THREADS, work)
    assert sorted(t[:3] for t in titles(db, board_id)) == initial


def test_sqlite_needs_the_lock_first(tmp_path: Any) -> None:
    """SQLite cannot turn a transaction that has read into a writer once another connection
    has committed since: the move fails (it never writes wrong positions). Taking the lock
    before reading avoids it."""
    db = Database(f"sqlite:///{tmp_path}/lock-first.db")
    db.create_all(Base.metadata)
    board_id = new_board(db, "a", "b", "c")
    with db.session() as slow:
        row = card(slow, board_id, "a")  # this read pins slow's snapshot
        with db.begin() as fast:
            card(fast, board_id, "c").move_top()
        with pytest.raises(OperationalError, match="locked"):
            row.move_bottom()
        slow.rollback()
    with db.session() as slow:
        Card.lock_ordering(slow, board_id=board_id)
        row = card(slow, board_id, "a")
        assert row.move_bottom() == 2
        slow.commit()
    assert titles(db, board_id) == ["c", "b", "a"]
    db.dispose()


def _is_deadlock(exc: OperationalError) -> bool:
    args: tuple[Any, ...] = getattr(exc.orig, "args", ())
    return bool(args) and args[0] == 1213


def test_concurrent_appends_and_moves(db: Database, dialect: str) -> None:
    """Threads append to one list (empty at first) and move its cards. PostgreSQL and SQLite
    serialize even the first appends; MariaDB may abort one of the first appends to an empty
    list with a deadlock (documented), which is retried here."""
    board_id = new_board(db)
    per_thread = 5

    def work(number: int) -> None:
        rng = random.Random(200 + number)
        for step in range(per_thread):
            for _attempt in range(20):
                try:
                    with db.begin() as session:
                        session.add(Card(title=f"t{number}-{step}", board_id=board_id))
                    break
                except OperationalError as exc:
                    if not (dialect == "mariadb" and _is_deadlock(exc)):
                        raise
            with db.begin() as session:
                Card.lock_ordering(session, board_id=board_id)
                rows = session.scalars(Card.ordered(board_id=board_id)).all()
                rng.choice(rows).move_to(rng.randint(0, len(rows) - 1))

    _run_threads(THREADS, work)
    final = titles(db, board_id)
    assert sorted(final) == sorted(f"t{n}-{s}" for n in range(THREADS) for s in range(per_thread))


def test_each_thread_appends_in_its_own_order(db: Database) -> None:
    """Concurrent appends to a non-empty list never collide, on every dialect, and each
    thread's own cards stay in the order it added them."""
    board_id = new_board(db, "seed")

    def work(number: int) -> None:
        for step in range(6):
            with db.begin() as session:
                session.add(Card(title=f"t{number}-{step}", board_id=board_id))

    _run_threads(THREADS, work)
    final = titles(db, board_id)
    assert final[0] == "seed"
    assert len(final) == 1 + THREADS * 6
    for number in range(THREADS):
        mine = [t for t in final if t.startswith(f"t{number}-")]
        assert mine == [f"t{number}-{s}" for s in range(6)]


# -- asyncio ----------------------------------------------------------------------------------


async def test_moves_through_an_async_session(make_async_db: Callable[..., Any]) -> None:
    adb = await make_async_db(Base.metadata)
    async with adb.begin() as session:
        board = Board(cards=[Card(title=t) for t in "abc"])
        session.add(board)
        await session.flush()
        board_id = board.id
    async with adb.begin() as session:
        rows = (await session.scalars(Card.ordered(board_id=board_id))).all()
        await session.run_sync(lambda _: rows[2].move_top())
    async with adb.session() as session:
        rows = (await session.scalars(Card.ordered(board_id=board_id))).all()
        assert [(c.title, c.position) for c in rows] == [("c", 0), ("a", 1), ("b", 2)]
        assert (await session.execute(text("SELECT 1"))).scalar() == 1


def test_ids_are_uuids(db: Database) -> None:
    board_id = new_board(db, "a")
    with db.session() as session:
        assert isinstance(card(session, board_id, "a").id, uuid.UUID)
