"""Tasks the rq tests enqueue and real worker processes run (imported by both sides).

Every task reports to the Redis named by ``KJ_TEST_REDIS`` under the key prefix it is
given, so tests measure what really happened in the worker processes.
"""

from __future__ import annotations

import os
import time

import redis

from kit_jobs import Retry, job


def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["KJ_TEST_REDIS"])


@job(name="rqapp.add", queue="kjtest")
def add(a: int, b: int) -> int:
    return a + b


@job(name="rqapp.slow_once", queue="kjtest", retry=Retry(max=2, backoff=0))
def slow_once(key: str, seconds: float) -> str:
    r = _redis()
    r.rpush(f"{key}:started", f"{os.getpid()}:{time.time()}")
    time.sleep(seconds)
    r.incr(f"{key}:completed")
    return "done"


@job(name="rqapp.limited", queue="kjtest", concurrency=2, retry=Retry(max=3, backoff=0))
def limited(key: str, seconds: float) -> int:
    r = _redis()
    start = time.time()
    r.rpush(f"{key}:starts", f"{os.getpid()}:{start}")
    time.sleep(seconds)
    r.rpush(f"{key}:intervals", f"{os.getpid()}:{start}:{time.time()}")
    return os.getpid()


@job(name="rqapp.record_time", queue="kjtest")
def record_time(key: str) -> float:
    now = time.time()
    _redis().rpush(key, now)
    return now


@job(name="rqapp.flaky", queue="kjtest", retry=Retry(max=3, backoff=1, jitter=False))
def flaky(key: str, failures: int) -> int:
    attempt = int(_redis().incr(key))
    if attempt <= failures:
        raise RuntimeError(f"attempt {attempt} fails on purpose")
    return attempt


@job(name="rqapp.always_fails", queue="kjtest", retry=Retry(max=1, backoff=0))
def always_fails() -> None:
    raise ValueError("this job always fails")


@job(name="rqapp.sleeper", queue="kjtest", timeout=0.5)
def sleeper(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@job(name="rqapp.once_per_user", queue="kjtest", unique="{user_id}")
def once_per_user(user_id: int, note: str = "") -> str:
    return f"{user_id}:{note}"


@job(name="rqapp.returns_object", queue="kjtest")
def returns_object() -> object:
    return object()
