"""Throwaway PostgreSQL server (initdb + postgres under mirakuru) and fresh databases."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._common import (
    HOST,
    RunAs,
    ServerStartError,
    ServiceUnavailable,
    find_binary,
    free_port,
    log_tail,
    make_tempdir,
    remove_tree,
    run_as_for_root,
    start_executor,
    unique_db_name,
    with_database,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from types import TracebackType

    import psycopg
    from mirakuru import TCPExecutor

POSTGRESQL_URL_ENV = "KIT_TEST_POSTGRESQL_URL"
_PACKAGE = "postgresql"
_EXTRA_HINT = "install pytest-kit-services[postgresql]"
_SUPERUSER = "postgres"
_PORT_ATTEMPTS = 5
_ENV = {"LC_ALL": "C", "LANG": "C", "LC_MESSAGES": "C"}


def _psycopg() -> Any:
    """Import psycopg lazily."""
    try:
        import psycopg
    except ImportError as exc:
        raise ServiceUnavailable(f"postgresql: psycopg is not installed ({_EXTRA_HINT})") from exc
    return psycopg


def _connect(url: str, *, timeout: float = 30.0) -> psycopg.Connection[Any]:
    """Open an autocommit connection, retrying while the server is still starting."""
    pg = _psycopg()
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn: psycopg.Connection[Any] = pg.connect(url, autocommit=True, connect_timeout=5)
        except pg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        else:
            return conn


def _find_binaries() -> tuple[Path, Path]:
    """Return (initdb, postgres) from the same installation."""
    kwargs = {"service": "postgresql", "package": _PACKAGE, "env_var": POSTGRESQL_URL_ENV}
    initdb = find_binary(["initdb"], **kwargs).resolve()
    postgres = initdb.with_name("postgres")
    if not os.access(postgres, os.X_OK):
        postgres = find_binary(["postgres"], **kwargs).resolve()
    return initdb, postgres


class PostgreSQLServer:
    """A private PostgreSQL cluster on 127.0.0.1 (trust auth, superuser ``postgres``).

    As root, initdb/postgres run as the ``postgres`` system user.
    """

    def __init__(self, *, startup_timeout: int = 60) -> None:
        """Prepare (but do not start) a cluster."""
        self._timeout = startup_timeout
        self._tmpdir: Path | None = None
        self._port: int | None = None
        self._executor: TCPExecutor | None = None
        self._log: Any = None

    @property
    def port(self) -> int:
        """TCP port (available after ``start()``)."""
        if self._port is None:
            raise RuntimeError("PostgreSQLServer has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        """Admin URL ``postgresql://postgres@127.0.0.1:PORT/postgres``."""
        return f"postgresql://{_SUPERUSER}@{HOST}:{self.port}/postgres"

    @property
    def running(self) -> bool:
        """True while the postmaster is alive."""
        return self._executor is not None and self._executor.running()

    @property
    def logfile(self) -> Path | None:
        """Server log path, if started."""
        return None if self._tmpdir is None else self._tmpdir / "postgresql.log"

    def start(self) -> PostgreSQLServer:
        """Run initdb and start the server; block until it accepts connections."""
        if self.running:
            return self
        initdb, postgres = _find_binaries()
        _psycopg()
        run_as = run_as_for_root("postgres", service="postgresql", package=_PACKAGE)
        from mirakuru import TCPExecutor

        if self._tmpdir is None:
            self._tmpdir = make_tempdir("kit-pg-")
            if run_as is not None:
                run_as.chown(self._tmpdir)
            self._initdb(initdb, run_as)
        assert self.logfile is not None
        for attempt in range(_PORT_ATTEMPTS):
            port = free_port()
            self._port = port
            if self._log is None:
                self._log = self.logfile.open("ab")
            executor = TCPExecutor(
                [
                    str(postgres),
                    "-D",
                    str(self._tmpdir / "data"),
                    "-h",
                    HOST,
                    "-p",
                    str(port),
                    "-k",
                    str(self._tmpdir),
                    "-F",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "logging_collector=off",
                ],
                host=HOST,
                port=port,
                timeout=self._timeout,
                cwd=str(self._tmpdir),
                envvars=_ENV,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stop_signal=signal.SIGINT,
                popen_kwargs=run_as.popen_kwargs() if run_as else None,
            )
            try:
                start_executor(executor, name="postgres", logfile=self.logfile)
            except ServerStartError as exc:
                if not exc.port_clash or attempt == _PORT_ATTEMPTS - 1:
                    raise
                continue
            self._executor = executor
            _connect(self.url, timeout=self._timeout).close()
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _initdb(self, initdb: Path, run_as: RunAs | None) -> None:
        """Create the cluster's data directory."""
        assert self._tmpdir is not None
        result = subprocess.run(
            [
                str(initdb),
                "-D",
                str(self._tmpdir / "data"),
                "-U",
                _SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            cwd=self._tmpdir,
            env={**os.environ, **_ENV},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=self._timeout,
            check=False,
            **(run_as.popen_kwargs() if run_as else {}),
        )
        if result.returncode != 0:
            raise ServerStartError(f"initdb failed ({result.returncode}):\n{result.stdout}")

    def stop(self) -> None:
        """Stop the server (fast shutdown)."""
        if self._executor is not None and self._executor.running():
            self._executor.stop()

    def close(self) -> None:
        """Stop the server and delete the cluster."""
        try:
            if self._executor is not None:
                self._executor.stop()
        finally:
            self._executor = None
            if self._log is not None:
                self._log.close()
                self._log = None
            remove_tree(self._tmpdir)
            self._tmpdir = None

    def log_tail(self) -> str:
        """Return the end of the server log."""
        return log_tail(self.logfile)

    def __enter__(self) -> PostgreSQLServer:
        """Start the server."""
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop and delete the server."""
        self.close()


@contextmanager
def postgresql_database(admin_url: str) -> Iterator[str]:
    """Create a uniquely named database on *admin_url*'s server; yield its URL; drop it."""
    pg = _psycopg()
    from psycopg import sql

    name = unique_db_name()
    with _connect(admin_url, timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        with _connect(admin_url, timeout=10) as conn:
            try:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            except pg.errors.SyntaxError:  # PostgreSQL < 13
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@contextmanager
def postgresql_service() -> Iterator[str]:
    """Yield a URL of a fresh database on ``KIT_TEST_POSTGRESQL_URL`` or a throwaway server."""
    admin_url = os.environ.get(POSTGRESQL_URL_ENV)
    if admin_url:
        with postgresql_database(admin_url) as url:
            yield url
        return
    with PostgreSQLServer() as server, postgresql_database(server.url) as url:
        yield url
