"""Fixtures for kit-jobs' tests: Redis from the shared pytest-kit-services plugin (a
throwaway redis-server, or KIT_TEST_REDIS_URL), real worker processes, and a clean
default runtime around every test."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kit_jobs
from kit_jobs import _runtime

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:  # rqapp: the tasks module worker processes import too
    sys.path.insert(0, str(TESTS))


@pytest.fixture(autouse=True)
def _default_runtime() -> Iterator[None]:
    """Each test starts without a default Jobs and leaves none behind."""
    old = _runtime.reset_default()
    yield
    leftover = _runtime.reset_default()
    if leftover is not None:
        leftover.shutdown(wait=False)
    if old is not None:
        kit_jobs.configure(old)


class WorkerProcess:
    """A real ``KitWorker`` in its own OS process (and session, so its RQ scheduler
    child can be cleaned up with it)."""

    def __init__(
        self, url: str, queue: str, heartbeat_ttl: float, scheduler: bool, imports: str = ""
    ) -> None:
        env = dict(
            os.environ,
            KJ_TEST_REDIS=url,
            PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        )
        argv = [sys.executable, "-m", "rqapp.worker_main", url, queue, str(heartbeat_ttl)]
        if not scheduler:
            argv.append("--no-scheduler")
        if imports:
            argv += ["--import", imports]
        self.process = subprocess.Popen(argv, env=env, start_new_session=True)
        self.pid = self.process.pid

    def kill(self) -> float:
        """SIGKILL the worker itself (its RQ scheduler child survives, as after a crash)."""
        self.process.send_signal(signal.SIGKILL)
        killed_at = time.time()
        self.process.wait(timeout=10)
        return killed_at

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # the scheduler child, if any


@pytest.fixture
def rq_url(redis_clean_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A flushed Redis database for one rq test; tasks in ``rqapp`` report to it."""
    monkeypatch.setenv("KJ_TEST_REDIS", redis_clean_url)
    return redis_clean_url


@pytest.fixture
def start_worker(rq_url: str) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real worker processes; all are stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(
        queue: str = "kjtest", heartbeat_ttl: float = 2.0, scheduler: bool = True, imports: str = ""
    ) -> WorkerProcess:
        worker = WorkerProcess(rq_url, queue, heartbeat_ttl, scheduler, imports)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.terminate()


def wait_until(
    predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05
) -> None:
    """Poll ``predicate`` until truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s: {predicate}")
