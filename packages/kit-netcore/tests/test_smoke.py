"""Smoke tests every kit package starts with: the public API and the errors. The adapters
have their own files (test_flask.py, test_fastapi.py, test_middleware.py)."""

from __future__ import annotations

import kit_netcore
from kit_netcore import ConfigurationError, InvalidRule, KitNetcoreError


def test_public_api_names_exist() -> None:
    assert kit_netcore.__all__ == sorted(kit_netcore.__all__)
    for name in kit_netcore.__all__:
        assert hasattr(kit_netcore, name), name


def test_version_is_a_string() -> None:
    assert isinstance(kit_netcore.__version__, str)


def test_errors_derive_from_the_package_base() -> None:
    error = ConfigurationError("mode must be 'auto', 'native' or 'generic'")
    assert isinstance(error, KitNetcoreError)
    assert isinstance(error, ValueError)
    assert error.problem()["status"] == 500
    assert "mode" not in error.problem()["detail"]  # a 5xx detail is a fixed sentence
    invalid = InvalidRule("'10.0.0.1/8' has host bits set")
    assert invalid.problem()["status"] == 422
    assert invalid.problem()["detail"] == "'10.0.0.1/8' has host bits set"


def test_the_core_imports_no_framework() -> None:
    import sys

    assert not {"flask", "fastapi", "starlette"} & {m.split(".")[0] for m in sys.modules} or (
        "kit_netcore.flask" in sys.modules or "kit_netcore.fastapi" in sys.modules
    )
