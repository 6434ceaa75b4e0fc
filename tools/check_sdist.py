"""Check a package's built sdist and wheel: only its own files, py.typed present.

Usage: ``python check_sdist.py kit-cache DIST_DIR``.
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path


def main(distribution: str, dist_dir: Path) -> int:
    module = distribution.replace("-", "_")
    problems: list[str] = []
    sdist = next(dist_dir.glob("*.tar.gz"))
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    strays = [n for n in names if "/packages/" in n or ("/kit_" in n and f"/{module}/" not in n)]
    if strays:
        problems.append(f"sdist ships files of other packages: {strays[:5]}")
    wheel = next(dist_dir.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        wheel_names = zf.namelist()
    if f"{module}/py.typed" not in wheel_names:
        problems.append("wheel has no py.typed")
    foreign = [
        n
        for n in wheel_names
        if not n.startswith((f"{module}/", f"{module.replace('_', '-')}", module))
    ]
    if foreign:
        problems.append(f"wheel holds files outside {module}/: {foreign[:5]}")
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{sdist.name}: {len(names)} files; {wheel.name}: {len(wheel_names)} files")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
