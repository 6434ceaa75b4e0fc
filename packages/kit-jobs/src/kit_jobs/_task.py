"""``@job``: a function becomes a task that can be enqueued on any backend.

Tasks are registered by name in this process. A worker runs only registered names: a
job whose name is not registered fails with :class:`~kit_jobs.UnknownTask` instead of
importing whatever a Redis writer put there.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from ._retry import Retry, coerce_retry
from ._serialization import dumps
from .exceptions import ConfigurationError, UnknownTask

if TYPE_CHECKING:
    from ._ref import JobRef

__all__ = [
    "TASKS",
    "UNSET",
    "Task",
    "Unique",
    "get_task",
    "given_options",
    "job",
    "register",
    "run_at_from",
]

P = ParamSpec("P")
R = TypeVar("R")

#: Every task of this process, by name.
TASKS: dict[str, Task[Any, Any]] = {}

_QUEUE_CHARS = frozenset(string.ascii_letters + string.digits + "_-.")


@dataclass(frozen=True, slots=True)
class Unique:
    """Deduplicate enqueues: a second enqueue with the same key inside ``window`` seconds
    returns the first job instead of adding one.

    ``key`` is a :meth:`str.format` template over the task's parameters
    (``"{user_id}"``, ``"{order.id}"`` is refused: only parameter names); ``None`` means
    all the arguments.

    Example::

        >>> Unique("{user_id}", window=60)
        Unique(key='{user_id}', window=60)
    """

    key: str | None = None
    window: float = 3600.0

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int | float):
            raise ConfigurationError(f"Unique(window={self.window!r}): give seconds as a number")
        if not (0 < self.window < math.inf):
            raise ConfigurationError(f"Unique(window={self.window!r}): give seconds > 0")


def _check_name(kind: str, value: object) -> str:
    if not isinstance(value, str) or not value or not set(value) <= _QUEUE_CHARS:
        raise ConfigurationError(
            f"{kind}={value!r}: use letters, digits, '_', '-' and '.' only (RQ job keys "
            "and queue names are built from it)"
        )
    return value


def _positive(kind: str, value: object, *, integer: bool = False) -> Any:
    if value is None:
        return None
    ok_type = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type) or value <= 0:
        kind_text = "a whole number" if integer else "a number of seconds"
        raise ConfigurationError(f"{kind}={value!r}: give {kind_text} > 0, or None")
    if not integer and not math.isfinite(float(value)):
        raise ConfigurationError(f"{kind}={value!r}: give a finite number of seconds")
    return value


class Task(Generic[P, R]):
    """A registered job function. Call it to run it here and now; ``enqueue`` it to run
    it on the configured backend.

    Example::

        >>> from kit_jobs import job
        >>> @job(retry=2)
        ... def add(a: int, b: int) -> int:
        ...     return a + b
        >>> add(1, 2)
        3
        >>> add.name.endswith("add")
        True
    """

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        queue: str = "default",
        retry: int | Retry | None = None,
        timeout: float | None = None,
        concurrency: int | None = None,
        unique: bool | str | Unique | None = None,
        result_ttl: int | None = None,
    ) -> None:
        if not callable(fn):
            raise ConfigurationError(f"@job needs a function, got {fn!r}")
        if inspect.iscoroutinefunction(fn):
            raise ConfigurationError(
                f"@job on {fn.__qualname__}: async functions are not supported yet; "
                "wrap the coroutine with asyncio.run() in a plain function"
            )
        self.fn = fn
        self.name = _check_name(
            "name", name or f"{fn.__module__}.{fn.__qualname__}".replace("<", "").replace(">", "")
        )
        self.queue = _check_name("queue", queue)
        self.retry: Retry | None = coerce_retry(retry)
        self.timeout: float | None = _positive("timeout", timeout)
        self.concurrency: int | None = _positive("concurrency", concurrency, integer=True)
        self.result_ttl: int | None = _positive("result_ttl", result_ttl, integer=True)
        self._signature = inspect.signature(fn)
        params = self._signature.parameters.values()
        # Calls with exactly the plain positional parameters skip Signature.bind (hot path).
        plain = all(p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty for p in params)
        self._arity: int | None = len(self._signature.parameters) if plain else None
        if "delay" in self._signature.parameters:
            raise ConfigurationError(
                f"@job on {fn.__qualname__}: a parameter named 'delay' clashes with "
                "enqueue(delay=seconds); rename the parameter"
            )
        self.__wrapped__ = fn
        self.__name__ = getattr(fn, "__name__", self.name)
        self.__qualname__ = getattr(fn, "__qualname__", self.name)
        self.__doc__ = fn.__doc__
        self.unique: Unique | None = self._coerce_unique(unique)

    def _coerce_unique(self, unique: bool | str | Unique | None) -> Unique | None:
        if unique is None or unique is False:
            return None
        if unique is True:
            return Unique()
        if isinstance(unique, str):
            unique = Unique(unique)
        if not isinstance(unique, Unique):
            raise ConfigurationError(
                f"unique={unique!r}: give True, a key template like '{{user_id}}', or Unique(...)"
            )
        if unique.key is not None:
            params = self._signature.parameters
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(unique.key) if f is not None]
            except ValueError as exc:
                raise ConfigurationError(f"unique key template {unique.key!r}: {exc}") from exc
            for field in fields:
                if field not in params:
                    raise ConfigurationError(
                        f"unique key template {unique.key!r} names {{{field}}}, which is not a "
                        f"parameter of {self.__qualname__}; use one of {sorted(params)}"
                    )
        return unique

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue}>"

    def attempt(self, retries_left: int | None) -> int:
        """Which attempt a run is (1 for the first), from the retries the job has left."""
        if self.retry is None or retries_left is None:
            return 1
        return self.retry.max - retries_left + 1

    def unique_key(self, args: list[Any], kwargs: dict[str, Any]) -> str | None:
        """The deduplication key of one call, or None when the task is not unique."""
        if self.unique is None:
            return None
        if self.unique.key is None:
            text = dumps([args, kwargs])
        else:
            try:
                bound = self._signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise ConfigurationError(f"job {self.name!r}: {exc}") from exc
            bound.apply_defaults()
            text = self.unique.key.format_map(bound.arguments)
        digest = hashlib.sha256(text.encode()).hexdigest()[:40]
        return f"{self.name}:{digest}"

    def check_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Refuse arguments the function cannot take, at enqueue time."""
        if not kwargs and len(args) == self._arity:
            return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ConfigurationError(
                f"job {self.name!r} cannot take these arguments: {exc}"
            ) from exc

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobRef[R]:
        """Run this task in the background; ``delay=seconds`` runs it no earlier than that.

        Returns a :class:`~kit_jobs.JobRef`. Arguments must be JSON-serializable.
        """
        delay = kwargs.pop("delay", None)
        run_at: float | None = None
        if delay is not None:
            if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
                raise ConfigurationError(f"delay={delay!r}: give seconds as a number >= 0")
            if not math.isfinite(delay):
                raise ConfigurationError(f"delay={delay!r}: give a finite number of seconds")
            if delay > 0:
                from ._clock import wall

                run_at = wall() + float(delay)
        from ._runtime import get_jobs

        return get_jobs().submit(self, args, kwargs, run_at=run_at)

    def enqueue_at(self, when: datetime, *args: P.args, **kwargs: P.kwargs) -> JobRef[R]:
        """Run this task no earlier than ``when`` (an aware datetime)."""
        from ._runtime import get_jobs

        return get_jobs().submit(self, args, kwargs, run_at=run_at_from(when))


def run_at_from(when: datetime) -> float:
    """Epoch seconds of an aware datetime; a naive one is refused as ambiguous."""
    if not isinstance(when, datetime):
        raise ConfigurationError(f"enqueue_at needs a datetime, got {type(when).__name__}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ConfigurationError(
            f"enqueue_at({when!r}): give an aware datetime, e.g. datetime.now(timezone.utc)"
            " + timedelta(hours=1); a naive one is ambiguous"
        )
    return when.astimezone(UTC).timestamp()


#: Marks a ``@job`` option a wrapper (``@scheduled``, ``@listen``) was not given.
UNSET: Any = object()


def given_options(**options: Any) -> dict[str, Any]:
    """The options a wrapper of :func:`job` was actually given (not :data:`UNSET`)."""
    return {key: value for key, value in options.items() if value is not UNSET}


@overload
def job(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def job(
    *,
    name: str | None = None,
    queue: str = "default",
    retry: int | Retry | None = None,
    timeout: float | None = None,
    concurrency: int | None = None,
    unique: bool | str | Unique | None = None,
    result_ttl: int | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def job(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str = "default",
    retry: int | Retry | None = None,
    timeout: float | None = None,
    concurrency: int | None = None,
    unique: bool | str | Unique | None = None,
    result_ttl: int | None = None,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Register a function as a background job.

    Args:
        name: the task's name in the queue (default ``module.qualname``).
        queue: the queue it goes to (RQ queue name; the thread backend shares one pool).
        retry: retries after a failure: an int, or :class:`~kit_jobs.Retry` for backoff.
        timeout: seconds a run may take; past it the run fails as timed out.
        concurrency: at most this many runs at once, across all workers.
        unique: deduplicate enqueues: ``True`` (same arguments), a key template over the
            parameters (``"{user_id}"``), or :class:`~kit_jobs.Unique` with a window.
        result_ttl: seconds a result is kept (RQ's default 500 when None).

    Example::

        >>> from kit_jobs import job, Retry
        >>> @job(queue="mail", retry=Retry(max=5, backoff=2), unique="{user_id}")
        ... def send_welcome(user_id: int) -> None:
        ...     ...
        >>> send_welcome.queue
        'mail'
    """

    def decorate(func: Callable[P, R]) -> Task[P, R]:
        task: Task[P, R] = Task(
            func,
            name=name,
            queue=queue,
            retry=retry,
            timeout=timeout,
            concurrency=concurrency,
            unique=unique,
            result_ttl=result_ttl,
        )
        register(task)
        return task

    if fn is not None:
        return decorate(fn)
    return decorate


def register(task: Task[Any, Any]) -> None:
    """Add a task to this process's registry (``@job`` does it)."""
    existing = TASKS.get(task.name)
    if existing is not None and existing.fn is not task.fn:
        same_origin = getattr(existing.fn, "__module__", None) == getattr(
            task.fn, "__module__", None
        ) and getattr(existing.fn, "__qualname__", None) == getattr(task.fn, "__qualname__", None)
        if not same_origin:
            raise ConfigurationError(
                f"two tasks are named {task.name!r} ({existing.fn!r} and {task.fn!r}); "
                "give one of them @job(name=...)"
            )
    TASKS[task.name] = task


def get_task(name: str) -> Task[Any, Any]:
    """The registered task called ``name``, or :class:`~kit_jobs.UnknownTask`."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTask(
            f"no task named {name!r} is registered in this process; import the module that "
            "defines it (kit-jobs worker --import myapp.tasks) or check the name"
        ) from None
