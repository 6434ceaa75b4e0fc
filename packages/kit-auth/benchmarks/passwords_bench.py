"""kit-auth PasswordHasher against raw argon2-cffi: the cost of kit's wrapper.

    python packages/kit-auth/benchmarks/passwords_bench.py [--quick]

Info rows only (no target): hash and verify at kit's default profile (RFC 9106 low
memory, t=3, m=64 MiB, p=4) and at the OWASP profile (t=2, m=19 MiB, p=1). Each side is
the median of N single calls, kit and raw interleaved call by call so machine load hits
both alike. ``ratio`` = kit / raw, i.e. the overhead of length checks, NFKC and parsing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from importlib.metadata import version
from typing import Any

import argon2

from kit_auth.passwords import PROFILES, PasswordHasher

PASSWORD = "correct horse battery staple"  # noqa: S105 - a benchmark input, not a credential


def _time_us(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e6


def _row(name: str, kit: Callable[[], Any], raw: Callable[[], Any], n: int) -> dict[str, object]:
    kit(), raw()  # warm up (allocator, dummy paths)
    kit_times: list[float] = []
    raw_times: list[float] = []
    for _ in range(n):
        kit_times.append(_time_us(kit))
        raw_times.append(_time_us(raw))
    kit_us = statistics.median(kit_times)
    peer_us = statistics.median(raw_times)
    return {
        "name": name,
        "kit": "kit-auth",
        "peer": f"argon2-cffi {version('argon2-cffi')} PasswordHasher() raw",
        "kit_us": kit_us,
        "peer_us": peer_us,
        "ratio": kit_us / peer_us,
        "target": "info",
        "verdict": "info",
    }


def rows(quick: bool, redis_url: str) -> list[dict[str, object]]:
    """Hash and verify timings (median of N), kit vs raw argon2-cffi, as info rows."""
    del redis_url  # not used: hashing needs no store
    n = 3 if quick else 15
    results: list[dict[str, object]] = []
    for label, profile in (
        ("default t=3 m=64MiB p=4", "rfc9106-low-memory"),
        ("OWASP t=2 m=19MiB p=1", "owasp"),
    ):
        kit = PasswordHasher(profile=profile)
        raw = argon2.PasswordHasher.from_parameters(PROFILES[profile])
        kit_hash = kit.hash(PASSWORD)
        raw_hash = raw.hash(PASSWORD)
        results.append(
            _row(f"hash, {label}", partial(kit.hash, PASSWORD), partial(raw.hash, PASSWORD), n)
        )
        results.append(
            _row(
                f"verify, {label}",
                partial(kit.verify, kit_hash, PASSWORD),
                partial(raw.verify, raw_hash, PASSWORD),
                n,
            )
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args(argv)
    for row in rows(args.quick, args.redis_url):
        print(
            f"{row['name']}: kit {row['kit_us']:.0f} us vs {row['peer']} {row['peer_us']:.0f} us"
            f" (ratio {row['ratio']:.3f}, {row['verdict']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
