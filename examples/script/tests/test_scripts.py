"""The scripts run as a user runs them: ``python examples/script/<name>.py`` in a fresh
process, on the embedded defaults and on a real Redis (a throwaway server from
pytest-kit-services), and exit 0 having printed what each kit did."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1]


def run(script: str, *args: str, redis_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return subprocess.run(  # noqa: S603 - this interpreter and the scripts beside the tests
        [sys.executable, str(SCRIPTS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def dead_redis_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{probe.getsockname()[1]}/0"


def lines(output: str) -> list[str]:
    """The lines the script printed itself (kit-jobs' structlog lines left out)."""
    return [line for line in output.splitlines() if not line[:4].isdigit()]


# ----------------------------------------------------------------------------- cache_demo.py


def _check_tour(output: str) -> None:
    printed = lines(output)
    titles = [line for line in printed if line.startswith("[")]
    assert [title.split("]")[0] + "]" for title in titles] == [f"[{n}]" for n in range(1, 10)]
    assert "    -> computed 1 time(s) for two calls" in printed
    assert "    -> 3 calls, 2 computations: acme's entry is never served to globex" in printed
    assert any("homepage() ran 1 time (single-flight)" in line for line in printed)
    assert "    -> a moment later the refreshed version 2 is served" in printed
    assert printed[-1].startswith("Done in ")


def test_cache_demo_runs_on_memory() -> None:
    result = run("cache_demo.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "kit-cache tour on MemoryCache"
    _check_tour(result.stdout)


def test_cache_demo_runs_on_redis(redis_clean_url: str) -> None:
    result = run("cache_demo.py", "--redis", redis_clean_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("kit-cache tour on RedisCache")
    _check_tour(result.stdout)
    assert "round trips to Redis" in result.stdout


def test_cache_demo_says_when_redis_cannot_be_reached() -> None:
    result = run("cache_demo.py", "--redis", dead_redis_url())
    assert result.returncode == 2
    assert "Run without --redis" in result.stderr


# ----------------------------------------------------------------------------- jobs_cache.py


def _check_jobs_cache(output: str, backend: str) -> None:
    printed = lines(output)
    assert printed[1] == "health: jobs.ping() -> True, cache.ping() -> True"
    assert [line for line in printed if line.startswith("    -> order ")] == [
        "    -> order 1: 120.00 EUR = 130.80 USD",
        "    -> order 2: 80.00 GBP = 101.60 USD",
        "    -> order 3: 42.50 EUR = 46.32 USD",
        "    -> order 4: 999.99 JPY = 6.70 USD",
        "    -> order 5: 15.00 GBP = 19.05 USD",
        "    -> order 6: 60.00 EUR = 65.40 USD",
        "    -> order 7: 1200.00 JPY = 8.04 USD",
        "    -> order 8: 9.90 EUR = 10.79 USD",
        "    -> order 9: 10.00 EUR = 10.90 USD",
        "    -> order 10: 20.00 EUR = 21.80 USD",
        "    -> order 11: 30.00 GBP = 38.10 USD",
        "    -> order 12: 50.00 CHF = 46.50 USD",
    ]
    text = "\n".join(printed)
    # the cache: one service call per currency, one more after the invalidation
    assert "the rate service was asked 3 times, once per currency" in text
    assert "3 more jobs: the rate service was asked 1 more time (EUR only)" in text
    # the jobs: a failed attempt retried, the failure not cached
    assert "    -> 2 attempts: the first lookup raised RateServiceDown" in text
    assert f"kit-jobs ({backend} backend): this run's 12 jobs {{'finished': 12}}" in text
    assert "the rate service was asked: {'CHF': 2, 'EUR': 2, 'GBP': 1, 'JPY': 1}" in text
    assert printed[-1].startswith("Done in ")


def test_jobs_cache_runs_on_threads_and_memory() -> None:
    result = run("jobs_cache.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "kit-jobs + kit-cache on thread jobs and a MemoryCache"
    _check_jobs_cache(result.stdout, "thread")


def test_jobs_cache_runs_on_rq_and_redis(redis_clean_url: str) -> None:
    for _ in range(2):  # a second run starts afresh: its own jobs, an emptied namespace
        result = run("jobs_cache.py", redis_url=redis_clean_url)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == "kit-jobs + kit-cache on RQ jobs and a RedisCache"
        _check_jobs_cache(result.stdout, "rq")
        assert "worker_stopped" in result.stdout  # kit-jobs' worker drained the queue here


def test_jobs_cache_says_when_redis_cannot_be_reached() -> None:
    result = run("jobs_cache.py", redis_url=dead_redis_url())
    assert result.returncode == 2
    assert "Unset REDIS_URL to run on the embedded defaults." in result.stderr
    assert "Traceback" not in result.stderr
