"""The ``thread`` backend: a bounded pool of threads in this process.

Jobs without a delay and without a concurrency limit go straight to the pool: one
dict entry and one queue put, no lock of the backend's own. Everything else passes
through one scheduler thread (a :class:`threading.Condition` over two heaps):

* delayed jobs and retry backoffs wait in a heap by ``run_at`` (status ``scheduled``),
  never in a sleeping pool thread;
* tasks with ``concurrency=N`` keep a FIFO queue each: a job of a task at its limit
  waits there (status ``waiting``) and reaches the pool only when a run of that task
  returns, so it never parks a pool thread and never holds up other tasks;
* runs of tasks with a ``timeout`` sit in a deadline heap. Python threads cannot be
  killed: a run past its timeout is *reported* (the job fails as timed out, or is
  retried), but its concurrency slot is held until the function really returns, and
  what it returns then is logged and discarded.

Delivery is at-most-once and in memory: jobs are lost when the process ends.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import threading
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

from kit_jobs._clock import mono, wall
from kit_jobs._context import logger
from kit_jobs._execute import execute
from kit_jobs._models import TERMINAL, JobInfo, JobMessage, JobStatus
from kit_jobs.backends._memory import JobRecord, MemoryBackend
from kit_jobs.exceptions import BackendClosed, ConfigurationError

__all__ = ["ThreadBackend"]

_QUEUED = JobStatus.QUEUED
_RUNNING = JobStatus.RUNNING
_FINISHED = JobStatus.FINISHED
_FAILED = JobStatus.FAILED
_CANCELED = JobStatus.CANCELED
_SCHEDULED = JobStatus.SCHEDULED
_WAITING = JobStatus.WAITING

#: Longest the scheduler sleeps while a delayed job waits, so that a wall-clock jump
#: forward (``run_at`` is wall time) is noticed within this many seconds.
_MAX_SLEEP = 30.0


class _Timer:
    """One heap entry: a delayed job (``when`` in wall time) or a run's deadline
    (``when`` in monotonic time, ``attempt`` naming the run)."""

    __slots__ = ("alive", "attempt", "record", "seq", "when")

    def __init__(self, when: float, seq: int, record: JobRecord, attempt: int) -> None:
        self.when = when
        self.seq = seq
        self.record = record
        self.attempt = attempt
        self.alive = True

    def __lt__(self, other: _Timer) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class _TimerHeap:
    """A min-heap of timers with O(1) discard: discarded entries are skipped when they
    reach the top, and the heap is rebuilt once they outnumber the live ones."""

    def __init__(self) -> None:
        self._heap: list[_Timer] = []
        self._dead = 0
        self._seq = 0

    def push(self, when: float, record: JobRecord, attempt: int = 0) -> _Timer:
        self._seq += 1
        timer = _Timer(when, self._seq, record, attempt)
        heapq.heappush(self._heap, timer)
        return timer

    def discard(self, timer: _Timer) -> None:
        if not timer.alive:
            return
        timer.alive = False
        self._dead += 1
        if self._dead > 64 and 2 * self._dead > len(self._heap):
            self._heap = [t for t in self._heap if t.alive]
            heapq.heapify(self._heap)
            self._dead = 0

    def _prune(self) -> None:
        heap = self._heap
        while heap and not heap[0].alive:
            heapq.heappop(heap)
            self._dead -= 1

    def next_when(self) -> float | None:
        self._prune()
        return self._heap[0].when if self._heap else None

    def pop_due(self, now: float) -> list[_Timer]:
        due: list[_Timer] = []
        heap = self._heap
        self._prune()
        while heap and heap[0].when <= now:
            timer = heapq.heappop(heap)
            timer.alive = False
            due.append(timer)
            self._prune()
        return due

    def pop_all(self) -> list[_Timer]:
        live = sorted(t for t in self._heap if t.alive)
        for timer in live:
            timer.alive = False
        self._heap.clear()
        self._dead = 0
        return live


class _Slots:
    """A task's concurrency limit: runs holding a slot (queued in the pool or running,
    including timed-out runs that have not returned) and the FIFO of jobs waiting."""

    __slots__ = ("active", "waiting")

    def __init__(self) -> None:
        self.active = 0
        self.waiting: deque[JobRecord] = deque()


def _default_workers() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


class ThreadBackend(MemoryBackend):
    """Runs jobs on a bounded pool of threads in this process; results, errors and the
    last ``history`` ended jobs are kept in memory.

    Args:
        max_workers: pool size (default ``min(32, cpus + 4)``).
        history: how many ended jobs are remembered for ``status`` and ``result``;
            older ones are forgotten first and then raise :class:`~kit_jobs.JobNotFound`.

    The pool starts on the first ``enqueue`` (or ``start()``). ``shutdown(wait=True)``
    lets queued, waiting and running jobs finish; delayed jobs not yet due, retries
    that would need a backoff, and whatever is still pending when ``timeout`` runs out
    are not run: they end canceled (failed, for a job that already ran and was waiting
    for its retry), and their ids are returned and logged (``jobs_not_run``). Call
    ``shutdown`` (or use ``with Jobs(...)``); at interpreter exit a backend still open is
    drained like ``shutdown(wait=True)``.

    Example::

        >>> from kit_jobs import Jobs, job
        >>> @job(name="doctest.thread.square", concurrency=2)
        ... def square(x: int) -> int:
        ...     return x * x
        >>> with Jobs(backend="thread", max_workers=4) as jobs:
        ...     refs = [jobs.enqueue(square, n) for n in range(5)]
        ...     [ref.result(timeout=10) for ref in refs]
        [0, 1, 4, 9, 16]
        >>> later = jobs.backend  # after the with block: shut down
        >>> later.name, later.closed
        ('thread', True)
    """

    name = "thread"
    delivery = (
        "at-most-once, in-process: jobs live in this process's memory and are lost on "
        "restart or crash"
    )

    def __init__(self, max_workers: int | None = None, history: int = 10_000) -> None:
        super().__init__(history)
        if max_workers is None:
            max_workers = _default_workers()
        elif isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigurationError(
                f"max_workers={max_workers!r}: give a whole number >= 1, or None for "
                "min(32, cpus + 4) (KIT_JOBS_MAX_WORKERS)"
            )
        self.max_workers: int = max_workers
        self._cond = threading.Condition(threading.Lock())
        # Pool input; None tells a worker to exit.
        self._queue: SimpleQueue[JobRecord | None] = SimpleQueue()
        # Jobs put on the pool queue and not yet claimed by a worker. A worker claims a
        # job by popping it, cancel() by popping it first: dict.pop is atomic, so the hot
        # path needs no lock.
        self._pending: dict[JobRecord, bool] = {}
        # Worker thread name -> (record, wall start) of the run it is in, timed-out
        # runs included.
        self._running: dict[str, tuple[JobRecord, float]] = {}
        self._timers = _TimerHeap()  # delayed jobs and backoffs; wall time
        self._scheduled: dict[JobRecord, _Timer] = {}
        self._deadlines = _TimerHeap()  # runs with a timeout; monotonic time
        self._limits: dict[str, _Slots] = {}
        self._workers: list[threading.Thread] = []
        self._scheduler: threading.Thread | None = None
        self._started = False
        self._closed = False  # no new enqueues; draining
        self._stopped = False  # nothing more is run
        self._stop_scheduler = False
        self._reported = False  # shutdown returned its list; later drops log themselves
        self._not_run: list[JobRecord] = []

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._closed

    def ping(self, timeout: float = 2.0) -> bool:
        """True while open: not shut down, and every worker thread of a started pool
        alive. Answers at once."""
        if self._closed:
            return False
        return all(worker.is_alive() for worker in self._workers)

    # -- life cycle ----------------------------------------------------------------
    def start(self) -> None:
        if self._closed:
            raise BackendClosed("the thread backend was shut down; create a new Jobs")
        if self._started:
            return
        with self._cond:
            if self._closed:
                raise BackendClosed("the thread backend was shut down; create a new Jobs")
            if self._started:
                return
            for n in range(self.max_workers):
                worker = threading.Thread(
                    target=self._work, name=f"kit-jobs-worker-{n}", daemon=False
                )
                worker.start()
                self._workers.append(worker)
            self._scheduler = threading.Thread(
                target=self._schedule, name="kit-jobs-scheduler", daemon=False
            )
            self._scheduler.start()
            self._started = True
        _drain_at_exit(self)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> list[str]:
        deadline = None if timeout is None else mono() + max(0.0, float(timeout))
        with self._cond:
            first = not self._closed
            self._closed = True
            if first:
                if wait:  # due but not yet handed over by the scheduler: they run
                    for timer in self._timers.pop_due(wall()):
                        self._scheduled.pop(timer.record, None)
                        self._admit_locked(timer.record)
                for timer in self._timers.pop_all():
                    self._scheduled.pop(timer.record, None)
                    self._drop_locked(timer.record)
                if not wait:
                    self._stop_locked()
        if not first:
            if wait:
                self._join(deadline)
            return []
        if wait:
            with self._cond:
                while self._busy_locked():
                    remaining = None if deadline is None else deadline - mono()
                    if remaining is not None and remaining <= 0:
                        break
                    self._cond.wait(0.1 if remaining is None else min(remaining, 0.1))
                self._stop_locked()
            self._join(deadline)
        with self._cond:
            self._stop_locked()  # not started: nothing to stop, but enqueue races end here
            not_run, self._not_run = self._not_run, []
            self._reported = True
            still = sorted({record.message.id for _name, (record, _started) in self._runs()})
        ids = [r.message.id for r in not_run]
        if ids:
            logger.warning("jobs_not_run", backend=self.name, count=len(ids), job_ids=ids)
        if still:
            logger.warning("jobs_still_running", backend=self.name, count=len(still), job_ids=still)
        return ids

    def _join(self, deadline: float | None) -> None:
        threads = list(self._workers)
        if self._scheduler is not None:
            threads.append(self._scheduler)
        for thread in threads:
            if thread is threading.current_thread():
                continue  # shutdown called from inside a job
            thread.join(None if deadline is None else max(0.0, deadline - mono()))

    def _runs(self) -> list[tuple[str, tuple[JobRecord, float]]]:
        """A snapshot of ``_running``, which workers change without a lock."""
        while True:
            try:
                return list(self._running.items())
            except RuntimeError:  # changed during the copy (a GC pass let a thread in)
                continue

    def _busy_locked(self) -> bool:
        # A job calling shutdown() does not wait for itself.
        me = 1 if threading.current_thread().name in self._running else 0
        return (
            bool(self._pending)
            or len(self._running) > me
            or any(slots.waiting for slots in self._limits.values())
        )

    def _stop_locked(self) -> None:
        """Run nothing more: drop what is queued or waiting, tell the threads to exit."""
        if self._stopped:
            return
        self._stopped = True
        for record in list(self._pending):
            if self._pending.pop(record, False):
                self._drop_locked(record)
        for slots in self._limits.values():
            while slots.waiting:
                self._drop_locked(slots.waiting.popleft())
        for _ in self._workers:
            self._queue.put(None)
        self._stop_scheduler = True
        self._cond.notify_all()

    def _drop_locked(self, record: JobRecord) -> None:
        """End a job that will not run here: canceled, or failed with its last error if
        it already ran and was waiting for a retry."""
        if record.status in TERMINAL:
            return
        if record.attempts == 0:
            record.error = "not run: the thread backend shut down first"
            self.store.ended(record, _CANCELED)
        else:
            self.store.ended(record, _FAILED)
        if self._reported:
            logger.warning("jobs_not_run", backend=self.name, count=1, job_ids=[record.message.id])
        else:
            self._not_run.append(record)

    # -- enqueue ---------------------------------------------------------------------
    def enqueue(self, message: JobMessage) -> None:
        if self._closed:
            raise BackendClosed("the thread backend was shut down; create a new Jobs")
        if not self._started:
            self.start()
        task = message.task
        retry = task.retry
        record = JobRecord(
            message,
            _QUEUED,
            retries_left=retry.max if retry is not None else 0,
            scheduled_for=message.run_at,
        )
        self.store.add(record)
        if message.run_at is not None or task.concurrency is not None:
            with self._cond:
                if self._closed:
                    self.store.forget(message.id)
                    raise BackendClosed("the thread backend was shut down; create a new Jobs")
                self._delay_or_admit_locked(record, message.run_at)
            return
        # The hot path: straight to the pool.
        self._pending[record] = True
        self._queue.put(record)
        if self._stopped and self._pending.pop(record, False):
            # Lost a race with shutdown(): the workers may be gone.
            self.store.forget(message.id)
            raise BackendClosed("the thread backend was shut down; create a new Jobs")

    def _delay_or_admit_locked(self, record: JobRecord, run_at: float | None) -> None:
        if run_at is not None and run_at > wall():
            record.status = _SCHEDULED
            record.scheduled_for = run_at
            timer = self._timers.push(run_at, record)
            self._scheduled[record] = timer
            if self._timers.next_when() == run_at:
                self._cond.notify_all()
        else:
            self._admit_locked(record)

    def _admit_locked(self, record: JobRecord) -> None:
        """Hand a due job to the pool, or to its task's FIFO if the task is at its limit."""
        if self._stopped:
            self._drop_locked(record)
            return
        task = record.message.task
        limit = task.concurrency
        if limit is not None:
            slots = self._limits.get(task.name)
            if slots is None:
                slots = self._limits[task.name] = _Slots()
            if slots.active >= limit:
                record.status = _WAITING
                slots.waiting.append(record)
                return
            slots.active += 1
        record.status = _QUEUED
        self._pending[record] = True
        self._queue.put(record)

    def _release_locked(self, task_name: str) -> None:
        """A run of ``task_name`` returned (or a queued one was canceled): its slot goes
        to the first waiting job, else back to the task."""
        slots = self._limits[task_name]
        while slots.waiting:
            record = slots.waiting.popleft()
            if self._stopped:
                self._drop_locked(record)
                continue
            record.status = _QUEUED
            self._pending[record] = True
            self._queue.put(record)
            return
        slots.active -= 1

    # -- the pool ------------------------------------------------------------------------
    def _work(self) -> None:
        name = threading.current_thread().name
        get = self._queue.get
        run = self._run
        while True:
            record = get()
            if record is None:
                return
            try:
                run(record, name)
            except BaseException as exc:  # a pool thread never dies of a job
                self._crashed(record, name, exc)

    def _run(self, record: JobRecord, name: str) -> None:
        running = self._running
        started = wall()
        running[name] = (record, started)
        if not self._pending.pop(record, False):  # canceled while queued
            del running[name]
            return
        try:
            message = record.message
            task = message.task
            record.attempts = attempt = record.attempts + 1
            record.status = _RUNNING
            record.started_at = started
            timer: _Timer | None = None
            if task.timeout is not None:
                with self._cond:
                    timer = self._deadlines.push(mono() + task.timeout, record, attempt)
                    if self._deadlines.next_when() == timer.when:
                        self._cond.notify_all()
            runtime = self.runtime
            try:
                value = execute(
                    task,
                    message.args,
                    message.kwargs,
                    job_id=message.id,
                    context=message.context,
                    attempt=attempt,
                    backend="thread",
                    hooks=runtime.hooks if runtime is not None else (),
                )
            except BaseException as exc:
                self._returned(record, attempt, started, timer, None, exc, traceback.format_exc())
            else:
                if timer is None and task.concurrency is None:
                    record.result = value
                    record.error = None
                    self.store.ended(record, _FINISHED)
                else:
                    self._returned(record, attempt, started, timer, value, None, "")
        finally:
            del running[name]
            if self._closed:  # draining: wake shutdown() once nothing is left
                with self._cond:
                    if not self._busy_locked():
                        self._cond.notify_all()

    def _returned(
        self,
        record: JobRecord,
        attempt: int,
        started: float,
        timer: _Timer | None,
        value: Any,
        exc: BaseException | None,
        tb: str,
    ) -> None:
        """A run returned or raised: record it unless it was already reported as timed
        out, release its concurrency slot, retry if it failed and may."""
        task = record.message.task
        elapsed = wall() - started
        overran = None if timer is None else mono() - timer.when  # > 0: past the deadline
        with self._cond:
            if timer is not None:
                self._deadlines.discard(timer)
            owned = record.attempts == attempt and record.status is _RUNNING
            if task.concurrency is not None:
                self._release_locked(task.name)
            if owned:
                if exc is None and overran is not None and overran > 0:
                    # Returned past its deadline before the scheduler noticed.
                    ran = (task.timeout or 0.0) + overran
                    record.error = f"JobTimedOut: ran {ran:.3f} s, timeout is {task.timeout} s"
                    record.error_type = "JobTimedOut"
                    record.traceback = ""
                    record.timed_out = True
                    self._failed_locked(record)
                elif exc is None:
                    record.result = value
                    record.error = None
                    self.store.ended(record, _FINISHED)
                else:
                    record.error = f"{type(exc).__name__}: {exc}"
                    record.error_type = type(exc).__name__
                    record.traceback = tb
                    record.timed_out = False
                    self._failed_locked(record)
        if not owned:
            logger.warning(
                "job_late_result_discarded",
                job_id=record.message.id,
                job_task=task.name,
                attempt=attempt,
                duration_s=round(elapsed, 6),
                outcome="returned" if exc is None else f"{type(exc).__name__}: {exc}",
            )

    def _failed_locked(self, record: JobRecord) -> None:
        """The current attempt failed (``record.error`` says how): retry or end it."""
        message = record.message
        retry = message.task.retry
        if record.retries_left > 0 and retry is not None:
            number = max(1, retry.max - record.retries_left + 1)
            delay = retry.delay(number)
            if self._stopped or (delay > 0 and self._closed):
                self._drop_locked(record)  # shut down, or the backoff would outlive the drain
                return
            record.retries_left -= 1
            logger.info(
                "job_retry",
                job_id=message.id,
                job_task=message.task.name,
                attempt=record.attempts,
                delay_s=round(delay, 6),
                error=record.error,
            )
            self._delay_or_admit_locked(record, wall() + delay if delay > 0 else None)
            return
        logger.warning(
            "job_failed",
            job_id=message.id,
            job_task=message.task.name,
            attempts=record.attempts,
            error=record.error,
        )
        self.store.ended(record, _FAILED)

    def _crashed(self, record: JobRecord, name: str, exc: BaseException) -> None:
        """The backend's own bookkeeping raised (a bug, or a store that cannot log):
        fail the job rather than leave it running forever; keep the thread."""
        try:
            logger.error(
                "job_worker_error",
                job_id=record.message.id,
                worker=name,
                error=f"{type(exc).__name__}: {exc}",
            )
            with self._cond:
                if record.status not in TERMINAL:
                    record.error = f"{type(exc).__name__}: {exc}"
                    record.error_type = type(exc).__name__
                    self.store.ended(record, _FAILED)
        except BaseException:  # noqa: S110 - last resort: the thread must survive
            pass

    # -- the scheduler thread -------------------------------------------------------------
    def _schedule(self) -> None:
        cond = self._cond
        with cond:
            while not self._stop_scheduler:
                try:
                    wait = self._tick_locked()
                except Exception as exc:  # keep serving the other jobs
                    logger.error("jobs_scheduler_error", error=f"{type(exc).__name__}: {exc}")
                    wait = 0.1
                cond.wait(wait)

    def _tick_locked(self) -> float | None:
        """Start due jobs, report runs past their deadline; how long to sleep."""
        for timer in self._timers.pop_due(wall()):
            self._scheduled.pop(timer.record, None)
            self._admit_locked(timer.record)
        for timer in self._deadlines.pop_due(mono()):
            self._time_out_locked(timer.record, timer.attempt)
        wait: float | None = None
        next_run = self._timers.next_when()
        if next_run is not None:
            wait = min(_MAX_SLEEP, max(0.0, next_run - wall()))
        next_deadline = self._deadlines.next_when()
        if next_deadline is not None:
            until = max(0.0, next_deadline - mono())
            wait = until if wait is None else min(wait, until)
        return wait

    def _time_out_locked(self, record: JobRecord, attempt: int) -> None:
        if record.attempts != attempt or record.status is not _RUNNING:
            return  # that run ended meanwhile
        task = record.message.task
        worker = next((n for n, (r, _) in self._runs() if r is record), None)
        record.error = (
            f"JobTimedOut: still running after its timeout of {task.timeout} s; the thread "
            "cannot be stopped: its slot is held until it returns, and its result discarded"
        )
        record.error_type = "JobTimedOut"
        record.traceback = ""
        record.timed_out = True
        logger.warning(
            "job_timed_out",
            job_id=record.message.id,
            job_task=task.name,
            attempt=attempt,
            timeout_s=task.timeout,
            worker=worker,
            retries_left=record.retries_left,
        )
        self._failed_locked(record)

    # -- jobs ------------------------------------------------------------------------

    def cancel(self, job_id: str) -> bool:
        record = self.store.get(job_id)
        with self._cond:
            status = record.status
            if status is _QUEUED:
                if not self._pending.pop(record, False):
                    return False  # a worker took it
                task = record.message.task
                if task.concurrency is not None:
                    self._release_locked(task.name)
            elif status is _SCHEDULED:
                timer = self._scheduled.pop(record, None)
                if timer is None:
                    return False
                self._timers.discard(timer)
            elif status is _WAITING:
                slots = self._limits.get(record.message.task.name)
                if slots is None or record not in slots.waiting:
                    return False
                slots.waiting.remove(record)
            else:
                return False
            self.store.ended(record, _CANCELED)
        logger.info("job_canceled", job_id=job_id, job_task=record.message.task.name)
        return True

    # -- inspection --------------------------------------------------------------------
    def _workers_of(self) -> dict[JobRecord, str]:
        return {record: name for name, (record, _) in self._runs()}

    def _with_workers(self, infos: list[JobInfo], records: list[JobRecord]) -> list[JobInfo]:
        workers = self._workers_of()
        for info, record in zip(infos, records, strict=True):
            info.worker = workers.get(record) if info.status is _RUNNING else None
        return infos

    def info(self, job_id: str) -> JobInfo:
        record = self.store.get(job_id)
        return self._with_workers([record.info()], [record])[0]

    def list_jobs(self, status: JobStatus, limit: int = 100) -> list[JobInfo]:
        records = [r for r in reversed(self.store.snapshot()) if r.status is status][:limit]
        return self._with_workers([r.info() for r in records], records)

    def stuck(self) -> list[JobInfo]:
        """Runs past their task's timeout, including timed-out runs whose thread has not
        returned yet (the job itself may already show ``failed`` or a retry)."""
        now = wall()
        oldest: dict[str, tuple[float, str, JobRecord]] = {}
        for name, (record, started) in self._runs():
            timeout = record.message.task.timeout
            if timeout is None or now - started <= timeout:
                continue
            job_id = record.message.id
            if job_id not in oldest or started < oldest[job_id][0]:
                oldest[job_id] = (started, name, record)
        found: list[JobInfo] = []
        for started, name, record in sorted(oldest.values(), key=lambda item: item[0]):
            info = record.info()
            info.started_at = started
            info.worker = name
            found.append(info)
        return found

    def retry(self, job_id: str) -> bool:
        old = self.store.get(job_id)
        with self._cond:
            if old.status not in (_FAILED, _CANCELED) or self.store.records.get(job_id) is not old:
                return False
            if self._closed:
                raise BackendClosed("the thread backend was shut down; create a new Jobs")
            self.store.forget(job_id)
            message = old.message
            message.run_at = None
            retry = message.task.retry
            record = JobRecord(message, _QUEUED, retries_left=retry.max if retry is not None else 0)
            self.store.add(record)
            self._admit_locked(record)
        if not self._started:
            self.start()
        logger.info("job_requeued", job_id=job_id, job_task=message.task.name)
        return True

    def clear(self, status: JobStatus) -> int:
        if status in TERMINAL:
            return self.store.clear_ended(status)
        if status is _RUNNING:
            raise ConfigurationError(
                "running jobs cannot be cleared: a thread cannot be stopped; wait for them, "
                "or clear queued/scheduled/waiting jobs (they are canceled)"
            )
        ids = [r.message.id for r in self.store.snapshot() if r.status is status]
        return sum(1 for job_id in ids if self._cancel_quietly(job_id))

    def _cancel_quietly(self, job_id: str) -> bool:
        try:
            return self.cancel(job_id)
        except LookupError:  # left the history meanwhile
            return False

    # -- schedules -------------------------------------------------------------------


def _drain_at_exit(backend: ThreadBackend) -> None:
    """Drain an open backend when the interpreter exits, before it joins the (non-daemon)
    pool threads, as ``concurrent.futures`` does; a weak reference, so this keeps nothing
    alive."""
    ref = weakref.ref(backend)

    def drain() -> None:
        live = ref()
        if live is not None and not live.closed:
            live.shutdown(wait=True)

    register: Callable[[Callable[[], None]], None] | None = getattr(
        threading, "_register_atexit", None
    )
    if register is None:  # pragma: no cover - every CPython >= 3.9 has it
        return
    with contextlib.suppress(RuntimeError):  # the interpreter is already shutting down
        register(drain)
