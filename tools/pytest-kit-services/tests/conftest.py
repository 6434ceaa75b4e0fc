"""Test configuration for pytest-kit-services' own tests."""

pytest_plugins = ["pytester"]
