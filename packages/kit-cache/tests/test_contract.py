"""The cache contract, checked on MemoryCache, RedisCache (real Redis) and TieredCache."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from kit_cache import MISSING, CacheKeyError, ConfigurationError, tenant_context


def test_miss_is_missing_and_cached_none_is_a_hit(any_cache: Any) -> None:
    assert any_cache.get("absent") is MISSING
    assert any_cache.set("nothing", None) is True
    assert any_cache.get("nothing") is None
    assert any_cache.stats().hits >= 1


def test_set_get_round_trip(any_cache: Any) -> None:
    value = {"id": 7, "tags": ["a", "b"], "nested": {"ok": True, "ratio": 0.5}}
    any_cache.set("doc", value, ttl=60)
    assert any_cache.get("doc") == value


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2026, 11, 22, 1, 2, 3, tzinfo=dt.UTC),
        dt.date(2026, 1, 2),
        UUID("12345678-1234-5678-1234-567812345678"),
        Decimal("10.25"),
        b"\x00bytes",
        {"when": dt.datetime(2026, 1, 1), "amounts": [Decimal("1.5")]},
    ],
)
def test_rich_values_round_trip(any_cache: Any, value: Any) -> None:
    any_cache.set("rich", value)
    assert any_cache.get("rich") == value


def test_delete(any_cache: Any) -> None:
    any_cache.set("k", 1)
    assert any_cache.delete("k") is True
    assert any_cache.delete("k") is False
    assert any_cache.get("k") is MISSING


def test_many(any_cache: Any) -> None:
    any_cache.set_many({"a": 1, "b": None, "c": [3]})
    assert any_cache.get_many(["a", "b", "c", "zz"]) == {"a": 1, "b": None, "c": [3]}
    assert any_cache.delete_many(["a", "c", "zz"]) == 2
    assert any_cache.get_many(["a", "b"]) == {"b": None}
    assert any_cache.get_many([]) == {}


def test_incr(any_cache: Any) -> None:
    assert any_cache.incr("hits") == 1
    assert any_cache.incr("hits", 5) == 6
    assert any_cache.incr("hits", -2) == 4
    assert any_cache.get("hits") == 4
    with pytest.raises(ConfigurationError):
        any_cache.incr("hits", 1.5)


def test_incr_ttl_applies_on_creation(any_cache: Any) -> None:
    any_cache.incr("window", ttl=30)
    remaining = any_cache.ttl("window")
    assert remaining is not MISSING and remaining is not None and 0 < remaining <= 30


def test_ttl_reports_remaining_none_and_missing(any_cache: Any) -> None:
    any_cache.set("short", 1, ttl=20)
    any_cache.set("forever", 1, ttl=None)
    remaining = any_cache.ttl("short")
    assert isinstance(remaining, float) and 0 < remaining <= 20
    assert any_cache.ttl("forever") is None
    assert any_cache.ttl("absent") is MISSING


def test_expiry(any_cache: Any) -> None:
    any_cache.set("brief", "x", ttl=0.2)
    assert any_cache.get("brief") == "x"
    deadline = time.monotonic() + 5
    while any_cache.get("brief") is not MISSING and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any_cache.get("brief") is MISSING


def test_clear_namespace_leaves_others(any_cache: Any) -> None:
    any_cache.set("a", 1, namespace="users")
    any_cache.set("a", 2, namespace="orders")
    any_cache.clear("users")
    assert any_cache.get("a", namespace="users") is MISSING
    assert any_cache.get("a", namespace="orders") == 2
    any_cache.set("a", 3, namespace="users")  # written after the clear: visible again
    assert any_cache.get("a", namespace="users") == 3


def test_tenants_partition_keys(any_cache: Any) -> None:
    with tenant_context("acme"):
        any_cache.set("plan", "pro")
        assert any_cache.get("plan") == "pro"
        assert ":@acme:" in any_cache.key_for("plan")
    assert any_cache.get("plan") is MISSING
    assert any_cache.get("plan", tenant="acme") == "pro"
    with tenant_context("globex"):
        assert any_cache.get("plan") is MISSING


@pytest.mark.parametrize("bad", ["", "a\nb", "@tenant-looking", 42, None])
def test_bad_keys_are_refused(any_cache: Any, bad: Any) -> None:
    with pytest.raises(CacheKeyError):
        any_cache.get(bad)
    with pytest.raises(CacheKeyError):
        any_cache.set(bad, 1)


@pytest.mark.parametrize("bad", [0, -1, "10", True])
def test_bad_ttl_is_refused(any_cache: Any, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        any_cache.set("k", 1, ttl=bad)


@pytest.mark.parametrize("bad", ["", "a:b", "with space"])
def test_bad_namespace_or_tenant_is_refused(any_cache: Any, bad: str) -> None:
    with pytest.raises(ConfigurationError):
        any_cache.get("k", namespace=bad)
    with pytest.raises(ConfigurationError), tenant_context(bad):
        pass


def test_long_keys_are_hashed_with_a_readable_head(any_cache: Any) -> None:
    long_key = "report:" + "x" * 500
    any_cache.set(long_key, "big")
    assert any_cache.get(long_key) == "big"
    stored = any_cache.key_for(long_key)
    assert len(stored) < 200
    assert "report:xxx" in stored
    assert any_cache.get("report:" + "x" * 499 + "y") is MISSING


def test_stats_count(any_cache: Any) -> None:
    any_cache.get("nope")
    any_cache.set("yes", 1)
    any_cache.get("yes")
    stats = any_cache.stats()
    assert stats.misses >= 1 and stats.hits >= 1 and stats.sets >= 1
    assert 0 < stats.hit_ratio < 1


def test_ping(any_cache: Any) -> None:
    assert any_cache.ping() is True
