"""The jobs ``run.py`` enqueues, and the worker processes it starts.

Imported by both sides: by ``run.py`` (to enqueue) and by every worker subprocess (to run
the jobs). RQ's workers import the job function by its dotted path (``workers.noop``), so
a worker subprocess runs with this directory on ``PYTHONPATH``. A worker subprocess is

    python -c "import workers; workers.main()" KIND REDIS_URL N

and prints one line ``KITBENCH {"seconds": ..., "cpu_seconds": ..., "done": ...}``: the time
from the start of work (the worker already built) to the moment every job had finished,
measured inside the process, so interpreter start-up and imports are not in it; and the
CPU time the process (all its threads, and the work horses RQ's forking worker waited for)
used meanwhile.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import threading
import time
from typing import Any

from kit_jobs import job

__all__ = ["KINDS", "MARKER", "QUEUE", "dramatiq_setup", "kit_noop", "main", "noop"]

QUEUE = "bench"
MARKER = "KITBENCH "
#: The worker kinds ``main`` runs: kit's worker, RQ's two workers, dramatiq.
KINDS = ("kit", "rq-fork", "rq-simple", "dramatiq")
DRAMATIQ_THREADS = 8


def noop() -> None:
    """The job of the raw peers (RQ, ThreadPoolExecutor): does nothing."""


@job(name="bench.noop", queue=QUEUE)
def kit_noop() -> None:
    """The same job for kit-jobs."""


def dramatiq_setup(url: str) -> tuple[Any, Any]:
    """dramatiq's Redis broker on ``url`` and a no-op actor on the ``bench`` queue."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)

    def bench_noop() -> None:
        """The same job for dramatiq."""

    actor = dramatiq.actor(bench_noop, actor_name="bench_noop", queue_name=QUEUE, broker=broker)
    return broker, actor


# --------------------------------------------------------------------------- workers


def _cpu() -> float:
    """CPU seconds of this process and of the children it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class _Clock:
    """Wall and CPU time of the ``with`` block."""

    def __enter__(self) -> _Clock:
        self.cpu = _cpu()
        self.wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = _cpu() - self.cpu


def _kit(url: str, n: int) -> tuple[_Clock, int]:
    from rq.registry import FinishedJobRegistry

    from kit_jobs import Jobs
    from kit_jobs.worker import KitWorker

    jobs = Jobs(backend="rq", redis_url=url)
    worker = KitWorker(jobs, queues=[QUEUE], heartbeat_ttl=30)
    with _Clock() as clock:
        processed = worker.work(burst=True, with_scheduler=False)
    finished = FinishedJobRegistry(queue=jobs.backend.queue(QUEUE)).count  # type: ignore[attr-defined]
    return clock, min(processed, finished)


def _rq(url: str, n: int, *, fork: bool) -> tuple[_Clock, int]:
    import redis
    from rq import Queue, SimpleWorker, Worker
    from rq.registry import FinishedJobRegistry
    from rq.serializers import JSONSerializer

    connection = redis.Redis.from_url(url)
    queue = Queue(QUEUE, connection=connection, serializer=JSONSerializer)
    worker_class = Worker if fork else SimpleWorker
    worker = worker_class([queue], connection=connection, serializer=JSONSerializer)
    with _Clock() as clock:
        # Per-job log lines off (RQ logs two per job at INFO): the queue machinery is measured.
        worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
    return clock, FinishedJobRegistry(queue=queue).count


def _dramatiq(url: str, n: int) -> tuple[_Clock, int]:
    import dramatiq
    from dramatiq.middleware import Middleware

    class Done(Middleware):
        """Counts messages processed without an exception (in memory: no Redis call)."""

        def __init__(self) -> None:
            self.count = 0
            self.lock = threading.Lock()

        def after_process_message(
            self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
        ) -> None:
            if exception is None:
                with self.lock:  # 8 worker threads
                    self.count += 1

    broker, _actor = dramatiq_setup(url)
    done = Done()
    broker.add_middleware(done)
    worker = dramatiq.Worker(broker, worker_threads=DRAMATIQ_THREADS)
    with _Clock() as clock:
        worker.start()
        # qsize counts unacknowledged messages too: 0 means every message was processed
        # and acknowledged.
        broker.join(QUEUE, interval=5, timeout=600_000)
    worker.stop()
    broker.close()
    return clock, done.count


def run_worker(kind: str, url: str, n: int) -> dict[str, Any]:
    """Run one worker kind over the ``n`` jobs already queued; time it."""
    logging.basicConfig(level=logging.WARNING)
    if kind == "kit":
        clock, done = _kit(url, n)
    elif kind in ("rq-fork", "rq-simple"):
        clock, done = _rq(url, n, fork=kind == "rq-fork")
    elif kind == "dramatiq":
        clock, done = _dramatiq(url, n)
    else:
        raise SystemExit(f"unknown worker kind {kind!r}; use one of {', '.join(KINDS)}")
    return {
        "kind": kind,
        "seconds": clock.wall,
        "cpu_seconds": clock.cpu,
        "done": done,
        "expected": n,
    }


def main(argv: list[str] | None = None) -> int:
    kind, url, n = (sys.argv[1:] if argv is None else argv)[:3]
    result = run_worker(kind, url, int(n))
    sys.stdout.flush()
    print(MARKER + json.dumps(result), flush=True)
    return 0 if result["done"] == result["expected"] else 1
