"""``AsyncRepository`` on aiosqlite, asyncpg and aiomysql: the same behaviour as the sync
repository, awaited."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from _support import new_base
from sqlalchemy import String, UniqueConstraint, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from kit_db import (
    INCLUDE_DELETED,
    AsyncDatabase,
    ConfigurationError,
    Conflict,
    Database,
    NotFound,
    SoftDeleteMixin,
    TenantRequired,
    TenantScopedMixin,
    TenantViolation,
    TimestampMixin,
    UUIDMixin,
    tenant_context,
    unscoped,
)
from kit_db._transaction import transactional
from kit_db.repository import AsyncRepository

Base = new_base()


class Member(UUIDMixin, TimestampMixin, SoftDeleteMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "arepo_members"
    email: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(default="")
    level: Mapped[int] = mapped_column(default=0)


class Label(Base):  # type: ignore[misc,valid-type]
    __tablename__ = "arepo_labels"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(50), unique=True)


class Card(UUIDMixin, TenantScopedMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "arepo_cards"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    code: Mapped[str] = mapped_column(String(50))
    title: Mapped[str] = mapped_column(default="")


@pytest.fixture
async def adb(make_async_db: Callable[..., Any]) -> AsyncDatabase:
    return await make_async_db(Base.metadata)  # type: ignore[no-any-return]


def members(session: AsyncSession) -> AsyncRepository[Member]:
    return AsyncRepository(Member, session)


async def seed(adb: AsyncDatabase) -> dict[str, uuid.UUID]:
    async with transactional(adb) as session:
        repo = members(session)
        made = [
            await repo.add(Member(email="ann@x.org", name="Ann", level=2)),
            await repo.add(Member(email="ben@x.org", name="Ben", level=1)),
            await repo.add(Member(email="cat@x.org", name="Cat", level=2)),
        ]
        return {m.name: m.id for m in made}


async def test_an_async_repository_needs_an_async_session(
    adb: AsyncDatabase, make_db: Callable[..., Database]
) -> None:
    db = make_db(Base.metadata)
    with db.session() as session, pytest.raises(ConfigurationError, match="AsyncSession"):
        AsyncRepository(Member, session)  # type: ignore[arg-type]
    async with adb.session() as async_session:
        assert repr(members(async_session)) == "AsyncRepository(Member)"


async def test_reads(adb: AsyncDatabase) -> None:
    ids = await seed(adb)
    async with adb.session() as session:
        repo = members(session)
        ann = await repo.get(ids["Ann"])
        assert ann is not None
        assert ann.name == "Ann"
        assert await repo.get(str(ids["Ann"])) is ann
        assert await repo.get(uuid.uuid4()) is None
        with pytest.raises(NotFound, match="Member"):
            await repo.get_or_raise(uuid.uuid4())
        assert (await repo.get_or_raise(ids["Ben"])).name == "Ben"
        assert [m.name for m in await repo.list()] == ["Ann", "Ben", "Cat"]
        assert [m.name for m in await repo.list(level=2, order_by="-name")] == ["Cat", "Ann"]
        assert [m.name for m in await repo.list(Member.level < 2)] == ["Ben"]
        assert [m.name for m in await repo.list(order_by="name", limit=1, offset=1)] == ["Ben"]
        assert await repo.count() == 3
        assert await repo.count(level=2) == 2
        assert await repo.exists(email="ben@x.org")
        assert not await repo.exists(email="zoe@x.org")


async def test_bad_input_is_refused(adb: AsyncDatabase) -> None:
    async with adb.session() as session:
        repo = members(session)
        with pytest.raises(ConfigurationError, match="'nmae'"):
            await repo.list(nmae="x")
        with pytest.raises(ConfigurationError, match="'nmae'"):
            await repo.count(nmae="x")
        with pytest.raises(ConfigurationError, match=r"Member\.level expects int"):
            await repo.exists(level="high")
        with pytest.raises(ConfigurationError, match="is a UUID"):
            await repo.get("nope")
        with pytest.raises(ConfigurationError, match="'mail'"):
            await repo.add_many([{"mail": "a"}])
        with pytest.raises(ConfigurationError, match="'nmae'"):
            await repo.update(uuid.uuid4(), nmae="x")
        with pytest.raises(ConfigurationError, match="match no primary key"):
            await repo.upsert({"email": "a", "name": "b"}, index_elements=["name"])


async def test_writes_and_soft_delete(adb: AsyncDatabase) -> None:
    ids = await seed(adb)
    async with transactional(adb) as session:
        repo = members(session)
        ann = await repo.update(ids["Ann"], name="Ann B.", level=3)
        assert (ann.name, ann.level) == ("Ann B.", 3)
        assert await repo.update(ann, level=4) is ann
        await repo.delete(ids["Ben"])
        assert await repo.get(ids["Ben"]) is None
        await repo.delete(await repo.get_or_raise(ids["Cat"]), hard=True)
        with pytest.raises(NotFound):
            await repo.delete(ids["Cat"])
    async with adb.session() as session:
        repo = members(session)
        assert [(m.name, m.level) for m in await repo.list()] == [("Ann B.", 4)]
        assert await repo.count() == 1
        everything = select(func.count()).select_from(Member)
        total = await session.scalar(everything.execution_options(**{INCLUDE_DELETED: True}))
        assert total == 2  # Ben soft-deleted, Cat gone
    async with transactional(adb) as session:
        labels = AsyncRepository(Label, session)
        label = await labels.add(Label(text="a"))
        await labels.delete(label.id)
        assert await labels.count() == 0


async def test_conflicts_name_the_constraint(adb: AsyncDatabase) -> None:
    await seed(adb)
    async with adb.session() as session:
        with pytest.raises(Conflict) as raised:
            await members(session).add(Member(email="ann@x.org"))
        assert raised.value.constraint == "uq_arepo_members_email"
        await session.rollback()
        with pytest.raises(Conflict) as raised:
            await members(session).add_many([{"email": "ben@x.org"}])
        assert raised.value.constraint == "uq_arepo_members_email"
        await session.rollback()
        with tenant_context("acme"):
            cards = AsyncRepository(Card, session)
            with pytest.raises(Conflict) as raised:
                await cards.add_many([{"code": "a"}, {"code": "a"}])
        assert raised.value.constraint == "uq_arepo_cards_tenant_id_code"


async def test_add_many_fills_defaults(adb: AsyncDatabase) -> None:
    rows = [{"email": f"m{i}@x.org", "level": i % 3} for i in range(2000)]
    async with transactional(adb) as session:
        assert await members(session).add_many(rows) == 2000
        assert await members(session).add_many(iter([Member(email="last@x.org")])) == 1
    async with adb.session() as session:
        found = (await session.execute(select(Member.id, Member.created_at, Member.name))).all()
        assert len({r.id for r in found}) == 2001
        assert {r.id.version for r in found} == {7}
        assert all(r.created_at is not None and r.name == "" for r in found)
        assert await members(session).count(level=1) == 667


async def test_add_many_tenant_rules(adb: AsyncDatabase) -> None:
    async with adb.session() as session:
        cards = AsyncRepository(Card, session)
        with pytest.raises(TenantRequired):
            await cards.add_many([{"code": "x"}])
        with tenant_context("acme"):
            assert await cards.add_many([{"code": "a"}, {"code": "b", "tenant_id": "acme"}]) == 2
            with pytest.raises(TenantViolation, match="globex"):
                await cards.add_many([{"code": "c", "tenant_id": "globex"}])
        with unscoped():
            assert await cards.add_many([{"code": "g", "tenant_id": "globex"}]) == 1
        await session.commit()
    async with adb.session() as session:
        with tenant_context("acme"):
            assert [c.code for c in await AsyncRepository(Card, session).list(order_by="code")] == [
                "a",
                "b",
            ]
        with tenant_context("globex"):
            assert await AsyncRepository(Card, session).count() == 1


async def test_upsert_inserts_then_updates(adb: AsyncDatabase) -> None:
    ids = await seed(adb)
    async with transactional(adb) as session:
        repo = members(session)
        new = await repo.upsert({"email": "dan@x.org", "name": "Dan"}, index_elements=["email"])
        assert new.id.version == 7
        again = await repo.upsert({"email": "dan@x.org", "level": 5}, index_elements=["email"])
        assert (again.id, again.name, again.level) == (new.id, "Dan", 5)
        result = await repo.upsert_many(
            [{"email": "eve@x.org", "name": "Eve"}, {"email": "ann@x.org", "name": "Ann 2"}],
            index_elements=[Member.email],
            update_fields=["name"],
        )
        assert [(m.email, m.name) for m in result] == [("eve@x.org", "Eve"), ("ann@x.org", "Ann 2")]
        assert result[1].id == ids["Ann"]
        assert result[1].level == 2
    async with adb.session() as session:
        assert await members(session).count() == 5


async def test_upsert_stays_in_the_tenant(adb: AsyncDatabase) -> None:
    async with transactional(adb) as session:
        with tenant_context("globex"):
            theirs = await AsyncRepository(Card, session).add(Card(code="home", title="globex"))
    async with adb.session() as session:
        cards = AsyncRepository(Card, session)
        with tenant_context("acme"):
            mine = await cards.upsert({"code": "home"}, index_elements=["tenant_id", "code"])
            assert mine.tenant_id == "acme"
            with pytest.raises(TenantViolation, match="another tenant"):
                await cards.upsert(
                    {"id": theirs.id, "code": "x", "title": "hijacked"}, index_elements=["id"]
                )
        await session.rollback()
    async with adb.session() as session:
        with unscoped():
            titles = sorted(
                (c.tenant_id, c.title) for c in await AsyncRepository(Card, session).list()
            )
        assert titles == [("globex", "globex")]
