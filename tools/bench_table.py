"""Print one table of benchmark ratios from the JSON files the packages' benchmarks wrote.

Each file holds ``{"package": str, "results": [{"name", "kit", "peer", "kit_us", "peer_us",
"ratio", "target"}]}``; ``ratio`` is kit time / peer time (below 1 means kit is faster).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(paths: list[str]) -> int:
    rows: list[tuple[str, ...]] = []
    for path in sorted(paths):
        data = json.loads(Path(path).read_text())
        rows.extend(
            (
                data["package"],
                r["name"],
                f"{r['kit_us']:.2f}",
                r["peer"],
                f"{r['peer_us']:.2f}",
                f"{r['ratio']:.3f}x",
                r.get("target", ""),
                r.get("verdict", ""),
            )
            for r in data["results"]
        )
    header = ("package", "benchmark", "kit us/op", "peer", "peer us/op", "kit/peer", "target", "")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(line)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
