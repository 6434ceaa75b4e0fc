"""Fail unless each direct dependency of a package is installed at its declared floor.

Used by ``nox -s lowest``: proves that the ``>=`` floors in pyproject.toml are the
versions the tests really ran against. Usage: ``python check_floors.py packages/kit-x``.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement


def main(package_dir: Path) -> int:
    project = tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for name, extra in project.get("optional-dependencies", {}).items():
        if name != "all":
            requirements += [r for r in extra if not r.startswith(project["name"])]
    problems = []
    for line in requirements:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        floors = [s.version for s in req.specifier if s.operator in (">=", "==", "~=")]
        if not floors:
            problems.append(f"{req.name}: no floor declared (write '>=X.Y')")
            continue
        installed = metadata.version(req.name)
        if installed != floors[0] and not installed.startswith(floors[0] + "."):
            problems.append(f"{req.name}: floor {floors[0]} declared, {installed} installed")
        else:
            print(f"floor ok: {req.name}=={installed}")
    for problem in problems:
        print(f"FLOOR PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
