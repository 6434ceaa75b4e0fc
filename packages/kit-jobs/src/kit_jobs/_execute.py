"""Running one attempt of one job, the same way on every backend: context variables
bound, the runtime's ``around_job`` hooks entered (Flask pushes an app context), the
outcome logged, and resource figures added to failures when psutil is installed."""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import structlog

from ._context import logger
from ._task import Task

__all__ = ["JobContext", "execute", "resource_figures"]


@dataclass(frozen=True, slots=True)
class JobContext:
    """What an ``around_job`` hook is told about the job it wraps."""

    job_id: str
    task: Task[Any, Any]
    attempt: int
    backend: str


AroundJob = Callable[[JobContext], AbstractContextManager[Any]]


def resource_figures() -> dict[str, Any]:
    """RSS, CPU seconds and open files of this process, if psutil is installed."""
    try:
        import psutil
    except ImportError:
        return {}
    try:
        process = psutil.Process()
        with process.oneshot():
            memory = process.memory_info()
            cpu = process.cpu_times()
            return {
                "rss_mb": round(memory.rss / 1_048_576, 1),
                "cpu_user_s": round(cpu.user, 2),
                "cpu_system_s": round(cpu.system, 2),
                "threads": process.num_threads(),
                "open_files": len(process.open_files()),
            }
    except Exception:  # pragma: no cover - psutil failing must not hide the job's error
        return {}


@contextlib.contextmanager
def _hooks(hooks: tuple[AroundJob, ...], context: JobContext) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for hook in hooks:
            stack.enter_context(hook(context))
        yield


def execute(
    task: Task[Any, Any],
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    job_id: str,
    context: dict[str, Any],
    attempt: int,
    backend: str,
    hooks: tuple[AroundJob, ...] = (),
) -> Any:
    """Run one attempt; exceptions propagate to the backend, which decides on retries.

    The attempt runs in a copy of the current :mod:`contextvars` context, so the log
    context bound for it is gone afterwards without unbinding anything (and the caller's
    own context, on the sync backend, is untouched).
    """
    return contextvars.copy_context().run(
        _attempt, task, args, kwargs, job_id, context, attempt, backend, hooks
    )


def _attempt(
    task: Task[Any, Any],
    args: list[Any],
    kwargs: dict[str, Any],
    job_id: str,
    context: dict[str, Any],
    attempt: int,
    backend: str,
    hooks: tuple[AroundJob, ...],
) -> Any:
    if context:
        structlog.contextvars.bind_contextvars(**context)
    structlog.contextvars.bind_contextvars(job_id=job_id, job_task=task.name, job_attempt=attempt)
    started = time.perf_counter()
    try:
        if hooks:
            with _hooks(hooks, JobContext(job_id, task, attempt, backend)):
                return task.fn(*args, **kwargs)
        return task.fn(*args, **kwargs)
    except BaseException as exc:
        logger.warning(
            "job_attempt_failed",
            error=f"{type(exc).__name__}: {exc}",
            duration_s=round(time.perf_counter() - started, 6),
            **resource_figures(),
        )
        raise
