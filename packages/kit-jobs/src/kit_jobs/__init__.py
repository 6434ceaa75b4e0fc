"""kit-jobs: one job API over sync, thread and RQ backends, with retries, delays,
concurrency limits, deduplication, schedules and events.

Example::

    >>> import kit_jobs
    >>> from kit_jobs import Jobs, job
    >>> @job(retry=3)
    ... def add(a: int, b: int) -> int:
    ...     return a + b
    >>> with Jobs(backend="thread") as jobs:
    ...     jobs.enqueue(add, 2, 3).result(timeout=5)
    5

The exceptions are drawn in :mod:`kit_jobs.exceptions`.
"""

from __future__ import annotations

from ._backend import Backend
from ._events import Event, dispatch, listen, set_commit_hook
from ._execute import JobContext
from ._models import JobInfo, JobStatus
from ._ref import JobRef
from ._retry import Retry
from ._runtime import Jobs, configure, get_jobs
from ._schedule import Schedule, scheduled
from ._task import Task, Unique, job
from ._version import __version__
from .exceptions import (
    BackendClosed,
    BackendUnavailable,
    ConfigurationError,
    JobCanceled,
    JobFailed,
    JobNotFound,
    JobTimedOut,
    KitJobsError,
    ResultTimeout,
    SerializationError,
    UnknownTask,
)

# The public API: every name a user imports, sorted. Core modules only: the Flask and
# FastAPI adapters are imported as kit_jobs.flask / kit_jobs.fastapi.
__all__ = [
    "Backend",
    "BackendClosed",
    "BackendUnavailable",
    "ConfigurationError",
    "Event",
    "JobCanceled",
    "JobContext",
    "JobFailed",
    "JobInfo",
    "JobNotFound",
    "JobRef",
    "JobStatus",
    "JobTimedOut",
    "Jobs",
    "KitJobsError",
    "ResultTimeout",
    "Retry",
    "Schedule",
    "SerializationError",
    "Task",
    "Unique",
    "UnknownTask",
    "__version__",
    "configure",
    "dispatch",
    "get_jobs",
    "job",
    "listen",
    "scheduled",
    "set_commit_hook",
]
