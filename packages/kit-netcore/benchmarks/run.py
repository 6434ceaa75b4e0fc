"""kit-netcore against what a user would otherwise pick, in one run.

    python packages/kit-netcore/benchmarks/run.py --out kit-netcore.json [--quick]

Rows (``ratio`` = kit time / peer time, below 1 means kit is faster):

- XDP program cost per packet with ``BPF_PROG_TEST_RUN``, drop and pass paths, 100,000
  single addresses + 1,000 CIDRs + a rate limit, random sources: the shield's layout vs an
  LPM-trie-only layout (``bench_prog.py``); target 67.2 ns (10 GbE line rate, one core).
- End to end over a veth pair: receiver cost per packet with the XDP shield vs an
  nftables drop rule vs no filter (``bench_e2e.py``). veth is not a NIC.
- ``load_list`` of 100,000 entries vs one update call per entry (``bench_lists.py``).
- ``UserspaceShield.check`` per request vs a pure-Python ``ipaddress`` lookup.

Also printed, so the figures can be read: the cost of BPF_PROG_TEST_RUN itself (an empty
program), of a random draw, and of one random lookup in a 100,000-entry hash on this
machine. The XDP rows need root; without it they are reported as skipped (the exit
status stays 0) unless ``CI`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_lists
import bench_prog

PACKAGE = "kit-netcore"


def _e2e(quick: bool) -> list[dict[str, Any]]:
    import bench_e2e

    rows: list[dict[str, Any]] = bench_e2e.run(quick)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args(argv)
    root = os.geteuid() == 0
    steps: list[tuple[str, bool, Callable[[bool], list[dict[str, Any]]]]] = [
        ("userspace engine", False, lambda q: [bench_lists.engine_check(q)]),
        ("program cost", True, bench_prog.run),
        ("bulk load", True, lambda q: [bench_lists.bulk_load(q)]),
        ("end to end over veth", True, _e2e),
    ]
    results: list[dict[str, Any]] = []
    failed = False
    for name, needs_root, step in steps:
        if needs_root and not root:
            print(f"{name}: skipped (needs root)")
            failed = failed or bool(os.environ.get("CI"))
            continue
        try:
            rows = step(args.quick)
        except Exception:  # a broken step is reported, the others still run
            traceback.print_exc()
            failed = True
            continue
        for row in rows:
            print(
                f"{row['name']}: kit {row['kit_us']:.3f} us vs {row['peer']} "
                f"{row['peer_us']:.3f} us ({row['ratio']:.2f}x) {row.get('verdict', '')}"
            )
        results.extend(rows)
    info: dict[str, Any] = {"machine": platform.platform(), "cpus": os.cpu_count()}
    if root:
        info["calibration_ns"] = bench_prog.calibration(args.quick)
        print("calibration (ns per BPF_PROG_TEST_RUN repetition):", info["calibration_ns"])
    args.out.write_text(
        json.dumps({"package": PACKAGE, "results": results, "info": info}, indent=2)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
