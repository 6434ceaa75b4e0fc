"""Check a package installed with no extras: the core imports, each adapter names its extra.

Usage: ``python check_slim.py kit-cache`` inside a venv holding only that package.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys


def main(distribution: str) -> int:
    module = distribution.replace("-", "_")
    core = importlib.import_module(module)
    for name in getattr(core, "__all__", ()):
        getattr(core, name)
    print(f"{module}: core imports, {len(getattr(core, '__all__', ()))} public names")
    failures = 0
    for adapter, framework in (("flask", "flask"), ("fastapi", "fastapi")):
        if importlib.util.find_spec(f"{module}.{adapter}") is None:
            continue
        if importlib.util.find_spec(framework) is not None:
            print(f"{framework} is installed in a slim environment", file=sys.stderr)
            failures += 1
            continue
        try:
            importlib.import_module(f"{module}.{adapter}")
        except ImportError as exc:
            wanted = f"{distribution}[{adapter}]"
            if wanted not in str(exc):
                print(
                    f"{module}.{adapter}: ImportError does not name {wanted!r}: {exc}",
                    file=sys.stderr,
                )
                failures += 1
            else:
                print(f"{module}.{adapter}: ImportError names {wanted}")
        else:
            print(f"{module}.{adapter} imported without {framework}", file=sys.stderr)
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
