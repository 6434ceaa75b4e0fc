"""The ``kit-db`` console script: ``main(argv)`` in process, and the installed script once."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from kit_db import Database
from kit_db.cli import main

MODELS = """
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kit_db import NAMING_CONVENTION, UUIDMixin
from kit_db._model import TYPE_ANNOTATION_MAP


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = TYPE_ANNOTATION_MAP


class Widget(UUIDMixin, Base):
    __tablename__ = "cli_widgets"
    name: Mapped[str] = mapped_column(unique=True)
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A project directory as the working directory; yields the models module name."""
    module = f"cli_models_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KIT_DB_URL", raising=False)
    monkeypatch.delenv("KIT_DB_MIGRATIONS_DIR", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() puts the cwd on sys.path
    yield module
    sys.modules.pop(module, None)


def _drop(url: str) -> None:
    db = Database(url)
    try:
        with db.engine.begin() as connection:
            for table in ("cli_widgets", "alembic_version"):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    finally:
        db.dispose()


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


def test_cycle(project: str, clean_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--metadata", f"{project}:Base.metadata"]) == 0
    assert "created migrations/" in capsys.readouterr().out
    assert Path("alembic.ini").is_file()

    assert main(["--url", clean_url, "revision", "-m", "widgets", "--autogenerate"]) == 0
    script = Path(capsys.readouterr().out.strip())
    assert script.is_file() and "create_table('cli_widgets'" in script.read_text()

    # options go after the command too
    assert main(["upgrade", "--url", clean_url]) == 0
    captured = capsys.readouterr()
    assert "Running upgrade" in captured.err
    assert "database at" in captured.out
    assert "cli_widgets" in _tables(clean_url)

    assert main(["current", "--url", clean_url]) == 0
    assert capsys.readouterr().out.strip().endswith("(head)")
    assert main(["heads"]) == 0
    head = capsys.readouterr().out.strip()
    assert len(head) == 12

    assert main(["downgrade", "--url", clean_url]) == 0
    assert "base (no migration applied)" in capsys.readouterr().out
    assert "cli_widgets" not in _tables(clean_url)
    assert main(["current", "--url", clean_url]) == 0
    assert "(none" in capsys.readouterr().out


def test_environment_variables_and_quiet(
    project: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KIT_DB_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("KIT_DB_MIGRATIONS_DIR", "db_migrations")
    assert main(["-q", "init", "--metadata", f"{project}:Base.metadata"]) == 0
    assert Path("db_migrations/env.py").is_file()
    assert main(["revision", "-m", "widgets", "--autogenerate", "--rev-id", "abc123"]) == 0
    assert capsys.readouterr().out.strip().endswith("abc123_widgets.py")
    assert main(["upgrade", "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["current"]) == 0
    assert capsys.readouterr().out == "abc123 (head)\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["upgrade"], "not a migrations directory"),
        (["init", "--metadata", "nope"], "import path"),
        (["init", "--metadata", "no_such_module_xyz:Base.metadata"], "cannot import"),
        (["--url", "oracle://scott@db/x", "current", "-d", "."], "not a migrations directory"),
    ],
)
def test_bad_input_is_one_line_and_status_1(
    project: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("kit-db: error: ") and message in err
    assert "Traceback" not in err


def test_errors_after_init(
    project: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/errors.db"
    assert main(["-q", "init", "--metadata", f"{project}:Base.metadata"]) == 0
    for argv, message in (
        (["init", "--metadata", f"{project}:Base.metadata"], "already exists"),
        (["current"], "no database URL"),
        (["--url", "::bad::", "current"], "invalid database URL"),
        (["--url", "oracle://scott@db/x", "current"], "unsupported database"),
        (["--url", url, "upgrade", "nosuchrev"], "nosuchrev"),
        (["--url", url, "revision", "-m", " "], "needs a message"),
        (["--url", "postgresql://nobody@127.0.0.1:1/x", "current"], "database failed"),
    ):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("kit-db: error: ") and message in err, (argv, err)
        assert "Traceback" not in err


def test_usage_errors_are_status_2(project: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["bogus"]) == 2
    assert main(["revision"]) == 2  # -m is required
    assert "usage: kit-db" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "upgrade" in capsys.readouterr().out


def test_installed_console_script(project: str, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "kit-db"
    env = {**os.environ, "KIT_DB_URL": f"sqlite:///{tmp_path}/script.db"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    init = run("init", "--metadata", f"{project}:Base.metadata")
    assert init.returncode == 0, init.stderr
    assert run("revision", "-m", "widgets", "--autogenerate").returncode == 0
    up = run("upgrade")
    assert up.returncode == 0, up.stderr
    assert "Running upgrade" in up.stderr
    assert "(head)" in run("current").stdout
    bad = run("downgrade", "nosuchrev")
    assert bad.returncode == 1
    assert bad.stderr.startswith("kit-db: error:") and "Traceback" not in bad.stderr
