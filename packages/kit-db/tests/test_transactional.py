"""``transactional``: commit, rollback, SAVEPOINTs, decorators; sync and async, three
dialects."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _support import new_base
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from kit_db import AsyncDatabase, ConfigurationError, Conflict, Database, KitSession, UUIDMixin
from kit_db._transaction import AsyncTransaction, Transaction, transactional

Base = new_base()


class Entry(UUIDMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "tx_entries"
    key: Mapped[str] = mapped_column(unique=True)


class Boom(Exception):
    pass


@pytest.fixture
def db(make_db: Callable[..., Database]) -> Database:
    return make_db(Base.metadata)


@pytest.fixture
async def adb(make_async_db: Callable[..., Any]) -> AsyncDatabase:
    return await make_async_db(Base.metadata)  # type: ignore[no-any-return]


def committed(db: Database) -> list[str]:
    """The keys another connection sees."""
    with db.session() as session:
        return sorted(session.scalars(select(Entry.key)))


async def acommitted(adb: AsyncDatabase) -> list[str]:
    async with adb.session() as session:
        return sorted((await session.scalars(select(Entry.key))).all())


def add_then_fail(block: Transaction[Any], key: str, error: BaseException | None = None) -> None:
    """Inside ``block``: add an entry, flush it, raise."""
    with block as session:
        session.add(Entry(key=key))
        session.flush()
        raise error or Boom(key)


async def aadd_then_fail(
    block: AsyncTransaction[Any], key: str, error: BaseException | None = None
) -> None:
    async with block as session:
        session.add(Entry(key=key))
        await session.flush()
        raise error or Boom(key)


# -- sync --------------------------------------------------------------------------------------


def test_a_block_on_a_session_commits(db: Database) -> None:
    with db.session() as session:
        with transactional(session) as same:
            assert same is session
            session.add(Entry(key="a"))
        assert not session.in_transaction()
        assert committed(db) == ["a"]


def test_an_error_rolls_back_and_propagates_unchanged(db: Database) -> None:
    error = Boom("boom")
    with db.session() as session:
        with pytest.raises(Boom) as raised:
            add_then_fail(transactional(session), "a", error)
        assert raised.value is error
        assert not session.in_transaction()
    assert committed(db) == []


def test_a_database_block_opens_commits_and_closes_a_session(db: Database) -> None:
    with transactional(db) as session:
        assert isinstance(session, KitSession)
        session.add(Entry(key="a"))
    assert session.get_transaction() is None
    assert committed(db) == ["a"]
    with pytest.raises(Boom):
        add_then_fail(transactional(db), "b")
    assert committed(db) == ["a"]


def test_a_nested_failure_rolls_back_only_the_savepoint(db: Database) -> None:
    with transactional(db) as session:
        session.add(Entry(key="outer-1"))
        with transactional(session) as inner:
            assert inner is session
        with pytest.raises(Boom):
            add_then_fail(transactional(session), "inner")
        with pytest.raises(Boom):
            add_then_fail(transactional(db), "inner-2")  # joins this block's session
        session.add(Entry(key="outer-2"))
    assert committed(db) == ["outer-1", "outer-2"]


def test_a_conflict_in_a_savepoint_keeps_the_outer_work(db: Database) -> None:
    with transactional(db) as session:
        session.add(Entry(key="a"))
        with pytest.raises(Conflict) as raised, transactional(session):
            session.add(Entry(key="a"))
        assert raised.value.constraint == "uq_tx_entries_key"
        session.add(Entry(key="b"))
    assert committed(db) == ["a", "b"]


def test_an_outer_failure_undoes_released_savepoints(db: Database) -> None:
    def work() -> None:
        with transactional(db) as session:
            session.add(Entry(key="outer"))
            with transactional(session):
                session.add(Entry(key="inner"))  # released, then undone with the outer block
            raise Boom

    with pytest.raises(Boom):
        work()
    assert committed(db) == []


def test_an_autobegun_transaction_is_joined_and_committed(db: Database) -> None:
    with db.session() as session:
        session.scalars(select(Entry)).all()  # autobegins; nobody owns it
        assert session.in_transaction()
        with transactional(session):
            session.add(Entry(key="a"))
        assert not session.in_transaction()
        assert committed(db) == ["a"]


def test_inside_a_transaction_begun_elsewhere_blocks_are_savepoints(db: Database) -> None:
    with db.begin() as session:
        with transactional(session):
            session.add(Entry(key="kept"))
        with pytest.raises(Boom):
            add_then_fail(transactional(session), "undone")
        assert session.in_transaction()  # db.begin() commits, not the blocks
        assert committed(db) == []
    assert committed(db) == ["kept"]


def test_the_decorator_passes_the_session_and_commits(db: Database) -> None:
    @transactional(db)
    def create(session: KitSession, key: str) -> Entry:
        entry = Entry(key=key)
        session.add(entry)
        return entry

    entry = create("a")
    assert entry.key == "a"
    assert create.__name__ == "create"
    assert committed(db) == ["a"]


def test_the_decorator_rolls_back_and_propagates(db: Database) -> None:
    error = Boom()

    @transactional(db)
    def fail(session: KitSession) -> None:
        session.add(Entry(key="x"))
        session.flush()
        raise error

    with pytest.raises(Boom) as raised:
        fail()
    assert raised.value is error
    assert committed(db) == []


def test_decorated_functions_join_the_current_transaction(db: Database) -> None:
    seen: list[Session] = []

    @transactional(db)
    def create(session: KitSession, key: str) -> None:
        seen.append(session)
        session.add(Entry(key=key))
        session.flush()

    @transactional(db)
    def batch(session: KitSession) -> None:
        seen.append(session)
        create("a")
        with pytest.raises(Conflict):
            create("a")  # its savepoint rolls back; batch carries on
        create("b")

    batch()
    assert committed(db) == ["a", "b"]
    assert all(s is seen[0] for s in seen)
    with transactional(db) as session:
        create("c")
        assert seen[-1] is session
        assert committed(db) == ["a", "b"]  # not committed yet: it joined this block
    assert committed(db) == ["a", "b", "c"]


def test_a_session_block_is_the_current_transaction_of_its_engine(db: Database) -> None:
    @transactional(db)
    def create(session: KitSession, key: str) -> KitSession:
        session.add(Entry(key=key))
        return session

    with db.session() as session, transactional(session):
        assert create("a") is session
        assert committed(db) == []
    assert committed(db) == ["a"]


def test_a_sessionmaker_bound_to_a_connection_still_nests(db: Database) -> None:
    """kit_db.testing binds the Database's sessions to the test's connection."""
    with db.engine.connect() as connection:
        outer = connection.begin()
        db.sessionmaker.configure(bind=connection, join_transaction_mode="create_savepoint")
        try:

            @transactional(db)
            def create(session: KitSession, key: str) -> KitSession:
                session.add(Entry(key=key))
                session.flush()
                return session

            with transactional(db) as session:
                assert create("a") is session
                with pytest.raises(Conflict):
                    create("a")
                assert create("b") is session
            with db.session() as session:
                assert sorted(session.scalars(select(Entry.key))) == ["a", "b"]
        finally:
            db.sessionmaker.configure(bind=db.engine, join_transaction_mode="conditional_savepoint")
            outer.rollback()
    assert committed(db) == []


def test_the_same_object_can_be_entered_again_and_nested(db: Database) -> None:
    block = transactional(db)
    assert isinstance(block, Transaction)
    with block as outer:
        outer.add(Entry(key="a"))
        with block as inner:
            assert inner is outer
            inner.add(Entry(key="b"))
    with block as again:
        assert again is not outer
        again.add(Entry(key="c"))
    assert committed(db) == ["a", "b", "c"]


def test_other_threads_get_their_own_session(db: Database) -> None:
    found: list[bool] = []
    with transactional(db) as session:

        def worker() -> None:
            with transactional(db) as other:
                found.append(other is session)

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert found == [False]


def test_wrong_targets_are_refused(db: Database) -> None:
    with pytest.raises(ConfigurationError, match="got int"):
        transactional(42)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match=r"@transactional\(db\)"):
        transactional(committed)  # type: ignore[call-overload]

    async def coroutine(session: KitSession) -> None:
        pass

    with pytest.raises(ConfigurationError, match="async"):
        transactional(db)(coroutine)


# -- async -------------------------------------------------------------------------------------


async def test_async_block_commits_and_rolls_back(adb: AsyncDatabase) -> None:
    async with adb.session() as session:
        async with transactional(session) as same:
            assert same is session
            session.add(Entry(key="a"))
        assert not session.in_transaction()
        error = Boom()
        with pytest.raises(Boom) as raised:
            await aadd_then_fail(transactional(session), "b", error)
        assert raised.value is error
    assert await acommitted(adb) == ["a"]


async def test_async_nested_failure_rolls_back_only_the_savepoint(adb: AsyncDatabase) -> None:
    async with transactional(adb) as session:
        assert isinstance(session, AsyncSession)
        session.add(Entry(key="outer-1"))
        with pytest.raises(Conflict) as raised:
            async with transactional(session):
                session.add(Entry(key="outer-1"))
        assert raised.value.constraint == "uq_tx_entries_key"
        async with transactional(adb) as inner:  # the current session, as a savepoint
            assert inner is session
        with pytest.raises(Boom):
            await aadd_then_fail(transactional(adb), "inner")
        session.add(Entry(key="outer-2"))
    assert await acommitted(adb) == ["outer-1", "outer-2"]


async def test_async_outer_failure_undoes_released_savepoints(adb: AsyncDatabase) -> None:
    async def work() -> None:
        async with transactional(adb) as session:
            session.add(Entry(key="outer"))
            async with transactional(session):
                session.add(Entry(key="inner"))
            raise Boom

    with pytest.raises(Boom):
        await work()
    assert await acommitted(adb) == []


async def test_async_autobegun_transaction_is_joined(adb: AsyncDatabase) -> None:
    async with adb.session() as session:
        await session.scalars(select(Entry))
        async with transactional(session):
            session.add(Entry(key="a"))
        assert not session.in_transaction()
    assert await acommitted(adb) == ["a"]


async def test_async_decorators_nest_and_propagate(adb: AsyncDatabase) -> None:
    seen: list[AsyncSession] = []

    @transactional(adb)
    async def create(session: AsyncSession, key: str) -> str:
        seen.append(session)
        session.add(Entry(key=key))
        await session.flush()
        return key

    @transactional(adb)
    async def batch(session: AsyncSession) -> None:
        seen.append(session)
        assert await create("a") == "a"
        with pytest.raises(Conflict):
            await create("a")
        await create("b")

    await batch()
    assert await acommitted(adb) == ["a", "b"]
    assert len(seen) == 4
    assert all(s is seen[0] for s in seen)

    error = Boom()

    @transactional(adb)
    async def fail(session: AsyncSession) -> None:
        session.add(Entry(key="c"))
        raise error

    with pytest.raises(Boom) as raised:
        await fail()
    assert raised.value is error
    assert await acommitted(adb) == ["a", "b"]


async def test_concurrent_tasks_get_sessions_of_their_own(adb: AsyncDatabase) -> None:
    @transactional(adb)
    async def probe(session: AsyncSession) -> AsyncSession:
        await asyncio.sleep(0)
        return session

    async with transactional(adb) as outer:
        assert await probe() is outer  # awaited in this task: joins
        first, second = await asyncio.gather(probe(), probe())  # tasks of their own
        assert first is not outer
        assert second is not outer
        assert first is not second


async def test_async_targets_need_async_code(adb: AsyncDatabase) -> None:
    block = transactional(adb)
    assert isinstance(block, AsyncTransaction)
    with pytest.raises(TypeError), block:  # type: ignore[attr-defined]
        pass

    def plain(session: AsyncSession) -> None:
        pass

    with pytest.raises(ConfigurationError, match="not async"):
        block(plain)  # type: ignore[arg-type]
