"""The examples users copy first must run: module docstrings and the README quick start."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

MODULES = [
    "kit_netcore",
    "kit_netcore._addresses",
    "kit_netcore._rules",
    "kit_netcore.cli",
    "kit_netcore.engine",
    "kit_netcore.exceptions",
    "kit_netcore.fastapi",
    "kit_netcore.flask",
    "kit_netcore.middleware",
]
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0, f"{name} has no runnable example"
    assert failed == 0


def test_readme_quick_start_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no python example"
    quick_start = blocks[0]
    assert "Shield.load(" not in quick_start, "the first example must run without root"
    exec(compile(quick_start, str(README), "exec"), {"__name__": "readme"})  # noqa: S102
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "Decision(allowed=False, reason='block', retry_after=None)",
        "allow",
        "[True, True, False]",
        "['allow 192.0.2.0/24', 'block 198.51.100.0/24', 'block 203.0.113.7/32']",
        "422 '10.0.0.1/8' has host bits set: did you mean 10.0.0.0/8? A rule covers a whole "
        "network: give its first address, or 10.0.0.1 alone for that one host.",
    ]
    # the output the README shows under the example is the output it prints
    shown = re.findall(r"It prints:\n\n```text\n(.*?)```", text, flags=re.S)
    assert shown == ["\n".join(printed) + "\n"]
