"""The app with a backend missing or misconfigured: readiness says which, start-up errors
name the variable."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from demo_servers import ServerError, Servers, embedded_env


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_readiness_names_the_backends_that_do_not_answer(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{_closed_port()}/0"
    env = embedded_env(tmp_path, REDIS_URL=dead, KIT_JOBS_BACKEND="thread")
    with Servers.running(env, var_dir=tmp_path) as servers:
        servers.provider.stop()  # and the identity provider is gone too
        answer = httpx.get(f"{servers.app_url}/health/ready", timeout=30)
        assert answer.status_code == 503
        body = answer.json()
        assert body["status"] == "fail"
        statuses = {name: check["status"] for name, check in body["checks"].items()}
        assert statuses == {
            "database": "ok",
            "jobs": "ok",
            "storage": "ok",
            "auth_stores": "fail",
            "shield": "ok",
            "cache": "fail",
            "rate_limits": "fail",
            "mail": "ok",
            "oidc": "fail",
        }
        assert httpx.get(f"{servers.app_url}/health/live").status_code == 200


def test_an_unreachable_provider_only_degrades_readiness(tmp_path: Path) -> None:
    with Servers.running(embedded_env(tmp_path), var_dir=tmp_path) as servers:
        servers.provider.stop()
        answer = httpx.get(f"{servers.app_url}/health/ready", timeout=30)
        assert answer.status_code == 200
        assert answer.json()["status"] == "degraded"
        assert answer.json()["checks"]["oidc"]["status"] == "fail"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RATE_LIMIT", "lots"),
        ("DATABASE_URL", "oracle://db/app"),
        ("REDIS_URL", "http://cache:6379"),
        ("STORAGE_URL", "ftp://files"),
        ("APP_ENV", "prod"),
    ],
)
def test_a_bad_setting_stops_the_app_naming_it(tmp_path: Path, variable: str, value: str) -> None:
    env = embedded_env(tmp_path, **{variable: value})
    with pytest.raises(ServerError) as failure, Servers.running(env, var_dir=tmp_path):
        pass
    assert "exited with status" in str(failure.value)
    assert f"SettingsError: {variable}" in str(failure.value)
