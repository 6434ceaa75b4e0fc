"""Shared helpers: binary lookup, free ports, privilege handling, URLs."""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mirakuru.base import Executor

BIN_PATH_ENV = "KIT_TEST_BIN_PATH"
"""Env var: os.pathsep-separated dirs that REPLACE the default binary search path."""

HOST = "127.0.0.1"

_EXTRA_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class ServiceUnavailable(RuntimeError):
    """A service cannot be provided (binary, driver or system user missing)."""


class ServerStartError(RuntimeError):
    """A server process was launched but did not come up."""

    def __init__(self, message: str, *, port_clash: bool = False) -> None:
        """Store the message; *port_clash* means retrying on another port may help."""
        super().__init__(message)
        self.port_clash = port_clash


def in_ci() -> bool:
    """Return True when ``CI`` is set to a non-empty value other than 0/false."""
    value = os.environ.get("CI", "").strip().lower()
    return value not in ("", "0", "false")


def _postgresql_bin_dirs() -> list[str]:
    """Return /usr/lib/postgresql/<ver>/bin dirs, newest version first."""

    def version(path: str) -> tuple[int, ...]:
        match = re.search(r"/postgresql/([\d.]+)/bin$", path)
        if match is None:
            return ()
        return tuple(int(part) for part in match.group(1).split(".") if part)

    return sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)


def search_dirs() -> list[str]:
    """Return the directories searched for server binaries."""
    override = os.environ.get(BIN_PATH_ENV)
    if override is not None:
        return [d for d in override.split(os.pathsep) if d]
    dirs = [d for d in os.environ.get("PATH", os.defpath).split(os.pathsep) if d]
    dirs += [d for d in _EXTRA_DIRS if d not in dirs]
    dirs += _postgresql_bin_dirs()
    return dirs


def find_binary(names: Sequence[str], *, service: str, package: str, env_var: str) -> Path:
    """Return the first executable named one of *names*, or raise ServiceUnavailable."""
    dirs = search_dirs()
    for name in names:
        found = shutil.which(name, path=os.pathsep.join(dirs))
        if found:
            return Path(found)
    raise ServiceUnavailable(
        f"{service}: {' / '.join(names)} not found in {os.pathsep.join(dirs) or '<nothing>'}; "
        f"install the Debian package '{package}' (apt-get install {package}) "
        f"or set {env_var} to an existing server"
    )


def free_port(host: str = HOST) -> int:
    """Return a TCP port that was free a moment ago (bind port 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def unique_db_name() -> str:
    """Return a fresh database name like ``kit_test_1a2b3c4d5e6f``."""
    return f"kit_test_{uuid.uuid4().hex[:12]}"


def with_database(url: str, dbname: str) -> str:
    """Return *url* with its path replaced by ``/dbname``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def log_tail(path: Path | None, lines: int = 20) -> str:
    """Return the last *lines* lines of a log file (empty if unreadable)."""
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def start_executor(executor: Executor, *, name: str, logfile: Path | None) -> None:
    """Start a mirakuru executor; turn its errors into ServerStartError with the log tail."""
    from mirakuru.exceptions import AlreadyRunning, ExecutorError, ProcessExitedWithError

    try:
        executor.start()
    except ExecutorError as exc:
        clash = isinstance(exc, AlreadyRunning | ProcessExitedWithError)
        raise ServerStartError(
            f"{name} failed to start: {exc}\n{log_tail(logfile)}", port_clash=clash
        ) from exc


@dataclass(frozen=True)
class RunAs:
    """System user a server must run as (only used when we are root)."""

    name: str
    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, Any]:
        """Return ``subprocess.Popen`` kwargs that drop privileges to this user."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        """Give *path* to this user."""
        os.chown(path, self.uid, self.gid)


def run_as_for_root(user: str, *, service: str, package: str) -> RunAs | None:
    """Return the system user to drop to when running as root, else None."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ServiceUnavailable(
            f"{service}: running as root needs the '{user}' system user, which the Debian "
            f"package '{package}' creates (apt-get install {package})"
        ) from None
    return RunAs(user, entry.pw_uid, entry.pw_gid)


def make_tempdir(prefix: str) -> Path:
    """Create a private temporary directory."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def remove_tree(path: Path | None) -> None:
    """Delete a temporary directory, ignoring errors."""
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
