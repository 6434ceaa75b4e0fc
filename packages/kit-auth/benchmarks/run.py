"""kit-auth against the libraries a user would otherwise pick, in one process and one run.

    python packages/kit-auth/benchmarks/run.py --out kit-auth.json [--quick]

Writes ``{"package": "kit-auth", "results": [...]}``, the format ``tools/bench_table.py``
prints (``nox -s bench``): one row per comparison, ``ratio`` = kit time / peer time, so
below 1 means kit is faster. Both sides are timed in interleaved rounds and the fastest
round counts. Missing a target is reported in the table, never an error.

- ``jwt_bench``: ``TokenManager.verify`` against PyJWT ``decode`` with the same checks
  (HS256 and EdDSA); the target is at least 0.8x PyJWT's throughput (ratio <= 1.25).
- ``ratelimit_bench``: ``RateLimiter.hit`` against ``limits`` (moving window and
  sliding-window counter), in memory and on Redis; the target is at least its throughput
  (ratio <= 1.0) with one Redis round trip per check.
- ``passwords_bench``: hash and verify time at the default argon2id parameters, printed.

Redis comes from ``KIT_TEST_REDIS_URL`` or a throwaway ``redis-server`` (the shared
``pytest-kit-services`` launcher), as in the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import jwt_bench  # noqa: E402
import passwords_bench  # noqa: E402
import ratelimit_bench  # noqa: E402

from pytest_kit_services import redis_service  # noqa: E402

PACKAGE = "kit-auth"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds (the default when CI is set)"
    )
    parser.add_argument("--full", action="store_true", help="full rounds even when CI is set")
    args = parser.parse_args(argv)
    quick = args.quick or (bool(os.environ.get("CI")) and not args.full)
    results: list[dict[str, Any]] = []
    with redis_service() as url:
        for module in (jwt_bench, ratelimit_bench, passwords_bench):
            rows = module.rows(quick, url)
            for row in rows:
                print(
                    f"{row['name']}: {row['kit_us']:.2f} us vs {row['peer']} "
                    f"{row['peer_us']:.2f} us ({row['ratio']:.3f}x, target {row['target']}, "
                    f"{row['verdict']})"
                )
            results.extend(rows)
    args.out.write_text(json.dumps({"package": PACKAGE, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
