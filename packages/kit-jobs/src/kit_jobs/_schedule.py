"""Schedules: ``@scheduled(cron=...)`` or ``@scheduled(interval=...)`` enqueues a task at
fixed times, from every process that runs a scheduler (``Jobs.start_scheduler()``, or
``kit-jobs worker``, which starts one).

Example::

    >>> from kit_jobs import Jobs, scheduled
    >>> from kit_jobs._schedule import SCHEDULES, Scheduler
    >>> runs = []
    >>> @scheduled(interval=10, name="doc-heartbeat", args=["ping"])
    ... def heartbeat(word: str) -> None:
    ...     runs.append(word)
    >>> SCHEDULES["doc-heartbeat"].next_after(95.0)  # ticks are multiples of 10 s
    100.0
    >>> scheduler = Scheduler(Jobs(backend="sync"), schedules=[SCHEDULES["doc-heartbeat"]])
    >>> scheduler.run_pending(now=100.0)  # the first pass arms the schedule
    []
    >>> import structlog
    >>> with structlog.testing.capture_logs() as logs:
    ...     refs = scheduler.run_pending(now=125.0)  # ticks 110 and 120 are due
    >>> [ref.status().value for ref in refs], runs
    (['finished', 'finished'], ['ping', 'ping'])
    >>> [(entry["event"], entry["tick"]) for entry in logs]
    [('schedule_fired', 110.0), ('schedule_fired', 120.0)]
    >>> del SCHEDULES["doc-heartbeat"]

How ticks are computed:

* ``cron=`` uses the croniter library: 5 fields ``minute hour day month weekday``
  (``"0 9 * * 1-5"``: 09:00 on weekdays), ``@daily``-style aliases, a 6th field for
  seconds (``"* * * * * */10"``: every 10 s) and ``H`` (spread by the schedule's name).
  Ticks are computed in ``tz`` (an IANA name, default ``"UTC"``) with aware datetimes,
  so ``"0 9 * * *"`` with ``tz="Europe/Paris"`` fires at 09:00 Paris time in winter and
  in summer. On the day clocks go forward a time inside the skipped hour fires at the
  first valid instant after it (02:30 → 03:00); on the day they go back a time inside
  the repeated hour matches twice, once per offset (croniter's behaviour).
* ``interval=`` seconds: ticks are the multiples of the interval since the Unix epoch
  (``interval=3600`` fires on the hour, UTC), so every process computes the same ticks
  whenever it started.

Firing, and what "once" means:

* A scheduler only fires ticks that fall while it runs: ticks missed while no scheduler
  ran (a deploy, a stopped worker) are **not back-filled**. The first pass over a
  schedule only notes the time.
* Each due tick is first claimed with ``backend.claim_tick(name, tick, ttl)``; only the
  claimer enqueues. On ``rq`` the claim is ``SET ... NX EX`` in Redis, so a tick fires
  exactly once however many scheduler processes share the Redis. On ``sync`` and
  ``thread`` the claim is in memory: run one scheduler per store (per app process).
* A tick is still fired if the scheduler sees it late (a stalled process) by less than
  ``grace = max(period, 60 s)``, where ``period`` is the interval or the gap from the
  cron tick to the next; older ones are dropped and logged as ``schedule_ticks_missed``.
  The claim lives ``ttl = 2 * grace`` seconds: longer than any scheduler may still try
  the tick, with room for clock skew between hosts (up to ``grace / 2``).
* The fired job's log context carries ``schedule`` and ``schedule_tick`` (epoch
  seconds), so its log lines say which tick they serve.
* A failing claim or enqueue (Redis down: :class:`~kit_jobs.BackendUnavailable`) is
  logged as ``schedule_enqueue_failed`` and that tick is lost for this scheduler; the
  loop keeps going. Log events: ``schedule_fired``, ``schedule_tick_skipped`` (another
  scheduler claimed it), ``schedule_ticks_missed``, ``schedule_enqueue_failed``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import structlog

from . import _clock
from ._context import logger
from ._retry import Retry
from ._serialization import check_arguments
from ._task import UNSET, Task, Unique, _check_name, given_options, job
from .exceptions import ConfigurationError, KitJobsError

if TYPE_CHECKING:
    from ._ref import JobRef
    from ._runtime import Jobs


def _croniter() -> Any:
    """croniter, imported on first use: it (and dateutil) cost ~0.1 s at import, and
    only apps with cron schedules need them."""
    from croniter import croniter

    return croniter


def _cron_error() -> type[Exception]:
    from croniter import CroniterError

    return CroniterError


__all__ = ["SCHEDULES", "Schedule", "Scheduler", "due_ticks", "scheduled"]

P = ParamSpec("P")
R = TypeVar("R")

#: Every schedule of this process, by name.
SCHEDULES: dict[str, Schedule] = {}
_schedules_lock = threading.Lock()

#: A tick is still fired up to ``max(period, MIN_GRACE)`` seconds late (its grace).
MIN_GRACE = 60.0
#: The scheduler thread wakes at least this often (new schedules, wall-clock steps).
MAX_SLEEP = 5.0

_CRON_HELP = (
    "use 5 fields 'minute hour day month weekday' like '0 9 * * 1-5' (09:00 on weekdays), "
    "an alias like '@daily', or 6 fields with seconds last like '* * * * * */10' (every 10 s)"
)


def _utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


@dataclass(frozen=True)
class Schedule:
    """When to enqueue a task: ``cron`` (in ``tz``) or every ``interval`` seconds.

    Built by :func:`scheduled`; validated on construction (a bad cron string, time zone
    or interval raises :class:`~kit_jobs.ConfigurationError`). ``args``/``kwargs`` are
    the JSON arguments every run gets.

    Example::

        >>> from kit_jobs import job
        >>> from kit_jobs._schedule import Schedule
        >>> @job(name="doc.report")
        ... def report() -> None: ...
        >>> daily = Schedule("doc-report", report, cron="0 9 * * *", tz="Europe/Paris")
        >>> from datetime import UTC, datetime
        >>> winter = datetime(2025, 1, 15, 12, tzinfo=UTC).timestamp()
        >>> datetime.fromtimestamp(daily.next_after(winter), UTC).isoformat()
        '2025-01-16T08:00:00+00:00'
    """

    name: str
    task: Task[Any, Any]
    cron: str | None = None
    interval: float | None = None
    tz: str = "UTC"
    args: tuple[Any, ...] = field(default=(), hash=False)
    kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _check_name("schedule name", self.name)
        if not isinstance(self.task, Task):
            raise ConfigurationError(
                f"schedule {self.name!r}: task={self.task!r} is not a @job task"
            )
        if self.cron is not None and self.interval is not None:
            raise ConfigurationError(
                f"schedule {self.name!r}: give cron= or interval=, not both "
                "(e.g. cron='0 9 * * *' or interval=3600)"
            )
        if self.cron is None and self.interval is None:
            raise ConfigurationError(
                f"schedule {self.name!r}: give cron='0 9 * * *' (minute hour day month "
                "weekday) or interval=3600 (seconds)"
            )
        if self.interval is not None:
            self._check_interval(self.interval)
            if self.tz != "UTC":
                raise ConfigurationError(
                    f"schedule {self.name!r}: tz={self.tz!r} applies to cron= schedules only; "
                    "interval ticks are multiples of the interval since the epoch"
                )
        else:
            self._check_tz(self.tz)
            self._check_cron(self.cron)
        if isinstance(self.args, str | bytes) or not isinstance(self.args, Sequence):
            raise ConfigurationError(
                f"schedule {self.name!r}: args={self.args!r}: give a list, e.g. args=[42]"
            )
        if not isinstance(self.kwargs, Mapping):
            raise ConfigurationError(
                f"schedule {self.name!r}: kwargs={self.kwargs!r}: give a dict, "
                "e.g. kwargs={'user_id': 42}"
            )
        args, kwargs = tuple(self.args), dict(self.kwargs)
        self.task.check_call(args, kwargs)
        json_args, json_kwargs = check_arguments(self.task.name, args, kwargs)
        object.__setattr__(self, "args", tuple(json_args))
        object.__setattr__(self, "kwargs", json_kwargs)

    def _check_interval(self, interval: object) -> None:
        if (
            isinstance(interval, bool)
            or not isinstance(interval, int | float)
            or not (0 < interval < math.inf)
        ):
            raise ConfigurationError(
                f"schedule {self.name!r}: interval={interval!r}: give seconds as a number > 0, "
                "e.g. interval=3600 for hourly"
            )

    def _check_tz(self, tz: object) -> None:
        try:
            if not isinstance(tz, str) or not tz:
                raise ValueError(tz)
            ZoneInfo(tz)
        except (ValueError, KeyError, OSError):
            raise ConfigurationError(
                f"schedule {self.name!r}: tz={tz!r} is not a known time zone; use an IANA "
                "name like 'Europe/Paris', 'America/New_York' or 'UTC'"
            ) from None

    def _check_cron(self, cron: object) -> None:
        if not isinstance(cron, str) or not cron.strip():
            raise ConfigurationError(
                f"schedule {self.name!r}: cron={cron!r} is not a cron string; {_CRON_HELP}"
            )
        try:
            _croniter()(cron, datetime.now(self.zone), hash_id=self.name)
        except (_cron_error(), ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"schedule {self.name!r}: cron={cron!r} is not a valid cron expression "
                f"({exc}); {_CRON_HELP}"
            ) from None
        try:
            self.next_after(_clock.wall())
        except _cron_error():
            raise ConfigurationError(
                f"schedule {self.name!r}: cron={cron!r} never matches from now on (a date "
                "that does not exist, like '0 0 30 2 *', or a year in the past)"
            ) from None

    @property
    def zone(self) -> ZoneInfo:
        """The :class:`~zoneinfo.ZoneInfo` of ``tz``."""
        return ZoneInfo(self.tz)

    def next_after(self, ts: float) -> float:
        """The first tick strictly after ``ts`` (epoch seconds).

        Example::

            >>> from kit_jobs import job
            >>> from kit_jobs._schedule import Schedule
            >>> @job(name="doc.poll")
            ... def poll() -> None: ...
            >>> Schedule("doc-poll", poll, interval=30).next_after(61.5)
            90.0
        """
        if self.interval is not None:
            return _next_multiple(float(self.interval), ts)
        assert self.cron is not None
        start = datetime.fromtimestamp(ts, tz=self.zone)
        return float(_croniter()(self.cron, start, hash_id=self.name).get_next(float))

    def period(self, tick: float) -> float:
        """Seconds from ``tick`` to the next tick (the interval, or the cron gap there)."""
        if self.interval is not None:
            return float(self.interval)
        try:
            return self.next_after(tick) - tick
        except _cron_error():  # the last tick of a cron whose year field runs out
            return MIN_GRACE

    def grace(self, tick: float) -> float:
        """How late ``tick`` may still be fired: ``max(period, 60 s)``."""
        return max(self.period(tick), MIN_GRACE)

    def claim_ttl(self, tick: float) -> float:
        """Seconds the claim on ``tick`` lives in the backend: ``2 * grace``."""
        return 2.0 * self.grace(tick)

    def _spec(self) -> tuple[Any, ...]:
        return (self.task.name, self.cron, self.interval, self.tz, self.args, self.kwargs)

    def __repr__(self) -> str:
        when = f"cron={self.cron!r} tz={self.tz}" if self.cron else f"interval={self.interval}"
        return f"<Schedule {self.name} task={self.task.name} {when}>"


def _next_multiple(interval: float, ts: float) -> float:
    """The smallest ``k * interval`` strictly greater than ``ts``, ``k`` an integer."""
    k = math.floor(ts / interval) + 1
    while k * interval <= ts:  # float rounding in the division
        k += 1
    while (k - 1) * interval > ts:
        k -= 1
    return float(k * interval)


def due_ticks(
    schedule: Schedule, since: float, until: float, *, limit: int = 10_000
) -> list[float]:
    """The ticks of ``schedule`` in ``(since, until]``, oldest first, at most ``limit``.

    Example::

        >>> from kit_jobs import job
        >>> from kit_jobs._schedule import Schedule, due_ticks
        >>> @job(name="doc.tick")
        ... def tick() -> None: ...
        >>> due_ticks(Schedule("doc-tick", tick, interval=10), 100.0, 130.0)
        [110.0, 120.0, 130.0]
    """
    ticks: list[float] = []
    if until <= since:
        return ticks
    if schedule.interval is not None:
        interval = float(schedule.interval)
        tick = _next_multiple(interval, since)
        k = round(tick / interval)
        while tick <= until and len(ticks) < limit:
            ticks.append(tick)
            k += 1
            tick = float(k * interval)
        return ticks
    assert schedule.cron is not None
    start = datetime.fromtimestamp(since, tz=schedule.zone)
    it = _croniter()(schedule.cron, start, hash_id=schedule.name)
    while len(ticks) < limit:
        try:
            tick = float(it.get_next(float))
        except _cron_error():  # a cron with a year field that has run out
            break
        if tick > until:
            break
        ticks.append(tick)
    return ticks


def _eligible_ticks(schedule: Schedule, last: float, now: float) -> tuple[list[float], bool]:
    """The ticks in ``(last, now]`` seen within their grace period, oldest first, and
    whether older ones were dropped. Bounded by the grace, however long ``last`` is ago."""
    if schedule.interval is not None:
        since = max(last, now - schedule.grace(now))  # now - tick < grace <=> tick > since
        missed = since > last and schedule.next_after(last) <= since
        return due_ticks(schedule, since, now), missed
    assert schedule.cron is not None
    # Walk back from now: cron ticks are whole seconds, so floor(now) + 0.5 lies after
    # every tick <= now and before the next one.
    start = datetime.fromtimestamp(math.floor(now) + 0.5, tz=schedule.zone)
    it = _croniter()(schedule.cron, start, hash_id=schedule.name)
    ticks: list[float] = []
    missed = False
    while True:
        try:
            tick = float(it.get_prev(float))
        except _cron_error():
            break
        if tick <= last:
            break
        if tick > now:
            continue
        if now - tick >= schedule.grace(tick):
            missed = True
            break
        ticks.append(tick)
    ticks.reverse()
    return ticks, missed


def register_schedule(schedule: Schedule) -> None:
    """Add ``schedule`` to :data:`SCHEDULES` (``@scheduled`` does it).

    The same schedule registered again (a module imported twice) replaces the first;
    another schedule under a taken name raises :class:`~kit_jobs.ConfigurationError`.
    """
    with _schedules_lock:
        existing = SCHEDULES.get(schedule.name)
        if existing is not None and existing._spec() != schedule._spec():
            raise ConfigurationError(
                f"two schedules are named {schedule.name!r} ({existing!r} and {schedule!r}); "
                "give one of them @scheduled(name=...)"
            )
        SCHEDULES[schedule.name] = schedule


def scheduled(
    *,
    cron: str | None = None,
    interval: float | None = None,
    tz: str | None = None,
    name: str | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    queue: str = UNSET,
    retry: int | Retry | None = UNSET,
    timeout: float | None = UNSET,
    concurrency: int | None = UNSET,
    unique: bool | str | Unique | None = UNSET,
    result_ttl: int | None = UNSET,
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """Enqueue the decorated task on a schedule; returns the :class:`~kit_jobs.Task`.

    Args:
        cron: a cron expression, evaluated in ``tz`` (see the module docs).
        interval: seconds between runs (> 0); ticks are multiples of it since the epoch.
        tz: IANA time zone of ``cron`` (default ``"UTC"``).
        name: the schedule's name (default: the task's name). On a plain function it
            names the task too.
        args, kwargs: JSON arguments for every run, checked against the signature now.
        queue, retry, timeout, concurrency, unique, result_ttl: :func:`~kit_jobs.job`
            options, for a plain function only; above ``@job``, set them on ``@job``.

    Raises :class:`~kit_jobs.ConfigurationError` at decoration time for a malformed
    cron string, an unknown time zone, both or neither of cron/interval, arguments the
    task cannot take, or a schedule name already taken.

    Example::

        >>> from kit_jobs import job, scheduled
        >>> @scheduled(cron="0 9 * * 1-5", tz="Europe/Paris", name="doc-digest")
        ... @job(queue="mail", retry=2)
        ... def send_digest() -> None: ...
        >>> send_digest.queue
        'mail'
        >>> @scheduled(interval=3600, queue="maintenance", name="doc-purge", kwargs={"days": 30})
        ... def purge(days: int) -> int:
        ...     return days
        >>> purge.name, purge.queue
        ('doc-purge', 'maintenance')
        >>> from kit_jobs._schedule import SCHEDULES
        >>> SCHEDULES.pop("doc-digest"), SCHEDULES.pop("doc-purge")  # doctest: +ELLIPSIS
        (<Schedule doc-digest task=... cron='0 9 * * 1-5' tz=Europe/Paris>, <Schedule doc-purge ...>)
    """
    job_options = given_options(
        queue=queue,
        retry=retry,
        timeout=timeout,
        concurrency=concurrency,
        unique=unique,
        result_ttl=result_ttl,
    )
    # Fail at decoration time, before the function is touched, when the timing is wrong.
    if cron is not None and interval is not None:
        raise ConfigurationError(
            "@scheduled: give cron= or interval=, not both (e.g. cron='0 9 * * *' or interval=3600)"
        )
    if cron is None and interval is None:
        raise ConfigurationError(
            "@scheduled: give cron='0 9 * * *' (minute hour day month weekday) or "
            "interval=3600 (seconds)"
        )

    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise ConfigurationError(f"@scheduled: args={args!r}: give a list, e.g. args=[42]")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ConfigurationError(
            f"@scheduled: kwargs={kwargs!r}: give a dict, e.g. kwargs={{'user_id': 42}}"
        )

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        if isinstance(fn, Task):
            if job_options:
                raise ConfigurationError(
                    f"@scheduled above @job on {fn.name!r}: set {', '.join(sorted(job_options))} "
                    "on @job(...), not on @scheduled"
                )
            task: Task[P, R] = fn
        else:
            if not callable(fn):
                raise ConfigurationError(f"@scheduled needs a function or a @job task, got {fn!r}")
            task = job(name=name, **job_options)(fn)
        schedule = Schedule(
            name or task.name,
            task,
            cron=cron,
            interval=interval,
            tz=tz if tz is not None else "UTC",
            args=tuple(args),
            kwargs=dict(kwargs) if kwargs is not None else {},
        )
        register_schedule(schedule)
        return task

    return decorate


class Scheduler:
    """Fires the due ticks of every schedule; a daemon thread once started.

    ``Jobs.start_scheduler()`` makes and starts one; tests can build one and drive it
    with :meth:`run_pending` instead. ``schedules`` restricts it to those schedules
    (default: :data:`SCHEDULES`, re-read on every pass so late imports are picked up).

    Example::

        >>> from kit_jobs import Jobs, job
        >>> from kit_jobs._schedule import Schedule, Scheduler
        >>> @job(name="doc.beat")
        ... def beat() -> str:
        ...     return "beat"
        >>> scheduler = Scheduler(Jobs(backend="sync"), schedules=[Schedule("doc-beat", beat, interval=5)])
        >>> scheduler.run_pending(now=1000.0)
        []
        >>> import structlog
        >>> with structlog.testing.capture_logs():  # one schedule_fired line per tick
        ...     refs = scheduler.run_pending(now=1010.0)
        >>> [ref.result() for ref in refs]
        ['beat', 'beat']
        >>> scheduler.run_pending(now=1010.0)
        []
    """

    def __init__(self, jobs: Jobs, *, schedules: Iterable[Schedule] | None = None) -> None:
        self.jobs = jobs
        self._only: tuple[Schedule, ...] | None = (
            tuple(schedules) if schedules is not None else None
        )
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Start the scheduler thread (a daemon). Idempotent.

        After a :meth:`stop`, the ticks that fell while stopped are not back-filled.
        """
        with self._state_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            with self._lock:
                self._last.clear()  # the first pass arms every schedule afresh
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="kit-jobs-scheduler", daemon=True
            )
            self._thread.start()
        logger.info("scheduler_started", schedules=sorted(s.name for s in self.schedules()))

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread and wait for it (up to ``timeout`` seconds). Idempotent.

        A job the sync backend is running for a tick is let finish.
        """
        with self._state_lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            logger.info("scheduler_stopped")

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            now = _clock.wall()
            try:
                self.run_pending(now)
                wake = self.next_wakeup()
                delay = (
                    MAX_SLEEP if wake is None else min(max(wake - _clock.wall(), 0.0), MAX_SLEEP)
                )
            except Exception:  # keep the thread alive whatever a pass hits
                logger.exception("scheduler_pass_failed")
                delay = 1.0
            stop.wait(delay)

    # ------------------------------------------------------------------ ticks
    def schedules(self) -> list[Schedule]:
        """The schedules this scheduler fires."""
        if self._only is not None:
            return list(self._only)
        with _schedules_lock:
            return list(SCHEDULES.values())

    def next_wakeup(self) -> float | None:
        """The earliest next tick over the armed schedules (epoch seconds), or None."""
        with self._lock:
            last = dict(self._last)
        wakes = [s.next_after(last[s.name]) for s in self.schedules() if s.name in last]
        return min(wakes) if wakes else None

    def run_pending(self, now: float) -> list[JobRef[Any]]:
        """Fire every tick due at ``now`` (epoch seconds) since the previous pass.

        The first pass over a schedule only notes ``now``: earlier ticks are not
        back-filled. Each due tick is claimed from the backend and enqueued only if
        this call won the claim, so a tick is fired once per backend store. Returns the
        jobs enqueued by this call.
        """
        refs: list[JobRef[Any]] = []
        with self._lock:
            current = self.schedules()
            names = {s.name for s in current}
            for stale in set(self._last) - names:
                del self._last[stale]
            for schedule in current:
                last = self._last.get(schedule.name)
                if last is None:
                    self._last[schedule.name] = now
                    continue
                if now <= last:  # no time passed, or the wall clock stepped back
                    continue
                refs.extend(self._fire_due(schedule, last, now))
                self._last[schedule.name] = now
        return refs

    def _fire_due(self, schedule: Schedule, last: float, now: float) -> list[JobRef[Any]]:
        ticks, missed = _eligible_ticks(schedule, last, now)
        if missed:
            logger.warning(
                "schedule_ticks_missed",
                schedule=schedule.name,
                since=_utc_iso(last),
                until=_utc_iso(now),
                reason="seen later than the grace period, max(period, 60 s)",
            )
        refs: list[JobRef[Any]] = []
        for tick in ticks:
            ref = self._fire(schedule, tick)
            if ref is not None:
                refs.append(ref)
        return refs

    def _fire(self, schedule: Schedule, tick: float) -> JobRef[Any] | None:
        name = schedule.name
        try:
            if not self.jobs.backend.claim_tick(name, tick, schedule.claim_ttl(tick)):
                logger.info(
                    "schedule_tick_skipped",
                    schedule=name,
                    tick=tick,
                    tick_at=_utc_iso(tick),
                    reason="claimed by another scheduler",
                )
                return None
            with structlog.contextvars.bound_contextvars(schedule=name, schedule_tick=tick):
                ref = self.jobs.submit(schedule.task, schedule.args, dict(schedule.kwargs))
        except KitJobsError as exc:  # BackendUnavailable, BackendClosed, ...
            logger.error(
                "schedule_enqueue_failed",
                schedule=name,
                tick=tick,
                tick_at=_utc_iso(tick),
                error=f"{type(exc).__name__}: {exc}",
            )
            return None
        except Exception:
            logger.exception(
                "schedule_enqueue_failed", schedule=name, tick=tick, tick_at=_utc_iso(tick)
            )
            return None
        logger.info(
            "schedule_fired",
            schedule=name,
            job_task=schedule.task.name,
            job_id=ref.id,
            tick=tick,
            tick_at=_utc_iso(tick),
        )
        return ref

    def __repr__(self) -> str:
        return f"<Scheduler running={self.running} jobs={self.jobs!r}>"
