"""Smoke tests every kit package starts with: the public API, the errors, the adapters."""

from __future__ import annotations

import kit_jobs
from kit_jobs import ConfigurationError, KitJobsError


def test_public_api_names_exist() -> None:
    assert kit_jobs.__all__ == sorted(kit_jobs.__all__)
    for name in kit_jobs.__all__:
        assert hasattr(kit_jobs, name), name


def test_version_is_a_string() -> None:
    assert isinstance(kit_jobs.__version__, str)


def test_errors_derive_from_the_package_base() -> None:
    error = ConfigurationError("KIT_JOBS_URL must be a URL")
    assert isinstance(error, KitJobsError)
    assert isinstance(error, ValueError)
    assert error.problem()["status"] == 500
