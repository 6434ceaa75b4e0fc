"""Value objects shared by every backend: a job's status, what a backend is given to run,
and what inspection reports about a job."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._task import Task

__all__ = ["TERMINAL", "JobInfo", "JobMessage", "JobStatus"]


class JobStatus(enum.StrEnum):
    """Where a job is in its life.

    ``queued`` → (``waiting`` for a concurrency slot) → ``running`` → ``finished`` or
    ``failed``; ``scheduled`` while a delay or a retry backoff runs down; ``canceled``
    when canceled before it ran.
    """

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"


#: Statuses a job does not leave on its own.
TERMINAL = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELED})


@dataclass(slots=True)
class JobMessage:
    """One job as a backend receives it: arguments already checked and JSON round-tripped."""

    id: str
    task: Task[Any, Any]
    args: list[Any]
    kwargs: dict[str, Any]
    context: dict[str, Any]
    enqueued_at: float
    run_at: float | None = None
    unique_key: str | None = None


@dataclass(slots=True)
class JobInfo:
    """What inspection knows about one job (``Jobs.info(id)``, ``kit-jobs info ID``).

    Times are epoch seconds. ``attempts`` counts runs started so far; ``error`` is the
    last failure (``"TypeError: ..."``), ``timed_out`` whether it ran past its timeout.
    """

    id: str
    task: str
    queue: str
    status: JobStatus
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    enqueued_at: float | None = None
    scheduled_for: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    attempts: int = 0
    retries_left: int = 0
    timeout: float | None = None
    error: str | None = None
    timed_out: bool = False
    worker: str | None = None
    last_heartbeat: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the CLI prints it)."""
        return {
            "id": self.id,
            "task": self.task,
            "queue": self.queue,
            "status": str(self.status),
            "args": self.args,
            "kwargs": self.kwargs,
            "enqueued_at": self.enqueued_at,
            "scheduled_for": self.scheduled_for,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "attempts": self.attempts,
            "retries_left": self.retries_left,
            "timeout": self.timeout,
            "error": self.error,
            "timed_out": self.timed_out,
            "worker": self.worker,
            "last_heartbeat": self.last_heartbeat,
        }
