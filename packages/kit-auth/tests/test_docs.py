"""The examples users copy first must run: module docstrings and the README quick start."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

MODULES = [
    "kit_auth",
    "kit_auth.apikeys",
    "kit_auth.authz",
    "kit_auth.exceptions",
    "kit_auth.fastapi",
    "kit_auth.flask",
    "kit_auth.keys",
    "kit_auth.oidc",
    "kit_auth.passwords",
    "kit_auth.principal",
    "kit_auth.ratelimit",
    "kit_auth.ratelimit._client",
    "kit_auth.ratelimit._limit",
    "kit_auth.ratelimit._limiter",
    "kit_auth.ratelimit._lockout",
    "kit_auth.ratelimit._memory",
    "kit_auth.ratelimit._redis",
    "kit_auth.roles",
    "kit_auth.scopes",
    "kit_auth.token_store",
    "kit_auth.tokens",
    "kit_auth.totp",
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
    assert "redis://" not in quick_start, "the first example must run with no server"
    exec(compile(quick_start, str(README), "exec"), {"__name__": "readme"})  # noqa: S102
    assert capsys.readouterr().out.splitlines() == [
        "True",
        "user-42 ['projects:read']",
        "reuse detected",
        "403 This needs the role moderator.",
        "[True, True, True, False]",
    ]
