"""The examples users copy first must run: module docstrings and the README quick start."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

MODULES = [
    "kit_storage",
    "kit_storage._async",
    "kit_storage._common",
    "kit_storage._keys",
    "kit_storage._local",
    "kit_storage._memory",
    "kit_storage._signing",
    "kit_storage._types",
    "kit_storage._uploads",
    "kit_storage.exceptions",
    "kit_storage.fastapi",
    "kit_storage.flask",
    "kit_storage.gcs",
]
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0, f"{name} has no runnable example"
    assert failed == 0


def test_readme_quick_start_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    quick_start = blocks[0]
    assert 'GCSStorage("my-bucket"' not in quick_start, "the first example must run with no server"
    exec(compile(quick_start, str(README), "exec"), {"__name__": "readme"})  # noqa: S102
    assert capsys.readouterr().out.splitlines() == [
        "reports/2026/q1.csv 19 text/csv",
        "b'total'",
        "['reports/2026/q1.csv']",
        "Q1.csv",
        "refused '../../etc/passwd'",
        "refused '/abs'",
        "refused 'a\\x00b'",
        "404",
    ]
