"""Unit tests for the shared helpers."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pytest_kit_services import BIN_PATH_ENV, ServiceUnavailable, in_ci
from pytest_kit_services._common import find_binary, free_port, search_dirs, with_database


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("", False),
        ("0", False),
        ("false", False),
        ("False", False),
        ("true", True),
        ("1", True),
        ("yes", True),
    ],
)
def test_in_ci(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_bin_path_override_replaces_search_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(BIN_PATH_ENV, str(tmp_path))
    assert search_dirs() == [str(tmp_path)]
    with pytest.raises(ServiceUnavailable, match=r"apt-get install redis-server"):
        find_binary(["redis-server"], service="redis", package="redis-server", env_var="X")


def test_bin_path_override_finds_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv(BIN_PATH_ENV, str(tmp_path))
    assert find_binary(["redis-server"], service="r", package="p", env_var="X") == fake


def test_default_search_includes_postgresql_bin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BIN_PATH_ENV, raising=False)
    dirs = search_dirs()
    assert "/usr/sbin" in dirs
    if Path("/usr/lib/postgresql").is_dir():
        assert any(d.startswith("/usr/lib/postgresql/") for d in dirs)


def test_with_database() -> None:
    assert (
        with_database("postgresql://u:p@h:1/postgres?sslmode=disable", "kit_test_x")
        == "postgresql://u:p@h:1/kit_test_x?sslmode=disable"
    )
    assert with_database("mysql://root@h:3306", "db") == "mysql://root@h:3306/db"
