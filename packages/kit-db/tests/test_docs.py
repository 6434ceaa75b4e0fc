"""The examples users copy first must run: the README quick start and every ``>>>`` example
in kit_db's modules."""

from __future__ import annotations

import contextlib
import doctest
import importlib
import io
import json
import pkgutil
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import kit_db

README = Path(__file__).resolve().parents[1] / "README.md"


def _modules_with_examples() -> list[str]:
    """kit_db and its submodules whose docstrings hold ``>>>`` examples."""
    names = ["kit_db", *(f"kit_db.{m.name}" for m in pkgutil.iter_modules(kit_db.__path__))]
    found = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError:  # an adapter whose extra is not installed: nothing to run
            continue
        tests = doctest.DocTestFinder(exclude_empty=True).find(module)
        if any(test.examples and test.name.startswith(name) for test in tests):
            found.append(name)
    return found


MODULES = _modules_with_examples()

# The examples run in a fresh interpreter: several declare models on kit_db.Model.metadata,
# and other test modules run some of the same doctests, which would declare the same tables
# twice in this process. Warnings are errors, as in the test suite.
_RUNNER = textwrap.dedent(
    """
    import contextlib, doctest, importlib, io, json, sys
    results = {}
    for name in sys.argv[1:]:
        report = io.StringIO()
        with contextlib.redirect_stdout(report):
            module = importlib.import_module(name)
            failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        results[name] = [failed, attempted, report.getvalue()]
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def doctest_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", _RUNNER, *MODULES],
        cwd=tmp_path_factory.mktemp("doctest"),  # where a default sqlite:///kit.db would go
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found: dict[str, list[Any]] = json.loads(result.stdout.splitlines()[-1])
    return found


def test_modules_with_examples_are_found() -> None:
    assert {"kit_db", "kit_db.pagination", "kit_db.repository"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, doctest_results: dict[str, list[Any]]) -> None:
    failed, attempted, report = doctest_results[name]
    assert attempted > 0, f"{name} has no runnable example"
    assert failed == 0, report


def test_readme_quick_start_runs_as_written() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    quick_start = blocks[0]
    for server in ("postgresql://", "mysql://", "mariadb://"):
        for line in quick_start.splitlines():
            code = line.split("#", 1)[0]
            assert server not in code, "the first example must run with no server"
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        # dont_inherit: not this file's ``from __future__ import annotations``, which would
        # turn the model's annotations into strings SQLAlchemy resolves in a missing module
        code = compile(quick_start, str(README), "exec", dont_inherit=True)
        exec(code, {"__name__": "readme"})  # noqa: S102
    # every print(...)  # expected  comment in the example tells the truth
    expected = [
        line.split("#", 1)[1].strip()
        for line in quick_start.splitlines()
        if line.lstrip().startswith("print(") and "#" in line
    ]
    assert output.getvalue().splitlines() == expected
