"""Every error kit-jobs raises derives from :class:`KitJobsError`.

::

    KitJobsError
    ├── ConfigurationError      an invalid option, URL, setting, cron string or key template
    ├── SerializationError      job arguments (or a result) that are not JSON-serializable
    ├── UnknownTask             a task name this process has not registered (``@job``)
    ├── BackendUnavailable      the backend cannot be reached (Redis down, wrong URL)
    ├── BackendClosed           enqueue after ``shutdown()``
    ├── JobNotFound             no job with this id (never existed, or expired from history)
    ├── ResultTimeout           ``JobRef.result(timeout=)`` elapsed before the job ended
    ├── JobCanceled             the result of a job that was canceled
    └── JobFailed               the job raised, ran out of retries or was abandoned
        └── JobTimedOut         the job ran past its ``timeout``

Each class carries the HTTP ``status`` and ``title`` the adapters use to answer with an
RFC 9457 ``application/problem+json`` response, so the mapping lives in the core and
the adapters only render it. The ``detail`` of a 5xx problem is a fixed sentence: the
message can quote arguments or hosts and is only logged.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendClosed",
    "BackendUnavailable",
    "ConfigurationError",
    "JobCanceled",
    "JobFailed",
    "JobNotFound",
    "JobTimedOut",
    "KitJobsError",
    "ResultTimeout",
    "SerializationError",
    "UnknownTask",
]


class KitJobsError(Exception):
    """Base class of every kit-jobs error."""

    #: HTTP status of the problem response when this error escapes a view.
    status: int = 500
    #: Short, human-readable summary of the problem type (RFC 9457 ``title``).
    title: str = "Background job error"
    #: The ``type`` slug after ``https://kit.dev/problems/``.
    slug: str = "jobs-error"
    #: Whether ``str(self)`` may be shown to the client (4xx only).
    public_detail: bool = False

    def problem(self) -> dict[str, Any]:
        """This error as an RFC 9457 problem object (``application/problem+json``).

        Example::

            >>> BackendUnavailable("redis://10.0.0.5:6379 refused").problem()["status"]
            503
        """
        detail = str(self) if self.public_detail else _FIXED_DETAIL.get(self.slug, self.title)
        return {
            "type": f"https://kit.dev/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": detail,
        }


class ConfigurationError(KitJobsError, ValueError):
    """An option, URL, setting, cron string or key template is invalid; the message names
    it and says what to do."""

    title = "Background jobs misconfigured"
    slug = "jobs-misconfigured"


class SerializationError(KitJobsError, TypeError):
    """Job arguments or a job result that JSON cannot carry (a datetime, a model, a set)."""

    title = "Job arguments not serializable"
    slug = "job-arguments"


class UnknownTask(KitJobsError, LookupError):
    """A job names a task this process has not registered: import the module that defines
    it (``kit-jobs worker --import myapp.tasks``)."""

    title = "Unknown task"
    slug = "unknown-task"


class BackendUnavailable(KitJobsError, ConnectionError):
    """The job backend cannot be reached (Redis down, wrong URL, refused connection)."""

    status = 503
    title = "Job queue unavailable"
    slug = "jobs-unavailable"


class BackendClosed(KitJobsError, RuntimeError):
    """A job was enqueued after the backend was shut down."""

    status = 503
    title = "Job queue shut down"
    slug = "jobs-closed"


class JobNotFound(KitJobsError, LookupError):
    """No job with this id: it never existed, or its record expired (``result_ttl``,
    the thread backend's bounded history)."""

    status = 404
    title = "Job not found"
    slug = "job-not-found"
    public_detail = True


class ResultTimeout(KitJobsError, TimeoutError):
    """``JobRef.result(timeout=)`` waited that long and the job has not ended yet."""

    status = 504
    title = "Job still running"
    slug = "job-pending"
    public_detail = True


class JobCanceled(KitJobsError):
    """The job was canceled before it ran, so it has no result."""

    status = 409
    title = "Job canceled"
    slug = "job-canceled"
    public_detail = True


class JobFailed(KitJobsError):
    """The job raised on its last attempt (or was abandoned with no retries left).

    ``error_type`` is the name of the exception class the job raised and ``traceback``
    the formatted traceback, when the backend kept it.
    """

    title = "Job failed"
    slug = "job-failed"

    def __init__(self, message: str, *, error_type: str = "", traceback: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.traceback = traceback


class JobTimedOut(JobFailed):
    """The job ran past its ``timeout``."""

    title = "Job timed out"
    slug = "job-timed-out"


_FIXED_DETAIL: dict[str, str] = {
    "jobs-error": "A background job operation failed.",
    "jobs-misconfigured": "The server's background job queue is misconfigured.",
    "job-arguments": "A background job was given arguments it cannot carry.",
    "unknown-task": "A background job names a task this server does not know.",
    "jobs-unavailable": "The background job queue cannot be reached right now. Try again later.",
    "jobs-closed": "The background job queue is shutting down. Try again later.",
    "job-failed": "The background job failed.",
    "job-timed-out": "The background job ran past its time limit.",
}
