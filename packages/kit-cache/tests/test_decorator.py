"""@cached: keys, helpers, freshness, stampede protection; sync and async."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from kit_cache import (
    AsyncRedisCache,
    ConfigurationError,
    MemoryCache,
    RedisCache,
    SerializationError,
    cached,
    get_default_cache,
    set_default_cache,
    tenant_context,
)


class Counter:
    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, *args: Any) -> int:
        with self.lock:
            self.calls.append(args)
            return len(self.calls)


# -- key templates ------------------------------------------------------------------------


def test_template_naming_a_missing_argument_fails_at_decoration() -> None:
    with pytest.raises(ConfigurationError, match=r"names 'uid'.*no such argument.*user_id"):

        @cached(key="user:{uid}")
        def get_user(user_id: int) -> int:
            return user_id


def test_positional_template_fields_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="positional field"):

        @cached(key="user:{0}")
        def get_user(user_id: int) -> int:
            return user_id


def test_tag_templates_are_checked_too() -> None:
    with pytest.raises(ConfigurationError, match="'org'"):

        @cached(tags=["org:{org}"])
        def get_user(user_id: int) -> int:
            return user_id


def test_tags_must_be_a_list_not_a_string() -> None:
    with pytest.raises(ConfigurationError, match="list"):
        cached(tags="users")


def test_default_key_binds_arguments_the_same_way() -> None:
    cache = MemoryCache()
    count = Counter()

    @cached(cache=cache)
    def area(width: int, height: int = 2, *, unit: str = "m") -> int:
        return count(width, height)

    area(3)
    area(3, 2)
    area(width=3)
    area(3, height=2, unit="m")
    assert len(count.calls) == 1
    assert (
        area.key(3)
        == f"kit:default:{__name__}.test_default_key_binds_arguments_the_same_way.<locals>.area(3,2,'m')"
    )
    area(4)
    assert len(count.calls) == 2


def test_default_key_distinguishes_types() -> None:
    cache = MemoryCache()

    @cached(cache=cache)
    def echo(x: Any) -> str:
        return type(x).__name__

    assert echo(1) == "int"
    assert echo("1") == "str"


def test_template_with_attribute_access_and_methods() -> None:
    cache = MemoryCache()

    @dataclass
    class User:
        id: int

    class Repo:
        def __init__(self) -> None:
            self.count = Counter()

        @cached(key="user:{user.id}", cache=cache)
        def load(self, user: User) -> int:
            return self.count(user.id)

    repo = Repo()
    assert repo.load(User(1)) == 1
    assert repo.load(User(1)) == 1
    assert Repo.load.key(repo, User(1)) == "kit:default:user:1"


def test_varargs_and_kwargs_in_default_key() -> None:
    cache = MemoryCache()
    count = Counter()

    @cached(cache=cache)
    def f(*args: int, **kwargs: int) -> int:
        return count(args, kwargs)

    f(1, 2, b=2, a=1)
    f(1, 2, a=1, b=2)
    assert len(count.calls) == 1
    f(2, 1, a=1, b=2)
    assert len(count.calls) == 2


def test_keys_that_could_forge_a_tenant_segment_are_hashed() -> None:
    cache = MemoryCache()

    @cached(key="{name}", cache=cache)
    def f(name: str) -> str:
        return name

    assert f("@acme:plan") == "@acme:plan"
    assert ":@acme:" not in f.key("@acme:plan")


# -- helpers ------------------------------------------------------------------------------


def test_invalidate_refresh_and_tags() -> None:
    cache = MemoryCache()
    count = Counter()

    @cached(ttl=60, key="user:{user_id}", tags=["user:{user_id}", "users"], cache=cache)
    def get_user(user_id: int) -> int:
        return count(user_id)

    @cached(ttl=60, key="profile:{user_id}", tags=["user:{user_id}"], cache=cache)
    def get_profile(user_id: int) -> int:
        return count("profile", user_id)

    assert get_user(1) == 1 and get_user(1) == 1
    assert get_user.invalidate(1) is True
    assert get_user(1) == 2
    assert get_user.refresh(1) == 3
    assert get_user(1) == 3
    get_profile(1)
    get_user(2)
    calls = len(count.calls)
    get_user.invalidate_tags("user:1")  # drops user 1 across both functions, not user 2
    get_user(1)
    get_profile(1)
    get_user(2)
    assert len(count.calls) == calls + 2
    cache.invalidate_tags("users")
    get_user(2)
    assert len(count.calls) == calls + 3


def test_none_results_are_cached_and_exceptions_are_not() -> None:
    cache = MemoryCache()
    count = Counter()

    @cached(cache=cache)
    def maybe(x: int) -> int | None:
        count(x)
        if x < 0:
            raise ValueError("negative")
        return None

    assert maybe(1) is None and maybe(1) is None
    assert len(count.calls) == 1
    for _ in range(2):
        with pytest.raises(ValueError, match="negative"):
            maybe(-1)
    assert len(count.calls) == 3


def test_unless_skips_caching() -> None:
    cache = MemoryCache()
    count = Counter()

    @cached(cache=cache, unless=lambda result: result is None)
    def find(x: int) -> int | None:
        count(x)
        return None if x == 0 else x

    find(0)
    find(0)
    find(1)
    find(1)
    assert len(count.calls) == 3


def test_namespace_clear() -> None:
    cache = MemoryCache()
    count = Counter()

    @cached(cache=cache, namespace="reports")
    def report(x: int) -> int:
        return count(x)

    report(1)
    assert report.key(1).startswith("kit:reports:")
    cache.clear("reports")
    report(1)
    assert len(count.calls) == 2


def test_tenant_is_part_of_the_key() -> None:
    cache = MemoryCache()
    count = Counter()

    @cached(cache=cache, key="plan")
    def plan() -> int:
        return count()

    with tenant_context("acme"):
        assert plan() == 1 and plan() == 1
    with tenant_context("globex"):
        assert plan() == 2
    assert plan() == 3


def test_ttl_expiry_and_default_ttl(clock: Any) -> None:
    cache = MemoryCache(clock=clock, default_ttl=10)
    count = Counter()

    @cached(cache=cache, early_recompute=0)
    def f() -> int:
        return count()

    @cached(ttl=None, cache=cache)
    def forever() -> int:
        return count()

    f()
    forever()
    clock.advance(9)
    f()
    assert len(count.calls) == 2
    clock.advance(2)
    f()
    forever()
    assert len(count.calls) == 3


def test_default_cache_is_used_and_replaceable() -> None:
    previous = get_default_cache()
    mine = MemoryCache(namespace="mine")
    set_default_cache(mine)
    try:

        @cached
        def f(x: int) -> int:
            return x

        f(1)
        assert f.key(1).startswith("kit:mine:")
        assert len(mine) == 1
    finally:
        set_default_cache(previous)


def test_late_bound_cache_callable() -> None:
    caches = [MemoryCache(namespace="one")]

    @cached(cache=lambda: caches[0])
    def f(x: int) -> int:
        return x

    assert f.key(1).startswith("kit:one:")
    caches[0] = MemoryCache(namespace="two")
    assert f.key(1).startswith("kit:two:")
    assert f(2) == 2


def test_bad_options_fail_at_decoration() -> None:
    with pytest.raises(ConfigurationError, match="stale_ttl needs a ttl"):
        cached(ttl=None, stale_ttl=5)
    with pytest.raises(ConfigurationError, match="early_recompute"):
        cached(early_recompute=-1)
    with pytest.raises(ConfigurationError, match="ttl"):
        cached(ttl=-5)


def test_unserializable_result_names_the_type(redis_cache: RedisCache) -> None:
    class Opaque:
        pass

    @cached(cache=redis_cache)
    def f() -> Opaque:
        return Opaque()

    with pytest.raises(SerializationError, match="Opaque"):
        f()


# -- freshness: XFetch and stale-while-revalidate -------------------------------------------


def test_xfetch_recomputes_before_expiry(clock: Any) -> None:
    cache = MemoryCache(clock=clock)
    count = Counter()
    recomputed = threading.Event()

    @cached(ttl=10, cache=cache, early_recompute=1e9)  # huge beta: always early near expiry
    def f() -> int:
        n = count()
        if n > 1:
            recomputed.set()
        return n

    assert f() == 1
    clock.advance(9)  # still fresh, but within delta * beta of expiry
    assert f() == 1  # served from cache while a background refresh runs
    assert recomputed.wait(5)
    deadline = time.monotonic() + 5
    while f() != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert f() == 2


def test_xfetch_off_means_no_early_recompute(clock: Any) -> None:
    cache = MemoryCache(clock=clock)
    count = Counter()

    @cached(ttl=10, cache=cache, early_recompute=0)
    def f() -> int:
        return count()

    f()
    clock.advance(9.99)
    for _ in range(100):
        f()
    assert len(count.calls) == 1


def test_stale_while_revalidate(clock: Any) -> None:
    cache = MemoryCache(clock=clock)
    started, release = threading.Event(), threading.Event()
    count = Counter()

    @cached(ttl=10, stale_ttl=30, cache=cache, early_recompute=0)
    def f() -> int:
        n = count()
        if n > 1:
            started.set()
            release.wait(5)
        return n

    assert f() == 1
    clock.advance(15)  # stale but inside the stale window
    assert f() == 1  # stale value now, refresh in the background
    assert started.wait(5)
    assert f() == 1  # refresh still running: still stale, no second refresh
    release.set()
    deadline = time.monotonic() + 5
    while f() != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert f() == 2
    assert len(count.calls) == 2
    clock.advance(45)  # past the stale window: a plain miss
    assert f() == 3


# -- stampede protection ----------------------------------------------------------------------


def _stampede_threads(fn: Any, n: int = 200) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = fn()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_200_threads_compute_once(backend: str, request: pytest.FixtureRequest) -> None:
    cache = MemoryCache() if backend == "memory" else request.getfixturevalue("redis_cache")
    count = Counter()

    @cached(ttl=60, cache=cache)
    def slow() -> str:
        count()
        time.sleep(0.05)
        return "value"

    assert _stampede_threads(slow) == ["value"] * 200
    assert len(count.calls) == 1


def test_an_error_reaches_every_waiting_thread_and_is_not_cached() -> None:
    cache = MemoryCache()
    count = Counter()

    @cached(cache=cache)
    def boom() -> None:
        count()
        time.sleep(0.05)
        raise RuntimeError("backend exploded")

    def call() -> str:
        try:
            boom()
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    assert set(_stampede_threads(call, 50)) == {"backend exploded"}
    assert len(count.calls) == 1
    call()
    assert len(count.calls) == 2


@pytest.mark.parametrize("backend", ["memory", "redis", "async-redis"])
async def test_200_tasks_compute_once(
    backend: str, request: pytest.FixtureRequest, prefix: str
) -> None:
    cache: Any
    if backend == "memory":
        cache = MemoryCache()
    elif backend == "redis":
        cache = request.getfixturevalue("redis_cache")
    else:
        cache = AsyncRedisCache(request.getfixturevalue("redis_url"), prefix=prefix)
    count = Counter()

    @cached(ttl=60, cache=cache)
    async def slow(x: int) -> dict[str, int]:
        count(x)
        await asyncio.sleep(0.05)
        return {"x": x}

    results = await asyncio.gather(*(slow(1) for _ in range(200)))
    assert results == [{"x": 1}] * 200
    assert len(count.calls) == 1
    assert await slow(1) == {"x": 1}
    await slow.invalidate(1)
    assert await slow(1) == {"x": 1}
    assert len(count.calls) == 2
    assert await slow.refresh(1) == {"x": 1}
    await slow.invalidate_tags("nothing-tagged")
    if backend == "async-redis":
        await cache.aclose()


async def test_a_cancelled_waiter_does_not_cancel_the_computation() -> None:
    cache = MemoryCache()
    count = Counter()

    @cached(cache=cache)
    async def slow() -> str:
        count()
        await asyncio.sleep(0.1)
        return "done"

    first = asyncio.ensure_future(slow())
    second = asyncio.ensure_future(slow())
    await asyncio.sleep(0.02)
    first.cancel()
    assert await second == "done"
    assert len(count.calls) == 1


def test_distributed_lock_lets_one_process_compute(redis_url: str, prefix: str) -> None:
    """Two decorated functions with separate in-process single-flight stand for two
    processes; the Redis lock makes them compute the key once between them."""
    count = Counter()
    caches = [RedisCache(redis_url, prefix=prefix) for _ in range(2)]

    def make(cache: RedisCache) -> Any:
        @cached(ttl=60, key="report", cache=cache, lock=True, lock_timeout=5)
        def report() -> str:
            count()
            time.sleep(0.2)
            return "ok"

        return report

    workers = [make(c) for c in caches]
    results: list[str] = []
    threads = [threading.Thread(target=lambda w=w: results.append(w())) for w in workers * 5]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["ok"] * 10
    assert len(count.calls) == 1
    for c in caches:
        c.close()


async def test_async_function_with_lock_on_a_sync_redis_cache(redis_url: str, prefix: str) -> None:
    count = Counter()
    caches = [RedisCache(redis_url, prefix=prefix) for _ in range(2)]

    def make(cache: RedisCache) -> Any:
        @cached(ttl=60, key="report", cache=cache, lock=True, lock_timeout=5)
        async def report() -> str:
            count()
            await asyncio.sleep(0.2)
            return "ok"

        return report

    workers = [make(c) for c in caches]
    assert await asyncio.gather(*(w() for w in workers * 3)) == ["ok"] * 6
    assert len(count.calls) == 1
    for c in caches:
        c.close()


def test_a_computed_miss_counts_as_one_miss(redis_cache: RedisCache) -> None:
    @cached(cache=redis_cache)
    def f() -> int:
        return 1

    f()
    f()
    stats = redis_cache.stats()
    assert (stats.misses, stats.hits) == (1, 1)
