"""kit-cache against the libraries a user would otherwise pick, in one process and one run.

    python packages/kit-cache/benchmarks/run.py --out kit-cache.json [--quick]

Writes ``{"package": "kit-cache", "results": [...]}`` for ``tools/bench_table.py`` and prints
a summary. Missing a target is reported, never an error: the exit status is non-zero only
when something breaks (Redis cannot be started, a cache returns a wrong value, ...).
See README.md next to this file for what each row compares.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import cachetools
import redis
from harness import Contender, Mode, Row, measure, print_summary
from redis.backoff import NoBackoff
from redis.retry import Retry

import kit_cache
from kit_cache import MemoryCache, RedisCache, TieredCache, cached
from pytest_kit_services import in_ci, redis_service

FULL = Mode(rounds=41, batch_s=0.1)
QUICK = Mode(rounds=11, batch_s=0.04)

# A small JSON document (~100 bytes serialized), the same for every Redis row.
DOC: dict[str, Any] = {
    "id": 42,
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "roles": ["admin", "dev"],
    "active": True,
}
MANY = 100
STAMPEDE = 200
COMPUTE_S = 0.02
TTL = 600


def _redis_client(url: str) -> redis.Redis:
    """The connection settings both sides use: RedisCache's own defaults for a URL."""
    return redis.Redis.from_url(
        url,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 1),
        retry_on_timeout=False,
        health_check_interval=30,
        decode_responses=False,
    )


def _check(what: str, got: object, expected: object) -> None:
    if got != expected:
        raise RuntimeError(f"{what} returned {got!r}, expected {expected!r}")


# --------------------------------------------------------------------------- memory


def memory_rows(mode: Mode) -> list[Row]:
    """Row 1: a memoized function's hit, kit vs cachetools (with and without a lock)."""

    @cached(cache=MemoryCache(maxsize=10_000, default_ttl=300))
    def kit_fn(x: int) -> int:
        return x * 2

    @cachetools.cached(cachetools.TTLCache(maxsize=10_000, ttl=300), lock=threading.Lock())
    def locked_fn(x: int) -> int:
        return x * 2

    @cachetools.cached(cachetools.TTLCache(maxsize=10_000, ttl=300))
    def bare_fn(x: int) -> int:
        return x * 2

    for what, fn in (("kit", kit_fn), ("cachetools+lock", locked_fn), ("cachetools", bare_fn)):
        _check(what, fn(42), 84)
    kit = Contender("@cached(cache=MemoryCache())", "f(42)", {"f": kit_fn})
    locked = Contender("cachetools @cached(TTLCache, lock=Lock())", "f(42)", {"f": locked_fn})
    bare = Contender("cachetools @cached(TTLCache), no lock", "f(42)", {"f": bare_fn})
    measure([kit, locked, bare], mode)
    return [
        Row.compare(
            "memory hit, @cached vs thread-safe cachetools",
            kit,
            locked,
            target="<= 1.5x",
            meets=lambda r: r <= 1.5,
        ),
        Row.compare(
            "memory hit, @cached vs cachetools without lock",
            kit,
            bare,
            target="info (not thread-safe)",
            meets=None,
        ),
    ]


# --------------------------------------------------------------------------- stampede


def _burst(fn: Callable[[int], int]) -> float:
    """Call ``fn(1)`` from STAMPEDE threads released together; return the wall time (us)."""
    barrier = threading.Barrier(STAMPEDE + 1)
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            _check("stampede call", fn(1), 2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(STAMPEDE)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter_ns()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter_ns() - started
    if errors:
        raise errors[0]
    return elapsed / 1000


def stampede_rows() -> list[Row]:
    """Row 5: concurrent misses of one key; how many times the function really runs."""
    counts = {"kit": 0, "cachetools": 0, "kit-async": 0, "plain-async": 0}
    count_lock = threading.Lock()

    def slow(side: str, x: int) -> int:
        with count_lock:
            counts[side] += 1
        time.sleep(COMPUTE_S)
        return x * 2

    @cached(cache=MemoryCache())
    def kit_fn(x: int) -> int:
        return slow("kit", x)

    @cachetools.cached(cachetools.TTLCache(maxsize=10_000, ttl=300), lock=threading.Lock())
    def ct_fn(x: int) -> int:
        return slow("cachetools", x)

    kit_us = _burst(kit_fn)
    ct_us = _burst(ct_fn)

    async def aslow(side: str, x: int) -> int:
        counts[side] += 1
        await asyncio.sleep(COMPUTE_S)
        return x * 2

    @cached(cache=MemoryCache())
    async def kit_afn(x: int) -> int:
        return await aslow("kit-async", x)

    async def plain_afn(x: int) -> int:
        return await aslow("plain-async", x)

    async def gather(fn: Callable[[int], Any]) -> float:
        started = time.perf_counter_ns()
        results = await asyncio.gather(*(fn(1) for _ in range(STAMPEDE)))
        elapsed = time.perf_counter_ns() - started
        _check("async stampede", set(results), {2})
        return elapsed / 1000

    kit_async_us = asyncio.run(gather(kit_afn))
    plain_async_us = asyncio.run(gather(plain_afn))
    common = {"target": "info (kit: 1 computation)", "verdict": "info"}
    return [
        Row(
            name=(
                f"stampede, {STAMPEDE} threads miss 1 key: "
                f"{counts['kit']} vs {counts['cachetools']} computations"
            ),
            kit="@cached(cache=MemoryCache())",
            peer="cachetools @cached(TTLCache, lock=Lock()), no condition",
            kit_us=kit_us,
            peer_us=ct_us,
            extra={
                "kit_computations": counts["kit"],
                "peer_computations": counts["cachetools"],
                "stat": f"wall time of the whole burst ({COMPUTE_S * 1000:g} ms function)",
            },
            **common,
        ),
        Row(
            name=(
                f"stampede, {STAMPEDE} asyncio tasks miss 1 key: "
                f"{counts['kit-async']} vs {counts['plain-async']} computations"
            ),
            kit="@cached(cache=MemoryCache()) on async def",
            peer="no cache (cachetools has no async support)",
            kit_us=kit_async_us,
            peer_us=plain_async_us,
            extra={
                "kit_computations": counts["kit-async"],
                "peer_computations": counts["plain-async"],
                "stat": f"wall time of the whole burst ({COMPUTE_S * 1000:g} ms function)",
            },
            **common,
        ),
    ]


# --------------------------------------------------------------------------- redis


def _commands(admin: redis.Redis, fn: Callable[[], object], attempts: int = 3) -> int:
    """Commands the server processed while ``fn`` ran (fewest of a few tries: other clients
    of a shared server can only add to the count)."""

    def total() -> int:
        return int(admin.info("stats")["total_commands_processed"])

    def once(call: Callable[[], object]) -> int:
        before = total()
        call()
        return total() - before

    overhead = min(once(lambda: None) for _ in range(attempts))  # the INFO call itself
    return min(once(fn) for _ in range(attempts)) - overhead


@contextmanager
def _redis_setup(url: str) -> Iterator[dict[str, Any]]:
    """Caches and raw clients on a unique key prefix; every key under it is deleted after."""
    prefix = f"kitbench-{uuid.uuid4().hex[:12]}"
    with ExitStack() as stack:
        admin = _redis_client(url)
        stack.callback(admin.close)

        def cleanup() -> None:
            keys = list(admin.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                admin.unlink(*keys)

        stack.callback(cleanup)
        admin.ping()
        kit = RedisCache(client=_redis_client(url), prefix=prefix, namespace="redis")
        stack.callback(kit.client.close)
        l2 = RedisCache(client=_redis_client(url), prefix=prefix, namespace="tiered")
        stack.callback(l2.client.close)
        tiered = TieredCache(l2)
        stack.callback(tiered.close)
        raw = _redis_client(url)
        stack.callback(raw.close)
        if not tiered.wait_ready(10):
            raise RuntimeError("TieredCache: the invalidation subscription never came up")

        raw_key = f"{prefix}:raw:doc"
        many = [f"k{i:03d}" for i in range(MANY)]
        raw_many = [f"{prefix}:raw:{k}" for k in many]
        body = json.dumps(DOC)
        raw.set(raw_key, body, ex=TTL)
        raw.mset(dict.fromkeys(raw_many, body))
        for key in raw_many:
            raw.expire(key, TTL)
        kit.set("doc", DOC, ttl=TTL)
        kit.set_many(dict.fromkeys(many, DOC), ttl=TTL)
        tiered.set("doc", DOC, ttl=TTL)
        yield {
            "admin": admin,
            "kit": kit,
            "tiered": tiered,
            "raw": raw,
            "raw_key": raw_key,
            "many": many,
            "raw_many": raw_many,
            "body_bytes": len(body),
        }


def redis_rows(url: str, mode: Mode) -> list[Row]:
    """Rows 2-4: Redis hit, tiered (L1) hit, get_many of 100 keys."""
    rows: list[Row] = []
    with _redis_setup(url) as s:
        kit: RedisCache = s["kit"]
        tiered: TieredCache = s["tiered"]
        raw: redis.Redis = s["raw"]
        raw_key: str = s["raw_key"]
        many: list[str] = s["many"]
        raw_many: list[str] = s["raw_many"]

        _check("RedisCache.get", kit.get("doc"), DOC)
        _check("TieredCache.get", tiered.get("doc"), DOC)
        _check("raw GET + json.loads", json.loads(raw.get(raw_key)), DOC)  # type: ignore[arg-type]
        _check("RedisCache.get_many", kit.get_many(many), dict.fromkeys(many, DOC))

        # Row 2 and 3 share rounds: four contenders interleaved.
        kit_get = Contender("RedisCache.get(key)", "get(key)", {"get": kit.get, "key": "doc"})
        raw_get_json = Contender(
            "redis-py json.loads(r.get(key))",
            "loads(get(key))",
            {"loads": json.loads, "get": raw.get, "key": raw_key},
        )
        tiered_get = Contender(
            "TieredCache.get(key), L1 hit", "get(key)", {"get": tiered.get, "key": "doc"}
        )
        raw_get = Contender("redis-py r.get(key)", "get(key)", {"get": raw.get, "key": raw_key})
        measure([kit_get, raw_get_json, tiered_get, raw_get], mode)
        rows.append(
            Row.compare(
                f"Redis hit, {s['body_bytes']} B JSON",
                kit_get,
                raw_get_json,
                target="<= 1.1x",
                meets=lambda r: r <= 1.1,
            )
        )
        tiered_row = Row.compare(
            "tiered hit vs raw GET",
            tiered_get,
            raw_get,
            target=">= 20x faster (<= 0.05x)",
            meets=lambda r: r <= 0.05,
        )
        tiered_row.name += f": {1 / tiered_row.ratio:.0f}x faster"
        rows.append(tiered_row)

        # Row 4: get_many(100) against 100 GETs (and, for reference, one MGET).
        kit_rt = _commands(s["admin"], lambda: kit.get_many(many))
        gets_rt = _commands(s["admin"], lambda: [raw.get(k) for k in raw_many])
        mget_rt = _commands(s["admin"], lambda: raw.mget(raw_many))
        kit_many = Contender(
            f"RedisCache.get_many({MANY} keys)",
            "get_many(keys)",
            {"get_many": kit.get_many, "keys": many},
        )
        gets = Contender(
            f"redis-py {MANY}x json.loads(r.get(key))",
            "[loads(get(k)) for k in keys]",
            {"loads": json.loads, "get": raw.get, "keys": raw_many},
        )
        mget = Contender(
            f"redis-py MGET of {MANY} + json.loads",
            "[loads(v) for v in mget(keys)]",
            {"loads": json.loads, "mget": raw.mget, "keys": raw_many},
        )
        measure([kit_many, gets, mget], mode)
        trips = "round trip" if kit_rt == 1 else "round trips"
        rows.append(
            Row(
                name=f"get_many({MANY}): {kit_rt} {trips} vs {gets_rt}",
                kit=kit_many.label,
                peer=gets.label,
                kit_us=kit_many.min_us,
                peer_us=gets.min_us,
                target="1 round trip",
                verdict="meets target" if kit_rt == 1 else "misses target",
                extra={
                    "round_trips": kit_rt,
                    "peer_round_trips": gets_rt,
                    **Row.compare("", kit_many, gets, target="", meets=None).extra,
                },
            )
        )
        rows.append(
            Row.compare(
                f"get_many({MANY}) vs one raw MGET",
                kit_many,
                mget,
                target="info (overhead over MGET)",
                meets=None,
                round_trips=kit_rt,
                peer_round_trips=mget_rt,
            )
        )
    return rows


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="few short rounds (~10 s; the default when CI is set)"
    )
    size.add_argument("--full", action="store_true", help="full run (~45 s) even when CI is set")
    args = parser.parse_args(argv)
    quick = args.quick or (in_ci() and not args.full)
    mode = QUICK if quick else FULL

    started = time.perf_counter()
    rows: list[Row] = []
    status = 0
    try:
        rows += memory_rows(mode)
        rows += stampede_rows()
        with redis_service() as url:
            rows += redis_rows(url, mode)
    except Exception:
        traceback.print_exc()
        print("kit-cache benchmarks: error (see above); partial results written", file=sys.stderr)
        status = 1

    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "kit_cache": kit_cache.__version__,
        "redis_py": redis.__version__,
        "cachetools": cachetools.__version__,
        "mode": "quick" if quick else "full",
        "rounds": mode.rounds,
        "batch_s": mode.batch_s,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"package": "kit-cache", "results": [r.as_json() for r in rows], "info": info},
            indent=2,
        )
        + "\n"
    )
    header = (
        f"kit-cache benchmarks ({info['mode']}: {mode.rounds} interleaved rounds, "
        f"fastest round per call; Python {info['python']}; {info['seconds']} s)"
    )
    print_summary(rows, header)
    print(f"wrote {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
