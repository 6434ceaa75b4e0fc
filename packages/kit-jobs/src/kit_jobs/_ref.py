"""``JobRef``: the handle ``enqueue`` returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._models import JobInfo, JobStatus

if TYPE_CHECKING:
    from ._backend import Backend

__all__ = ["JobRef"]

R = TypeVar("R")


class JobRef(Generic[R]):
    """A job that was enqueued: ask its status, wait for its result, cancel it.

    Example::

        >>> from kit_jobs import Jobs, job
        >>> @job
        ... def double(x: int) -> int:
        ...     return 2 * x
        >>> with Jobs(backend="thread") as jobs:
        ...     ref = jobs.enqueue(double, 21)
        ...     ref.result(timeout=5)
        42
    """

    __slots__ = ("_backend", "id")

    def __init__(self, job_id: str, backend: Backend) -> None:
        self.id = job_id
        self._backend = backend

    def status(self) -> JobStatus:
        """Where the job is now (:class:`~kit_jobs.JobStatus`)."""
        return self._backend.status(self.id)

    def result(self, timeout: float | None = None) -> R:
        """Wait up to ``timeout`` seconds (None: no limit) for the job to end; return its
        value, or raise :class:`~kit_jobs.JobFailed` / :class:`~kit_jobs.JobTimedOut` /
        :class:`~kit_jobs.JobCanceled`, or :class:`~kit_jobs.ResultTimeout` if it is
        still pending or running."""
        value: Any = self._backend.result(self.id, timeout)
        return value  # type: ignore[no-any-return]

    def cancel(self) -> bool:
        """Cancel the job if it has not started; True if it was canceled by this call."""
        return self._backend.cancel(self.id)

    def info(self) -> JobInfo:
        """Everything inspection knows about the job."""
        return self._backend.info(self.id)

    def __repr__(self) -> str:
        return f"<JobRef {self.id} on {self._backend.name}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)
