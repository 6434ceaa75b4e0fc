"""Throwaway MariaDB server (mariadb-install-db + mariadbd under mirakuru) and fresh databases."""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ._common import (
    HOST,
    ServerStartError,
    ServiceUnavailable,
    find_binary,
    free_port,
    log_tail,
    make_tempdir,
    remove_tree,
    start_executor,
    unique_db_name,
    with_database,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from types import TracebackType

    from mirakuru import TCPExecutor

MARIADB_URL_ENV = "KIT_TEST_MARIADB_URL"
_PACKAGE = "mariadb-server"
_EXTRA_HINT = "install pytest-kit-services[mariadb]"
_PORT_ATTEMPTS = 5
_SCHEMES = ("mysql", "mariadb", "mysql+pymysql", "mariadb+pymysql")


def _pymysql() -> Any:
    """Import PyMySQL lazily."""
    try:
        import pymysql
    except ImportError as exc:
        raise ServiceUnavailable(f"mariadb: PyMySQL is not installed ({_EXTRA_HINT})") from exc
    return pymysql


def connect_kwargs(url: str) -> dict[str, Any]:
    """Turn ``mysql://user:pw@host:port/db`` into PyMySQL ``connect()`` kwargs."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"unsupported MariaDB URL scheme {parts.scheme!r} in {url!r}")
    kwargs: dict[str, Any] = {
        "host": parts.hostname or HOST,
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "charset": "utf8mb4",
        "autocommit": True,
        "connect_timeout": 5,
    }
    database = unquote(parts.path.lstrip("/"))
    if database:
        kwargs["database"] = database
    return kwargs


def _connect(url: str, *, timeout: float = 30.0) -> Any:
    """Open an autocommit PyMySQL connection, retrying while the server starts."""
    pymysql = _pymysql()
    deadline = time.monotonic() + timeout
    while True:
        try:
            return pymysql.connect(**connect_kwargs(url))
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class MariaDBServer:
    """A private MariaDB server on 127.0.0.1; ``root`` connects without a password.

    The data dir is created with ``--auth-root-authentication-method=normal`` so that
    ``root@127.0.0.1`` exists with an empty password; as root the server runs with
    ``--user=root``.  A unix socket lives in the temp dir next to the TCP port.
    """

    def __init__(self, *, startup_timeout: int = 60) -> None:
        """Prepare (but do not start) a server."""
        self._timeout = startup_timeout
        self._tmpdir: Path | None = None
        self._port: int | None = None
        self._executor: TCPExecutor | None = None
        self._log: Any = None

    @property
    def port(self) -> int:
        """TCP port (available after ``start()``)."""
        if self._port is None:
            raise RuntimeError("MariaDBServer has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        """Admin URL ``mysql://root@127.0.0.1:PORT/``."""
        return f"mysql://root@{HOST}:{self.port}/"

    @property
    def socket(self) -> Path | None:
        """Unix socket path, if started."""
        return None if self._tmpdir is None else self._tmpdir / "mysqld.sock"

    @property
    def running(self) -> bool:
        """True while mariadbd is alive."""
        return self._executor is not None and self._executor.running()

    @property
    def logfile(self) -> Path | None:
        """Server log path, if started."""
        return None if self._tmpdir is None else self._tmpdir / "mariadb.log"

    def start(self) -> MariaDBServer:
        """Initialise the data dir and start mariadbd; block until root can log in."""
        if self.running:
            return self
        kwargs = {"service": "mariadb", "package": _PACKAGE, "env_var": MARIADB_URL_ENV}
        install_db = find_binary(["mariadb-install-db", "mysql_install_db"], **kwargs)
        mariadbd = find_binary(["mariadbd", "mysqld"], **kwargs)
        _pymysql()
        from mirakuru import TCPExecutor

        user_args = ["--user=root"] if os.geteuid() == 0 else []
        if self._tmpdir is None:
            self._tmpdir = make_tempdir("kit-mariadb-")
            self._install_db(install_db, user_args)
        assert self.logfile is not None
        assert self.socket is not None
        tmp = self._tmpdir
        for attempt in range(_PORT_ATTEMPTS):
            port = free_port()
            self._port = port
            if self._log is None:
                self._log = self.logfile.open("ab")
            executor = TCPExecutor(
                [
                    str(mariadbd),
                    "--no-defaults",
                    f"--datadir={tmp / 'data'}",
                    f"--socket={self.socket}",
                    f"--pid-file={tmp / 'mariadbd.pid'}",
                    f"--tmpdir={tmp}",
                    f"--port={port}",
                    f"--bind-address={HOST}",
                    "--skip-name-resolve",
                    "--skip-log-bin",
                    "--character-set-server=utf8mb4",
                    "--collation-server=utf8mb4_general_ci",
                    "--innodb-flush-log-at-trx-commit=2",
                    *user_args,
                ],
                host=HOST,
                port=port,
                timeout=self._timeout,
                cwd=str(tmp),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            try:
                start_executor(executor, name="mariadbd", logfile=self.logfile)
            except ServerStartError as exc:
                if not exc.port_clash or attempt == _PORT_ATTEMPTS - 1:
                    raise
                continue
            self._executor = executor
            _connect(self.url, timeout=self._timeout).close()
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _install_db(self, install_db: Path, user_args: list[str]) -> None:
        """Create the system tables with a password-less root."""
        assert self._tmpdir is not None
        result = subprocess.run(
            [
                str(install_db),
                "--no-defaults",
                f"--datadir={self._tmpdir / 'data'}",
                f"--tmpdir={self._tmpdir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                *user_args,
            ],
            cwd=self._tmpdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=self._timeout,
            check=False,
        )
        if result.returncode != 0:
            raise ServerStartError(
                f"{install_db.name} failed ({result.returncode}):\n{result.stdout}"
            )

    def stop(self) -> None:
        """Stop the server."""
        if self._executor is not None and self._executor.running():
            self._executor.stop()

    def close(self) -> None:
        """Stop the server and delete its data."""
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

    def __enter__(self) -> MariaDBServer:
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


def _quote_ident(name: str) -> str:
    """Quote a MariaDB identifier."""
    return "`" + name.replace("`", "``") + "`"


@contextmanager
def mariadb_database(admin_url: str) -> Iterator[str]:
    """Create a uniquely named utf8mb4 database on *admin_url*'s server; yield its URL; drop it."""
    name = unique_db_name()
    conn = _connect(with_database(admin_url, ""), timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {_quote_ident(name)} CHARACTER SET utf8mb4")
    finally:
        conn.close()
    try:
        yield with_database(admin_url, name)
    finally:
        conn = _connect(with_database(admin_url, ""), timeout=10)
        try:
            with conn.cursor() as cur:
                # Kill leftover sessions so DROP cannot block on their metadata locks.
                cur.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST "
                    "WHERE DB = %s AND ID <> CONNECTION_ID()",
                    (name,),
                )
                for (session_id,) in cur.fetchall():
                    try:
                        cur.execute(f"KILL {int(session_id)}")
                    except _pymysql().err.MySQLError:
                        pass  # already gone
                cur.execute("SET SESSION lock_wait_timeout = 30")
                cur.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)}")
        finally:
            conn.close()


@contextmanager
def mariadb_service() -> Iterator[str]:
    """Yield a URL of a fresh database on ``KIT_TEST_MARIADB_URL`` or a throwaway server."""
    admin_url = os.environ.get(MARIADB_URL_ENV)
    if admin_url:
        with mariadb_database(admin_url) as url:
            yield url
        return
    with MariaDBServer() as server, mariadb_database(server.url) as url:
        yield url
