"""Rate limiting with the memory storage: algorithms, headers, policies, callbacks."""

from __future__ import annotations

import logging
import threading

import pytest

from kit_auth.exceptions import BackendUnavailable, ConfigurationError, InvalidInput, RateLimited
from kit_auth.ratelimit import (
    Decision,
    MemoryRateLimitStorage,
    RateLimit,
    RateLimiter,
    RateLimitStorage,
)
from kit_auth.ratelimit._base import Acquire


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(limit: RateLimit | str, clock: Clock, **kwargs: object) -> RateLimiter:
    return RateLimiter(limit, storage=MemoryRateLimitStorage(clock=clock), **kwargs)  # type: ignore[arg-type]


# -- parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("10/minute", 10, 60),
        ("100 per 1 hour", 100, 3600),
        ("5/15 minutes", 5, 900),
        ("3/second", 3, 1),
        ("7/s", 7, 1),
        ("2 per day", 2, 86400),
        ("  1/10 MIN ", 1, 600),
    ],
)
def test_parse_accepts_common_forms(text: str, limit: int, period: int) -> None:
    parsed = RateLimit.parse(text)
    assert (parsed.limit, parsed.period) == (limit, period)


@pytest.mark.parametrize(
    "text", ["", "10", "ten/minute", "10/fortnight", "10 minute", "-1/s", "0/s"]
)
def test_parse_refuses_bad_strings_naming_them(text: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimit.parse(text)
    assert repr(text) in str(info.value) or "limit must be" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0, "period": 1},
        {"limit": 1, "period": 0},
        {"limit": 1, "period": float("nan")},
        {"limit": True, "period": 1},
        {"limit": 1, "period": 1, "burst": 0},
        {"limit": 1, "period": 1, "algorithm": "leaky"},
        {"limit": 1, "period": 1, "name": 'a"b'},
        {"limit": 1, "period": 1, "burst": 2, "algorithm": "sliding-window"},
    ],
)
def test_ratelimit_validates(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RateLimit(**kwargs)  # type: ignore[arg-type]


def test_limiter_validates_configuration() -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter("1/s", failure="maybe")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        RateLimiter("1/s", storage=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        RateLimiter("1/s", key_prefix="a{b}")
    with pytest.raises(ConfigurationError):
        RateLimiter(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "cost"), [("", 1), (None, 1), ("x" * 513, 1), ("k", 0), ("k", 11), ("k", 1.0)]
)
def test_hit_validates_arguments(key: object, cost: object) -> None:
    limiter = RateLimiter("10/minute")
    with pytest.raises(InvalidInput):
        limiter.hit(key, cost)  # type: ignore[arg-type]


# -- GCRA ------------------------------------------------------------------------------


def test_gcra_burst_then_steady_rate() -> None:
    clock = Clock()
    limiter = make("10/minute", clock)  # one token every 6 s, burst 10
    decisions = [limiter.hit("k") for _ in range(10)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == list(range(9, -1, -1))
    assert decisions[-1].reset_after == pytest.approx(60)
    refused = limiter.hit("k")
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(6)
    clock.now += 5.9
    assert not limiter.hit("k").allowed
    clock.now += 0.1
    assert limiter.hit("k").allowed  # exactly one token back
    assert not limiter.hit("k").allowed
    for _ in range(5):  # steady state: one per 6 s
        clock.now += 6
        assert limiter.hit("k").allowed
        assert not limiter.hit("k").allowed


def test_gcra_custom_burst_and_cost() -> None:
    clock = Clock()
    limiter = make(RateLimit(limit=10, period=10, burst=3), clock)
    assert limiter.hit("k", cost=2).remaining == 1
    refused = limiter.hit("k", cost=2)
    assert not refused.allowed
    assert refused.remaining == 1
    assert refused.retry_after == pytest.approx(1)  # one more token in 1 s
    assert limiter.hit("k").allowed
    with pytest.raises(InvalidInput):
        limiter.hit("k", cost=4)  # more than the burst could ever allow


def test_gcra_keys_are_independent_and_refill_fully() -> None:
    clock = Clock()
    limiter = make("2/minute", clock)
    assert [limiter.hit("a").allowed for _ in range(3)] == [True, True, False]
    assert limiter.hit("b").allowed
    clock.now += 60
    assert limiter.peek("a").remaining == 2


def test_peek_does_not_consume() -> None:
    clock = Clock()
    limiter = make("2/minute", clock)
    for _ in range(5):
        assert limiter.peek("k").remaining == 2
    limiter.hit("k")
    limiter.hit("k")
    peeked = limiter.peek("k")
    assert (peeked.allowed, peeked.remaining) == (False, 0)
    assert peeked.retry_after == pytest.approx(30)


def test_reset_restores_the_quota() -> None:
    limiter = make("1/hour", Clock())
    assert limiter.hit("k").allowed
    assert not limiter.hit("k").allowed
    limiter.reset("k")
    assert limiter.hit("k").allowed


# -- sliding window --------------------------------------------------------------------


def test_sliding_window_weights_the_previous_window() -> None:
    clock = Clock(600.0)  # a window boundary (period 60)
    limiter = make(RateLimit(limit=10, period=60, algorithm="sliding-window"), clock)
    assert all(limiter.hit("k").allowed for _ in range(10))
    assert not limiter.hit("k").allowed
    clock.now = 660.0 + 15  # next window, 1/4 elapsed: previous weighs 10 * 0.75 = 7.5 -> 7
    d = limiter.peek("k")
    assert d.remaining == 3
    assert [limiter.hit("k").allowed for _ in range(4)] == [True, True, True, False]
    clock.now = 660.0 + 30  # weight 0.5 -> 5 + 3 current = 8 -> 2 left
    assert limiter.peek("k").remaining == 2


def test_sliding_window_retry_after_is_exact() -> None:
    clock = Clock(600.0)
    limiter = make(RateLimit(limit=4, period=60, algorithm="sliding-window"), clock)
    for _ in range(4):
        limiter.hit("k")
    refused = limiter.hit("k")
    # the current window is full: only the next one helps, where floor(4 * w) + 1 <= 4
    # holds as soon as w < 1, i.e. right after the boundary
    assert refused.retry_after == pytest.approx(60, abs=1e-3)
    clock.now += refused.retry_after
    assert limiter.hit("k").allowed  # weighted: floor(4 * 0.99..) = 3, + 1
    refused = limiter.hit("k")
    # now floor(4 * (60 - e) / 60) + 1 + 1 <= 4 needs e > 15
    assert refused.retry_after == pytest.approx(15, abs=1e-3)
    clock.now += refused.retry_after - 0.01
    assert not limiter.hit("k").allowed
    clock.now += 0.02
    assert limiter.hit("k").allowed


def test_sliding_window_forgets_after_two_windows() -> None:
    clock = Clock(600.0)
    limiter = make(RateLimit(limit=2, period=60, algorithm="sliding-window"), clock)
    limiter.hit("k")
    limiter.hit("k")
    clock.now += 120
    assert limiter.peek("k").remaining == 2


# -- memory storage --------------------------------------------------------------------


def test_memory_storage_sweeps_idle_keys() -> None:
    clock = Clock()
    storage = MemoryRateLimitStorage(clock=clock, sweep_interval=10)
    gcra = RateLimiter("10/minute", storage=storage)
    sliding = RateLimiter(RateLimit(10, 60, algorithm="sliding-window", name="sw"), storage=storage)
    for i in range(100):
        gcra.hit(f"k{i}")
        sliding.hit(f"k{i}")
    assert len(storage) == 200
    clock.now += 200  # every key idle: state equals a fresh key's
    gcra.hit("new")
    assert len(storage) == 1


def test_memory_storage_validates() -> None:
    with pytest.raises(ConfigurationError):
        MemoryRateLimitStorage(sweep_interval=0)
    with pytest.raises(ConfigurationError):
        MemoryRateLimitStorage(clock=1.0)  # type: ignore[arg-type]


def test_memory_storage_is_thread_safe() -> None:
    limiter = RateLimiter("20/hour")
    barrier = threading.Barrier(50)
    results: list[bool] = []

    def worker() -> None:
        barrier.wait()
        results.append(limiter.hit("shared").allowed)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 50
    assert results.count(True) == 20


# -- headers and exceptions ---------------------------------------------------------


def test_headers_follow_draft_10() -> None:
    clock = Clock()
    limiter = make(RateLimit.parse("10/minute", name="api"), clock)
    for _ in range(7):
        d = limiter.hit("k")
    assert d.headers() == {"RateLimit-Policy": '"api";q=10;w=60', "RateLimit": '"api";r=3;t=42'}
    for _ in range(3):
        limiter.hit("k")
    clock.now += 0.5
    refused = limiter.hit("k")
    assert refused.headers() == {
        "RateLimit-Policy": '"api";q=10;w=60',
        "RateLimit": '"api";r=0;t=60',  # 59.5 s rounded up
        "Retry-After": "6",  # 5.5 s rounded up
    }


def test_headers_for_burst_policies_use_capacity_and_refill_time() -> None:
    d = make(RateLimit(limit=10, period=60, burst=5), Clock()).hit("k")
    assert d.headers()["RateLimit-Policy"] == '"default";q=5;w=30'


def test_check_raises_rate_limited_with_headers() -> None:
    clock = Clock()
    limiter = make("2/minute", clock)
    limiter.check("k")
    limiter.check("k")
    with pytest.raises(RateLimited) as info:
        limiter.check("k")
    assert info.value.retry_after == pytest.approx(30)
    assert info.value.headers["Retry-After"] == "30"
    assert info.value.status == 429
    assert "k" not in str(info.value).split("'default'")[1]  # the key is not echoed


def test_decision_is_frozen() -> None:
    d = Decision(True, 1, 0, 0.0, 0.0)
    with pytest.raises(AttributeError):
        d.allowed = False  # type: ignore[misc]


# -- callbacks -----------------------------------------------------------------------


def test_on_exceeded_called_once_per_refused_hit() -> None:
    calls: list[tuple[str, Decision]] = []
    limiter = make("2/minute", Clock(), on_exceeded=lambda k, d: calls.append((k, d)))
    for _ in range(5):
        limiter.hit("k")
    limiter.peek("k")  # peeking is not a refused hit
    assert [k for k, _ in calls] == ["k", "k", "k"]
    assert all(not d.allowed for _, d in calls)


def test_on_exceeded_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def explode(key: str, decision: Decision) -> None:
        raise RuntimeError("ban service down")

    limiter = make("1/minute", Clock(), on_exceeded=explode)
    limiter.hit("k")
    with caplog.at_level(logging.ERROR, logger="kit_auth.ratelimit"):
        assert not limiter.hit("k").allowed
        with pytest.raises(RateLimited):
            limiter.check("k")
    assert len([r for r in caplog.records if "on_exceeded" in r.getMessage()]) == 2


# -- failure policy (storage error injected around the limiter) ----------------------


class BrokenStorage(RateLimitStorage):
    """A storage whose backend is down: the thing around the limiter, not the limiter."""

    def bind(self, limit: RateLimit) -> Acquire:
        def acquire(key: str, cost: int) -> tuple[bool, int, float, float]:
            raise BackendUnavailable("redis://10.0.0.5:6379 refused")

        return acquire

    def clear(self, key: str) -> None:
        raise BackendUnavailable("redis://10.0.0.5:6379 refused")


def test_failure_open_allows_degraded_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RateLimiter("1/minute", storage=BrokenStorage(), failure="open")
    with caplog.at_level(logging.WARNING, logger="kit_auth.ratelimit"):
        decisions = [limiter.hit("k") for _ in range(3)]
        limiter.reset("k")
    assert all(d.allowed and d.degraded for d in decisions)
    assert len(caplog.records) == 1


def test_failure_closed_raises_backend_unavailable() -> None:
    limiter = RateLimiter("1/minute", storage=BrokenStorage(), failure="closed")
    with pytest.raises(BackendUnavailable):
        limiter.hit("k")
    with pytest.raises(BackendUnavailable):
        limiter.peek("k")


# -- async with the memory storage ---------------------------------------------------


async def test_async_twins_with_memory_storage() -> None:
    limiter = make("2/minute", Clock())
    assert (await limiter.ahit("k")).remaining == 1
    assert (await limiter.apeek("k")).remaining == 1
    assert (await limiter.acheck("k")).remaining == 0
    with pytest.raises(RateLimited):
        await limiter.acheck("k")
    await limiter.areset("k")
    assert (await limiter.apeek("k")).remaining == 2
