"""kit-jobs against the libraries a user would otherwise pick, in one process and one run.

    python packages/kit-jobs/benchmarks/run.py --out kit-jobs.json [--quick]

Writes ``{"package": "kit-jobs", "results": [...]}``, the format ``tools/bench_table.py``
prints (``nox -s bench``): one row per comparison, ``ratio`` = kit time / peer time, so
below 1 means kit is faster. Both sides are timed in interleaved rounds and the fastest
round counts. Missing a target is reported in the table, never an error.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE = "kit-jobs"


@dataclass(frozen=True)
class Comparison:
    name: str  # what is measured, e.g. "hit, 1 key"
    kit: Callable[[], Any]  # one call of kit's way
    peer: str  # the peer's name, e.g. "cachetools 5.5"
    peer_call: Callable[[], Any]  # one call of the peer's way
    target: str = ""  # the goal, e.g. "<= 1.5x"


def comparisons() -> list[Comparison]:
    """<REPLACE ME: the comparisons that matter to a user choosing between kit and a peer>."""
    return []


def one_round_us(fn: Callable[[], Any], number: int) -> float:
    """Per-call time of ``number`` back-to-back calls, in microseconds."""
    return timeit.timeit(fn, number=number) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args(argv)
    rounds, number = (3, 1_000) if args.quick else (15, 10_000)
    results = []
    for c in comparisons():
        kit_us = peer_us = float("inf")
        for _ in range(rounds):  # interleaved, so load on the machine hits both sides alike
            kit_us = min(kit_us, one_round_us(c.kit, number))
            peer_us = min(peer_us, one_round_us(c.peer_call, number))
        results.append(
            {
                "name": c.name,
                "kit": PACKAGE,
                "peer": c.peer,
                "kit_us": kit_us,
                "peer_us": peer_us,
                "ratio": kit_us / peer_us,
                "target": c.target,
            }
        )
        print(f"{c.name}: {kit_us:.2f} us vs {c.peer} {peer_us:.2f} us ({kit_us / peer_us:.2f}x)")
    args.out.write_text(json.dumps({"package": PACKAGE, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
