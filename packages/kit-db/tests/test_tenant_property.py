"""Tenant isolation as a property: random interleavings of writes and reads across three
tenants, in fresh sessions and in one long-lived session that crosses tenants, on SQLite,
PostgreSQL and MariaDB. No read may return a row of another tenant, and every read must
match a Python model of what each tenant wrote."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from _support import new_base
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import ForeignKey, func, select, update
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship, selectinload

from kit_db import (
    INCLUDE_DELETED,
    Database,
    KitSession,
    SoftDeleteMixin,
    TenantScopedMixin,
    TenantViolation,
    UUIDMixin,
    tenant_context,
    unscoped,
)
from kit_db._ordering import OrderingMixin

Base = new_base()


class Project(UUIDMixin, TenantScopedMixin, SoftDeleteMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "prop_projects"
    name: Mapped[str] = mapped_column(default="")
    tasks: Mapped[list[Task]] = relationship(back_populates="project")


class Task(UUIDMixin, TenantScopedMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "prop_tasks"
    title: Mapped[str] = mapped_column(default="")
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prop_projects.id"), index=True)
    project: Mapped[Project] = relationship(back_populates="tasks")


class Comment(UUIDMixin, Base):  # type: ignore[misc,valid-type]
    """Not tenant-scoped, pointing at a tenant row: written by an admin (unscoped)."""

    __tablename__ = "prop_comments"
    text: Mapped[str] = mapped_column(default="")
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prop_projects.id"), index=True)
    project: Mapped[Project] = relationship()


class Card(UUIDMixin, TenantScopedMixin, SoftDeleteMixin, OrderingMixin, Base):  # type: ignore[misc,valid-type]
    """One ordered list per tenant."""

    __tablename__ = "prop_cards"
    name: Mapped[str] = mapped_column(default="")


TENANTS = ("acme", "globex", "initech")
tenants = st.sampled_from(TENANTS)
names = st.text(alphabet="abcdefgh", min_size=1, max_size=6)
shared_session = st.booleans()
# reads: a fresh session; the long-lived one after expire_all(); the long-lived one as is
# (attributes may be stale, so only the rows returned and their tenant are checked)
read_modes = st.sampled_from(["fresh", "shared", "stale"])
LOADERS = {
    "lazy": (),
    "selectin": (selectinload(Project.tasks),),
    "joined": (joinedload(Project.tasks),),
}
COMMENT_LOADERS = {
    "lazy": (),
    "selectin": (selectinload(Comment.project),),
    "joined": (joinedload(Comment.project),),
}


class TenantMachine(RuleBasedStateMachine):
    db: Database

    projects = Bundle("projects")
    tasks = Bundle("tasks")
    cards = Bundle("cards")

    def __init__(self) -> None:
        super().__init__()
        self.project_model: dict[uuid.UUID, dict[str, Any]] = {}
        self.task_model: dict[uuid.UUID, dict[str, Any]] = {}
        self.card_tenant: dict[uuid.UUID, str] = {}
        self.card_order: dict[str, list[uuid.UUID]] = {t: [] for t in TENANTS}
        self.comment_model: dict[uuid.UUID, uuid.UUID] = {}  # comment -> project
        self.shared: KitSession = self.db.sessionmaker()
        self.held: list[Any] = []  # keeps the shared session's identity map populated

    def teardown(self) -> None:
        self.shared.close()
        with self.db.engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())

    @contextmanager
    def session(self, shared: bool | str) -> Iterator[KitSession]:
        """A fresh session, or the long-lived one (expired first unless ``"stale"``), which
        keeps every object it ever loaded in its identity map; committed at the end, so the
        next use starts a new transaction."""
        if shared in (False, "fresh"):
            with self.db.begin() as session:
                yield session
            return
        if shared != "stale":
            self.shared.expire_all()
        yield self.shared
        self.shared.commit()
        self.held = list(self.shared.identity_map.values())

    # -- the model ----------------------------------------------------------------------------

    def sees_project(self, tenant: str, project: uuid.UUID) -> bool:
        row = self.project_model[project]
        return bool(row["tenant"] == tenant and not row["deleted"])

    def live_projects(self, tenant: str) -> set[uuid.UUID]:
        return {p for p in self.project_model if self.sees_project(tenant, p)}

    def tasks_of(self, tenant: str) -> set[uuid.UUID]:
        return {t for t, row in self.task_model.items() if row["tenant"] == tenant}

    def sees_card(self, tenant: str, card: uuid.UUID) -> bool:
        return card in self.card_order[tenant]

    # -- writes -------------------------------------------------------------------------------

    @rule(target=projects, tenant=tenants, name=names, shared=shared_session)
    def add_project(self, tenant: str, name: str, shared: bool) -> uuid.UUID:
        with tenant_context(tenant), self.session(shared) as session:
            project = Project(name=name)
            session.add(project)
            session.flush()
            assert project.tenant_id == tenant
            project_id = project.id
        self.project_model[project_id] = {"tenant": tenant, "name": name, "deleted": False}
        return project_id

    @rule(target=tasks, tenant=tenants, project=projects, title=names, shared=shared_session)
    def add_task(self, tenant: str, project: uuid.UUID, title: str, shared: bool) -> Any:
        with tenant_context(tenant), self.session(shared) as session:
            parent = session.get(Project, project)
            assert (parent is not None) == self.sees_project(tenant, project)
            if parent is None:
                return multiple()
            task = Task(title=title, project=parent)
            session.add(task)
            session.flush()
            task_id = task.id
        self.task_model[task_id] = {"tenant": tenant, "project": project, "title": title}
        return task_id

    @rule(
        tenant=tenants,
        project=projects,
        name=names,
        bulk=st.booleans(),
        shared=shared_session,
    )
    def rename_project(
        self, tenant: str, project: uuid.UUID, name: str, bulk: bool, shared: bool
    ) -> None:
        visible = self.sees_project(tenant, project)
        with tenant_context(tenant), self.session(shared) as session:
            if bulk:
                statement = update(Project).where(Project.id == project).values(name=name)
                assert session.execute(statement).rowcount == int(visible)
            else:
                row = session.get(Project, project)
                assert (row is not None) == visible
                if row is not None:
                    row.name = name
        if visible:
            self.project_model[project]["name"] = name

    @rule(tenant=tenants, project=projects, shared=shared_session)
    def soft_delete_project(self, tenant: str, project: uuid.UUID, shared: bool) -> None:
        with tenant_context(tenant), self.session(shared) as session:
            row = session.get(Project, project)
            assert (row is not None) == self.sees_project(tenant, project)
            if row is not None:
                row.soft_delete()
                self.project_model[project]["deleted"] = True

    @rule(tenant=tenants, project=projects, shared=shared_session)
    def restore_project(self, tenant: str, project: uuid.UUID, shared: bool) -> None:
        with tenant_context(tenant), self.session(shared) as session:
            statement = (
                select(Project)
                .where(Project.id == project)
                .execution_options(**{INCLUDE_DELETED: True})
            )
            row = session.scalars(statement).one_or_none()
            assert (row is not None) == (self.project_model[project]["tenant"] == tenant)
            if row is not None:
                assert row.is_deleted == self.project_model[project]["deleted"]
                row.restore()
                self.project_model[project]["deleted"] = False

    @rule(target=cards, tenant=tenants, name=names, shared=shared_session)
    def add_card(self, tenant: str, name: str, shared: bool) -> uuid.UUID:
        with tenant_context(tenant), self.session(shared) as session:
            card = Card(name=name)
            session.add(card)
            session.flush()
            assert card.position == len(self.card_order[tenant])
            card_id = card.id
        self.card_tenant[card_id] = tenant
        self.card_order[tenant].append(card_id)
        return card_id

    @rule(
        tenant=tenants,
        card=cards,
        index=st.integers(min_value=-6, max_value=6),
        shared=shared_session,
    )
    def move_card(self, tenant: str, card: uuid.UUID, index: int, shared: bool) -> None:
        with tenant_context(tenant), self.session(shared) as session:
            row = session.get(Card, card)
            assert (row is not None) == self.sees_card(tenant, card)
            if row is None:
                return
            landed = row.move_to(index)
        order = self.card_order[tenant]
        order.remove(card)
        order.insert(landed, card)
        target = index + len(order) if index < 0 else index
        assert landed == min(max(target, 0), len(order) - 1)

    @rule(tenant=tenants, card=cards, shared=shared_session)
    def delete_card(self, tenant: str, card: uuid.UUID, shared: bool) -> None:
        with tenant_context(tenant), self.session(shared) as session:
            row = session.get(Card, card)
            assert (row is not None) == self.sees_card(tenant, card)
            if row is not None:
                row.soft_delete()
                self.card_order[tenant].remove(card)

    @rule(tenant=tenants, card=cards)
    def move_a_card_of_another_tenant(self, tenant: str, card: uuid.UUID) -> None:
        """A row loaded without scoping cannot be reordered inside another tenant."""
        with self.db.session() as session:
            with unscoped():
                row = session.get(Card, card, execution_options={INCLUDE_DELETED: True})
            assert row is not None
            if row.tenant_id == tenant:
                return
            with tenant_context(tenant), pytest.raises(TenantViolation):
                row.move_top()

    # -- reads --------------------------------------------------------------------------------

    @rule(tenant=tenants, mode=read_modes)
    def list_and_count_projects(self, tenant: str, mode: str) -> None:
        expected = self.live_projects(tenant)
        with tenant_context(tenant), self.session(mode) as session:
            rows = session.scalars(select(Project)).all()
            assert {p.tenant_id for p in rows} <= {tenant}
            assert {p.id for p in rows} == expected  # the WHERE runs on current rows
            if mode != "stale":
                names = {self.project_model[p]["name"] for p in expected}
                assert {p.name for p in rows} == names
            assert session.scalar(select(func.count()).select_from(Project)) == len(expected)

    @rule(tenant=tenants, project=projects, mode=read_modes)
    def get_project(self, tenant: str, project: uuid.UUID, mode: str) -> None:
        with tenant_context(tenant), self.session(mode) as session:
            row = session.get(Project, project)
            if row is not None:
                assert row.tenant_id == tenant
            if mode != "stale":
                assert (row is not None) == self.sees_project(tenant, project)
                if row is not None:
                    assert row.name == self.project_model[project]["name"]

    @rule(tenant=tenants, loader=st.sampled_from(sorted(LOADERS)), mode=read_modes)
    def load_tasks_through_projects(self, tenant: str, loader: str, mode: str) -> None:
        if loader == "joined":  # see test_refresh_after_a_joined_load_in_a_tenant_context
            mode = "fresh"
        with tenant_context(tenant), self.session(mode) as session:
            rows = session.scalars(select(Project).options(*LOADERS[loader])).unique().all()
            assert {p.id for p in rows} == self.live_projects(tenant)
            for project in rows:
                assert {t.tenant_id for t in project.tasks} <= {tenant}
                if mode != "stale":  # a loaded collection is not reloaded
                    assert {t.id for t in project.tasks} == {
                        t for t, row in self.task_model.items() if row["project"] == project.id
                    }

    @rule(project=projects, text=names)
    def add_comment(self, project: uuid.UUID, text: str) -> None:
        """An admin comments on any tenant's project."""
        with unscoped(), self.db.begin() as session:
            comment = Comment(text=text, project_id=project)
            session.add(comment)
            session.flush()
            self.comment_model[comment.id] = project

    @rule(tenant=tenants, loader=st.sampled_from(sorted(COMMENT_LOADERS)))
    def read_comments_and_their_projects(self, tenant: str, loader: str) -> None:
        """Comments are not scoped; the project behind each is, in every loader. Fresh
        sessions only: see test_many_to_one_from_the_identity_map_stays_scoped."""
        with tenant_context(tenant), self.db.session() as session:
            statement = select(Comment).options(*COMMENT_LOADERS[loader])
            rows = session.scalars(statement).unique().all()
            assert {c.id for c in rows} == set(self.comment_model)
            for comment in rows:
                parent = comment.project
                visible = self.sees_project(tenant, self.comment_model[comment.id])
                assert (parent is not None) == visible
                if parent is not None:
                    assert parent.tenant_id == tenant

    @rule(tenant=tenants, shared=shared_session)
    def count_and_join_tasks(self, tenant: str, shared: bool) -> None:
        mine = self.tasks_of(tenant)
        with tenant_context(tenant), self.session(shared) as session:
            assert session.scalar(select(func.count()).select_from(Task)) == len(mine)
            assert {t.id for t in session.scalars(select(Task))} == mine
            joined = session.scalars(select(Task).join(Task.project)).all()
            assert {t.id for t in joined} == {
                t for t in mine if not self.project_model[self.task_model[t]["project"]]["deleted"]
            }
            per_project = session.execute(
                select(Task.project_id, func.count()).group_by(Task.project_id)
            ).all()
            assert sum(n for _, n in per_project) == len(mine)

    @rule(tenant=tenants, task=tasks, mode=read_modes)
    def get_task_and_its_project(self, tenant: str, task: uuid.UUID, mode: str) -> None:
        row = self.task_model[task]
        with tenant_context(tenant), self.session(mode) as session:
            found = session.get(Task, task)
            assert (found is not None) == (row["tenant"] == tenant)  # tasks are never deleted
            if found is None:
                return
            parent = found.project
            if parent is not None:
                assert parent.tenant_id == tenant
            if mode == "fresh":  # see test_many_to_one_from_the_identity_map_stays_scoped
                assert (parent is None) == self.project_model[row["project"]]["deleted"]

    @rule(tenant=tenants, mode=read_modes)
    def read_cards(self, tenant: str, mode: str) -> None:
        expected = self.card_order[tenant]
        with tenant_context(tenant), self.session(mode) as session:
            rows = session.scalars(Card.ordered()).all()
            assert [c.id for c in rows] == expected
            if mode != "stale":
                assert [c.position for c in rows] == list(range(len(expected)))
            assert {c.tenant_id for c in rows} <= {tenant}
            assert session.scalar(select(func.count()).select_from(Card)) == len(expected)


@pytest.fixture
def db(make_db: Callable[..., Database]) -> Database:
    return make_db(Base.metadata)


def test_tenants_never_see_each_other(db: Database) -> None:
    TenantMachine.db = db
    run_state_machine_as_test(
        TenantMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_many_to_one_from_the_identity_map_stays_scoped(db: Database) -> None:
    with tenant_context("globex"), db.begin() as session:
        session.add(Project(name="globex-secret", tasks=[Task(title="t")]))
    with unscoped(), db.begin() as session:
        project = session.scalars(select(Project)).one()
        session.add(Comment(text="admin note", project_id=project.id))
    with db.session() as session:
        with tenant_context("globex"):
            held = session.scalars(select(Project)).one()  # now in the identity map
            task = session.scalars(select(Task)).one()
            held.soft_delete()
            session.flush()
            assert task.project is None  # soft-deleted parent
        with tenant_context("acme"):
            comment = session.scalars(select(Comment)).one()
            assert comment.project is None  # another tenant's parent


def test_refresh_after_a_joined_load_in_a_tenant_context(db: Database) -> None:
    with tenant_context("acme"), db.begin() as session:
        session.add(Project(name="p", tasks=[Task(title="t")]))
    with tenant_context("acme"), db.session() as session:
        statement = select(Project).options(joinedload(Project.tasks))
        project = session.scalars(statement).unique().one()
        session.rollback()  # expires every object
        assert project.name == "p"
