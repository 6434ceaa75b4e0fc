"""kit_db.migrations on SQLite, PostgreSQL and MariaDB: init, autogenerate, upgrade,
current, downgrade; plain ``alembic`` on a project made by kit-db."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.util import CommandError
from sqlalchemy import inspect, text

from kit_db import AsyncDatabase, ConfigurationError, Database, KitDBError, migrations
from kit_db.migrations import MigrationError

TABLES = ("mig_books", "mig_authors", "alembic_version")

MODELS = """
import uuid

from sqlalchemy import ForeignKey, MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from kit_db import NAMING_CONVENTION, TimestampMixin, UUIDMixin
from kit_db._model import TYPE_ANNOTATION_MAP


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = TYPE_ANNOTATION_MAP


class Author(UUIDMixin, TimestampMixin, Base):
    __tablename__ = "mig_authors"
    email: Mapped[str] = mapped_column(unique=True)


class Book(UUIDMixin, Base):
    __tablename__ = "mig_books"
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mig_authors.id"), index=True)
    title: Mapped[str]
    author: Mapped[Author] = relationship()
{extra}

not_metadata = 42
"""


class Project:
    """A throwaway application: a models module and (after init) its migrations."""

    def __init__(self, root: Path, module: str) -> None:
        self.root = root
        self.module = module
        self.directory = root / "migrations"
        self.metadata = f"{module}:Base.metadata"

    def write_models(self, extra: str = "") -> None:
        (self.root / f"{self.module}.py").write_text(MODELS.format(extra=extra))
        sys.modules.pop(self.module, None)  # env.py imports the new version

    def init(self) -> Path:
        return migrations.init(self.directory, metadata=self.metadata)

    def models(self) -> Any:
        return importlib.import_module(self.module)


def _drop(url: str) -> None:
    db = Database(url)
    try:
        with db.engine.begin() as connection:
            for table in TABLES:
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    finally:
        db.dispose()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # models are rewritten in place
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("KIT_DB_URL", raising=False)
    made = Project(tmp_path, f"mig_models_{uuid.uuid4().hex[:8]}")
    made.write_models()
    yield made
    sys.modules.pop(made.module, None)


@pytest.fixture
def clean_url(db_url: str) -> Iterator[str]:
    _drop(db_url)
    yield db_url
    _drop(db_url)


def _tables(url: str) -> set[str]:
    db = Database(url)
    try:
        return set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()


def _upgrade_section(script: Path) -> str:
    body = script.read_text()
    return body.split("def upgrade()", 1)[1].split("def downgrade()", 1)[0]


# --------------------------------------------------------------------------- full cycle


def test_cycle_init_autogenerate_upgrade_current_downgrade(
    project: Project, clean_url: str, dialect: str
) -> None:
    ini = project.init()
    assert ini == project.root / "alembic.ini"
    assert (project.directory / "env.py").is_file()
    assert migrations.heads(directory=project.directory) == ()

    first = migrations.revision("create library", clean_url, directory=project.directory)
    assert first.parent == project.directory / "versions"
    script = first.read_text()
    assert "import kit_db" in script
    assert "kit_db.UTCDateTime()" in script  # a public name, not kit_db.types
    # constraint names come from the naming convention, on every dialect
    for name in (
        "pk_mig_authors",
        "uq_mig_authors_email",
        "pk_mig_books",
        "fk_mig_books_author_id_mig_authors",
        "ix_mig_books_author_id",
    ):
        assert f"op.f('{name}')" in script, name

    db = Database(clean_url)
    try:
        assert migrations.current(db, directory=project.directory) == ()
        migrations.upgrade(db, directory=project.directory)
        assert {"mig_authors", "mig_books", "alembic_version"} <= _tables(clean_url)
        head = migrations.heads(directory=project.directory)
        assert len(head) == 1
        assert migrations.current(clean_url, directory=project.directory) == head

        inspector = inspect(db.engine)
        uniques = {u["name"] for u in inspector.get_unique_constraints("mig_authors")}
        assert "uq_mig_authors_email" in uniques
        fks = {fk["name"] for fk in inspector.get_foreign_keys("mig_books")}
        assert fks == {"fk_mig_books_author_id_mig_authors"}
        indexes = {i["name"] for i in inspector.get_indexes("mig_books")}
        assert "ix_mig_books_author_id" in indexes
        if dialect != "mariadb":  # MariaDB calls every primary key PRIMARY
            assert inspector.get_pk_constraint("mig_authors")["name"] == "pk_mig_authors"

        # the tables work with the models
        models = project.models()
        with db.begin() as session:
            session.add(models.Author(email="a@example.com"))

        # nothing changed: autogenerate finds nothing; a new column: only add_column
        project.write_models(extra="    pages: Mapped[int | None]")
        second = migrations.revision("add pages", db, directory=project.directory)
        upgrade = _upgrade_section(second)
        assert "add_column" in upgrade and "'pages'" in upgrade
        for unwanted in ("alter_column", "create_", "drop_"):
            assert unwanted not in upgrade, second.read_text()
        if dialect == "sqlite":
            assert "batch_alter_table('mig_books'" in upgrade  # render_as_batch on SQLite
        else:
            assert "batch_alter_table" not in upgrade

        migrations.upgrade(clean_url, directory=project.directory)
        columns = {c["name"] for c in inspect(db.engine).get_columns("mig_books")}
        assert "pages" in columns
        assert migrations.current(db, directory=project.directory) == migrations.heads(
            directory=project.directory
        )

        migrations.downgrade(db, directory=project.directory)  # one step
        columns = {c["name"] for c in inspect(db.engine).get_columns("mig_books")}
        assert "pages" not in columns
        assert migrations.current(db, directory=project.directory) == head

        migrations.downgrade(clean_url, "base", directory=project.directory)
        assert not {"mig_authors", "mig_books"} & _tables(clean_url)
        assert migrations.current(db, directory=project.directory) == ()
    finally:
        db.dispose()


def test_plain_alembic_runs_a_kit_db_project(
    project: Project, clean_url: str, dialect: str
) -> None:
    project.init()
    migrations.revision("create library", clean_url, directory=project.directory)
    alembic = Path(sys.executable).parent / "alembic"
    env = {**os.environ, "KIT_DB_URL": clean_url}

    def run(*args: str, **extra: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(alembic), *args],
            cwd=project.root,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    up = run("upgrade", "head")
    assert up.returncode == 0, up.stderr
    assert "Running upgrade" in up.stderr
    assert {"mig_authors", "mig_books"} <= _tables(clean_url)
    now = run("current")
    assert now.returncode == 0, now.stderr
    assert "(head)" in now.stdout
    down = run("downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert not {"mig_authors", "mig_books"} & _tables(clean_url)

    # -x url= wins over KIT_DB_URL; no URL at all is a one-line failure, not a traceback
    x_url = run("-x", f"url={clean_url}", "upgrade", "head", KIT_DB_URL="")
    assert x_url.returncode == 0, x_url.stderr
    missing = run("current", KIT_DB_URL="")
    assert missing.returncode != 0
    assert "no database URL" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_async_urls_and_databases_migrate_with_the_sync_driver(
    project: Project, clean_url: str, async_db_url: str
) -> None:
    project.init()
    migrations.revision("create library", async_db_url, directory=project.directory)
    migrations.upgrade(async_db_url, directory=project.directory)
    assert {"mig_authors", "mig_books"} <= _tables(clean_url)
    async_db = AsyncDatabase(async_db_url)
    assert migrations.current(async_db, directory=project.directory) == migrations.heads(
        directory=project.directory
    )
    migrations.downgrade(async_db, "base", directory=project.directory)
    assert not {"mig_authors", "mig_books"} & _tables(clean_url)


def test_kit_db_url_environment_variable(
    project: Project, clean_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.init()
    monkeypatch.setenv("KIT_DB_URL", clean_url)
    migrations.revision("create library", directory=project.directory)
    migrations.upgrade(directory=project.directory)
    assert migrations.current(directory=project.directory) == migrations.heads(
        directory=project.directory
    )


# --------------------------------------------------------------------------- SQLite


def test_sqlite_batch_rebuild_of_a_referenced_table_keeps_rows(
    project: Project, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/batch.db"
    project.init()
    migrations.revision("create library", url, directory=project.directory)
    db = Database(url)
    try:
        migrations.upgrade(db, directory=project.directory)
        models = project.models()
        with db.begin() as session:
            session.add(models.Book(title="t", author=models.Author(email="a@example.com")))
        # a change SQLite can only make by copying the parent table and dropping the old one
        path = migrations.revision(
            "email optional", autogenerate=False, directory=project.directory
        )
        # put our body first and leave the template's own (which differs between Alembic
        # versions) in an unused function
        source = path.read_text()
        assert "def upgrade() -> None:" in source
        path.write_text(
            source.replace(
                "def upgrade() -> None:",
                "def upgrade() -> None:\n"
                '    with op.batch_alter_table("mig_authors", recreate="always") as batch:\n'
                '        batch.alter_column("email", existing_type=sa.String(255), nullable=True)\n'
                "\n\ndef _template_upgrade() -> None:",
                1,
            )
        )
        migrations.upgrade(db, directory=project.directory)
        with db.session() as session:
            assert session.scalar(text("SELECT count(*) FROM mig_books")) == 1
            assert session.scalar(text("SELECT count(*) FROM mig_authors")) == 1
        columns = {c["name"]: c for c in inspect(db.engine).get_columns("mig_authors")}
        assert columns["email"]["nullable"] is True
        # foreign keys are back on for the pooled connection kit-db lent to Alembic
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.dispose()


def test_migration_connection_commits_and_rolls_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/conn.db"
    with migrations.migration_connection(url) as connection:
        connection.exec_driver_sql("CREATE TABLE mig_t (x INTEGER)")
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0

    def insert_then_fail() -> None:
        with migrations.migration_connection(url) as connection:
            connection.exec_driver_sql("INSERT INTO mig_t VALUES (1)")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        insert_then_fail()
    with migrations.migration_connection(url) as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM mig_t").scalar() == 0


# --------------------------------------------------------------------------- errors


def test_errors_are_kit_db_errors_with_clear_messages(project: Project, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/errors.db"
    missing = tmp_path / "nowhere"
    with pytest.raises(MigrationError, match="not a migrations directory"):
        migrations.upgrade(url, directory=missing)
    with pytest.raises(MigrationError, match="not a migrations directory"):
        migrations.heads(directory=missing)

    with pytest.raises(ConfigurationError, match="import path"):
        migrations.init(project.directory, metadata="no_colon_here")
    with pytest.raises(ConfigurationError, match="not a sqlalchemy MetaData"):
        migrations.init(project.directory, metadata=f"{project.module}:not_metadata")
    with pytest.raises(ConfigurationError, match="cannot import"):
        migrations.init(project.directory, metadata="no_such_module_xyz:Base.metadata")
    with pytest.raises(ConfigurationError, match="'Nope' not found"):
        migrations.init(project.directory, metadata=f"{project.module}:Nope.metadata")
    assert not project.directory.exists()  # nothing written on a bad metadata path

    # check=False writes a project whose models can be imported later
    project.init()
    with pytest.raises(MigrationError, match="already exists") as info:
        project.init()
    assert isinstance(info.value, KitDBError) and isinstance(info.value, CommandError)

    with pytest.raises(MigrationError, match="no database URL"):
        migrations.upgrade(directory=project.directory)
    with pytest.raises(MigrationError, match="invalid database URL"):
        migrations.upgrade("::not a url::", directory=project.directory)
    with pytest.raises(ConfigurationError, match="needs a message"):
        migrations.revision("  ", url, directory=project.directory)
    migrations.revision("create library", url, directory=project.directory)
    with pytest.raises(MigrationError, match="zzz"):
        migrations.upgrade(url, "zzz", directory=project.directory)
    with pytest.raises(MigrationError, match="unsupported database"):
        migrations.upgrade("oracle://scott@db/x", directory=project.directory)


def test_init_without_check_and_broken_models(project: Project, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/later.db"
    migrations.init(project.directory, metadata="later_models_xyz:Base.metadata", check=False)
    env_py = (project.directory / "env.py").read_text()
    assert "import later_models_xyz as _models_module" in env_py
    with pytest.raises(MigrationError, match="later_models_xyz"):
        migrations.revision("first", url, directory=project.directory)


def test_progress_lines_only_when_not_quiet(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/progress.db"
    project.init()
    migrations.revision("create library", url, directory=project.directory)
    migrations.upgrade(url, directory=project.directory)
    assert capsys.readouterr().err == ""
    migrations.downgrade(url, "base", directory=project.directory, quiet=False)
    err = capsys.readouterr().err
    assert "Running downgrade" in err and "Context impl" not in err


def test_generated_project_layout(project: Project) -> None:
    ini = project.init()
    config = ini.read_text()
    assert "script_location = %(here)s/migrations" in config
    assert "prepend_sys_path = %(here)s" in config
    assert "\nsqlalchemy.url =\n" in config  # no credentials in version control
    env_py = (project.directory / "env.py").read_text()
    for needle in (
        "compare_type=True",
        'render_as_batch=dialect == "sqlite"',
        "render_item=render_item",
        f"import {project.module} as _models_module",
        "target_metadata = _models_module.Base.metadata",
        "KIT_DB_URL",
    ):
        assert needle in env_py, needle
    assert (project.directory / "script.py.mako").is_file()
    compile(env_py, "env.py", "exec")


def test_offline_sql_mode_through_alembic(project: Project, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/offline.db"
    project.init()
    migrations.revision("create library", url, directory=project.directory)
    alembic = Path(sys.executable).parent / "alembic"
    out = subprocess.run(
        [str(alembic), "upgrade", "head", "--sql"],
        cwd=project.root,
        env={**os.environ, "KIT_DB_URL": "postgresql://u@h/db"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "CREATE TABLE mig_authors" in out.stdout
    assert "CONSTRAINT uq_mig_authors_email UNIQUE" in out.stdout
    no_url = subprocess.run(
        [str(alembic), "upgrade", "head", "--sql"],
        cwd=project.root,
        env={k: v for k, v in os.environ.items() if k != "KIT_DB_URL"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert no_url.returncode != 0
    assert "FAILED: no database URL" in no_url.stdout + no_url.stderr
    assert "Traceback" not in no_url.stderr
