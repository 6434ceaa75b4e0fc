"""The examples users copy first must run: module docstrings and the README quick start."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

MODULES = [
    "kit_mail",
    "kit_mail._base",
    "kit_mail._config",
    "kit_mail._dev",
    "kit_mail._html",
    "kit_mail._message",
    "kit_mail._result",
    "kit_mail.exceptions",
    "kit_mail.fastapi",
    "kit_mail.flask",
    "kit_mail.resend",
    "kit_mail.smtp",
    "kit_mail.templates",
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
    assert "SMTPMailer(" not in quick_start, "the first example must run with no server"
    exec(compile(quick_start, str(README), "exec"), {"__name__": "readme"})  # noqa: S102
    assert capsys.readouterr().out.splitlines() == [
        "memory ('ada@example.com',)",
        "Welcome, Ada",
        "",
        "Your account is ready.",
        "422 header injection refused",
    ]
