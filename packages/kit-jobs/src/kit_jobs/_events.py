"""Events: ``dispatch(SomethingHappened(...))`` calls every function that
``@listen``-s to it, inline or as a background job.

An event is a ``@dataclass`` subclass of :class:`Event` whose fields are JSON values
(str, int, float, bool, None, lists and dicts of them): background listeners get it
through the job queue as JSON and rebuild it with ``EventClass(**fields)``. A tuple
arrives as a list, as job arguments do; a datetime is refused at dispatch (send
``when.isoformat()``), a model object too (send its id).

* ``@listen(UserSignedUp)``: an inline listener, called inside :func:`dispatch`, in the
  caller's thread, in registration order. Its exception propagates to the caller of
  ``dispatch`` (later listeners are not called and no background job is enqueued).
* ``@listen(UserSignedUp, background=True, retry=3, queue="mail")``: the listener runs
  as a job (named ``kit_jobs.listener.<module>.<qualname>``) on the configured backend,
  with the :func:`~kit_jobs.job` options given. ``dispatch`` returns their
  :class:`~kit_jobs.JobRef`. A worker must import the module of the listener; a base
  class listener there also needs the module of the subclass dispatched.
* Listening to a class receives its subclasses' events too (``listen(Event)``: all).

Example::

    >>> from dataclasses import dataclass
    >>> import kit_jobs
    >>> from kit_jobs import Event, Jobs, dispatch, listen
    >>> @dataclass(frozen=True)
    ... class OrderPlaced(Event):
    ...     order_id: int
    ...     total: float
    >>> seen = []
    >>> @listen(OrderPlaced)
    ... def audit(event: OrderPlaced) -> None:
    ...     seen.append(("audit", event.order_id))
    >>> @listen(OrderPlaced, background=True, retry=2)
    ... def send_receipt(event: OrderPlaced) -> None:
    ...     seen.append(("receipt", event))
    >>> refs = dispatch(OrderPlaced(order_id=7, total=9.5), jobs=Jobs(backend="sync"))
    >>> seen
    [('audit', 7), ('receipt', OrderPlaced(order_id=7, total=9.5))]
    >>> [ref.status().value for ref in refs]
    ['finished']

After the database commit
-------------------------

An event about a row should not reach listeners (nor a worker that reads the row)
before the row is committed, nor at all if the transaction rolls back.
``dispatch(event, after_commit=hook)`` validates the event at once, then calls
``hook(deliver)``: the hook arranges for ``deliver()`` (a zero-argument callable) to
run after the surrounding transaction commits, and dispatch returns ``[]``. Set a
default hook once with :func:`set_commit_hook` and write ``after_commit=True``. kit-jobs
imports no database library; with a SQLAlchemy ``Session`` the hook can be::

    from sqlalchemy import event

    def session_commit_hook(session):
        def hook(deliver):
            pending = session.info.get("kit_jobs.after_commit")
            if pending is None:
                pending = session.info["kit_jobs.after_commit"] = []
                event.listen(session, "after_commit", _run_pending)
                event.listen(session, "after_transaction_end", _drop_pending)
            pending.append(deliver)
        return hook

    def _run_pending(session):
        pending = session.info["kit_jobs.after_commit"]
        callbacks = list(pending)
        pending.clear()
        for deliver in callbacks:
            deliver()

    def _drop_pending(session, transaction):
        if transaction.parent is None:  # the outermost transaction ended: rollback, close
            session.info["kit_jobs.after_commit"].clear()

    dispatch(UserSignedUp(user.id), after_commit=session_commit_hook(session))
    kit_jobs.set_commit_hook(lambda deliver: session_commit_hook(db.session())(deliver))

(A bare ``event.listen(session, "after_commit", ..., once=True)`` is not enough: after a
rollback it stays registered and fires on the session's next commit. An event
dispatched inside a savepoint that rolls back is still delivered when the outer
transaction commits.)

Delivery after a commit runs inside ``commit()``, when the data is already committed:
an exception from a listener or from enqueueing is then logged as
``event_delivery_failed`` and not raised, so ``commit()`` does not look failed.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ._context import logger
from ._retry import Retry
from ._serialization import find_unserializable
from ._task import UNSET, Task, Unique, given_options, job
from .exceptions import ConfigurationError, SerializationError

if TYPE_CHECKING:
    from ._ref import JobRef
    from ._runtime import Jobs

__all__ = [
    "EVENT_TYPES",
    "LISTENERS",
    "CommitHook",
    "Event",
    "Listener",
    "dispatch",
    "event_type_name",
    "get_commit_hook",
    "listen",
    "rebuild_event",
    "set_commit_hook",
]

E = TypeVar("E", bound="Event")
R = TypeVar("R")

#: ``hook(deliver)``: run ``deliver()`` once the surrounding transaction commits.
CommitHook = Callable[[Callable[[], None]], object]

#: Every :class:`Event` subclass defined in this process, by ``module.qualname``.
EVENT_TYPES: dict[str, type[Event]] = {}


def event_type_name(cls: type[Event]) -> str:
    """The name an event class travels under: ``f"{module}.{qualname}"``."""
    return f"{cls.__module__}.{cls.__qualname__}"


class Event:
    """Base class of events: subclass it and decorate the subclass with ``@dataclass``.

    Subclasses are registered by ``module.qualname`` when defined, so a worker that
    imported the module can rebuild them from JSON.

    Example::

        >>> from dataclasses import dataclass
        >>> from kit_jobs import Event
        >>> @dataclass(frozen=True)
        ... class UserSignedUp(Event):
        ...     user_id: int
        ...     email: str
        >>> UserSignedUp(1, "ada@example.com")
        UserSignedUp(user_id=1, email='ada@example.com')
    """

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # @dataclass(slots=True) builds a second class with the same name: it registers
        # last, so the registry holds the class the module ends up with.
        EVENT_TYPES[event_type_name(cls)] = cls


@dataclass(frozen=True, eq=False)
class Listener:
    """One ``@listen`` registration: inline when ``task`` is None, else a background job."""

    event_type: type[Event]
    fn: Callable[[Any], object]
    task: Task[[str, dict[str, Any]], None] | None = None

    @property
    def background(self) -> bool:
        return self.task is not None

    def matches(self, event: Event) -> bool:
        return isinstance(event, self.event_type)


#: Every listener of this process, in registration order.
LISTENERS: list[Listener] = []
_lock = threading.Lock()
_commit_hook: CommitHook | None = None


def listen(
    event_type: type[E],
    *,
    background: bool = False,
    queue: str = UNSET,
    retry: int | Retry | None = UNSET,
    timeout: float | None = UNSET,
    concurrency: int | None = UNSET,
    unique: bool | str | Unique | None = UNSET,
    result_ttl: int | None = UNSET,
) -> Callable[[Callable[[E], R]], Callable[[E], R]]:
    """Call the decorated function with every dispatched ``event_type`` (or subclass).

    Args:
        event_type: an :class:`Event` subclass (:class:`Event` itself: every event).
        background: run the listener as a job instead of inside ``dispatch``.
        queue, retry, timeout, concurrency, unique, result_ttl: :func:`~kit_jobs.job`
            options of the background listener (``unique=True``: identical events
            within the window run it once).

    Returns the function unchanged. The same function listening twice to the same
    class is registered once.

    Example::

        >>> from dataclasses import dataclass
        >>> from kit_jobs import Event, dispatch, listen
        >>> @dataclass
        ... class Pinged(Event):
        ...     n: int
        >>> @listen(Pinged)
        ... def pong(event: Pinged) -> None:
        ...     print("pong", event.n)
        >>> dispatch(Pinged(3))
        pong 3
        []
    """
    options = given_options(
        queue=queue,
        retry=retry,
        timeout=timeout,
        concurrency=concurrency,
        unique=unique,
        result_ttl=result_ttl,
    )
    if not isinstance(event_type, type) or not issubclass(event_type, Event):
        raise ConfigurationError(
            f"listen({event_type!r}): give an Event subclass, e.g. "
            "@dataclass class UserSignedUp(kit_jobs.Event): user_id: int"
        )
    if options and not background:
        raise ConfigurationError(
            f"listen({event_type.__qualname__}, {', '.join(f'{k}=' for k in sorted(options))}):"
            " these job options apply to background listeners; add background=True"
        )

    def decorate(fn: Callable[[E], R]) -> Callable[[E], R]:
        if not callable(fn):
            raise ConfigurationError(f"@listen needs a function, got {fn!r}")
        task = _listener_task(fn, options) if background else None
        with _lock:
            for existing in LISTENERS:
                if (
                    existing.fn is fn
                    and existing.event_type is event_type
                    and existing.background == background
                ):
                    return fn
            LISTENERS.append(Listener(event_type, fn, task))
        return fn

    return decorate


def _listener_task(
    fn: Callable[[Any], object], options: dict[str, Any]
) -> Task[[str, dict[str, Any]], None]:
    module = str(getattr(fn, "__module__", None) or "unknown")
    qualname = str(getattr(fn, "__qualname__", None) or type(fn).__qualname__)
    name = f"kit_jobs.listener.{module}.{qualname}".replace("<", "").replace(">", "")

    def run_listener(event_type: str, data: dict[str, Any]) -> None:
        fn(rebuild_event(event_type, data))

    # The task registry tells two listeners apart by the listener's origin, not the
    # wrapper's; no __wrapped__, so the task's signature stays (event_type, data).
    run_listener.__module__ = module
    run_listener.__qualname__ = qualname
    run_listener.__name__ = str(getattr(fn, "__name__", qualname))
    run_listener.__doc__ = getattr(fn, "__doc__", None)
    return job(name=name, **options)(run_listener)


def rebuild_event(event_type: str, data: dict[str, Any]) -> Event:
    """The event a background listener gets: ``EVENT_TYPES[event_type](**data)``."""
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise ConfigurationError(
            f"event type {event_type!r} is not defined in this process; import the module "
            "that defines it where the listener runs (kit-jobs worker --import ...)"
        )
    if not isinstance(data, dict):
        raise ConfigurationError(f"event {event_type}: fields must be a dict, got {data!r}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigurationError(
            f"event {event_type}: cannot rebuild it from fields {sorted(data)}: {exc} "
            "(did the class change since the event was dispatched?)"
        ) from exc


def _event_fields(event: object) -> tuple[str, dict[str, Any]]:
    """Validate ``event``; its type name and JSON fields."""
    if not isinstance(event, Event):
        raise ConfigurationError(
            f"dispatch() needs an Event, got {type(event).__name__}: define "
            "@dataclass class SomethingHappened(kit_jobs.Event) and dispatch an instance"
        )
    cls = type(event)
    name = event_type_name(cls)
    if not dataclasses.is_dataclass(cls):
        raise ConfigurationError(
            f"event {name} is not a dataclass: decorate it with @dataclass (or "
            "@dataclass(frozen=True)) so background listeners can rebuild it from its fields"
        )
    data: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        value = getattr(event, f.name)
        bad = find_unserializable(value, f.name)
        if bad is not None:
            raise SerializationError(
                f"event {name}: field {bad} is not JSON-serializable; event fields must be "
                "str, int, float, bool, None, or lists and dicts of them, because background "
                "listeners get the event as JSON (e.g. send when.isoformat() for a datetime, "
                "an id for a model)"
            )
        data[f.name] = value
    EVENT_TYPES[name] = cls  # rebuild here as the class that was dispatched
    return name, data


def set_commit_hook(hook: CommitHook | None) -> CommitHook | None:
    """Set the hook ``dispatch(..., after_commit=True)`` uses; returns the previous one.

    Example::

        >>> from kit_jobs._events import set_commit_hook
        >>> later = []
        >>> previous = set_commit_hook(later.append)  # a stand-in: deliver when we say
        >>> from dataclasses import dataclass
        >>> from kit_jobs import Event, dispatch, listen
        >>> @dataclass
        ... class Saved(Event):
        ...     row: int
        >>> @listen(Saved)
        ... def on_saved(event: Saved) -> None:
        ...     print("saved", event.row)
        >>> dispatch(Saved(1), after_commit=True)
        []
        >>> later[0]()  # the transaction committed
        saved 1
        >>> set_commit_hook(previous) == later.append
        True
    """
    global _commit_hook
    if hook is not None and not callable(hook):
        raise ConfigurationError(
            f"set_commit_hook({hook!r}): give a callable taking a zero-argument callback, or None"
        )
    with _lock:
        previous, _commit_hook = _commit_hook, hook
    return previous


def get_commit_hook() -> CommitHook | None:
    """The hook set with :func:`set_commit_hook`, if any."""
    return _commit_hook


def dispatch(
    event: Event,
    *,
    after_commit: CommitHook | bool | None = None,
    jobs: Jobs | None = None,
) -> list[JobRef[Any]]:
    """Deliver ``event`` to its listeners: inline ones now, in registration order, then
    background ones enqueued; returns the background jobs.

    Args:
        after_commit: a commit hook (``hook(deliver)``), or ``True`` for the one set with
            :func:`set_commit_hook`: deliver once the transaction commits, never if it
            rolls back; dispatch then returns ``[]``. See the module docs.
        jobs: the runtime background listeners are enqueued on (default:
            :func:`~kit_jobs.get_jobs`).

    Raises :class:`~kit_jobs.ConfigurationError` for an event that is not a dataclass
    :class:`Event`, :class:`~kit_jobs.SerializationError` for a field JSON cannot carry
    (before any listener runs), and whatever an inline listener raises.

    Example::

        >>> from dataclasses import dataclass
        >>> from datetime import datetime, timezone
        >>> from kit_jobs import Event, dispatch
        >>> @dataclass
        ... class Shipped(Event):
        ...     at: datetime
        >>> dispatch(Shipped(datetime(2026, 1, 1, tzinfo=timezone.utc)))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        kit_jobs.exceptions.SerializationError: event ...Shipped: field at (datetime.datetime) is not JSON-serializable; ...
    """
    name, data = _event_fields(event)
    if after_commit is None or after_commit is False:
        return _deliver(event, name, data, jobs)
    hook: Any = after_commit
    if after_commit is True:
        hook = _commit_hook
        if hook is None:
            raise ConfigurationError(
                "dispatch(after_commit=True) needs a commit hook: call "
                "kit_jobs.set_commit_hook(hook) at start-up, or pass "
                "after_commit=hook (a callable that runs its zero-argument callback after "
                "the transaction commits)"
            )
    elif not callable(after_commit):
        raise ConfigurationError(
            f"after_commit={after_commit!r}: give a commit hook (a callable taking a "
            "zero-argument callback), True for the one set with set_commit_hook, or None"
        )

    def deliver() -> None:
        try:
            _deliver(event, name, data, jobs)
        except Exception as exc:
            logger.exception(
                "event_delivery_failed", event_type=name, error=f"{type(exc).__name__}: {exc}"
            )

    hook(deliver)
    return []


def _deliver(event: Event, name: str, data: dict[str, Any], jobs: Jobs | None) -> list[JobRef[Any]]:
    with _lock:
        matching = [listener for listener in LISTENERS if listener.matches(event)]
    for listener in matching:
        if listener.task is None:
            listener.fn(event)
    background = [listener.task for listener in matching if listener.task is not None]
    if not background:
        return []
    if jobs is None:
        from ._runtime import get_jobs

        jobs = get_jobs()
    return [jobs.submit(task, (name, data), {}) for task in background]
