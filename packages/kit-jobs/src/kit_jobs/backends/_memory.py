"""In-process job records, shared by the sync and thread backends: status, results,
bounded history of ended jobs, unique keys and schedule ticks."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from kit_jobs._backend import Backend
from kit_jobs._clock import mono, wall
from kit_jobs._models import TERMINAL, JobInfo, JobMessage, JobStatus
from kit_jobs.exceptions import JobCanceled, JobFailed, JobNotFound, JobTimedOut, ResultTimeout

__all__ = ["JobRecord", "MemoryBackend", "MemoryStore"]


@dataclass(slots=True, eq=False)
class JobRecord:
    """One job's state in this process."""

    message: JobMessage
    status: JobStatus
    retries_left: int = 0
    attempts: int = 0
    scheduled_for: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    result: Any = None
    error: str | None = None
    error_type: str = ""
    traceback: str = ""
    timed_out: bool = False
    #: Set when the job ends. Made by the first waiter (under the store's lock): an
    #: Event costs more than the rest of the record, and most jobs are never waited on.
    done: threading.Event | None = None

    def info(self) -> JobInfo:
        m = self.message
        return JobInfo(
            id=m.id,
            task=m.task.name,
            queue=m.task.queue,
            status=self.status,
            args=m.args,
            kwargs=m.kwargs,
            enqueued_at=m.enqueued_at,
            scheduled_for=self.scheduled_for,
            started_at=self.started_at,
            ended_at=self.ended_at,
            attempts=self.attempts,
            retries_left=self.retries_left,
            timeout=m.task.timeout,
            error=self.error,
            timed_out=self.timed_out,
        )

    def outcome(self) -> Any:
        """The result of an ended job, or its error raised."""
        if self.status is JobStatus.FINISHED:
            return self.result
        if self.status is JobStatus.CANCELED:
            raise JobCanceled(f"job {self.message.id} ({self.message.task.name}) was canceled")
        error_class = JobTimedOut if self.timed_out else JobFailed
        raise error_class(
            f"job {self.message.id} ({self.message.task.name}) failed after "
            f"{self.attempts} attempt(s): {self.error}",
            error_type=self.error_type,
            traceback=self.traceback,
        )


class MemoryStore:
    """Records by id; ended ones kept up to ``history``, oldest forgotten first."""

    def __init__(self, history: int = 10_000) -> None:
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            from kit_jobs.exceptions import ConfigurationError

            raise ConfigurationError(f"history={history!r}: give a whole number >= 1")
        self.history = history
        self.lock = threading.RLock()
        self.records: dict[str, JobRecord] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._unique: dict[str, tuple[str, float]] = {}
        self._ticks: dict[tuple[str, float], float] = {}

    # -- records ---------------------------------------------------------------------
    def add(self, record: JobRecord) -> None:
        # No lock (the thread backend's enqueue path): storing one dict item is atomic,
        # and whatever iterates the records copies them first (snapshot()).
        self.records[record.message.id] = record

    def snapshot(self) -> list[JobRecord]:
        """The records, oldest first: copied in one C call, so safe while other threads
        add records."""
        return list(self.records.values())

    def get(self, job_id: str) -> JobRecord:
        record = self.records.get(job_id)
        if record is None:
            raise JobNotFound(
                f"no job {job_id!r} in this process: wrong id, or it ended and left the "
                f"history (the last {self.history} ended jobs are kept)"
            )
        return record

    def ended(self, record: JobRecord, status: JobStatus) -> None:
        """Mark ``record`` ended with ``status`` and wake its waiters."""
        with self.lock:
            record.status = status
            record.ended_at = wall()
            job_id = record.message.id
            self._ended[job_id] = None
            self._ended.move_to_end(job_id)
            while len(self._ended) > self.history:
                old, _ = self._ended.popitem(last=False)
                self.records.pop(old, None)
            done = record.done
        if done is not None:
            done.set()

    def forget(self, job_id: str) -> None:
        with self.lock:
            self.records.pop(job_id, None)
            self._ended.pop(job_id, None)

    def wait(self, job_id: str, timeout: float | None) -> Any:
        record = self.get(job_id)
        done: threading.Event | None = None
        if record.status not in TERMINAL:
            with self.lock:  # ended() sets the status under it
                if record.status not in TERMINAL:
                    if record.done is None:
                        record.done = threading.Event()
                    done = record.done
        if done is not None and not done.wait(timeout):
            raise ResultTimeout(
                f"job {job_id} ({record.message.task.name}) is still {record.status} after "
                f"{timeout} s; call result() again or raise the timeout"
            )
        return record.outcome()

    # -- inspection ------------------------------------------------------------------
    def counts(self) -> dict[JobStatus, int]:
        counts = dict.fromkeys(JobStatus, 0)
        for record in self.snapshot():
            counts[record.status] += 1
        return counts

    def list_jobs(self, status: JobStatus, limit: int) -> list[JobInfo]:
        matching = [r for r in reversed(self.snapshot()) if r.status is status]
        return [r.info() for r in matching[:limit]]

    def stuck(self) -> list[JobInfo]:
        now = wall()
        running = [r for r in self.snapshot() if r.status is JobStatus.RUNNING]
        return [
            r.info()
            for r in running
            if r.message.task.timeout is not None
            and r.started_at is not None
            and now - r.started_at > r.message.task.timeout
        ]

    def clear_ended(self, status: JobStatus) -> int:
        with self.lock:
            ids = [r.message.id for r in self.snapshot() if r.status is status]
            for job_id in ids:
                self.forget(job_id)
        return len(ids)

    # -- unique keys and ticks -------------------------------------------------------
    def claim_unique(self, key: str, job_id: str, window: float) -> str | None:
        now = mono()
        with self.lock:
            held = self._unique.get(key)
            if held is not None and held[1] > now:
                return held[0]
            if len(self._unique) > 4 * self.history:
                self._unique = {k: v for k, v in self._unique.items() if v[1] > now}
            self._unique[key] = (job_id, now + window)
            return None

    def release_unique(self, key: str, job_id: str) -> None:
        with self.lock:
            held = self._unique.get(key)
            if held is not None and held[0] == job_id:
                del self._unique[key]

    def claim_tick(self, schedule: str, tick: float, ttl: float) -> bool:
        now = mono()
        with self.lock:
            if len(self._ticks) > 1024:
                self._ticks = {k: v for k, v in self._ticks.items() if v > now}
            if (schedule, tick) in self._ticks:
                return False
            self._ticks[(schedule, tick)] = now + ttl
            return True


class MemoryBackend(Backend):
    """What the sync and thread backends share: job state in a :class:`MemoryStore`."""

    def __init__(self, history: int = 10_000) -> None:
        super().__init__()
        self.store = MemoryStore(history)

    def claim_unique(self, key: str, job_id: str, window: float) -> str | None:
        return self.store.claim_unique(key, job_id, window)

    def release_unique(self, key: str, job_id: str) -> None:
        self.store.release_unique(key, job_id)

    def claim_tick(self, schedule: str, tick: float, ttl: float) -> bool:
        return self.store.claim_tick(schedule, tick, ttl)

    def status(self, job_id: str) -> JobStatus:
        return self.store.get(job_id).status

    def result(self, job_id: str, timeout: float | None) -> Any:
        return self.store.wait(job_id, timeout)

    def counts(self) -> dict[JobStatus, int]:
        return self.store.counts()
