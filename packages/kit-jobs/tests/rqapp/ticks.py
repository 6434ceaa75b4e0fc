"""A scheduled task, imported only by the worker processes of the schedule test (so other
tests' workers do not fire it)."""

from __future__ import annotations

import os

import redis
import structlog

from kit_jobs import scheduled


@scheduled(interval=1, name="rqapp.ticks.every_second", queue="kjtest")
def every_second() -> None:
    tick = structlog.contextvars.get_contextvars()["schedule_tick"]
    redis.Redis.from_url(os.environ["KJ_TEST_REDIS"]).rpush("ticks", f"{tick}:{os.getpid()}")
