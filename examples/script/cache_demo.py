"""A guided tour of kit-cache, on embedded defaults: no server, nothing to configure.

    python examples/script/cache_demo.py                              # MemoryCache
    python examples/script/cache_demo.py --redis redis://localhost:6379/0  # the same on Redis

Every step prints what kit-cache did. The tour takes about two seconds and exits 0.
With ``--redis`` it uses the prefix ``kit-demo`` and clears its own namespaces first, so
it never touches other keys in that database.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from kit_cache import (
    MISSING,
    BackendError,
    BaseCache,
    ConfigurationError,
    MemoryCache,
    RedisCache,
    cached,
    tenant_context,
)

SLOW = 0.2  # seconds each "expensive" function takes
NAMESPACES = ("demo", "catalog", "reports")


def step(number: int, title: str) -> None:
    print(f"\n[{number}] {title}")


def did(message: str) -> None:
    print(f"    -> {message}")


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, (time.perf_counter() - started) * 1000


# --------------------------------------------------------------------------- the steps


def miss_then_hit(cache: BaseCache) -> None:
    step(1, "@cached: the first call computes, the second is served from the cache")

    @cached(ttl=60, key="report:{year}", namespace="reports", cache=cache)
    def yearly_report(year: int) -> dict[str, Any]:
        time.sleep(SLOW)  # a slow query
        return {"year": year, "total": 1234}

    _, first = timed(lambda: yearly_report(2025))
    did(f"miss: computed and stored in {first:.1f} ms")
    _, second = timed(lambda: yearly_report(2025))
    did(f"hit:  served from the cache in {second:.3f} ms ({first / second:,.0f}x faster)")


def none_is_a_hit(cache: BaseCache) -> None:
    step(2, "A cached None is a hit: get() says MISSING for absent keys")
    lookups: list[str] = []

    @cached(ttl=60, key="user-by-email:{email}", cache=cache)
    def find_user(email: str) -> dict[str, Any] | None:
        lookups.append(email)
        return None  # nobody has that address

    find_user("nobody@example.com")
    find_user("nobody@example.com")
    did(f"find_user() returned None twice, the database was asked {len(lookups)} time(s)")
    cache.set("nothing", None)
    did(f"cache.get('nothing') -> {cache.get('nothing')!r} (a cached None)")
    did(f"cache.get('absent')  -> {cache.get('absent')!r} (the MISSING sentinel, falsy)")
    assert cache.get("absent") is MISSING


def templates_and_invalidate(cache: BaseCache) -> None:
    step(3, "Key templates name the arguments; .key() shows the key, .invalidate() drops it")
    calls: Counter[int] = Counter()

    @cached(ttl=60, key="user:{user_id}", cache=cache)
    def load_user(user_id: int, *, verbose: bool = False) -> dict[str, Any]:
        calls[user_id] += 1
        return {"id": user_id, "name": f"user {user_id}"}

    load_user(42)
    load_user(user_id=42)  # same key: arguments are bound the way Python binds them
    did(f"load_user(42) and load_user(user_id=42) share one key: {load_user.key(42)!r}")
    did(f"computed {calls[42]} time(s) for two calls")
    did(f"load_user.invalidate(42) -> {load_user.invalidate(42)} (the entry existed)")
    load_user(42)
    did(f"the next call recomputed: {calls[42]} computations so far")
    try:

        @cached(key="user:{userid}", cache=cache)  # typo: the argument is user_id
        def broken(user_id: int) -> None: ...

    except ConfigurationError as exc:
        did(f"a template naming a missing argument fails at decoration time: {exc}")


def tags(cache: BaseCache) -> None:
    step(4, "Tags: one invalidate_tags() call drops entries of several functions")
    calls: Counter[str] = Counter()

    @cached(ttl=60, key="profile:{user_id}", tags=["user:{user_id}"], cache=cache)
    def profile(user_id: int) -> dict[str, Any]:
        calls["profile"] += 1
        return {"id": user_id}

    @cached(ttl=60, key="orders:{user_id}", tags=["user:{user_id}"], cache=cache)
    def orders(user_id: int) -> list[int]:
        calls["orders"] += 1
        return [1, 2, 3]

    for user_id in (7, 8):
        profile(user_id)
        orders(user_id)
    cache.invalidate_tags("user:7")
    for user_id in (7, 8):
        profile(user_id)
        orders(user_id)
    did("filled profile() and orders() for users 7 and 8 (4 computations)")
    did(
        f"invalidate_tags('user:7') dropped both functions' entries for user 7 only: "
        f"{sum(calls.values())} computations in all"
    )


def tenants(cache: BaseCache) -> None:
    step(5, "Tenants: tenant_context() puts the tenant in every key built inside it")
    computed: list[str] = []

    @cached(ttl=60, key="settings", cache=cache)
    def settings() -> dict[str, str]:
        computed.append("x")
        return {"theme": "dark"}

    for tenant in ("acme", "globex", "acme"):
        with tenant_context(tenant):
            settings()
            did(f"tenant {tenant!r:9} key {settings.key()!r}")
    did(f"3 calls, {len(computed)} computations: acme's entry is never served to globex")


def namespaces(cache: BaseCache) -> None:
    step(6, "Namespaces: clear() drops a whole namespace in O(1), other namespaces stay")
    calls: Counter[str] = Counter()

    @cached(ttl=60, key="products", namespace="catalog", cache=cache)
    def products() -> list[str]:
        calls["products"] += 1
        return ["tea", "coffee"]

    @cached(ttl=60, key="countries", cache=cache)
    def countries() -> list[str]:
        calls["countries"] += 1
        return ["FR", "NZ"]

    products()
    countries()
    cache.clear("catalog")  # bumps the namespace's version: no key is scanned
    products()
    countries()
    did(
        f"after clear('catalog'): products computed {calls['products']} times, "
        f"countries {calls['countries']} time (still a hit)"
    )


def stampede(cache: BaseCache) -> None:
    step(7, "Stampede protection: 50 threads miss the same key at once")
    computations = 0
    lock = threading.Lock()

    @cached(ttl=60, key="homepage", cache=cache)
    def homepage() -> str:
        nonlocal computations
        with lock:
            computations += 1
        time.sleep(SLOW)
        return "<html>...</html>"

    barrier = threading.Barrier(50)
    results: list[str] = []

    def worker() -> None:
        barrier.wait()
        results.append(homepage())

    threads = [threading.Thread(target=worker) for _ in range(50)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = (time.perf_counter() - started) * 1000
    did(
        f"{len(results)} callers got the page in {elapsed:.0f} ms; "
        f"homepage() ran {computations} time (single-flight)"
    )


def stale_while_revalidate(cache: BaseCache) -> None:
    step(8, "Stale-while-revalidate: after ttl, the old value is served while one refresh runs")
    version = 0

    @cached(ttl=0.3, stale_ttl=30, early_recompute=0, key="exchange-rate", cache=cache)
    def exchange_rate() -> int:
        nonlocal version
        version += 1
        time.sleep(SLOW)
        return version

    value, ms = timed(exchange_rate)
    did(f"first call computed version {value} in {ms:.0f} ms")
    time.sleep(0.4)  # the ttl has passed: the entry is stale but within stale_ttl
    value, ms = timed(exchange_rate)
    did(f"after ttl: served stale version {value} in {ms:.2f} ms, a refresh runs in background")
    deadline = time.monotonic() + 5
    while exchange_rate() == value and time.monotonic() < deadline:
        time.sleep(0.02)
    did(f"a moment later the refreshed version {exchange_rate()} is served")


def statistics(cache: BaseCache) -> None:
    step(9, "stats(): counters since the cache was created")
    s = cache.stats()
    did(
        f"hits={s.hits} misses={s.misses} sets={s.sets} deletes={s.deletes} "
        f"errors={s.errors} evictions={s.evictions} hit_ratio={s.hit_ratio:.0%}"
    )
    did("each of the 50 stampede threads counted a miss, yet they shared one computation")
    if s.latency_count:
        did(f"{s.latency_count} round trips to Redis, mean {s.latency_mean_ms:.2f} ms")


STEPS = (
    miss_then_hit,
    none_is_a_hit,
    templates_and_invalidate,
    tags,
    tenants,
    namespaces,
    stampede,
    stale_while_revalidate,
    statistics,
)


# --------------------------------------------------------------------------- main


def make_cache(redis_url: str | None) -> BaseCache:
    if redis_url is None:
        return MemoryCache(namespace="demo")
    cache = RedisCache(redis_url, prefix="kit-demo", namespace="demo", verify=True)
    for namespace in NAMESPACES:  # a fresh start even if the tour ran a minute ago
        cache.clear(namespace)
    return cache


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", metavar="URL", help="run the tour on RedisCache at URL")
    args = parser.parse_args(argv)
    try:
        cache = make_cache(args.redis)
    except (BackendError, ConfigurationError) as exc:
        print(f"kit-cache demo: {exc}", file=sys.stderr)
        print("Run without --redis to use the in-process MemoryCache.", file=sys.stderr)
        return 2
    print(f"kit-cache tour on {cache!r}" if args.redis else "kit-cache tour on MemoryCache")
    started = time.perf_counter()
    with cache:
        for run_step in STEPS:
            run_step(cache)
    print(f"\nDone in {time.perf_counter() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
