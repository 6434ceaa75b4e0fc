"""The contract every backend (sync, thread, rq) fulfils; :class:`~kit_jobs.Jobs` talks
to a backend only through it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ._models import JobInfo, JobMessage, JobStatus

if TYPE_CHECKING:
    from ._runtime import Jobs

__all__ = ["Backend"]


class Backend(ABC):
    """A place jobs run. Implementations: ``SyncBackend``, ``ThreadBackend``, ``RQBackend``.

    Every method that takes a job id raises :class:`~kit_jobs.JobNotFound` for an id it
    does not know. Backend outages raise :class:`~kit_jobs.BackendUnavailable`.
    """

    #: ``"sync"``, ``"thread"`` or ``"rq"``.
    name: str = ""
    #: What survives: shown by ``kit-jobs status`` and the docs.
    delivery: str = ""

    def __init__(self) -> None:
        self.runtime: Jobs | None = None

    def bind(self, runtime: Jobs) -> None:
        """Called once by :class:`~kit_jobs.Jobs`; gives access to hooks and settings."""
        self.runtime = runtime

    # -- life cycle ----------------------------------------------------------------
    def start(self) -> None:  # noqa: B027 - optional hook: most backends start lazily
        """Start threads or check connections. Idempotent. ``enqueue`` starts lazily."""

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if this backend can take jobs now. Never raises for a
        backend that is down; answers within ``timeout`` seconds.

        The built-in backends override it; this default, for a custom backend, is True
        if :meth:`counts` answers within ``timeout`` seconds.
        """
        pool = ThreadPoolExecutor(1, thread_name_prefix="kit-jobs-ping")
        try:
            pool.submit(self.counts).result(timeout=timeout)
        except Exception:  # FutureTimeout included: a failing backend is down, not an error
            return False
        finally:
            pool.shutdown(wait=False)
        return True

    @abstractmethod
    def shutdown(self, wait: bool = True, timeout: float | None = None) -> list[str]:
        """Stop taking jobs; with ``wait``, let queued and running ones finish (up to
        ``timeout`` seconds). Returns the ids of jobs that will not run here (each is
        also logged)."""

    # -- jobs ------------------------------------------------------------------------
    @abstractmethod
    def enqueue(self, message: JobMessage) -> None:
        """Accept one job (``message.run_at`` set: not before then)."""

    @abstractmethod
    def claim_unique(self, key: str, job_id: str, window: float) -> str | None:
        """Reserve ``key`` for ``job_id`` for ``window`` seconds; if another job holds it,
        return that job's id instead."""

    @abstractmethod
    def release_unique(self, key: str, job_id: str) -> None:
        """Free ``key`` if ``job_id`` holds it (its enqueue failed)."""

    @abstractmethod
    def status(self, job_id: str) -> JobStatus: ...

    @abstractmethod
    def result(self, job_id: str, timeout: float | None) -> Any:
        """The job's return value; raises JobFailed / JobTimedOut / JobCanceled /
        ResultTimeout (not ended within ``timeout`` seconds; None waits forever)."""

    @abstractmethod
    def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not started; True if it was canceled now."""

    # -- inspection --------------------------------------------------------------------
    @abstractmethod
    def info(self, job_id: str) -> JobInfo: ...

    @abstractmethod
    def counts(self) -> dict[JobStatus, int]:
        """How many jobs are in each status (every status present, maybe 0)."""

    @abstractmethod
    def list_jobs(self, status: JobStatus, limit: int = 100) -> list[JobInfo]: ...

    @abstractmethod
    def stuck(self) -> list[JobInfo]:
        """Running jobs past their timeout, or whose worker stopped heartbeating."""

    @abstractmethod
    def retry(self, job_id: str) -> bool:
        """Run a failed (or canceled) job again under the same id; True if requeued."""

    @abstractmethod
    def clear(self, status: JobStatus) -> int:
        """Forget jobs in a terminal status (or cancel queued ones); returns how many."""

    # -- schedules -------------------------------------------------------------------
    @abstractmethod
    def claim_tick(self, schedule: str, tick: float, ttl: float) -> bool:
        """True for exactly one caller per ``(schedule, tick)``, across every scheduler
        sharing this backend's store."""
