"""Soft delete and tenant isolation on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from _support import new_base
from sqlalchemy import ForeignKey, func, select, update
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship, selectinload

from kit_db import (
    INCLUDE_DELETED,
    UNSCOPED,
    Database,
    SoftDeleteMixin,
    TenantRequired,
    TenantScopedMixin,
    TenantViolation,
    TimestampMixin,
    UUIDMixin,
    current_tenant,
    tenant_context,
    unscoped,
)

Base = new_base()


class Folder(UUIDMixin, SoftDeleteMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "scoping_folders"
    name: Mapped[str] = mapped_column(default="")
    files: Mapped[list[File]] = relationship(back_populates="folder")


class File(UUIDMixin, TimestampMixin, SoftDeleteMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "scoping_files"
    name: Mapped[str] = mapped_column(default="")
    folder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scoping_folders.id"))
    folder: Mapped[Folder] = relationship(back_populates="files")


class Project(UUIDMixin, TenantScopedMixin, SoftDeleteMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "scoping_projects"
    name: Mapped[str] = mapped_column(default="")
    tasks: Mapped[list[Task]] = relationship(back_populates="project")


class Task(UUIDMixin, TenantScopedMixin, Base):  # type: ignore[misc,valid-type]
    __tablename__ = "scoping_tasks"
    title: Mapped[str] = mapped_column(default="")
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scoping_projects.id"))
    project: Mapped[Project] = relationship(back_populates="tasks")


class Note(UUIDMixin, Base):  # type: ignore[misc,valid-type]
    """Not tenant-scoped, linked to a tenant model."""

    __tablename__ = "scoping_notes"
    text: Mapped[str] = mapped_column(default="")
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scoping_projects.id"))
    project: Mapped[Project] = relationship()


@pytest.fixture
def db(make_db: Callable[..., Database]) -> Database:
    return make_db(Base.metadata)


@pytest.fixture
def folder_with_files(db: Database) -> uuid.UUID:
    with db.begin() as session:
        folder = Folder(name="docs", files=[File(name="live"), File(name="gone")])
        session.add(folder)
        session.flush()
        folder_id = folder.id
    with db.begin() as session:
        session.scalars(select(File).where(File.name == "gone")).one().soft_delete()
    return folder_id


# -- soft delete ------------------------------------------------------------------------------


def test_selects_and_counts_leave_soft_deleted_rows_out(
    db: Database, folder_with_files: Any
) -> None:
    with db.session() as session:
        assert [f.name for f in session.scalars(select(File))] == ["live"]
        assert session.scalar(select(func.count()).select_from(File)) == 1
        everything = select(File).execution_options(**{INCLUDE_DELETED: True})
        assert sorted(f.name for f in session.scalars(everything)) == ["gone", "live"]


@pytest.mark.parametrize("loader", ["lazy", "selectin", "joined"])
def test_relationship_loads_leave_soft_deleted_rows_out(
    db: Database, folder_with_files: uuid.UUID, loader: str
) -> None:
    options = {
        "lazy": [],
        "selectin": [selectinload(Folder.files)],
        "joined": [joinedload(Folder.files)],
    }
    with db.session() as session:
        folder = session.scalars(select(Folder).options(*options[loader])).unique().one()
        assert [f.name for f in folder.files] == ["live"]


def test_get_of_a_soft_deleted_row_is_none_even_from_the_identity_map(db: Database) -> None:
    with db.session() as session:
        folder = Folder(name="f", files=[File(name="x")])
        session.add(folder)
        session.commit()
        file_id = folder.files[0].id
        file = session.get(File, file_id)
        assert file is not None
        file.soft_delete()
        session.commit()
        # the object is still in this session's identity map: no SQL would run
        assert session.get(File, file_id) is None
        assert session.get(File, file_id, execution_options={INCLUDE_DELETED: True}) is file
    with db.session() as fresh:
        assert fresh.get(File, file_id) is None


def test_any_and_has_leave_soft_deleted_rows_out(db: Database, folder_with_files: Any) -> None:
    with db.session() as session:
        assert (
            session.scalars(select(Folder).where(Folder.files.any(File.name == "gone"))).all() == []
        )
        assert (
            len(session.scalars(select(Folder).where(Folder.files.any(File.name == "live"))).all())
            == 1
        )
        session.scalars(select(Folder)).one().soft_delete()
        session.commit()
        assert session.scalars(select(File).where(File.folder.has())).all() == []


def test_restore_and_bulk_update_respect_soft_delete(db: Database, folder_with_files: Any) -> None:
    with db.session() as session:
        result = session.execute(update(File).values(name="renamed"))
        assert result.rowcount == 1  # the soft-deleted row is not touched
        gone = session.scalars(
            select(File).where(File.name == "gone").execution_options(**{INCLUDE_DELETED: True})
        ).one()
        assert gone.is_deleted
        gone.restore()
        session.commit()
        assert session.scalar(select(func.count()).select_from(File)) == 2


def test_timestamps_are_aware_utc(db: Database) -> None:
    with db.begin() as session:
        folder = Folder(files=[File(name="t")])
        session.add(folder)
    with db.session() as session:
        file = session.scalars(select(File)).one()
        assert file.created_at.tzinfo is not None
        assert file.created_at.utcoffset() == dt.timedelta(0)
        assert abs(dt.datetime.now(dt.UTC) - file.created_at) < dt.timedelta(minutes=5)
        before = file.updated_at
        file.name = "changed"
        session.commit()
        assert file.updated_at >= before
        assert file.id.version == 7


# -- tenants ----------------------------------------------------------------------------------


def _seed(db: Database) -> None:
    for tenant in ("acme", "globex"):
        with tenant_context(tenant), db.begin() as session:
            project = Project(name=f"{tenant}-p", tasks=[Task(title=f"{tenant}-t")])
            session.add(project)
            session.add(Note(text=f"{tenant}-n", project=project))


def test_new_rows_get_the_tenant_and_reads_are_filtered(db: Database) -> None:
    _seed(db)
    for tenant in ("acme", "globex"):
        with tenant_context(tenant), db.session() as session:
            assert current_tenant() == tenant
            projects = session.scalars(select(Project)).all()
            assert [p.name for p in projects] == [f"{tenant}-p"]
            assert projects[0].tenant_id == tenant
            assert [t.title for t in projects[0].tasks] == [f"{tenant}-t"]
            assert session.scalar(select(func.count()).select_from(Task)) == 1
    assert current_tenant() is None


def test_queries_without_a_tenant_context_raise(db: Database) -> None:
    _seed(db)
    with db.session() as session:
        with pytest.raises(TenantRequired, match="Project"):
            session.scalars(select(Project)).all()
        with pytest.raises(TenantRequired):
            session.scalar(select(func.count()).select_from(Task))
        with pytest.raises(TenantRequired):
            session.get(Project, uuid.uuid4())


def test_forgetting_the_context_never_leaks_rows_through_joins(db: Database) -> None:
    _seed(db)
    with db.session() as session:
        # Note is not tenant-scoped; its project relationship is
        notes = session.scalars(select(Note)).all()
        assert len(notes) == 2
        for note in notes:
            with pytest.raises(TenantRequired):
                _ = note.project
        # an eager load either is refused or loads no tenant row: never a row of any tenant
        session.expunge_all()
        try:
            joined = session.scalars(select(Note).options(joinedload(Note.project))).unique().all()
            assert [n.__dict__.get("project") for n in joined] == [None, None]
        except TenantRequired:
            pass
        with pytest.raises(TenantRequired, match="Project"):  # an explicit join is refused
            session.scalars(select(Note).join(Note.project).where(Project.name != "")).all()


def test_unscoped_sees_every_tenant(db: Database) -> None:
    _seed(db)
    with unscoped(), db.session() as session:
        assert session.scalar(select(func.count()).select_from(Project)) == 2
    with db.session() as session:
        statement = select(Project).execution_options(**{UNSCOPED: True})
        assert len(session.scalars(statement).all()) == 2


def test_writing_rows_of_another_tenant_raises(db: Database) -> None:
    _seed(db)
    with tenant_context("acme"), db.session() as session:
        session.add(Project(name="sneaky", tenant_id="globex"))
        with pytest.raises(TenantViolation, match="globex"):
            session.flush()
        session.rollback()
        project = session.scalars(select(Project)).one()
        project.tenant_id = "globex"  # moving a row to another tenant
        with pytest.raises(TenantViolation):
            session.flush()
        session.rollback()
    with unscoped(), db.session() as session:
        globex = session.scalars(select(Project).where(Project.tenant_id == "globex")).one()
    with tenant_context("acme"), db.session() as session:
        merged = session.merge(globex, load=False)
        merged.name = "hijacked"
        with pytest.raises(TenantViolation):
            session.flush()
        session.rollback()
    with db.session() as session:
        session.add(Project(name="orphan"))
        with pytest.raises(TenantRequired):
            session.flush()


def test_bulk_update_and_delete_stay_in_the_tenant(db: Database) -> None:
    _seed(db)
    with tenant_context("acme"), db.begin() as session:
        assert session.execute(update(Project).values(name="renamed")).rowcount == 1
    with unscoped(), db.session() as session:
        names = sorted(p.name for p in session.scalars(select(Project)))
        assert names == ["globex-p", "renamed"]


def test_identity_map_does_not_leak_across_tenants(db: Database) -> None:
    _seed(db)
    with db.session() as session:
        with unscoped():
            globex = session.scalars(select(Project).where(Project.tenant_id == "globex")).one()
        with tenant_context("acme"):
            assert session.get(Project, globex.id) is None
        with tenant_context("globex"):
            assert session.get(Project, globex.id) is globex


def test_empty_tenant_is_refused() -> None:
    with pytest.raises(Exception, match="tenant id"), tenant_context(""):
        pass
