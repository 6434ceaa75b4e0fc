"""Start the demo's servers the way a user would: the dev OIDC provider, the app under
uvicorn on a free loopback port, and (for RQ jobs) a ``kit-jobs`` worker process, each
configured by environment variables only. Used by ``tour.py`` and the tests.

Every process writes its stdout (where the console mailer prints) and its stderr (JSON
logs) to files in the run's folder, so the tour and the tests can read them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from dev_oidc import DevOIDCProvider

__all__ = ["APP_DIR", "APP_VARIABLES", "ServerError", "Servers", "embedded_env"]

APP_DIR = Path(__file__).resolve().parent

#: The variables the app reads. The servers start from the caller's environment without
#: them, so a run is configured only by what it passes (the tour: embedded defaults).
APP_VARIABLES = (
    "APP_ENV",
    "SECRET_KEY",
    "VAR_DIR",
    "DATABASE_URL",
    "REDIS_URL",
    "STORAGE_URL",
    "MAIL_FROM",
    "RESEND_API_KEY",
    "OIDC_ISSUER",
    "OIDC_CLIENT_ID",
    "OIDC_CLIENT_SECRET",
    "OIDC_PROVIDER_NAME",
    "TENANT_DOMAINS",
    "ADMIN_EMAILS",
    "RATE_LIMIT",
    "BAN_SECONDS",
    "TRUSTED_PROXIES",
    "NETCORE_IFACE",
    "CACHE_TTL",
    "LOG_LEVEL",
)
_PREFIXES = ("KIT_JOBS_", "KIT_MAIL_", "KIT_DB_", "KIT_CACHE_")
STARTUP_TIMEOUT = 60.0


class ServerError(RuntimeError):
    """A server did not start or died; the message has the tail of its log."""


def embedded_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    """The app's variables for a run on embedded defaults in ``var_dir``; the tour and
    the tests trust the loopback address as a proxy so that they can play other clients
    with ``X-Forwarded-For``."""
    env = {
        "VAR_DIR": str(var_dir),
        "SECRET_KEY": "demo-only-" + os.urandom(24).hex(),
        "ADMIN_EMAILS": "ann@acme.example",
        "TRUSTED_PROXIES": "127.0.0.1",
        "KIT_MAIL_BACKEND": "console",
    }
    env.update(overrides)
    return env


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    files: list[IO[bytes]] = field(default_factory=list)

    def check(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise ServerError(
                f"{self.name} exited with status {code}; its last log lines:\n{_tail(self.stderr)}"
            )

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        for handle in self.files:
            handle.close()


@dataclass
class Servers:
    """The running servers: ``app_url``, ``issuer``, the provider, and their outputs."""

    app_url: str
    issuer: str
    provider: DevOIDCProvider
    var_dir: Path
    env: dict[str, str]
    processes: list[_Process]

    @classmethod
    @contextmanager
    def running(
        cls,
        env: Mapping[str, str],
        *,
        var_dir: Path,
        provider: DevOIDCProvider | None = None,
        worker: bool = False,
    ) -> Iterator[Servers]:
        """Start everything (provider in a thread, app and worker as processes), wait
        until the app answers, stop it all on exit."""
        var_dir.mkdir(parents=True, exist_ok=True)
        provider = provider or DevOIDCProvider(auto_approve="ann@acme.example")
        with ExitStack() as stack:
            issuer = provider.start()
            stack.callback(provider.stop)
            full_env = {
                k: v
                for k, v in os.environ.items()
                if k not in APP_VARIABLES and not k.startswith(_PREFIXES)
            }
            full_env.update({"OIDC_ISSUER": issuer, "PYTHONUNBUFFERED": "1"})
            full_env.update(env)
            sock = _free_socket()
            stack.callback(sock.close)
            port = sock.getsockname()[1]
            app = cls._spawn(
                "app",
                [sys.executable, "-m", "uvicorn", "app.main:app", "--fd", str(sock.fileno())],
                full_env,
                var_dir,
                pass_fds=(sock.fileno(),),
            )
            stack.callback(app.stop)
            servers = cls(f"http://127.0.0.1:{port}", issuer, provider, var_dir, full_env, [app])
            servers._wait_ready(app)
            if worker:
                command = [sys.executable, "-m", "kit_jobs.cli", "--app", "app.worker:jobs"]
                command += ["worker", "--heartbeat-ttl", "10"]
                process = cls._spawn("worker", command, full_env, var_dir)
                stack.callback(process.stop)
                servers.processes.append(process)
                servers._wait_worker(process)
            yield servers

    @staticmethod
    def _spawn(
        name: str,
        command: list[str],
        env: Mapping[str, str],
        var_dir: Path,
        pass_fds: tuple[int, ...] = (),
    ) -> _Process:
        stdout, stderr = var_dir / f"{name}.out", var_dir / f"{name}.log"
        out, err = stdout.open("wb"), stderr.open("wb")
        popen = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, cwd=APP_DIR, env=dict(env), stdout=out, stderr=err, pass_fds=pass_fds
        )
        return _Process(name, popen, stdout, stderr, [out, err])

    def _wait_ready(self, app: _Process) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            app.check()
            try:
                if httpx.get(f"{self.app_url}/health/live", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise ServerError(
            f"the app did not answer in {STARTUP_TIMEOUT:.0f} s:\n{_tail(app.stderr)}"
        )

    def _wait_worker(self, worker: _Process) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            worker.check()
            if any(line.get("event") == "worker_started" for line in self.log_lines("worker")):
                return
            time.sleep(0.1)
        raise ServerError(f"the worker did not start:\n{_tail(worker.stderr)}")

    def check(self) -> None:
        """Raise :class:`ServerError` if a process died."""
        for process in self.processes:
            process.check()

    def output(self) -> str:
        """What the processes printed on stdout (the console mailer's mails)."""
        return "".join(p.stdout.read_text(errors="replace") for p in self.processes)

    def log_lines(self, *names: str) -> list[dict[str, Any]]:
        """The JSON log lines of the named processes (default: all)."""
        lines: list[dict[str, Any]] = []
        for process in self.processes:
            if names and process.name not in names:
                continue
            for raw in process.stderr.read_text(errors="replace").splitlines():
                try:
                    item = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(item, dict):
                    lines.append(item)
        return lines

    def log_tail(self) -> str:
        return "\n\n".join(f"--- {p.name}\n{_tail(p.stderr)}" for p in self.processes)
