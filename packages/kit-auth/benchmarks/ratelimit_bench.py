"""kit-auth rate limiting against ``limits`` (moving window and sliding-window counter),
in memory and over Redis, in one process and one run.

    python packages/kit-auth/benchmarks/ratelimit_bench.py [--quick] [--redis-url URL]

Every hit is allowed (a limit far above the number of hits) over 100 keys round-robin,
so both sides do the full read-modify-write path. Both sides are timed in interleaved
rounds and the fastest round counts; ratio = kit time / limits time (target <= 1.0x, i.e.
at least limits' throughput). The Redis rows also check that kit makes exactly one round
trip per check (``INFO commandstats`` delta).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import timeit
from collections.abc import Callable
from typing import Any

import limits
import redis
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

from kit_auth.ratelimit import (
    MemoryRateLimitStorage,
    RateLimit,
    RateLimiter,
    RedisRateLimitStorage,
)

PEER = f"limits {limits.__version__}"
TARGET = "<= 1.0x"
KEYS = [f"client-{i}" for i in range(100)]
BIG = 10_000_000


def _cycle_call(fn: Callable[[str], Any]) -> Callable[[], Any]:
    keys = itertools.cycle(KEYS).__next__

    def call() -> Any:
        return fn(keys())

    return call


def _time(
    kit: Callable[[], Any], peer: Callable[[], Any], rounds: int, number: int
) -> tuple[float, float]:
    kit_us = peer_us = float("inf")
    for _ in range(rounds):
        kit_us = min(kit_us, timeit.timeit(kit, number=number) / number * 1e6)
        peer_us = min(peer_us, timeit.timeit(peer, number=number) / number * 1e6)
    return kit_us, peer_us


def _row(name: str, kit_us: float, peer_us: float, target: str = TARGET) -> dict[str, object]:
    ratio = kit_us / peer_us
    verdict = "meets target" if ratio <= 1.0 else "misses target"
    return {
        "name": name,
        "kit": "kit-auth",
        "peer": PEER,
        "kit_us": kit_us,
        "peer_us": peer_us,
        "ratio": ratio,
        "target": target,
        "verdict": verdict,
    }


def _round_trips_per_check(limit: RateLimit, redis_url: str, n: int = 200) -> float:
    """Commands kit's client sends per check, counted by wrapping ``execute_command``
    (every redis-py command goes through it; the script's inner calls run in Redis)."""
    client = redis.Redis.from_url(redis_url)
    sent: list[object] = []
    original: Callable[..., Any] = client.execute_command

    def counting(*args: Any, **options: Any) -> Any:
        sent.append(args[0])
        return original(*args, **options)

    client.execute_command = counting  # type: ignore[method-assign]
    limiter = RateLimiter(limit, storage=RedisRateLimitStorage(client))
    limiter.hit("round-trip-probe")  # the first call may also load the script
    sent.clear()
    for _ in range(n):
        limiter.hit("round-trip-probe")
    client.close()
    assert sent == ["EVALSHA"] * n, sent[:5]
    return len(sent) / n


def rows(quick: bool, redis_url: str) -> list[dict[str, object]]:
    rounds, number = (3, 2_000) if quick else (7, 20_000)
    redis_number = number // 4
    out: list[dict[str, object]] = []

    # memory ----------------------------------------------------------------------
    item = limits.parse(f"{BIG}/hour")
    moving = MovingWindowRateLimiter(MemoryStorage())
    kit_gcra = RateLimiter(RateLimit(BIG, 3600), storage=MemoryRateLimitStorage())
    kit_us, peer_us = _time(
        _cycle_call(kit_gcra.hit), _cycle_call(lambda k: moving.hit(item, k)), rounds, number
    )
    out.append(_row("memory: kit GCRA hit vs limits moving-window hit", kit_us, peer_us))

    sliding = SlidingWindowCounterRateLimiter(MemoryStorage())
    kit_sw = RateLimiter(
        RateLimit(BIG, 3600, algorithm="sliding-window"), storage=MemoryRateLimitStorage()
    )
    kit_us, peer_us = _time(
        _cycle_call(kit_sw.hit), _cycle_call(lambda k: sliding.hit(item, k)), rounds, number
    )
    out.append(
        _row("memory: kit sliding-window hit vs limits sliding-window-counter hit", kit_us, peer_us)
    )

    # redis -----------------------------------------------------------------------
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    peer_storage = storage_from_string(redis_url)
    kit_storage = RedisRateLimitStorage(redis_url)
    # limits' moving window keeps one list entry per hit (LTRIM to the limit): keep its
    # limit large enough that every hit is allowed, but bounded so the list stays sane.
    moving_item = limits.parse("1000000/hour")
    r_moving = MovingWindowRateLimiter(peer_storage)
    r_gcra = RateLimiter(RateLimit(BIG, 3600), storage=kit_storage)
    trips = _round_trips_per_check(r_gcra.limit, redis_url)
    kit_us, peer_us = _time(
        _cycle_call(r_gcra.hit),
        _cycle_call(lambda k: r_moving.hit(moving_item, k)),
        rounds,
        redis_number,
    )
    out.append(
        _row(
            f"redis: kit GCRA hit ({trips:g} round trip) vs limits moving-window hit",
            kit_us,
            peer_us,
        )
    )

    r_sliding = SlidingWindowCounterRateLimiter(peer_storage)
    r_sw = RateLimiter(RateLimit(BIG, 3600, algorithm="sliding-window"), storage=kit_storage)
    trips = _round_trips_per_check(r_sw.limit, redis_url)
    kit_us, peer_us = _time(
        _cycle_call(r_sw.hit), _cycle_call(lambda k: r_sliding.hit(item, k)), rounds, redis_number
    )
    out.append(
        _row(
            f"redis: kit sliding-window hit ({trips:g} round trip) vs limits sliding-window-counter hit",
            kit_us,
            peer_us,
        )
    )
    client.flushdb()
    client.close()
    kit_storage.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args(argv)
    for row in rows(args.quick, args.redis_url):
        print(
            f"{row['name']}: {row['kit_us']:.2f} us vs {row['peer_us']:.2f} us "
            f"({row['ratio']:.2f}x, {row['verdict']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
