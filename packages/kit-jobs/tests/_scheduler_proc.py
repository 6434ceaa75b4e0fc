"""One scheduler process for test_schedule.py's cross-process test (not a test module).

Usage: ``python _scheduler_proc.py REDIS_URL PREFIX SCHEDULE_NAME [standin|rq]``

1. Registers a 1-second interval schedule named SCHEDULE_NAME and routes kit-jobs' log
   lines ``schedule_fired`` / ``schedule_tick_skipped`` for it to the Redis lists
   ``PREFIX + "fired"`` / ``PREFIX + "skipped"`` (items ``"<tick> <pid>"``).
2. Pushes ``PREFIX + "ready"``, then blocks on ``PREFIX + "go"``, whose item is the
   wall-clock deadline; both processes therefore start their schedulers together.
3. Runs a real :class:`~kit_jobs._schedule.Scheduler` thread until the deadline.

The once-per-tick claim is ``SET <key> 1 NX EX ttl`` in the shared Redis. ``standin``
(the default) does it with :class:`RedisTickBackend`, a sync backend whose only Redis
use is that claim; ``rq`` runs the real rq backend (``Jobs(backend="rq", redis_url=...)``),
whose jobs stay queued: no worker is started. Recording goes through the log lines, not
the backend, so the two are interchangeable.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

import redis
import structlog

from kit_jobs import Jobs, scheduled
from kit_jobs._schedule import SCHEDULES, Scheduler
from kit_jobs.backends.sync import SyncBackend


class RedisTickBackend(SyncBackend):
    """The sync backend with the rq backend's tick claim: one winner per tick in Redis."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        super().__init__()
        self.client = client
        self.prefix = prefix

    def claim_tick(self, schedule: str, tick: float, ttl: float) -> bool:
        key = f"{self.prefix}tick:{schedule}:{tick:.3f}"
        return bool(self.client.set(key, "1", nx=True, ex=max(1, math.ceil(ttl))))


def make_jobs(kind: str, redis_url: str, client: redis.Redis, prefix: str) -> Jobs:
    if kind == "rq":
        return Jobs(backend="rq", redis_url=redis_url)
    return Jobs(backend=RedisTickBackend(client, prefix))


def main(argv: list[str]) -> int:
    redis_url, prefix, name = argv[1], argv[2], argv[3]
    kind = argv[4] if len(argv) > 4 else "standin"
    client = redis.Redis.from_url(redis_url)
    pid = os.getpid()

    def record(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> Mapping[str, Any]:
        if event_dict.get("schedule") == name:
            target = {"schedule_fired": "fired", "schedule_tick_skipped": "skipped"}.get(
                str(event_dict.get("event"))
            )
            if target is not None:
                client.rpush(prefix + target, f"{event_dict['tick']:.3f} {pid}")
        if event_dict.get("event") == "schedule_enqueue_failed":
            client.rpush(prefix + "errors", f"{pid} {event_dict}")
        raise structlog.DropEvent

    structlog.configure(processors=[record])

    @scheduled(interval=1, name=name, queue="kit-jobs-schedule-test")  # no worker serves it
    def tick() -> None:
        pass

    jobs = make_jobs(kind, redis_url, client, prefix)
    client.rpush(prefix + "ready", str(pid))
    item = client.blpop([prefix + "go"], timeout=60)
    if item is None:
        print("no go signal within 60 s", file=sys.stderr)
        return 2
    deadline = float(item[1])
    scheduler = Scheduler(jobs, schedules=[SCHEDULES[name]])
    scheduler.start()
    try:
        while (left := deadline - time.time()) > 0:
            time.sleep(min(left, 0.2))
    finally:
        scheduler.stop(timeout=10)
        jobs.shutdown()
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
