"""Run inside a fresh venv holding one kit wheel: its public API imports, no sibling came along.

Usage: ``python check_isolation.py kit-cache``.
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata


def main(distribution: str) -> int:
    module = importlib.import_module(distribution.replace("-", "_"))
    public = list(getattr(module, "__all__", ()))
    missing = [name for name in public if not hasattr(module, name)]
    installed = sorted(
        d.metadata["Name"].lower() for d in metadata.distributions() if d.metadata["Name"]
    )
    siblings = [n for n in installed if n.startswith("kit-") and n != distribution]
    print(f"{distribution}: {len(public)} public names; installed: {', '.join(installed)}")
    if missing:
        print(f"__all__ names that do not exist: {missing}", file=sys.stderr)
    if siblings:
        print(f"other kit packages were pulled in: {siblings}", file=sys.stderr)
    if not public:
        print("the package has an empty __all__", file=sys.stderr)
    return 1 if (missing or siblings or not public) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
