"""Subprocess helper for test_ratelimit_redis: hit one key N times, print how many passed.

python _ratelimit_proc.py <redis_url> <key> <hits> <limit> <algorithm>
"""

from __future__ import annotations

import sys

from kit_auth.ratelimit import RateLimit, RateLimiter, RedisRateLimitStorage


def main(argv: list[str]) -> int:
    url, key, hits, limit, algorithm = argv
    storage = RedisRateLimitStorage(url, socket_timeout=5)
    limiter = RateLimiter(
        RateLimit(int(limit), 86400, algorithm=algorithm),  # type: ignore[arg-type]
        storage=storage,
        failure="closed",
    )
    allowed = sum(limiter.hit(key).allowed for _ in range(int(hits)))
    storage.close()
    print(allowed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
