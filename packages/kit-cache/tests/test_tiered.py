"""TieredCache: L1 hits skip Redis; invalidations reach other processes; staleness is bounded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest

from kit_cache import MISSING, ConfigurationError, RedisCache, TieredCache, cached


def _until(predicate: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _in_other_process(url: str, prefix: str, body: str) -> None:
    script = (
        textwrap.dedent(
            f"""
        from kit_cache import TieredCache
        cache = TieredCache({url!r}, prefix={prefix!r})
        assert cache.wait_ready(10)
        """
        )
        + textwrap.dedent(body)
        + "\ncache.close()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_l1_hits_do_not_touch_redis(make_tiered: Callable[..., TieredCache], commands: Any) -> None:
    cache = make_tiered(l1_ttl=60)
    cache.set("hot", {"v": 1})
    assert cache.get("hot") == {"v": 1}
    commands.since_mark()
    for _ in range(100):
        assert cache.get("hot") == {"v": 1}
    assert commands.since_mark() == 0
    assert cache.l1.stats().hits >= 100


def test_a_write_in_another_process_invalidates_l1(
    make_tiered: Callable[..., TieredCache], redis_url: str, prefix: str
) -> None:
    cache = make_tiered(l1_ttl=300)  # only an invalidation message can explain a change
    cache.set("config", "v1")
    assert cache.get("config") == "v1"
    _in_other_process(redis_url, prefix, 'cache.set("config", "v2")')
    assert _until(lambda: cache.get("config") == "v2")


def test_clear_and_tags_in_another_process_invalidate_l1(
    make_tiered: Callable[..., TieredCache], redis_url: str, prefix: str
) -> None:
    cache = make_tiered(l1_ttl=300)
    calls: list[int] = []

    @cached(ttl=300, key="u:{n}", tags=["user:{n}"], cache=cache)
    def user(n: int) -> int:
        calls.append(n)
        return len(calls)

    cache.set("a", 1, namespace="reports")
    assert cache.get("a", namespace="reports") == 1
    assert user(1) == 1 and user(1) == 1
    _in_other_process(redis_url, prefix, 'cache.clear("reports")\ncache.invalidate_tags("user:1")')
    assert _until(lambda: cache.get("a", namespace="reports") is MISSING)
    assert _until(lambda: user(1) == 2)


def test_writes_that_bypass_tiered_are_seen_within_l1_ttl(
    make_tiered: Callable[..., TieredCache], redis_url: str, prefix: str
) -> None:
    cache = make_tiered(l1_ttl=0.3)
    plain = RedisCache(redis_url, prefix=prefix)
    cache.set("k", "old")
    assert cache.get("k") == "old"
    plain.set("k", "new")  # no invalidation message: L1 may serve "old" for up to l1_ttl
    assert _until(lambda: cache.get("k") == "new", seconds=5)
    plain.close()


def test_delete_and_incr_propagate(make_tiered: Callable[..., TieredCache]) -> None:
    a, b = make_tiered(l1_ttl=300), make_tiered(l1_ttl=300)
    a.set("k", 1)
    assert b.get("k") == 1
    a.delete("k")
    assert _until(lambda: b.get("k") is MISSING)
    a.set("n", 1)
    assert b.get("n") == 1
    a.incr("n")
    assert _until(lambda: b.get("n") == 2)


def test_l1_entries_never_outlive_the_entry(make_tiered: Callable[..., TieredCache]) -> None:
    cache = make_tiered(l1_ttl=300)
    cache.set("brief", "x", ttl=0.3)
    assert cache.get("brief") == "x"
    assert _until(lambda: cache.get("brief") is MISSING, seconds=5)


def test_options_and_stats(make_tiered: Callable[..., TieredCache], redis_url: str) -> None:
    cache = make_tiered()
    cache.set("s", 1)
    cache.get("s")
    cache.get("s")
    stats = cache.stats()
    assert stats.hits >= 2 and stats.sets == 1
    shared = RedisCache(redis_url)
    with pytest.raises(ConfigurationError, match="RedisCache you pass"):
        TieredCache(shared, socket_timeout=1)
    shared.close()
    assert repr(cache).startswith("TieredCache(")


def test_second_process_sees_values_through_redis(
    make_tiered: Callable[..., TieredCache], redis_url: str, prefix: str
) -> None:
    cache = make_tiered()
    _in_other_process(redis_url, prefix, 'cache.set("from-child", {"ok": True})')
    assert cache.get("from-child") == {"ok": True}
