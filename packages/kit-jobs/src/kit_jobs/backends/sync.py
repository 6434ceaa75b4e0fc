"""The ``sync`` backend: every job runs inside ``enqueue``, in the caller's thread.

For tests and debugging. Retries run at once, one after another; ``delay=``,
``enqueue_at`` and retry backoff are not waited for (the job would otherwise block the
caller); a run longer than ``timeout`` is reported as timed out once it returns.
Nothing survives the process.
"""

from __future__ import annotations

import traceback

from kit_jobs._clock import mono, wall
from kit_jobs._context import logger
from kit_jobs._execute import execute
from kit_jobs._models import JobInfo, JobMessage, JobStatus
from kit_jobs.backends._memory import JobRecord, MemoryBackend
from kit_jobs.exceptions import BackendClosed

__all__ = ["SyncBackend"]


class SyncBackend(MemoryBackend):
    """Runs each job inline at enqueue time; results and errors are kept in memory.

    Example::

        >>> from kit_jobs import Jobs, job
        >>> @job
        ... def square(x: int) -> int:
        ...     return x * x
        >>> ref = Jobs(backend="sync").enqueue(square, 7)  # ran already
        >>> ref.status(), ref.result()
        (<JobStatus.FINISHED: 'finished'>, 49)
    """

    name = "sync"
    delivery = "inline: runs inside enqueue; nothing survives the process"

    def __init__(self, history: int = 10_000) -> None:
        super().__init__(history)
        self._closed = False

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> list[str]:
        self._closed = True
        return []

    def ping(self, timeout: float = 2.0) -> bool:
        """True until :meth:`shutdown`: jobs run inline, nothing else can be down."""
        return not self._closed

    def enqueue(self, message: JobMessage) -> None:
        if self._closed:
            raise BackendClosed("the sync backend was shut down; create a new Jobs")
        task = message.task
        record = JobRecord(
            message,
            JobStatus.QUEUED,
            retries_left=task.retry.max if task.retry else 0,
            scheduled_for=message.run_at,
        )
        self.store.add(record)
        hooks = self.runtime.hooks if self.runtime is not None else ()
        while True:
            record.attempts += 1
            record.status = JobStatus.RUNNING
            record.started_at = wall()
            started = mono()
            try:
                value = execute(
                    task,
                    message.args,
                    message.kwargs,
                    job_id=message.id,
                    context=message.context,
                    attempt=record.attempts,
                    backend=self.name,
                    hooks=hooks,
                )
            except Exception as exc:
                record.error = f"{type(exc).__name__}: {exc}"
                record.error_type = type(exc).__name__
                record.traceback = traceback.format_exc()
                record.timed_out = False
            else:
                elapsed = mono() - started
                if task.timeout is not None and elapsed > task.timeout:
                    record.error = f"JobTimedOut: ran {elapsed:.3f} s, timeout is {task.timeout} s"
                    record.error_type = "JobTimedOut"
                    record.timed_out = True
                else:
                    record.result = value
                    record.error = None
                    self.store.ended(record, JobStatus.FINISHED)
                    return
            if record.retries_left > 0:
                record.retries_left -= 1
                logger.info("job_retry", job_id=message.id, job_task=task.name, error=record.error)
                continue
            logger.warning("job_failed", job_id=message.id, job_task=task.name, error=record.error)
            self.store.ended(record, JobStatus.FAILED)
            return

    def cancel(self, job_id: str) -> bool:
        self.store.get(job_id)
        return False  # it already ran

    def info(self, job_id: str) -> JobInfo:
        return self.store.get(job_id).info()

    def list_jobs(self, status: JobStatus, limit: int = 100) -> list[JobInfo]:
        return self.store.list_jobs(status, limit)

    def stuck(self) -> list[JobInfo]:
        return []

    def retry(self, job_id: str) -> bool:
        record = self.store.get(job_id)
        if record.status not in (JobStatus.FAILED, JobStatus.CANCELED):
            return False
        self.store.forget(job_id)
        record.message.run_at = None
        self.enqueue(record.message)
        return True

    def clear(self, status: JobStatus) -> int:
        return self.store.clear_ended(status)
