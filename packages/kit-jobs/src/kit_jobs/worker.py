"""``KitWorker``: runs rq-backend jobs in this process, fast, without losing any.

It reads and writes RQ 2.x's data model (queues, started/finished/failed registries,
executions, results), so ``rq info`` and RQ's own tools see its work, but it runs each
job in-process (no fork per job) with few Redis round trips:

* **claim**: one Lua script pops a job id *and* records its execution in the started
  registry, so a worker killed at any moment leaves its job where the sweep finds it;
* **heartbeats**: a thread renews the worker key, the running execution and the job's
  concurrency lease every ``heartbeat_ttl / 3`` seconds, also while the job runs;
* **sweep**: every worker, every ``heartbeat_ttl / 2`` seconds, hands executions whose
  heartbeat lapsed to RQ's ``StartedJobRegistry.cleanup()`` under a lock: retried while
  ``retries_left``, else failed with ``AbandonedJobError``; and lets waiting jobs of
  concurrency-limited tasks in when slots lapse;
* **concurrency**: a job of a task with ``concurrency=N`` runs only while holding one of
  N leases (a Redis sorted set scored by expiry); otherwise it waits in
  ``kit:jobs:wait:<task>`` (status ``deferred``) until a slot is released;
* **timeouts**: ``setitimer`` in the main thread (fractions of a second work).

Delayed jobs and retry backoff go through RQ's scheduler, which the worker starts
(``with_scheduler=True``); ``@scheduled`` ticks are fired by kit's scheduler thread,
once per tick across all workers.

Example::

    kit-jobs worker --import myapp.tasks --queue default --queue mail
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import traceback
import uuid
from contextlib import suppress
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import SimpleWorker
from rq.executions import Execution
from rq.job import Job
from rq.job import JobStatus as RQStatus
from rq.queue import Queue
from rq.registry import StartedJobRegistry
from rq.utils import now, utcformat

from ._context import logger
from ._execute import execute
from ._redis_scripts import CLAIM, SEM_ACQUIRE_OR_PARK, SEM_PUMP, SEM_RELEASE
from ._serialization import find_unserializable
from ._task import TASKS, Task, get_task
from .backends.rq import DISPATCH, KEY_PREFIX, RQBackend
from .exceptions import ConfigurationError, UnknownTask

if TYPE_CHECKING:
    from ._runtime import Jobs

__all__ = ["KitWorker"]


class _JobTimeout(Exception):
    """Raised inside a job by the timer when it runs past its timeout."""


@dataclass(slots=True)
class _Running:
    job: Job
    queue: Queue
    execution: Execution
    task: Task[Any, Any] | None
    lease: str | None = None


class KitWorker:
    """A worker for the rq backend. ``Jobs.work()`` and ``kit-jobs worker`` build one.

    Args:
        jobs: a :class:`~kit_jobs.Jobs` on the rq backend (its hooks wrap every job).
        queues: queue names in priority order (default: every registered task's queue).
        heartbeat_ttl: seconds without a heartbeat after which a running job counts as
            abandoned and is retried elsewhere.
        name: the worker's name in RQ (default ``host.pid.random``).
    """

    def __init__(
        self,
        jobs: Jobs,
        *,
        queues: list[str] | None = None,
        heartbeat_ttl: float = 30.0,
        name: str | None = None,
    ) -> None:

        backend = jobs.backend
        if not isinstance(backend, RQBackend):
            raise ConfigurationError(
                f"KitWorker needs the rq backend, this Jobs uses {backend.name!r} (KIT_JOBS_BACKEND=rq)"
            )
        if (
            isinstance(heartbeat_ttl, bool)
            or not isinstance(heartbeat_ttl, int | float)
            or heartbeat_ttl < 1
        ):
            raise ConfigurationError(f"heartbeat_ttl={heartbeat_ttl!r}: give seconds >= 1")
        names = list(queues) if queues else sorted({t.queue for t in TASKS.values()} or {"default"})
        for queue_name in names:
            if not queue_name or not isinstance(queue_name, str):
                raise ConfigurationError(f"queue name {queue_name!r}: give a non-empty name")
        self.jobs = jobs
        self.backend = backend
        self.connection: Any = backend.connection
        self.queues = [backend.queue(n) for n in names]
        self._queue_names = frozenset(names)
        self.heartbeat_ttl = float(heartbeat_ttl)
        self.name = name or f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        self.rq = SimpleWorker(
            self.queues, connection=self.connection, serializer=backend.serializer, name=self.name
        )
        self._claim = self.connection.register_script(CLAIM)
        self._acquire = self.connection.register_script(SEM_ACQUIRE_OR_PARK)
        self._release = self.connection.register_script(SEM_RELEASE)
        self._pump = self.connection.register_script(SEM_PUMP)
        self._claim_keys = [q.key for q in self.queues] + [f"rq:wip:{q.name}" for q in self.queues]
        self._stop = threading.Event()
        self._beat_stop = threading.Event()
        self._current: _Running | None = None
        self._current_lock = threading.Lock()
        self._last_sweep = 0.0
        self._last_scheduler_check = time.monotonic()
        self.processed = 0

    # ------------------------------------------------------------------ main loop
    def work(
        self, *, burst: bool = False, with_scheduler: bool = True, max_jobs: int | None = None
    ) -> int:
        """Run jobs until stopped (SIGINT/SIGTERM: finish the current job, then exit) or,
        with ``burst``, until the queues are empty. Returns the number of jobs run."""
        previous = self._install_signals()
        self.rq.register_birth()
        if with_scheduler:
            # RQ's scheduler is a forked process: fork before this process has threads.
            with suppress(RedisError):
                self.rq._start_scheduler(burst=burst, logging_level="WARNING")
        beat = threading.Thread(
            target=self._heartbeat_loop, name=f"kit-jobs-heartbeat-{self.name}", daemon=True
        )
        beat.start()
        if with_scheduler and not burst:
            self.jobs.start_scheduler()
        logger.info(
            "worker_started", worker=self.name, queues=[q.name for q in self.queues], burst=burst
        )
        idle_wait = 0.05
        try:
            while not self._stop.is_set():
                try:
                    claimed = self._claim_one()
                except (RedisConnectionError, RedisTimeoutError) as exc:
                    logger.error(
                        "worker_redis_unavailable",
                        worker=self.name,
                        error=str(exc),
                        retry_in_s=idle_wait,
                    )
                    self._stop.wait(idle_wait)
                    idle_wait = min(idle_wait * 2, 5.0)
                    continue
                if claimed is None:
                    if burst:
                        break
                    self._wait_for_work()
                    continue
                idle_wait = 0.05
                self._run(claimed)
                self.processed += 1
                if max_jobs is not None and self.processed >= max_jobs:
                    break
        finally:
            self._beat_stop.set()
            beat.join(timeout=5)
            if with_scheduler:
                self.jobs.stop_scheduler()
                with suppress(Exception):
                    self.rq.stop_scheduler()
            with suppress(RedisError):
                self.rq.register_death()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            logger.info("worker_stopped", worker=self.name, processed=self.processed)
        return self.processed

    def stop(self) -> None:
        """Ask the loop to exit after the current job."""
        self._stop.set()

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def request_stop(signum: int, frame: FrameType | None) -> None:
            if self._stop.is_set():
                logger.warning("worker_forced_stop", worker=self.name)
                raise SystemExit(1)
            logger.info(
                "worker_stop_requested", worker=self.name, signal=signal.Signals(signum).name
            )
            self._stop.set()

        return {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _wait_for_work(self) -> None:
        """Block until the first queue has an entry (without taking it), at most 1 s."""
        first = self.queues[0].key
        timeout = 1.0 if len(self.queues) == 1 else 0.25
        with suppress(RedisError):
            # LMOVE a list onto itself, right to right, leaves it unchanged: a wait that
            # takes nothing, so a worker dying here loses nothing.
            self.connection.blmove(first, first, timeout, "RIGHT", "RIGHT")

    # ------------------------------------------------------------------ one job
    def _claim_one(self) -> _Running | None:
        """The next job this worker may run now, or None when the queues are empty.

        Jobs that cannot run (unreadable, not a kit job, unknown task) are failed on the
        way; jobs of a task at its concurrency limit are parked on its waiting list.
        """
        while True:
            claimed = self._claim_next()
            if claimed is None:
                return None
            if isinstance(claimed, _Running):
                return claimed

    def _claim_next(self) -> _Running | bool | None:

        execution_id = uuid.uuid4().hex
        moment = now()
        reply = self._claim(
            keys=self._claim_keys,
            args=[
                moment.timestamp(),
                self.heartbeat_ttl,
                self.name,
                execution_id,
                utcformat(moment),
            ],
        )
        if not reply:
            return None
        index, raw_id, flat = reply
        job_id = raw_id.decode()
        queue = self.queues[int(index)]
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        job = Job(job_id, connection=self.connection, serializer=self.backend.serializer)
        execution = Execution(execution_id, job_id, self.connection, worker_name=self.name)
        execution.created_at = moment
        running = _Running(job, queue, execution, None)
        try:
            job.restore(raw)
        except Exception as exc:
            self._fail(running, f"KitJobsError: job {job_id} cannot be read: {exc}", retry=False)
            return False
        if job.func_name != DISPATCH:
            self._fail(
                running,
                f"KitJobsError: {job.func_name!r} is not a kit-jobs job; a kit worker runs only "
                "@job tasks (use an RQ worker for plain RQ jobs)",
                retry=False,
            )
            return False
        name = str(job.args[0]) if isinstance(job.args, list | tuple) and job.args else "?"
        try:
            running.task = get_task(name)
        except UnknownTask as exc:
            self._fail(running, f"UnknownTask: {exc}", retry=False)
            return False
        if running.task.concurrency and not self._take_slot(running, running.task):
            return False
        return running

    def _take_slot(self, running: _Running, task: Task[Any, Any]) -> bool:
        job, execution = running.job, running.execution
        now = time.time()
        token = f"{job.id}:{execution.id}"
        got = self._acquire(
            keys=[
                f"{KEY_PREFIX}sem:{task.name}",
                f"{KEY_PREFIX}wait:{task.name}",
                f"rq:wip:{running.queue.name}",
                execution.key,
                f"rq:executions:{job.id}",
                job.key,
            ],
            args=[
                task.concurrency,
                token,
                now,
                now + self.backend.lease_ttl,
                job.id,
                execution.id,
                int(self.backend.lease_ttl * 4) + 60,
            ],
        )
        if got:
            running.lease = token
            return True
        logger.debug(
            "job_waiting_for_slot", job_id=job.id, job_task=task.name, limit=task.concurrency
        )
        return False

    def _release_slot(self, running: _Running) -> None:
        task = running.task
        if running.lease is None or task is None:
            return
        try:
            self._release(
                keys=[f"{KEY_PREFIX}sem:{task.name}", f"{KEY_PREFIX}wait:{task.name}"],
                args=[task.concurrency, time.time(), running.lease],
            )
        except RedisError as exc:  # the lease expires on its own
            logger.warning("job_slot_release_failed", job_id=running.job.id, error=str(exc))
        running.lease = None

    def _run(self, running: _Running) -> None:
        job, task = running.job, running.task
        assert task is not None
        _, args, kwargs = job.args
        kit_meta = (job.meta or {}).get("kit", {})
        attempt = task.attempt(job.retries_left)
        with self._current_lock:
            self._current = running
        timeout = None if job.timeout in (None, -1) else float(job.timeout)
        if task.timeout is not None:
            timeout = task.timeout
        try:
            try:
                with _Timer(timeout):
                    value = execute(
                        task,
                        list(args),
                        dict(kwargs),
                        job_id=job.id,
                        context=kit_meta.get("ctx", {}),
                        attempt=attempt,
                        backend="rq",
                        hooks=self.jobs.hooks,
                    )
            except _JobTimeout:
                self._fail(
                    running, f"JobTimedOut: ran past its timeout of {timeout} s", timed_out=True
                )
            except Exception:
                self._fail(running, traceback.format_exc())
            else:
                self._succeed(running, value)
        finally:
            with self._current_lock:
                self._current = None
            self._release_slot(running)

    def _succeed(self, running: _Running, value: Any) -> None:

        job = running.job
        bad = (
            find_unserializable(value, "result") if self.backend.serializer_name == "json" else None
        )
        if bad is not None:
            self._fail(
                running,
                f"SerializationError: the return value {bad} is not JSON-serializable; return "
                "ids, str, numbers, lists and dicts",
                retry=False,
            )
            return
        job.ended_at = now()
        job._result = value
        job._status = RQStatus.FINISHED
        result_ttl = job.get_result_ttl(500)
        try:
            with self.connection.pipeline() as pipe:
                if result_ttl != 0:
                    job._handle_success(
                        result_ttl,
                        pipeline=pipe,
                        worker_name=self.name,
                        execution_id=running.execution.id,
                        execution_started_at=running.execution.created_at,
                        execution_ended_at=job.ended_at,
                    )
                job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
                running.execution.delete(job=job, pipeline=pipe)
                pipe.hincrby(self.rq.key, "successful_job_count", 1)
                pipe.execute()
        except RedisError as exc:
            # The execution stays in the started registry: the sweep retries or fails it.
            logger.error("job_result_not_saved", job_id=job.id, error=str(exc))

    def _fail(
        self, running: _Running, exc_string: str, *, retry: bool = True, timed_out: bool = False
    ) -> None:

        job = running.job
        job.ended_at = now()
        last_line = exc_string.strip().splitlines()[-1] if exc_string.strip() else "error"
        kit_meta = job.meta.setdefault("kit", {})
        kit_meta["error"] = last_line
        if timed_out:
            kit_meta["timed_out"] = True
        else:
            kit_meta.pop("timed_out", None)
        will_retry = retry and job.should_retry
        try:
            with self.connection.pipeline() as pipe:
                pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))
                if will_retry:
                    job.retry(running.queue, pipe)
                else:
                    job.set_status(RQStatus.FAILED, pipeline=pipe)
                    job._handle_failure(
                        exc_string,
                        pipe,
                        worker_name=self.name,
                        execution_id=running.execution.id,
                        execution_started_at=running.execution.created_at,
                        execution_ended_at=job.ended_at,
                    )
                running.execution.delete(job=job, pipeline=pipe)
                pipe.hincrby(self.rq.key, "failed_job_count", 1)
                pipe.execute()
        except RedisError as exc:
            logger.error("job_failure_not_saved", job_id=job.id, error=str(exc))
            return
        logger.warning(
            "job_retry_scheduled" if will_retry else "job_failed",
            job_id=job.id,
            job_task=job.description,
            error=last_line,
            retries_left=job.retries_left,
            timed_out=timed_out,
        )

    # ------------------------------------------------------------------ heartbeats
    def _heartbeat_loop(self) -> None:
        interval = max(0.2, self.heartbeat_ttl / 3)
        sweep_every = max(0.5, self.heartbeat_ttl / 2)
        while not self._beat_stop.wait(interval):
            try:
                self._beat()
                if time.monotonic() - self._last_sweep >= sweep_every:
                    self._last_sweep = time.monotonic()
                    self.sweep()
            except RedisError as exc:
                logger.warning("worker_heartbeat_failed", worker=self.name, error=str(exc))
            except Exception:  # never let the heartbeat thread die
                logger.exception("worker_heartbeat_error", worker=self.name)

    def _beat(self) -> None:

        ttl = int(self.heartbeat_ttl) + 1
        with self._current_lock:
            running = self._current
        with self.connection.pipeline() as pipe:
            pipe.hset(self.rq.key, "last_heartbeat", utcformat(now()))
            pipe.expire(self.rq.key, int(self.rq.worker_ttl) + 60)
            if running is not None:
                running.execution.heartbeat(running.job.started_job_registry, ttl, pipeline=pipe)
                running.job.heartbeat(now(), ttl, pipeline=pipe, xx=True)
                if running.lease is not None and running.task is not None:
                    pipe.zadd(
                        f"{KEY_PREFIX}sem:{running.task.name}",
                        {running.lease: time.time() + self.backend.lease_ttl},
                        xx=True,
                    )
            pipe.execute()

    def sweep(self) -> int:
        """Recover abandoned jobs and let waiting ones in; returns how many it moved.

        Safe to call from any number of workers: each queue is swept under a lock.
        """

        moved = 0
        for queue in self.queues:
            lock = f"{KEY_PREFIX}sweep-lock:{queue.name}"
            if not self.connection.set(
                lock, self.name, nx=True, px=int(max(1.0, self.heartbeat_ttl) * 1000)
            ):
                continue
            try:
                registry = StartedJobRegistry(queue=queue)
                now = time.time()
                expired = self.connection.zcount(registry.key, 0, now)
                if expired:
                    logger.warning("jobs_abandoned", queue=queue.name, count=expired)
                    registry.cleanup(timestamp=now)
                    moved += int(expired)
            finally:
                with suppress(RedisError):
                    if self.connection.get(lock) == self.name.encode():
                        self.connection.delete(lock)
        for task in TASKS.values():
            if task.concurrency and task.queue in self._queue_names:
                moved += int(
                    self._pump(
                        keys=[f"{KEY_PREFIX}sem:{task.name}", f"{KEY_PREFIX}wait:{task.name}"],
                        args=[task.concurrency, time.time()],
                    )
                )
        if time.monotonic() - self._last_scheduler_check > 60:
            self._last_scheduler_check = time.monotonic()
            scheduler = self.rq.scheduler
            if scheduler is not None and (
                not scheduler._process or not scheduler._process.is_alive()
            ):
                scheduler.acquire_locks(auto_start=True)
        return moved


class _Timer:
    """Raise :class:`_JobTimeout` in the main thread after ``seconds`` (setitimer, so
    fractions work). A no-op off the main thread or without a timeout."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.armed = False

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        raise _JobTimeout()

    def __enter__(self) -> None:
        if self.seconds is None or threading.current_thread() is not threading.main_thread():
            return
        self.previous = signal.signal(signal.SIGALRM, self._fire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        self.armed = True

    def __exit__(self, *exc: object) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
