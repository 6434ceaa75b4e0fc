"""kit-jobs and kit-cache together in a plain script: background jobs that price orders
with an expensive exchange-rate lookup, cached so the slow service is asked once per
currency however many jobs need it.

    python examples/script/jobs_cache.py                                   # embedded defaults
    REDIS_URL=redis://localhost:6379/0 python examples/script/jobs_cache.py  # RQ + RedisCache

With no ``REDIS_URL`` the jobs run on kit-jobs' thread backend (a pool in this process) and
the rates are cached in a MemoryCache: nothing to install or start. With ``REDIS_URL`` the
jobs go to Redis through the RQ backend and the rates to a RedisCache on the same server;
this script then drains the queue with a worker in its own process (``work(burst=True)``),
where an application runs workers elsewhere::

    kit-jobs --import jobs_cache --backend rq --redis-url "$REDIS_URL" worker --queue kit-demo-jobs

On Redis it writes only under the prefix ``kit-demo-jobs`` (cache) and the queue
``kit-demo-jobs``.

Every step prints what each kit did (kit-jobs' own log lines appear among them); the run
takes about a second and exits 0. A Redis that cannot be reached exits with status 2.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from decimal import Decimal

from kit_cache import BackendError, BaseCache, MemoryCache, RedisCache, cached
from kit_cache import ConfigurationError as CacheConfigurationError
from kit_jobs import ConfigurationError as JobsConfigurationError
from kit_jobs import JobRef, Jobs, Retry, job

QUEUE = "kit-demo-jobs"  # RQ queue of this script's jobs
PREFIX = "kit-demo-jobs"  # RedisCache key prefix
NAMESPACE = "rates"
SLOW = 0.2  # seconds the rate service takes to answer

ORDERS = [  # (order id, amount, currency)
    (1, "120.00", "EUR"),
    (2, "80.00", "GBP"),
    (3, "42.50", "EUR"),
    (4, "999.99", "JPY"),
    (5, "15.00", "GBP"),
    (6, "60.00", "EUR"),
    (7, "1200.00", "JPY"),
    (8, "9.90", "EUR"),
]
RATES = {"EUR": Decimal("1.09"), "GBP": Decimal("1.27"), "JPY": Decimal("0.0067")}

# What the slow rate service was asked, per currency (the cache's effect, made visible).
service_calls: Counter[str] = Counter()
_calls_lock = threading.Lock()
_flaky_failures = {"CHF": 1}  # the first CHF lookup fails, as a service sometimes does


class RateServiceDown(Exception):
    """The rate service did not answer."""


# --------------------------------------------------------------------------- the cache

_cache: BaseCache | None = None


def make_cache(redis_url: str | None) -> BaseCache:
    """MemoryCache by default; a RedisCache on ``redis_url`` (checked now) otherwise."""
    if redis_url is None:
        return MemoryCache(namespace=NAMESPACE)
    cache = RedisCache(redis_url, prefix=PREFIX, namespace=NAMESPACE, verify=True)
    cache.clear(NAMESPACE)  # a fresh start even if the script ran a minute ago
    return cache


def the_cache() -> BaseCache:
    """The cache every ``@cached`` function below uses (bound when first called, so a
    worker process that imports this module builds its own from REDIS_URL)."""
    global _cache
    if _cache is None:
        _cache = make_cache(os.environ.get("REDIS_URL") or None)
    return _cache


@cached(ttl=60, key="rate:{currency}", cache=the_cache)
def exchange_rate(currency: str) -> str:
    """The USD rate of ``currency``: a slow call to a rate service, cached for a minute."""
    with _calls_lock:
        service_calls[currency] += 1
        failing = _flaky_failures.get(currency, 0) > 0
        if failing:
            _flaky_failures[currency] -= 1
    time.sleep(SLOW)
    if failing:
        raise RateServiceDown(f"no rate for {currency} right now")
    return str(RATES.get(currency, Decimal("0.93")))  # JSON-friendly for every backend


# --------------------------------------------------------------------------- the jobs


@job(name="demo.price_order", queue=QUEUE, retry=Retry(max=2, backoff=0))
def price_order(order_id: int, amount: str, currency: str) -> str:
    """Price an order in USD with the cached rate (a failed lookup is retried by kit-jobs,
    and kit-cache does not cache the failure)."""
    usd = (Decimal(amount) * Decimal(exchange_rate(currency))).quantize(Decimal("0.01"))
    return f"order {order_id}: {amount} {currency} = {usd} USD"


# --------------------------------------------------------------------------- the steps


def step(number: int, title: str) -> None:
    print(f"\n[{number}] {title}")


def did(message: str) -> None:
    print(f"    -> {message}")


def run_all(jobs: Jobs, orders: list[tuple[int, str, str]]) -> list[JobRef[str]]:
    """Enqueue one job per order; once they ran, return their refs (in order)."""
    refs = [jobs.enqueue(price_order, *order) for order in orders]
    if jobs.backend.name == "rq":
        # No worker process here: drain the queue in this one (kit-jobs logs the worker).
        jobs.work(queues=[QUEUE], burst=True, with_scheduler=False)
    for ref in refs:
        ref.result(timeout=30)  # wait: the thread pool runs them while we get here
    return refs


def main() -> int:
    redis_url = os.environ.get("REDIS_URL") or None
    global _cache
    try:
        _cache = make_cache(redis_url)
        jobs = (
            Jobs(backend="rq", redis_url=redis_url)
            if redis_url
            else Jobs(backend="thread", max_workers=4)
        )
    except (BackendError, CacheConfigurationError, JobsConfigurationError) as exc:
        print(f"jobs_cache: {exc}", file=sys.stderr)
        print("Unset REDIS_URL to run on the embedded defaults.", file=sys.stderr)
        return 2
    cache = _cache
    where = "RQ jobs and a RedisCache" if redis_url else "thread jobs and a MemoryCache"
    print(f"kit-jobs + kit-cache on {where}")
    print(f"health: jobs.ping() -> {jobs.ping()}, cache.ping() -> {cache.ping()}")
    if not jobs.ping():
        print(f"jobs_cache: Redis at {redis_url} cannot be reached.", file=sys.stderr)
        return 2
    started = time.perf_counter()
    mine: list[JobRef[str]] = []  # this run's jobs (an rq backend remembers earlier runs')
    with jobs, cache:
        step(1, f"{len(ORDERS)} background jobs price orders; each looks up a rate, @cached")
        mine += run_all(jobs, ORDERS)
        for ref in mine:
            did(ref.result())
        currencies = {currency for _, _, currency in ORDERS}
        did(
            f"{len(ORDERS)} jobs, {len(currencies)} currencies: the rate service was asked "
            f"{sum(service_calls.values())} times, once per currency; every other lookup "
            "was served by the cache (or waited for the one call in flight)"
        )

        step(2, "The EUR rate changed: invalidate one key, and only it is fetched again")
        dropped = exchange_rate.invalidate("EUR")
        did(f"exchange_rate.invalidate('EUR') -> {dropped}: {exchange_rate.key('EUR')!r} is gone")
        before = sum(service_calls.values())
        more = run_all(jobs, [(9, "10.00", "EUR"), (10, "20.00", "EUR"), (11, "30.00", "GBP")])
        for ref in more:
            did(ref.result())
        mine += more
        asked = sum(service_calls.values()) - before
        did(f"{len(more)} more jobs: the rate service was asked {asked} more time (EUR only)")

        step(3, "A flaky lookup: kit-jobs retries the job, kit-cache does not keep the failure")
        (flaky,) = run_all(jobs, [(12, "50.00", "CHF")])
        mine.append(flaky)
        did(flaky.result())
        did(
            f"{flaky.info().attempts} attempts: the first lookup raised RateServiceDown (kit-jobs "
            f"logged it and retried), the retry asked the service again: {service_calls['CHF']} "
            "CHF calls"
        )

        step(4, "What each kit counted")
        statuses = Counter(ref.status().value for ref in mine)
        did(f"kit-jobs ({jobs.backend.name} backend): this run's {len(mine)} jobs {dict(statuses)}")
        stats = cache.stats()
        did(
            f"kit-cache: hits={stats.hits} misses={stats.misses} sets={stats.sets} "
            f"errors={stats.errors} (a lookup that waited for another's call counts a miss)"
        )
        did(f"the rate service was asked: {dict(sorted(service_calls.items()))}")
    print(f"\nDone in {time.perf_counter() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
