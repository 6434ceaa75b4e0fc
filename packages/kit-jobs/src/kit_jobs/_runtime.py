"""``Jobs``: the configured backend, the hooks wrapped around every job, the scheduler,
and inspection. One default instance serves ``task.enqueue()``; ``configure()`` sets it,
and ``KIT_JOBS_*`` environment variables describe it when nothing was configured."""

from __future__ import annotations

import builtins
import math
import os
import signal
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, suppress
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from ._backend import Backend
from ._clock import wall
from ._context import capture_context, logger
from ._execute import AroundJob, JobContext
from ._models import JobInfo, JobMessage, JobStatus
from ._ref import JobRef
from ._serialization import check_arguments
from ._task import Task, get_task, run_at_from
from .exceptions import BackendUnavailable, ConfigurationError, JobNotFound

if TYPE_CHECKING:
    from ._schedule import Scheduler

__all__ = ["Jobs", "configure", "get_jobs"]

P = ParamSpec("P")
R = TypeVar("R")

BackendName = Literal["sync", "thread", "rq"]
_BACKENDS = ("sync", "thread", "rq")
_STATUS_NAMES = ", ".join(s.value for s in JobStatus)


def _parse_status(status: JobStatus | str) -> JobStatus:
    try:
        return JobStatus(status)
    except ValueError:
        raise ConfigurationError(
            f"unknown job status {status!r}; use one of {_STATUS_NAMES}"
        ) from None


class Jobs:
    """The job runtime: which backend runs jobs, and how.

    Args:
        backend: ``"sync"`` (inline, for tests and debugging), ``"thread"`` (a bounded
            pool in this process, the default) or ``"rq"`` (Redis + ``kit-jobs worker``);
            or a :class:`Backend` instance.
        redis_url: rq: the Redis to use (default ``redis://localhost:6379/0``).
        connection: rq: an existing ``redis.Redis`` client instead of ``redis_url``.
        serializer: rq: ``"json"`` (default) or ``"pickle"`` (only for a Redis you trust).
        fallback: rq: ``"sync"`` runs a job inline when Redis cannot be reached at
            enqueue time; default ``None`` raises :class:`~kit_jobs.BackendUnavailable`.
        max_workers: thread: pool size (default ``min(32, cpus + 4)``).
        history: thread: how many ended jobs are remembered for status and results.
        lease_ttl: rq: seconds a concurrency slot survives without a heartbeat.

    Example::

        >>> from kit_jobs import Jobs, job
        >>> @job
        ... def greet(name: str) -> str:
        ...     return f"hello {name}"
        >>> jobs = Jobs(backend="sync")
        >>> jobs.enqueue(greet, "ada").result()
        'hello ada'
    """

    def __init__(
        self,
        backend: BackendName | Backend = "thread",
        *,
        redis_url: str | None = None,
        connection: Any = None,
        serializer: Literal["json", "pickle"] = "json",
        fallback: Literal["sync"] | None = None,
        max_workers: int | None = None,
        history: int = 10_000,
        lease_ttl: float = 30.0,
    ) -> None:
        if fallback not in (None, "sync"):
            raise ConfigurationError(f"fallback={fallback!r}: use None (raise) or 'sync'")
        self.fallback = fallback
        self._hooks: tuple[AroundJob, ...] = ()
        self._scheduler: Scheduler | None = None
        self._lock = threading.Lock()
        self._fallback_backend: Backend | None = None
        if isinstance(backend, Backend):
            self.backend = backend
        elif backend == "sync":
            from .backends.sync import SyncBackend

            self.backend = SyncBackend()
        elif backend == "thread":
            from .backends.thread import ThreadBackend

            self.backend = ThreadBackend(max_workers=max_workers, history=history)
        elif backend == "rq":
            from .backends.rq import RQBackend

            self.backend = RQBackend(
                redis_url=redis_url,
                connection=connection,
                serializer=serializer,
                lease_ttl=lease_ttl,
            )
        else:
            raise ConfigurationError(
                f"backend={backend!r}: use one of {', '.join(_BACKENDS)} (KIT_JOBS_BACKEND)"
            )
        self.backend.bind(self)

    # ------------------------------------------------------------------ configuration
    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, prefix: str = "KIT_JOBS_") -> Jobs:
        """Build from ``KIT_JOBS_*`` keys of a mapping (``os.environ``, ``app.config``).

        Keys: ``BACKEND``, ``REDIS_URL``, ``SERIALIZER``, ``FALLBACK``, ``MAX_WORKERS``,
        ``HISTORY``, ``LEASE_TTL``. A bad value raises
        :class:`~kit_jobs.ConfigurationError` naming the key.

        Example::

            >>> Jobs.from_config({"KIT_JOBS_BACKEND": "sync"}).backend.name
            'sync'
        """

        def get(key: str) -> Any:
            return config.get(prefix + key)

        def number(key: str, kind: type[int] | type[float], minimum: float) -> Any:
            raw = get(key)
            if raw is None or raw == "":
                return None
            try:
                value = kind(raw)
            except (TypeError, ValueError):
                raise ConfigurationError(
                    f"{prefix}{key}={raw!r}: give a {'whole ' if kind is int else ''}number"
                ) from None
            if value < minimum or not math.isfinite(value):
                raise ConfigurationError(f"{prefix}{key}={raw!r}: give a number >= {minimum}")
            return value

        backend = str(get("BACKEND") or "thread").strip().lower()
        if backend not in _BACKENDS:
            raise ConfigurationError(
                f"{prefix}BACKEND={get('BACKEND')!r}: use one of {', '.join(_BACKENDS)}"
            )
        serializer = str(get("SERIALIZER") or "json").strip().lower()
        if serializer not in ("json", "pickle"):
            raise ConfigurationError(f"{prefix}SERIALIZER={serializer!r}: use json or pickle")
        fallback_raw = str(get("FALLBACK") or "").strip().lower()
        if fallback_raw not in ("", "none", "sync"):
            raise ConfigurationError(f"{prefix}FALLBACK={fallback_raw!r}: use none or sync")
        options: dict[str, Any] = {
            "redis_url": get("REDIS_URL") or None,
            "serializer": serializer,
            "fallback": "sync" if fallback_raw == "sync" else None,
            "max_workers": number("MAX_WORKERS", int, 1),
        }
        history = number("HISTORY", int, 1)
        if history is not None:
            options["history"] = history
        lease = number("LEASE_TTL", float, 1)
        if lease is not None:
            options["lease_ttl"] = lease
        return cls(backend, **options)  # type: ignore[arg-type]

    def around_job(self, hook: Callable[[JobContext], AbstractContextManager[Any]]) -> None:
        """Wrap every job run by this runtime in ``hook(context)`` (a context manager).

        The Flask adapter uses it to push an app context around every job.
        """
        with self._lock:
            self._hooks = (*self._hooks, hook)

    @property
    def hooks(self) -> tuple[AroundJob, ...]:
        return self._hooks

    # ------------------------------------------------------------------ enqueue
    def enqueue(
        self,
        task: Task[P, R] | str,
        /,
        *args: Any,
        delay: float | None = None,
        at: datetime | None = None,
        **kwargs: Any,
    ) -> JobRef[R]:
        """Enqueue ``task`` (a :func:`~kit_jobs.job` or its name) with arguments.

        ``delay=seconds`` or ``at=aware_datetime`` run it no earlier than that.
        """
        resolved: Task[Any, Any] = get_task(task) if isinstance(task, str) else task
        if delay is not None and at is not None:
            raise ConfigurationError("give delay= or at=, not both")
        run_at = None
        if at is not None:
            run_at = run_at_from(at)
        if delay is not None:
            if (
                isinstance(delay, bool)
                or not isinstance(delay, int | float)
                or not (0 <= delay < math.inf)
            ):
                raise ConfigurationError(f"delay={delay!r}: give seconds as a number >= 0")
            run_at = wall() + float(delay) if delay > 0 else None
        return self.submit(resolved, args, kwargs, run_at=run_at)

    def submit(
        self,
        task: Task[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        run_at: float | None = None,
    ) -> JobRef[Any]:
        """The one path every enqueue takes: validate, deduplicate, hand to the backend."""
        if not isinstance(task, Task):
            raise ConfigurationError(f"enqueue needs a @job task or its name, got {task!r}")
        task.check_call(args, kwargs)
        json_args, json_kwargs = check_arguments(task.name, args, kwargs)
        message = JobMessage(
            id=os.urandom(16).hex(),  # 128 random bits, as uuid4, cheaper
            task=task,
            args=json_args,
            kwargs=json_kwargs,
            context=capture_context(),
            enqueued_at=wall(),
            run_at=run_at,
        )
        backend = self.backend
        try:
            if task.unique is not None:
                key = task.unique_key(json_args, json_kwargs)
                assert key is not None
                existing = backend.claim_unique(key, message.id, task.unique.window)
                if existing is not None:
                    return JobRef(existing, backend)
                message.unique_key = key
            try:
                backend.enqueue(message)
            except BaseException:
                if message.unique_key is not None:
                    with suppress(Exception):
                        backend.release_unique(message.unique_key, message.id)
                raise
        except BackendUnavailable as exc:
            if self.fallback != "sync":
                raise
            logger.warning(
                "job_enqueue_fallback_sync", job_task=task.name, job_id=message.id, error=str(exc)
            )
            fallback = self._sync_fallback()
            fallback.enqueue(message)
            return JobRef(message.id, fallback)
        return JobRef(message.id, backend)

    def _sync_fallback(self) -> Backend:
        with self._lock:
            if self._fallback_backend is None:
                from .backends.sync import SyncBackend

                self._fallback_backend = SyncBackend()
                self._fallback_backend.bind(self)
            return self._fallback_backend

    def get(self, job_id: str) -> JobRef[Any]:
        """A :class:`~kit_jobs.JobRef` for a job id (from a log line, a URL)."""
        if not isinstance(job_id, str) or not job_id:
            raise JobNotFound(f"job id {job_id!r}: give the id enqueue returned")
        return JobRef(job_id, self.backend)

    # ------------------------------------------------------------------ inspection
    def counts(self) -> dict[JobStatus, int]:
        """Jobs per status."""
        return self.backend.counts()

    def list(self, status: JobStatus | str, limit: int = 100) -> builtins.list[JobInfo]:
        """Jobs in ``status`` (newest first where the backend keeps an order)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit={limit!r}: give a whole number >= 1")
        return self.backend.list_jobs(_parse_status(status), limit)

    def info(self, job_id: str) -> JobInfo:
        """Everything known about one job."""
        return self.backend.info(job_id)

    def failed(self, limit: int = 100) -> builtins.list[JobInfo]:
        """Failed jobs, with their last error."""
        return self.list(JobStatus.FAILED, limit)

    def stuck(self) -> builtins.list[JobInfo]:
        """Running jobs past their timeout or whose worker stopped heartbeating."""
        return self.backend.stuck()

    def retry(self, job_id: str) -> bool:
        """Run a failed or canceled job again, under the same id."""
        return self.backend.retry(job_id)

    def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not started."""
        return self.backend.cancel(job_id)

    def clear(self, status: JobStatus | str) -> int:
        """Forget finished/failed/canceled jobs, or cancel queued/scheduled/waiting ones."""
        return self.backend.clear(_parse_status(status))

    # ------------------------------------------------------------------ health
    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if the backend can take jobs now, False if it cannot.

        sync and thread: True until :meth:`shutdown`. rq: True if Redis answers ``PING``
        within ``timeout`` seconds (``fallback="sync"`` does not make a Redis that is down
        healthy). Never raises for a backend that is down and never waits longer than
        ``timeout``; a ``timeout`` that is not a number of seconds > 0 raises
        :class:`~kit_jobs.ConfigurationError`.

        Example::

            >>> from kit_jobs import Jobs
            >>> jobs = Jobs(backend="thread")
            >>> jobs.ping()
            True
            >>> _ = jobs.shutdown()
            >>> jobs.ping()
            False
            >>> Jobs(backend="rq", redis_url="redis://127.0.0.1:1/0").ping(timeout=0.5)
            False
        """
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not (0 < timeout < math.inf)
        ):
            raise ConfigurationError(f"timeout={timeout!r}: give seconds > 0")
        return self.backend.ping(float(timeout))

    # ------------------------------------------------------------------ life cycle
    def start(self) -> Jobs:
        """Start the backend (the thread pool; a Redis connection check). Idempotent."""
        self.backend.start()
        return self

    def start_scheduler(self) -> Scheduler:
        """Start firing ``@scheduled`` tasks from this process (idempotent).

        Several processes may run a scheduler: on rq each tick is claimed in Redis, so it
        fires once; on thread and sync, run one scheduler per app.
        """
        from ._schedule import Scheduler

        with self._lock:
            if self._scheduler is None:
                self._scheduler = Scheduler(self)
            scheduler = self._scheduler
        scheduler.start()
        return scheduler

    def stop_scheduler(self) -> None:
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.stop()

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> builtins.list[str]:
        """Stop the scheduler, then the backend (see :meth:`Backend.shutdown`).

        Returns the ids of jobs that did not run here; each is logged.
        """
        self.stop_scheduler()
        return self.backend.shutdown(wait=wait, timeout=timeout)

    def __enter__(self) -> Jobs:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=True)

    # ------------------------------------------------------------------ workers
    def work(
        self,
        *,
        queues: builtins.list[str] | None = None,
        burst: bool = False,
        with_scheduler: bool = True,
        heartbeat_ttl: float = 30.0,
        name: str | None = None,
    ) -> None:
        """Run jobs in this process until stopped (SIGINT/SIGTERM) or, with ``burst``,
        until the queues are empty. ``kit-jobs worker`` calls this.

        rq: a kit worker on ``queues`` (default: the queues of every registered task).
        thread: starts the pool and the scheduler and blocks; a signal drains and stops.
        """
        if self.backend.name == "rq":
            from .backends.rq import RQBackend
            from .worker import KitWorker

            assert isinstance(self.backend, RQBackend)
            worker = KitWorker(
                self,
                queues=queues,
                heartbeat_ttl=heartbeat_ttl,
                name=name,
            )
            worker.work(burst=burst, with_scheduler=with_scheduler)
            return
        stop = threading.Event()

        def request_stop(signum: int, frame: object) -> None:
            logger.info("jobs_stop_requested", signal=signal.Signals(signum).name)
            stop.set()

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.start()
            if with_scheduler:
                self.start_scheduler()
            while not stop.is_set():
                if burst and self.counts_pending() == 0:
                    break
                stop.wait(0.2)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.shutdown(wait=True)

    def counts_pending(self) -> int:
        counts = self.counts()
        return sum(
            counts.get(s, 0)
            for s in (JobStatus.QUEUED, JobStatus.WAITING, JobStatus.RUNNING, JobStatus.SCHEDULED)
        )

    def __repr__(self) -> str:
        return f"<Jobs backend={self.backend.name}>"


# ---------------------------------------------------------------------- the default

_default: Jobs | None = None
_default_lock = threading.Lock()


def get_jobs() -> Jobs:
    """The default runtime ``task.enqueue()`` uses; built from ``KIT_JOBS_*`` environment
    variables on first use unless :func:`configure` set one."""
    global _default
    jobs = _default
    if jobs is not None:
        return jobs
    with _default_lock:
        if _default is None:
            _default = Jobs.from_config(os.environ)
        return _default


def configure(jobs: Jobs | None = None, /, **options: Any) -> Jobs:
    """Set the default runtime: ``configure(Jobs(...))`` or ``configure(backend="rq", ...)``.

    The previous default is returned to nobody: shut it down first if it ran jobs.

    Example::

        >>> import kit_jobs
        >>> kit_jobs.configure(backend="sync").backend.name
        'sync'
    """
    global _default
    if jobs is not None and options:
        raise ConfigurationError("configure() takes a Jobs or options, not both")
    new = jobs if jobs is not None else Jobs(**options)
    if not isinstance(new, Jobs):
        raise ConfigurationError(f"configure() needs a Jobs instance, got {new!r}")
    with _default_lock:
        _default = new
    return new


def reset_default() -> Jobs | None:
    """Forget the default runtime (tests); returns it so the caller can shut it down."""
    global _default
    with _default_lock:
        old, _default = _default, None
    return old
