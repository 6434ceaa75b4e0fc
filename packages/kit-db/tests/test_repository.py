"""``Repository`` on SQLite, PostgreSQL and MariaDB: reads, writes, bulk insert, native
upserts, soft delete, tenant scoping and conflict names."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _support import new_base
from sqlalchemy import ForeignKey, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kit_db import (
    INCLUDE_DELETED,
    ConfigurationError,
    Conflict,
    Database,
    KitSession,
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
from kit_db.repository import Repository

Base = new_base()


class Author(UUIDMixin, TimestampMixin, SoftDeleteMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "repo_authors"
    email: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str] = mapped_column(default="")
    age: Mapped[int | None]
    books: Mapped[list[Book]] = relationship(back_populates="author")


class Book(UUIDMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "repo_books"
    title: Mapped[str]
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("repo_authors.id"))
    author: Mapped[Author] = relationship(back_populates="books")


class Tag(Base):  # type: ignore[misc,valid-type]
    """Integer key from the database, no mixins: deletes are hard."""

    __tablename__ = "repo_tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(50), unique=True)
    weight: Mapped[int] = mapped_column(default=1)
    note: Mapped[str | None] = mapped_column(server_default="none")


class Doc(UUIDMixin, TimestampMixin, TenantScopedMixin, SoftDeleteMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "repo_docs"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)
    slug: Mapped[str] = mapped_column(String(50))
    title: Mapped[str] = mapped_column(default="")


class Legacy(Base):  # type: ignore[misc,valid-type]
    """Attribute names that differ from column names."""

    __tablename__ = "repo_legacy"
    id: Mapped[int] = mapped_column("legacy_id", primary_key=True, autoincrement=False)
    code: Mapped[str] = mapped_column("legacy_code", String(20), unique=True)
    value: Mapped[int] = mapped_column("legacy_value", default=0)


class Membership(Base):  # type: ignore[misc,valid-type]
    """A composite primary key."""

    __tablename__ = "repo_memberships"
    user_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    group_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    role: Mapped[str] = mapped_column(String(20), default="member")


@pytest.fixture
def db(make_db: Callable[..., Database]) -> Database:
    return make_db(Base.metadata)


@pytest.fixture
def session(db: Database) -> Iterator[KitSession]:
    with db.session() as session:
        yield session


def authors(session: KitSession) -> Repository[Author]:
    return Repository(Author, session)


def seed_authors(db: Database) -> dict[str, uuid.UUID]:
    with transactional(db) as session:
        repo = authors(session)
        made = [
            repo.add(Author(email="ada@x.org", name="Ada", age=36)),
            repo.add(Author(email="bob@x.org", name="Bob", age=None)),
            repo.add(Author(email="cy@x.org", name="Cy", age=36)),
        ]
        return {a.name: a.id for a in made}


# -- construction ------------------------------------------------------------------------------


def test_a_repository_needs_a_model_and_a_session(session: KitSession) -> None:
    with pytest.raises(ConfigurationError, match="not a mapped model"):
        Repository(object, session)
    with pytest.raises(ConfigurationError, match="needs a Session"):
        Repository(Author, "session")  # type: ignore[arg-type]
    assert repr(authors(session)) == "Repository(Author)"


# -- reads -------------------------------------------------------------------------------------


def test_get_and_get_or_raise(db: Database) -> None:
    ids = seed_authors(db)
    with db.session() as session:
        repo = authors(session)
        ada = repo.get(ids["Ada"])
        assert ada is not None
        assert ada.name == "Ada"
        assert repo.get(str(ids["Ada"])) is ada  # a UUID string from a URL works too
        assert repo.get_or_raise(ids["Bob"]).name == "Bob"
        missing = uuid.uuid4()
        assert repo.get(missing) is None
        with pytest.raises(NotFound, match=f"Author UUID\\('{missing}'\\) not found"):
            repo.get_or_raise(missing)


def test_get_refuses_ids_of_the_wrong_type(session: KitSession) -> None:
    repo = authors(session)
    with pytest.raises(ConfigurationError, match=r"Author\.id is a UUID; 'nope' is not one"):
        repo.get("nope")
    with pytest.raises(ConfigurationError, match=r"Author\.id expects UUID, got float"):
        repo.get(1.5)
    with pytest.raises(ConfigurationError, match="single-column key"):
        repo.get((uuid.uuid4(), 1))
    with pytest.raises(ConfigurationError, match="not the object"):
        repo.get(Author(email="x"))
    with pytest.raises(ConfigurationError, match=r"Tag\.id expects int, got str"):
        Repository(Tag, session).get("7")


def test_list_filters_orders_and_pages(db: Database) -> None:
    seed_authors(db)
    with db.session() as session:
        repo = authors(session)
        assert [a.name for a in repo.list()] == ["Ada", "Bob", "Cy"]  # primary key: UUIDv7
        assert [a.name for a in repo.list(age=36)] == ["Ada", "Cy"]
        assert [a.name for a in repo.list(age=None)] == ["Bob"]
        assert [a.name for a in repo.list(Author.name != "Ada", age=36)] == ["Cy"]
        assert [a.name for a in repo.list(order_by="-name")] == ["Cy", "Bob", "Ada"]
        assert [a.name for a in repo.list(order_by=Author.email.desc())] == ["Cy", "Bob", "Ada"]
        by_age = repo.list(order_by=["age", "-name"])
        nulls_first = session.bind is not None and session.bind.dialect.name != "postgresql"
        expected = ["Bob", "Cy", "Ada"] if nulls_first else ["Cy", "Ada", "Bob"]
        assert [a.name for a in by_age] == expected
        assert [a.name for a in repo.list(order_by="name", limit=2)] == ["Ada", "Bob"]
        assert [a.name for a in repo.list(order_by="name", limit=2, offset=2)] == ["Cy"]
        assert [a.name for a in repo.list(order_by="name", offset=1)] == ["Bob", "Cy"]
        assert repo.list(limit=0) == []
        assert repo.list(email="nobody@x.org") == []


def test_count_and_exists(db: Database) -> None:
    seed_authors(db)
    with db.session() as session:
        repo = authors(session)
        assert repo.count() == 3
        assert repo.count(age=36) == 2
        assert repo.count(Author.name.in_(["Ada", "Bob"])) == 2
        assert repo.exists(email="bob@x.org")
        assert not repo.exists(email="zed@x.org")
        assert repo.exists(Author.age > 30)
        assert not Repository(Tag, session).exists()


def test_unknown_fields_are_named(session: KitSession) -> None:
    repo = authors(session)
    with pytest.raises(ConfigurationError, match=r"Author has no column 'nmae' \(in filters\)"):
        repo.list(nmae="Ada")
    with pytest.raises(ConfigurationError, match="'nmae'"):
        repo.count(nmae="Ada")
    with pytest.raises(ConfigurationError, match="'nmae'"):
        repo.exists(nmae="Ada")
    with pytest.raises(ConfigurationError, match=r"'nmae' \(in order_by\)"):
        repo.list(order_by="-nmae")
    with pytest.raises(ConfigurationError, match="relationships cannot be used"):
        repo.list(books=[])
    with pytest.raises(ConfigurationError, match=r"'nmae' \(in update\)"):
        repo.update(uuid.uuid4(), nmae="x")


def test_bad_values_are_refused(session: KitSession) -> None:
    repo = authors(session)
    with pytest.raises(ConfigurationError, match=r"Author\.age expects int, got str 'old'"):
        repo.list(age="old")
    with pytest.raises(ConfigurationError, match=r"Author\.name expects str, got int"):
        repo.count(name=5)
    with pytest.raises(ConfigurationError, match="limit must be a non-negative int"):
        repo.list(limit=-1)
    with pytest.raises(ConfigurationError, match="offset must be a non-negative int"):
        repo.list(offset="10")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="limit"):
        repo.list(limit=True)


# -- writes ------------------------------------------------------------------------------------


def test_add_flushes_and_fills_defaults(db: Database) -> None:
    with transactional(db) as session:
        repo = authors(session)
        ada = repo.add(Author(email="ada@x.org"))
        assert ada.id.version == 7
        assert ada.created_at.tzinfo is not None
        assert repo.get(ada.id) is ada
    with db.session() as session:
        assert authors(session).count() == 1
        with pytest.raises(ConfigurationError, match="add of Author repository got a Tag"):
            authors(session).add(Tag(label="x"))


def test_unique_violations_are_conflicts_naming_the_constraint(db: Database) -> None:
    seed_authors(db)
    with db.session() as session:
        with pytest.raises(Conflict) as raised:
            authors(session).add(Author(email="ada@x.org"))
        assert raised.value.constraint == "uq_repo_authors_email"
        session.rollback()
        with pytest.raises(Conflict) as raised:
            authors(session).add_many([{"email": "new@x.org"}, {"email": "bob@x.org"}])
        assert raised.value.constraint == "uq_repo_authors_email"
        session.rollback()
        with tenant_context("acme"):
            docs = Repository(Doc, session)
            docs.add(Doc(slug="s"))
            with pytest.raises(Conflict) as raised:
                docs.add(Doc(slug="s"))
        assert raised.value.constraint == "uq_repo_docs_tenant_id_slug"
        session.rollback()
        with pytest.raises(Conflict) as raised:
            Repository(Legacy, session).add_many([{"id": 1, "code": "a"}, {"id": 2, "code": "a"}])
        assert raised.value.constraint == "uq_repo_legacy_legacy_code"


def test_update_by_object_or_id(db: Database) -> None:
    ids = seed_authors(db)
    with transactional(db) as session:
        repo = authors(session)
        ada = repo.get_or_raise(ids["Ada"])
        before = ada.updated_at
        assert repo.update(ada, name="Ada L.", age=37) is ada
        assert ada.updated_at >= before
        bob = repo.update(str(ids["Bob"]), age=40)
        assert bob.age == 40
        assert repo.update(ids["Cy"]).name == "Cy"  # nothing to change
    with db.session() as session:
        repo = authors(session)
        assert [(a.name, a.age) for a in repo.list()] == [("Ada L.", 37), ("Bob", 40), ("Cy", 36)]


def test_update_refuses_bad_input(db: Database) -> None:
    ids = seed_authors(db)
    with db.session() as session:
        repo = authors(session)
        with pytest.raises(NotFound, match="Author"):
            repo.update(uuid.uuid4(), name="x")
        with pytest.raises(ConfigurationError, match=r"Author\.age expects int"):
            repo.update(ids["Ada"], age="old")
        with pytest.raises(ConfigurationError, match="never saved"):
            repo.update(Author(email="new@x.org"), name="x")
        with pytest.raises(Conflict, match="uq_repo_authors_email"):
            repo.update(ids["Ada"], email="bob@x.org")


def test_update_reattaches_a_detached_object(db: Database) -> None:
    ids = seed_authors(db)
    with db.session() as session:
        ada = authors(session).get_or_raise(ids["Ada"])
    with transactional(db) as session:
        authors(session).update(ada, name="Ada again")
    with db.session() as session:
        assert authors(session).get_or_raise(ids["Ada"]).name == "Ada again"


def test_delete_is_soft_for_soft_delete_models(db: Database) -> None:
    ids = seed_authors(db)
    with transactional(db) as session:
        repo = authors(session)
        repo.delete(ids["Bob"])
        assert repo.get(ids["Bob"]) is None
    with db.session() as session:
        repo = authors(session)
        assert repo.get(ids["Bob"]) is None
        assert [a.name for a in repo.list()] == ["Ada", "Cy"]
        assert repo.count() == 2
        assert not repo.exists(email="bob@x.org")
        assert repo.count(age=None) == 0
        with pytest.raises(NotFound):
            repo.delete(ids["Bob"])  # already gone
        everything = select(Author).execution_options(**{INCLUDE_DELETED: True})
        assert len(session.scalars(everything).all()) == 3
        session.rollback()
    with transactional(db) as session:
        repo = authors(session)
        repo.delete(repo.get_or_raise(ids["Ada"]), hard=True)
    with db.session() as session:
        counting = select(func.count()).select_from(Author)
        assert session.scalar(counting.execution_options(**{INCLUDE_DELETED: True})) == 2


def test_delete_is_hard_for_other_models(db: Database) -> None:
    with transactional(db) as session:
        tags = Repository(Tag, session)
        tag = tags.add(Tag(label="a"))
        tags.add(Tag(label="b"))
        tags.delete(tag)
        tags.delete(tags.list(label="b")[0].id)
        with pytest.raises(NotFound, match="Tag 999 not found"):
            tags.delete(999)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Tag)) == 0


# -- add_many ----------------------------------------------------------------------------------


def test_add_many_fills_defaults_for_thousands_of_rows(db: Database) -> None:
    rows = [{"email": f"user{i}@x.org", "age": i % 90} for i in range(3000)]
    snapshot = [dict(r) for r in rows]
    start = dt.datetime.now(dt.UTC)
    with transactional(db) as session:
        assert authors(session).add_many(rows) == 3000
    assert rows == snapshot  # the caller's dicts are not touched
    with db.session() as session:
        loaded = session.execute(
            select(Author.id, Author.created_at, Author.updated_at, Author.deleted_at, Author.name)
        ).all()
        assert len(loaded) == 3000
        assert len({r.id for r in loaded}) == 3000
        assert {r.id.version for r in loaded} == {7}
        assert {r.deleted_at for r in loaded} == {None}
        assert {r.name for r in loaded} == {""}
        for row in loaded[:10]:
            assert row.created_at == row.updated_at
            assert row.created_at.utcoffset() == dt.timedelta(0)
            assert row.created_at >= start - dt.timedelta(seconds=5)
        assert authors(session).count(age=42) == sum(1 for i in range(3000) if i % 90 == 42)


def test_add_many_takes_instances_generators_and_mixed_keys(db: Database) -> None:
    fixed = uuid.uuid4()

    def rows() -> Iterator[Any]:
        yield {"email": "a@x.org"}
        yield Author(email="b@x.org", name="Bee")
        yield {"email": "c@x.org", "age": 3, "id": fixed}
        yield {"email": "d@x.org", "id": None}  # None key: generated
        for i in range(50):
            yield {"email": f"e{i}@x.org", "age": i} if i % 2 else {"email": f"e{i}@x.org"}

    with transactional(db) as session:
        assert authors(session).add_many(rows(), batch_size=7) == 54
        assert authors(session).add_many([]) == 0
    with db.session() as session:
        repo = authors(session)
        assert repo.count() == 54
        assert repo.get_or_raise(fixed).email == "c@x.org"
        assert repo.list(email="b@x.org")[0].name == "Bee"
        assert repo.count(age=None) == 28


def test_add_many_with_database_keys_server_defaults_and_renamed_columns(db: Database) -> None:
    with transactional(db) as session:
        tags = Repository(Tag, session)
        assert tags.add_many([{"label": "a"}, {"label": "b", "weight": 5}, {"label": "c"}]) == 3
        assert (
            Repository(Legacy, session).add_many([{"id": 1, "code": "x"}, Legacy(id=2, code="y")])
            == 2
        )
    with db.session() as session:
        tags = Repository(Tag, session)
        assert [(t.label, t.weight, t.note) for t in tags.list(order_by="label")] == [
            ("a", 1, "none"),
            ("b", 5, "none"),
            ("c", 1, "none"),
        ]
        assert len({t.id for t in tags.list()}) == 3
        legacy = Repository(Legacy, session).list(order_by="-code")
        assert [(x.id, x.code, x.value) for x in legacy] == [(2, "y", 0), (1, "x", 0)]


def test_add_many_refuses_bad_rows(session: KitSession) -> None:
    repo = authors(session)
    with pytest.raises(
        ConfigurationError, match=r"Author has no column 'mail' \(in add_many rows\)"
    ):
        repo.add_many([{"mail": "a@x.org"}])
    with pytest.raises(ConfigurationError, match="relationships cannot be used"):
        repo.add_many([{"email": "a@x.org", "books": []}])
    with pytest.raises(ConfigurationError, match=r"Author\.age expects int, got str"):
        repo.add_many([{"email": "a@x.org", "age": "old"}])
    with pytest.raises(ConfigurationError, match="row 1 of Author rows is a Tag"):
        repo.add_many([{"email": "a@x.org"}, Tag(label="x")])
    with pytest.raises(ConfigurationError, match="iterable of rows, got dict"):
        repo.add_many({"email": "a@x.org"})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match="batch_size"):
        repo.add_many([{"email": "a@x.org"}], batch_size=0)
    assert repo.count() == 0


def test_add_many_stamps_and_guards_the_tenant(db: Database) -> None:
    with tenant_context("acme"), transactional(db) as session:
        docs = Repository(Doc, session)
        assert docs.add_many([{"slug": "a"}, {"slug": "b", "tenant_id": "acme"}]) == 2
        with pytest.raises(TenantViolation, match="row 1 of Doc belongs to tenant 'globex'"):
            docs.add_many([{"slug": "c"}, {"slug": "d", "tenant_id": "globex"}])
        assert docs.count() == 2  # the refused batch was never sent
    with db.session() as session:
        docs = Repository(Doc, session)
        with pytest.raises(TenantRequired, match="Doc is tenant-scoped"):
            docs.add_many([{"slug": "x", "tenant_id": "acme"}])
        with unscoped():
            assert docs.add_many([{"slug": "g", "tenant_id": "globex"}]) == 1
            with pytest.raises(TenantRequired, match="row 0 of Doc has no tenant_id"):
                docs.add_many([{"slug": "h"}])
        session.commit()
    with tenant_context("acme"), db.session() as session:
        docs = Repository(Doc, session)
        assert [d.slug for d in docs.list(order_by="slug")] == ["a", "b"]
        assert {d.tenant_id for d in docs.list()} == {"acme"}
    with tenant_context("globex"), db.session() as session:
        assert [d.slug for d in Repository(Doc, session).list()] == ["g"]


# -- tenant scoping of reads and writes ----------------------------------------------------------


def test_reads_and_writes_stay_in_the_tenant(db: Database) -> None:
    ids: dict[str, uuid.UUID] = {}
    for tenant in ("acme", "globex"):
        with tenant_context(tenant), transactional(db) as session:
            ids[tenant] = Repository(Doc, session).add(Doc(slug="home", title=tenant)).id
    with tenant_context("acme"), db.session() as session:
        docs = Repository(Doc, session)
        assert [d.title for d in docs.list()] == ["acme"]
        assert docs.count() == 1
        assert docs.exists(slug="home")
        assert docs.get(ids["globex"]) is None
        with pytest.raises(NotFound):
            docs.update(ids["globex"], title="hijacked")
        with pytest.raises(NotFound):
            docs.delete(ids["globex"])
    with db.session() as session:
        docs = Repository(Doc, session)
        with pytest.raises(TenantRequired):
            docs.list()
        with pytest.raises(TenantRequired):
            docs.count()
        with pytest.raises(TenantRequired):
            docs.get(ids["acme"])
        with unscoped():
            assert docs.count() == 2
            assert {d.title for d in docs.list()} == {"acme", "globex"}


# -- upsert ------------------------------------------------------------------------------------


def test_upsert_inserts_then_updates(db: Database) -> None:
    with transactional(db) as session:
        first = authors(session).upsert(
            {"email": "ada@x.org", "name": "Ada"}, index_elements=["email"]
        )
        assert first.name == "Ada"
        assert first.id.version == 7
        first_id, created, updated = first.id, first.created_at, first.updated_at
    with transactional(db) as session:
        again = authors(session).upsert(
            {"email": "ada@x.org", "name": "Ada L.", "age": 36}, index_elements=[Author.email]
        )
        assert (again.id, again.name, again.age) == (first_id, "Ada L.", 36)
        assert again.created_at == created  # defaults the caller did not give are kept
        assert again.updated_at >= updated
    with db.session() as session:
        assert [(a.email, a.name) for a in authors(session).list()] == [("ada@x.org", "Ada L.")]


def test_upsert_many_returns_rows_in_input_order(db: Database) -> None:
    ids = seed_authors(db)
    rows: list[dict[str, Any]] = [
        {"email": "new1@x.org", "name": "New1"},
        {"email": "bob@x.org", "name": "Bob 2"},
        {"email": "new2@x.org", "name": "New2"},
        {"email": "ada@x.org", "name": "Ada 2", "age": 1},
        {"email": "new1@x.org", "name": "New1 last"},  # same key twice: the last row wins
    ]
    with transactional(db) as session:
        result = authors(session).upsert_many(rows, index_elements=["email"])
        assert [(a.email, a.name) for a in result] == [
            ("new1@x.org", "New1 last"),
            ("bob@x.org", "Bob 2"),
            ("new2@x.org", "New2"),
            ("ada@x.org", "Ada 2"),
        ]
        assert result[1].id == ids["Bob"]
        assert result[3].age == 1
        assert result[1].age is None  # not given, not changed
    with db.session() as session:
        assert authors(session).count() == 5
        assert authors(session).get_or_raise(ids["Cy"]).name == "Cy"


def test_upsert_many_update_fields_limits_what_changes(db: Database) -> None:
    ids = seed_authors(db)
    with transactional(db) as session:
        result = authors(session).upsert_many(
            [{"email": "ada@x.org", "name": "ignored", "age": 99}],
            index_elements=["email"],
            update_fields=["age"],
        )
        assert [(a.id, a.name, a.age) for a in result] == [(ids["Ada"], "Ada", 99)]


def test_upsert_many_in_many_batches(db: Database) -> None:
    seed_authors(db)
    rows = [{"email": f"u{i}@x.org", "age": i} for i in range(2500)]
    rows.append({"email": "ada@x.org", "age": 1})
    with transactional(db) as session:
        result = authors(session).upsert_many(rows, index_elements=["email"])
        assert len(result) == 2501
        assert [a.age for a in result[:3]] == [0, 1, 2]
        assert result[-1].name == "Ada"
    with transactional(db) as session:
        result = authors(session).upsert_many(
            ({"email": f"u{i}@x.org", "age": -i} for i in range(2500)), index_elements=["email"]
        )
        assert [a.age for a in result[-2:]] == [-2498, -2499]
    with db.session() as session:
        assert authors(session).count() == 2503
        assert authors(session).count(Author.age < 0) == 2499


def test_upsert_brings_back_a_soft_deleted_row(db: Database) -> None:
    ids = seed_authors(db)
    with transactional(db) as session:
        authors(session).delete(ids["Bob"])
    with transactional(db) as session:
        bob = authors(session).upsert(
            {"email": "bob@x.org", "name": "Bob"}, index_elements=["email"]
        )
        assert bob.id == ids["Bob"]
        assert not bob.is_deleted
    with db.session() as session:
        assert authors(session).get(ids["Bob"]) is not None


def test_upsert_by_primary_key_and_integer_keys(db: Database) -> None:
    with transactional(db) as session:
        tags = Repository(Tag, session)
        a = tags.upsert({"label": "a", "weight": 2}, index_elements=["label"])
        assert isinstance(a.id, int)
        assert a.note == "none"  # the server default came back with the row
        same = tags.upsert({"id": a.id, "label": "a2"}, index_elements=["id"])
        assert (same.id, same.label, same.weight) == (a.id, "a2", 2)
        legacy = Repository(Legacy, session)
        legacy.upsert({"id": 1, "code": "x", "value": 1}, index_elements=["id"])
        assert legacy.upsert({"id": 1, "code": "x", "value": 2}, index_elements=["id"]).value == 2
        only_key = tags.upsert({"label": "a2"}, index_elements=["label"])
        assert only_key is same


def test_upsert_conflicts_on_another_unique_key(db: Database) -> None:
    ids = seed_authors(db)
    with db.session() as session:
        row = {"id": uuid.uuid4(), "email": "ada@x.org", "name": "Impostor"}
        if db.dialect == "mysql":
            # ON DUPLICATE KEY UPDATE matches any unique key: Ada's row is updated
            result = authors(session).upsert(row, index_elements=["id"])
            assert (result.id, result.name) == (ids["Ada"], "Impostor")
        else:
            with pytest.raises(Conflict) as raised:
                authors(session).upsert(row, index_elements=["id"])
            assert raised.value.constraint == "uq_repo_authors_email"


def test_upsert_refuses_bad_arguments(session: KitSession) -> None:
    repo = authors(session)
    with pytest.raises(ConfigurationError, match=r"match no primary key or unique constraint"):
        repo.upsert({"email": "a", "name": "b"}, index_elements=["name"])
    with pytest.raises(ConfigurationError, match=r"'nmae' \(in index_elements\)"):
        repo.upsert({"email": "a"}, index_elements=["nmae"])
    with pytest.raises(ConfigurationError, match="non-empty list"):
        repo.upsert({"email": "a"}, index_elements="email")
    with pytest.raises(ConfigurationError, match="non-empty list"):
        repo.upsert({"email": "a"}, index_elements=[])
    with pytest.raises(ConfigurationError, match="conflict target"):
        repo.upsert_many([{"email": "a"}], index_elements=["email"], update_fields=["email"])
    with pytest.raises(ConfigurationError, match=r"'nmae' \(in update_fields\)"):
        repo.upsert_many([{"email": "a"}], index_elements=["email"], update_fields=["nmae"])
    with pytest.raises(ConfigurationError, match="lacks email"):
        repo.upsert({"name": "a"}, index_elements=["email"])
    with pytest.raises(ConfigurationError, match=r"'mail' \(in upsert rows\)"):
        repo.upsert({"email": "a", "mail": "b"}, index_elements=["email"])
    with pytest.raises(ConfigurationError, match=r"Author\.age expects int"):
        repo.upsert({"email": "a", "age": "old"}, index_elements=["email"])
    assert repo.count() == 0


def test_upsert_stays_in_the_tenant(db: Database) -> None:
    with tenant_context("globex"), transactional(db) as session:
        theirs = Repository(Doc, session).add(Doc(slug="home", title="globex"))
    with tenant_context("acme"), transactional(db) as session:
        docs = Repository(Doc, session)
        mine = docs.upsert({"slug": "home", "title": "v1"}, index_elements=["tenant_id", "slug"])
        assert mine.tenant_id == "acme"
        again = docs.upsert({"slug": "home", "title": "v2"}, index_elements=["tenant_id", "slug"])
        assert (again.id, again.title) == (mine.id, "v2")
    with tenant_context("acme"), db.session() as session:
        docs = Repository(Doc, session)
        with pytest.raises(TenantViolation, match="another tenant"):
            docs.upsert({"id": theirs.id, "slug": "x", "title": "hijacked"}, index_elements=["id"])
        session.rollback()
        with pytest.raises(TenantViolation, match="belongs to tenant 'globex'"):
            docs.upsert({"slug": "y", "tenant_id": "globex"}, index_elements=["tenant_id", "slug"])
    with db.session() as session, pytest.raises(TenantRequired):
        Repository(Doc, session).upsert({"slug": "z"}, index_elements=["tenant_id", "slug"])
    with unscoped(), db.session() as session:
        titles = sorted((d.tenant_id, d.slug, d.title) for d in Repository(Doc, session).list())
        assert titles == [("acme", "home", "v2"), ("globex", "home", "globex")]


def test_composite_keys(db: Database) -> None:
    with transactional(db) as session:
        repo = Repository(Membership, session)
        rows: list[dict[str, Any]] = [
            {"user_id": 1, "group_id": 1},
            {"user_id": 1, "group_id": 2, "role": "admin"},
        ]
        assert repo.add_many(rows) == 2
        admin = repo.get((1, 2))
        assert admin is not None
        assert admin.role == "admin"
        assert repo.get_or_raise({"user_id": 1, "group_id": 1}).role == "member"
        assert repo.get((9, 9)) is None
        with pytest.raises(NotFound, match=r"Membership \(9, 9\) not found"):
            repo.get_or_raise((9, 9))
        with pytest.raises(ConfigurationError, match="composite key"):
            repo.get(1)
        with pytest.raises(ConfigurationError, match="composite key"):
            repo.get((1,))
        with pytest.raises(ConfigurationError, match="lacks group_id"):
            repo.get({"user_id": 1})
        result = repo.upsert_many(
            [{"user_id": 1, "group_id": 2, "role": "owner"}, {"user_id": 2, "group_id": 1}],
            index_elements=["group_id", "user_id"],
        )
        assert [(m.user_id, m.group_id, m.role) for m in result] == [
            (1, 2, "owner"),
            (2, 1, "member"),
        ]
        repo.delete((1, 1))
        assert repo.count() == 2


def test_upsert_without_returning_selects_the_rows_again(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MySQL (and MariaDB before 10.5) have no RETURNING: the rows are read back."""
    ids = seed_authors(db)
    with tenant_context("globex"), transactional(db) as session:
        theirs = Repository(Doc, session).add(Doc(slug="home", title="globex"))
    monkeypatch.setattr(db.engine.dialect, "insert_returning", False)
    with transactional(db) as session:
        result = authors(session).upsert_many(
            [{"email": "new@x.org", "name": "New"}, {"email": "ada@x.org", "name": "Ada 2"}],
            index_elements=["email"],
        )
        assert [(a.email, a.name) for a in result] == [("new@x.org", "New"), ("ada@x.org", "Ada 2")]
        assert result[1].id == ids["Ada"]
        pairs = Repository(Membership, session).upsert_many(
            [{"user_id": 1, "group_id": 1}, {"user_id": 1, "group_id": 1, "role": "admin"}],
            index_elements=["user_id", "group_id"],
        )
        assert [(m.user_id, m.role) for m in pairs] == [(1, "admin")]
    with tenant_context("acme"), db.session() as session:
        docs = Repository(Doc, session)
        assert (
            docs.upsert({"slug": "home"}, index_elements=["tenant_id", "slug"]).tenant_id == "acme"
        )
        with pytest.raises(TenantViolation, match="another tenant"):
            docs.upsert({"id": theirs.id, "slug": "x", "title": "hijacked"}, index_elements=["id"])
    with tenant_context("globex"), db.session() as session:
        assert Repository(Doc, session).get_or_raise(theirs.id).title == "globex"
