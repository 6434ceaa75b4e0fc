"""The ``kit-db`` command: Alembic migrations with kit-db's defaults (see
:mod:`kit_db.migrations`).

::

    kit-db init --metadata myapp.models:Model.metadata   # migrations/ + alembic.ini
    kit-db revision -m "create users" --autogenerate
    kit-db upgrade                                       # to head
    kit-db current
    kit-db downgrade                                     # one step; or a revision, or base

The database is ``--url`` or the ``KIT_DB_URL`` environment variable (then
``sqlalchemy.url`` in alembic.ini); the migrations directory is ``--directory`` or
``KIT_DB_MIGRATIONS_DIR`` (default ``migrations``). Both options go before or after the
command. Errors print one line on stderr and exit with status 1 (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from .exceptions import KitDBError

__all__ = ["build_parser", "main"]

_PROG = "kit-db"


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--url",
        default=default,
        help="database URL (default: $KIT_DB_URL, then sqlalchemy.url in alembic.ini)",
    )
    parser.add_argument(
        "--directory",
        "-d",
        default=default,
        help="migrations directory (default: $KIT_DB_MIGRATIONS_DIR or ./migrations)",
    )
    parser.add_argument(
        "--quiet", "-q", action="store_true", default=default, help="print only errors"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``kit-db`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Database migrations (Alembic) with kit-db's defaults.",
    )
    _common(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="create the migrations directory and alembic.ini")
    _common(init, suppress=True)
    init.add_argument(
        "--metadata",
        required=True,
        help="import path of the models' MetaData, e.g. myapp.models:Model.metadata",
    )
    init.add_argument(
        "--no-check",
        action="store_true",
        help="do not import the metadata now (it is importable only later)",
    )

    upgrade = commands.add_parser("upgrade", help="apply migrations (default: to head)")
    _common(upgrade, suppress=True)
    upgrade.add_argument("revision", nargs="?", default="head")

    downgrade = commands.add_parser(
        "downgrade", help="revert migrations (default: one step; 'base' reverts all)"
    )
    _common(downgrade, suppress=True)
    downgrade.add_argument("revision", nargs="?", default="-1")

    revision = commands.add_parser("revision", help="write a new migration script")
    _common(revision, suppress=True)
    revision.add_argument("-m", "--message", required=True, help="what the migration does")
    revision.add_argument(
        "--autogenerate",
        action="store_true",
        help="fill it in by comparing the models with the database (which must be at head)",
    )
    revision.add_argument("--rev-id", help="revision id to use instead of a random one")

    current = commands.add_parser("current", help="show the database's revision")
    _common(current, suppress=True)

    heads = commands.add_parser("heads", help="show the migration scripts' head revisions")
    _common(heads, suppress=True)
    return parser


def _run(args: argparse.Namespace) -> None:
    from . import migrations  # imports Alembic: a clear ImportError names the extra

    url = args.url or os.environ.get("KIT_DB_URL") or None
    directory = args.directory or os.environ.get("KIT_DB_MIGRATIONS_DIR") or "migrations"
    quiet = bool(args.quiet)

    def say(text: str) -> None:
        if not quiet:
            print(text)

    if args.command == "init":
        ini = migrations.init(directory, metadata=args.metadata, check=not args.no_check)
        say(f"created {directory}/ and {ini}; next: kit-db revision -m '...' --autogenerate")
    elif args.command == "upgrade":
        migrations.upgrade(url, args.revision, directory=directory, quiet=quiet)
        say(f"database at {_revisions(migrations.current(url, directory=directory))}")
    elif args.command == "downgrade":
        migrations.downgrade(url, args.revision, directory=directory, quiet=quiet)
        say(f"database at {_revisions(migrations.current(url, directory=directory))}")
    elif args.command == "revision":
        path = migrations.revision(
            args.message,
            url,
            autogenerate=args.autogenerate,
            directory=directory,
            rev_id=args.rev_id,
            quiet=True,
        )
        print(path)
    elif args.command == "current":
        found = migrations.current(url, directory=directory)
        heads = set(migrations.heads(directory=directory))
        for rev in found:
            print(f"{rev} (head)" if rev in heads else rev)
        if not found:
            print("(none: no migration applied)")
    else:  # heads
        for rev in migrations.heads(directory=directory):
            print(rev)


def _revisions(revisions: Sequence[str]) -> str:
    return ", ".join(revisions) if revisions else "base (no migration applied)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kit-db`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Example::

        status = main(["upgrade", "--url", "sqlite:///app.db"])
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    cwd = os.getcwd()
    if cwd not in sys.path:  # like `python -m`: the project's modules are importable
        sys.path.insert(0, cwd)
    try:
        _run(args)
    except KitDBError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{_PROG}: error: the database refused: {detail}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
