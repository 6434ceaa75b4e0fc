"""The ``rq`` backend: jobs in Redis, in RQ 2.x's own data model, run by
``kit-jobs worker`` (or any RQ worker).

Guarantees: at-least-once. A job is in Redis from ``enqueue`` until its result expires;
it survives restarts of the app, the workers and (with Redis persistence) Redis. A worker
killed mid-job leaves the job in RQ's started registry; once its heartbeat lapses, a
worker's sweep retries it while retries remain, else records it as failed. So a job can
run more than once (killed after its side effects, before its result): make jobs
idempotent.

Jobs are stored with RQ's JSON serializer unless ``serializer="pickle"`` is asked for.
The RQ payload is ``kit_jobs.backends.rq.perform(task_name, args, kwargs)``; a kit worker
runs only names registered with ``@job`` and refuses any other function.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as RedisRetry
from rq import Queue, get_current_job
from rq import Retry as RQRetry
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import CanceledJobRegistry, FailedJobRegistry, ScheduledJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer, PickleSerializer

from kit_jobs._backend import Backend
from kit_jobs._clock import wall
from kit_jobs._context import logger
from kit_jobs._models import JobInfo, JobMessage, JobStatus
from kit_jobs._redis_scripts import CLAIM_UNIQUE, RELEASE_UNIQUE
from kit_jobs._task import TASKS, get_task
from kit_jobs.exceptions import (
    BackendUnavailable,
    ConfigurationError,
    JobCanceled,
    JobFailed,
    JobNotFound,
    JobTimedOut,
    ResultTimeout,
    SerializationError,
)

__all__ = ["DISPATCH", "KEY_PREFIX", "RQBackend", "perform", "ping_redis", "redis_from_url"]

#: The function every kit job names in RQ.
DISPATCH = "kit_jobs.backends.rq.perform"
#: Prefix of kit-jobs' own Redis keys.
KEY_PREFIX = "kit:jobs:"

_STATUS = {
    "queued": JobStatus.QUEUED,
    "created": JobStatus.QUEUED,
    "scheduled": JobStatus.SCHEDULED,
    "deferred": JobStatus.WAITING,
    "started": JobStatus.RUNNING,
    "finished": JobStatus.FINISHED,
    "failed": JobStatus.FAILED,
    "stopped": JobStatus.FAILED,
    "canceled": JobStatus.CANCELED,
}
_TERMINAL_RQ = frozenset({"finished", "failed", "stopped", "canceled"})


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def redis_from_url(url: str) -> redis.Redis:
    """A Redis client for kit-jobs (bytes replies, as RQ needs); a malformed URL raises
    :class:`~kit_jobs.ConfigurationError` naming it."""
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(
            f"redis URL {safe_url(str(url))!r}: give redis://host:port/db, rediss://... or "
            "unix:///path (KIT_JOBS_REDIS_URL)"
        )
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
    except ValueError as exc:
        raise ConfigurationError(
            f"redis URL {safe_url(url)!r}: {exc} (KIT_JOBS_REDIS_URL)"
        ) from exc


def ping_redis(client: Any, timeout: float) -> bool:
    """True if the Redis behind ``client`` answers ``PING`` within ``timeout`` seconds.

    A one-off connection built like the pool's (same class, address, credentials, TLS,
    database), with ``timeout`` for connecting and reading and no retries, run on a
    helper thread so the answer comes within ``timeout`` even from a hung server; the
    thread ends by itself within a few ``timeout`` (its socket timeouts). Never raises.
    """

    def probe() -> bool:
        pool = client.connection_pool
        options = dict(pool.connection_kwargs)
        options.update(
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=RedisRetry(NoBackoff(), 0),
            health_check_interval=0,
        )
        connection = pool.connection_class(**options)
        try:
            connection.connect()
            connection.send_command("PING")
            return connection.read_response() in (b"PONG", "PONG", True)
        finally:
            connection.disconnect()

    pool = ThreadPoolExecutor(1, thread_name_prefix="kit-jobs-ping")
    try:
        return pool.submit(probe).result(timeout=timeout)
    except Exception:  # down, refused, timed out, bad credentials: not healthy
        return False
    finally:
        pool.shutdown(wait=False)


def _ts(moment: datetime | None) -> float | None:
    """Epoch seconds of an RQ datetime (UTC, naive or aware)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC).timestamp()


def unavailable(exc: Exception, where: str, consequence: str = "") -> BackendUnavailable:
    """The error for a Redis that cannot be reached; ``consequence`` says what did not
    happen (``"Nothing was enqueued."``)."""
    return BackendUnavailable(
        f"Redis at {where} cannot be reached ({type(exc).__name__}: {exc}); is it running, "
        f"and is KIT_JOBS_REDIS_URL right?{' ' + consequence if consequence else ''}"
    )


def perform(task_name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """What RQ runs: look the task up by name (never import it) and run it with the
    log context it was enqueued with. A kit worker calls ``execute`` directly instead;
    this keeps plain RQ workers (``rq worker``) able to run kit jobs too."""

    from kit_jobs._execute import execute
    from kit_jobs._runtime import get_jobs

    task = get_task(task_name)
    current = get_current_job()
    meta = (current.meta or {}).get("kit", {}) if current is not None else {}
    attempt = task.attempt(current.retries_left) if current is not None else 1
    return execute(
        task,
        args,
        kwargs,
        job_id=current.id if current is not None else "",
        context=meta.get("ctx", {}),
        attempt=attempt,
        backend="rq",
        hooks=get_jobs().hooks,
    )


class RQBackend(Backend):
    """Jobs in Redis through RQ 2.x, run by :class:`~kit_jobs.worker.KitWorker`.

    Example (needs a Redis server)::

        from kit_jobs import Jobs, job

        @job(retry=3, concurrency=2)
        def resize(image_id: int) -> None: ...

        jobs = Jobs(backend="rq", redis_url="redis://localhost:6379/0")
        ref = jobs.enqueue(resize, 42)
        # elsewhere: kit-jobs worker --import myapp.tasks
    """

    name = "rq"
    delivery = (
        "at-least-once: jobs live in Redis and survive restarts; a killed worker's job is "
        "retried while retries remain, else recorded as failed"
    )

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        connection: redis.Redis | None = None,
        serializer: Literal["json", "pickle"] = "json",
        lease_ttl: float = 30.0,
    ) -> None:
        super().__init__()

        if serializer not in ("json", "pickle"):
            raise ConfigurationError(f"serializer={serializer!r}: use 'json' or 'pickle'")
        if connection is not None and redis_url is not None:
            raise ConfigurationError("give redis_url= or connection=, not both")
        if (
            isinstance(lease_ttl, bool)
            or not isinstance(lease_ttl, int | float)
            or not (1 <= lease_ttl < math.inf)
        ):
            raise ConfigurationError(f"lease_ttl={lease_ttl!r}: give seconds >= 1")
        # Typed loosely: redis-py's stubs answer bytes | str | Awaitable for every command.
        self.connection: Any
        if connection is None:
            self.url = redis_url or "redis://localhost:6379/0"
            self.connection = redis_from_url(self.url)
        else:
            kwargs = connection.connection_pool.connection_kwargs
            self.url = (
                f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
            )
            self.connection = connection
        if self.connection.connection_pool.connection_kwargs.get("decode_responses"):
            raise ConfigurationError(
                "the Redis client must not use decode_responses=True (RQ needs bytes)"
            )
        self.serializer_name = serializer
        self.serializer: Any = JSONSerializer if serializer == "json" else PickleSerializer
        self.lease_ttl = float(lease_ttl)

        self._queues: dict[str, Queue] = {}
        self._scripts = {
            "claim_unique": self.connection.register_script(CLAIM_UNIQUE),
            "release_unique": self.connection.register_script(RELEASE_UNIQUE),
        }

    # ------------------------------------------------------------------ plumbing
    @property
    def where(self) -> str:
        return safe_url(self.url)

    @contextmanager
    def _redis(self, consequence: str = "") -> Iterator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise unavailable(exc, self.where, consequence) from exc

    def queue(self, name: str) -> Queue:
        """The RQ queue called ``name`` on this backend's connection and serializer."""
        queue = self._queues.get(name)
        if queue is None:
            queue = Queue(name, connection=self.connection, serializer=self.serializer)
            self._queues[name] = queue
        return queue

    def _fetch(self, job_id: str) -> Job:

        if not isinstance(job_id, str) or not job_id:
            raise JobNotFound(f"job id {job_id!r}: give the id enqueue returned")
        with self._redis():
            try:
                return Job.fetch(job_id, connection=self.connection, serializer=self.serializer)
            except NoSuchJobError:
                raise JobNotFound(
                    f"no job {job_id!r} in Redis at {self.where}: wrong id, or its record "
                    "expired (result_ttl for finished jobs)"
                ) from None
            except (ValueError, TypeError, UnicodeDecodeError) as exc:
                raise SerializationError(
                    f"job {job_id!r} cannot be read with the {self.serializer_name} serializer "
                    f"({exc}); was it enqueued with another one (KIT_JOBS_SERIALIZER)?"
                ) from exc

    def start(self) -> None:
        with self._redis():
            self.connection.ping()

    def ping(self, timeout: float = 2.0) -> bool:
        """True if Redis answers ``PING`` within ``timeout`` seconds.

        The probe uses a connection of its own, opened with ``timeout`` as its connect
        and read timeouts and no retries, then closed: the pool's connections (and their
        longer timeouts) are not involved, and a Redis that is down or hung answers
        False within ``timeout``.
        """
        return ping_redis(self.connection, timeout)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> list[str]:
        # Jobs live in Redis: nothing is lost by closing this process's connections.
        self.connection.connection_pool.disconnect()
        return []

    # ------------------------------------------------------------------ enqueue
    def enqueue(self, message: JobMessage) -> None:
        task = message.task
        kit_meta: dict[str, Any] = {"ctx": message.context}
        if message.unique_key is not None:
            kit_meta["unique"] = message.unique_key
        options: dict[str, Any] = {
            "job_id": message.id,
            "timeout": -1 if task.timeout is None else max(1, math.ceil(task.timeout)),
            "result_ttl": task.result_ttl,
            "description": task.name,
            "meta": {"kit": kit_meta},
        }
        if task.retry is not None:
            options["retry"] = RQRetry(max=task.retry.max, interval=task.retry.rq_intervals())
        queue = self._queues.get(task.queue) or self.queue(task.queue)
        payload = (task.name, message.args, message.kwargs)
        try:
            if message.run_at is not None and message.run_at > wall():
                # RQ's scheduled registry keeps whole seconds (truncated): round up, so
                # a delayed job never runs early.
                when = datetime.fromtimestamp(math.ceil(message.run_at), tz=UTC)
                options["job_timeout"] = options.pop("timeout")
                queue.enqueue_at(when, DISPATCH, *payload, **options)
            else:
                queue.enqueue_call(DISPATCH, args=payload, **options)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise unavailable(exc, self.where, "Nothing was enqueued.") from exc
        except (TypeError, ValueError) as exc:
            if isinstance(exc, RedisError):
                raise
            raise SerializationError(f"job {task.name!r} could not be stored: {exc}") from exc

    def claim_unique(self, key: str, job_id: str, window: float) -> str | None:
        with self._redis("Nothing was enqueued."):
            held = self._scripts["claim_unique"](
                keys=[f"{KEY_PREFIX}unique:{key}"], args=[job_id, max(1, int(window * 1000))]
            )
        return held.decode() if held else None

    def release_unique(self, key: str, job_id: str) -> None:
        with self._redis():
            self._scripts["release_unique"](keys=[f"{KEY_PREFIX}unique:{key}"], args=[job_id])

    def claim_tick(self, schedule: str, tick: float, ttl: float) -> bool:
        key = f"{KEY_PREFIX}tick:{schedule}:{tick:.3f}"
        with self._redis():
            return bool(self.connection.set(key, "1", nx=True, ex=max(1, math.ceil(ttl))))

    # ------------------------------------------------------------------ one job
    def status(self, job_id: str) -> JobStatus:
        with self._redis():
            raw = self.connection.hget(f"rq:job:{job_id}", "status")
        if raw is None:
            self._fetch(job_id)  # raises JobNotFound with the full message
            return JobStatus.QUEUED
        return _STATUS.get(raw.decode(), JobStatus.QUEUED)

    def result(self, job_id: str, timeout: float | None) -> Any:

        job = self._fetch(job_id)
        results_key = Result.get_key(job_id)
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._redis():
            while True:
                status = self.connection.hget(job.key, "status")
                if status is None:
                    raise JobNotFound(f"job {job_id!r} expired while waiting for its result")
                text = status.decode()
                if text in _TERMINAL_RQ:
                    return self._outcome(job, text)
                # Wait for the next result entry (XREAD from the last one), at most 1 s
                # at a time so status changes without a result (cancel) are seen.
                last = self.connection.xrevrange(results_key, "+", "-", count=1)
                last_id = last[0][0] if last else b"0-0"
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise ResultTimeout(
                        f"job {job_id} is still {_STATUS.get(text, text)} after {timeout} s; "
                        "call result() again or raise the timeout"
                    )
                block_ms = 1000 if remaining is None else max(1, min(1000, int(remaining * 1000)))
                self.connection.xread({results_key: last_id}, block=block_ms, count=1)

    def _outcome(self, job: Job, status: str) -> Any:

        if status == "canceled":
            raise JobCanceled(f"job {job.id} ({job.description}) was canceled")
        latest = job.latest_result()
        if status == "finished" and latest is not None and latest.type == Result.Type.SUCCESSFUL:
            return latest.return_value
        job.refresh()
        kit_meta = (job.meta or {}).get("kit", {})
        exc_string = (
            (latest.exc_string if latest is not None else None) or kit_meta.get("error") or ""
        )
        last_line = exc_string.strip().splitlines()[-1] if exc_string.strip() else status
        error_class = JobTimedOut if kit_meta.get("timed_out") else JobFailed
        raise error_class(
            f"job {job.id} ({job.description}) failed: {last_line}",
            error_type=last_line.split(":", 1)[0],
            traceback=exc_string,
        )

    def cancel(self, job_id: str) -> bool:

        job = self._fetch(job_id)
        with self._redis():
            status = job.get_status(refresh=True)
            if status not in ("queued", "scheduled", "deferred", "created"):
                return False
            try:
                job.cancel()
            except InvalidJobOperation:
                return False
            task = TASKS.get(job.description or "")
            if task is not None and task.concurrency:
                self.connection.lrem(f"{KEY_PREFIX}wait:{task.name}", 0, job_id)

            ScheduledJobRegistry(queue=self.queue(job.origin)).remove(job)
        return True

    def info(self, job_id: str) -> JobInfo:
        return self._info(self._fetch(job_id))

    def _info(self, job: Job) -> JobInfo:
        raw_status = job.get_status(refresh=False)
        status = _STATUS.get(getattr(raw_status, "value", str(raw_status)), JobStatus.QUEUED)
        kit_meta = (job.meta or {}).get("kit", {})
        try:
            _, args, kwargs = job.args
        except (ValueError, TypeError):
            args, kwargs = list(job.args or ()), dict(job.kwargs or {})
        task = TASKS.get(job.description or "")
        max_retries = task.retry.max if task is not None and task.retry is not None else 0
        retries_left = job.retries_left or 0
        started = _ts(job.started_at)
        error = kit_meta.get("error")
        if status is JobStatus.FAILED and not error:
            latest = job.latest_result()
            if latest is not None and latest.exc_string:
                error = latest.exc_string.strip().splitlines()[-1]
        scheduled_for = None
        if status is JobStatus.SCHEDULED:
            score = self.connection.zscore(
                ScheduledJobRegistry(queue=self.queue(job.origin)).key, job.id
            )
            scheduled_for = float(score) if score is not None else None
        return JobInfo(
            id=job.id,
            task=job.description or "",
            queue=job.origin,
            status=status,
            args=list(args) if isinstance(args, list | tuple) else [],
            kwargs=dict(kwargs) if isinstance(kwargs, dict) else {},
            enqueued_at=_ts(job.enqueued_at) or _ts(job.created_at),
            scheduled_for=scheduled_for,
            started_at=_ts(job.started_at),
            ended_at=_ts(job.ended_at),
            attempts=max_retries - retries_left + (1 if started else 0),
            retries_left=retries_left,
            timeout=None if job.timeout in (None, -1) else float(job.timeout),
            error=error,
            timed_out=bool(kit_meta.get("timed_out")),
            worker=job.worker_name,
            last_heartbeat=_ts(job.last_heartbeat),
        )

    # ------------------------------------------------------------------ inspection
    def queue_names(self) -> list[str]:
        """Every queue RQ knows in this Redis, plus the queues of registered tasks."""
        with self._redis():
            keys = self.connection.smembers("rq:queues")
        names = {k.decode().removeprefix("rq:queue:") for k in keys}
        names.update(t.queue for t in TASKS.values())
        return sorted(names)

    def _ids(self, status: JobStatus, queue: str, limit: int) -> list[str]:
        c = self.connection
        now = time.time()
        if status is JobStatus.QUEUED:
            raw = c.lrange(f"rq:queue:{queue}", 0, limit - 1)
        elif status is JobStatus.RUNNING:
            raw = [m.split(b":", 1)[0] for m in c.zrange(f"rq:wip:{queue}", 0, limit - 1)]
        elif status is JobStatus.SCHEDULED:
            raw = c.zrange(f"rq:scheduled:{queue}", 0, limit - 1)
        elif status is JobStatus.FINISHED:
            raw = c.zrangebyscore(f"rq:finished:{queue}", now, "+inf", start=0, num=limit)
        elif status is JobStatus.FAILED:
            raw = c.zrangebyscore(f"rq:failed:{queue}", now, "+inf", start=0, num=limit)
        elif status is JobStatus.CANCELED:
            raw = c.zrange(f"rq:canceled:{queue}", 0, limit - 1)
        else:  # WAITING: kit's per-task waiting lists
            raw = []
            for task in TASKS.values():
                if task.concurrency and task.queue == queue:
                    raw.extend(c.lrange(f"{KEY_PREFIX}wait:{task.name}", 0, limit - 1))
        return [r.decode() for r in raw][:limit]

    def counts(self) -> dict[JobStatus, int]:
        counts = dict.fromkeys(JobStatus, 0)
        now = time.time()
        with self._redis():
            pipe = self.connection.pipeline(transaction=False)
            names = self.queue_names()
            for q in names:
                pipe.llen(f"rq:queue:{q}")
                pipe.zcard(f"rq:wip:{q}")
                pipe.zcard(f"rq:scheduled:{q}")
                pipe.zcount(f"rq:finished:{q}", now, "+inf")
                pipe.zcount(f"rq:failed:{q}", now, "+inf")
                pipe.zcard(f"rq:canceled:{q}")
            limited = sorted({t.name for t in TASKS.values() if t.concurrency})
            for name in limited:
                pipe.llen(f"{KEY_PREFIX}wait:{name}")
            values = pipe.execute()
        order = (
            JobStatus.QUEUED,
            JobStatus.RUNNING,
            JobStatus.SCHEDULED,
            JobStatus.FINISHED,
            JobStatus.FAILED,
            JobStatus.CANCELED,
        )
        for i in range(len(names)):
            for j, status in enumerate(order):
                counts[status] += int(values[i * 6 + j])
        counts[JobStatus.WAITING] = sum(int(v) for v in values[len(names) * 6 :])
        return counts

    def list_jobs(self, status: JobStatus, limit: int = 100) -> list[JobInfo]:

        infos: list[JobInfo] = []
        with self._redis():
            for queue in self.queue_names():
                ids = self._ids(status, queue, limit - len(infos))
                jobs = Job.fetch_many(ids, connection=self.connection, serializer=self.serializer)
                infos.extend(self._info(j) for j in jobs if j is not None)
                if len(infos) >= limit:
                    break
        return infos[:limit]

    def stuck(self) -> list[JobInfo]:

        now = time.time()
        found: list[JobInfo] = []
        with self._redis():
            for queue in self.queue_names():
                entries = self.connection.zrange(f"rq:wip:{queue}", 0, -1, withscores=True)
                ids = [m.split(b":", 1)[0].decode() for m, _ in entries]
                jobs = Job.fetch_many(ids, connection=self.connection, serializer=self.serializer)
                for (_, score), job in zip(entries, jobs, strict=True):
                    if job is None:
                        continue
                    stale = score < now
                    started = (
                        job.started_at.replace(tzinfo=UTC).timestamp() if job.started_at else None
                    )
                    late = (
                        job.timeout not in (None, -1)
                        and started is not None
                        and now - started > float(job.timeout)
                    )
                    if stale or late:
                        found.append(self._info(job))
        return found

    def retry(self, job_id: str) -> bool:

        job = self._fetch(job_id)
        with self._redis():
            status = job.get_status(refresh=True)
            if status not in ("failed", "stopped", "canceled"):
                return False
            task = TASKS.get(job.description or "")
            if task is not None and task.retry is not None:
                job.retries_left = task.retry.max
                job.retry_intervals = task.retry.rq_intervals()
            kit_meta = job.meta.setdefault("kit", {})
            kit_meta.pop("error", None)
            kit_meta.pop("timed_out", None)
            job.save()
            queue = self.queue(job.origin)
            registry: Any = (
                CanceledJobRegistry(queue=queue)
                if status == "canceled"
                else FailedJobRegistry(queue=queue)
            )
            registry.requeue(job)
        logger.info("job_requeued", job_id=job_id, job_task=job.description)
        return True

    def clear(self, status: JobStatus) -> int:

        if status is JobStatus.RUNNING:
            raise ConfigurationError("running jobs cannot be cleared; cancel or wait for them")
        count = 0
        with self._redis():
            for queue in self.queue_names():
                while True:
                    ids = self._ids(status, queue, 500)
                    if not ids:
                        break
                    for job in Job.fetch_many(
                        ids, connection=self.connection, serializer=self.serializer
                    ):
                        if job is not None:
                            job.delete(remove_from_queue=True)
                            count += 1
                    pipe = self.connection.pipeline(transaction=False)
                    for key in (
                        f"rq:finished:{queue}",
                        f"rq:failed:{queue}",
                        f"rq:canceled:{queue}",
                        f"rq:scheduled:{queue}",
                    ):
                        pipe.zrem(key, *ids)
                    for job_id in ids:
                        pipe.lrem(f"rq:queue:{queue}", 0, job_id)
                    for task in TASKS.values():
                        if task.concurrency:
                            for job_id in ids:
                                pipe.lrem(f"{KEY_PREFIX}wait:{task.name}", 0, job_id)
                    pipe.execute()
        return count
