"""Settings from the environment, and the dev OIDC provider's own page (no servers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app.settings import Settings, SettingsError
from dev_oidc import DevOIDCProvider, DevUser


def test_embedded_defaults_need_no_variables(tmp_path: Path) -> None:
    settings = Settings.from_env({"VAR_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'app.db'}"
    assert settings.redis_url is None
    assert settings.jobs_backend == "thread"
    assert settings.storage_url == str(tmp_path / "files")
    assert settings.generated_secret
    assert settings.oidc_issuer == "http://127.0.0.1:9000"


def test_redis_switches_jobs_to_rq() -> None:
    settings = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert settings.jobs_backend == "rq"
    forced = Settings.from_env({"REDIS_URL": "redis://x/0", "KIT_JOBS_BACKEND": "thread"})
    assert forced.jobs_backend == "thread"


def test_derived_keys_differ_per_purpose() -> None:
    settings = Settings.from_env({"SECRET_KEY": "s" * 40})
    assert settings.derive("jwt") != settings.derive("cursors")
    assert settings.derive("jwt") == Settings.from_env({"SECRET_KEY": "s" * 40}).derive("jwt")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"APP_ENV": "production"}, "SECRET_KEY"),
        ({"APP_ENV": "production", "SECRET_KEY": "k" * 40}, "OIDC_ISSUER"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"RATE_LIMIT": "lots"}, "RATE_LIMIT"),
        ({"BAN_SECONDS": "soon"}, "BAN_SECONDS"),
        ({"BAN_SECONDS": "0"}, "BAN_SECONDS"),
        ({"KIT_JOBS_BACKEND": "celery"}, "KIT_JOBS_BACKEND"),
        ({"KIT_JOBS_BACKEND": "rq"}, "REDIS_URL"),
        ({"TENANT_DOMAINS": "acme.example"}, "TENANT_DOMAINS"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


@pytest.fixture
def provider() -> Iterator[DevOIDCProvider]:
    running = DevOIDCProvider([DevUser("eve@acme.example", "Eve <script>")])
    running.start()
    yield running
    running.stop()


def test_the_dev_provider_shows_a_sign_in_form(provider: DevOIDCProvider) -> None:
    query = {
        "client_id": "kit-demo",
        "redirect_uri": "http://127.0.0.1:1/callback",
        "response_type": "code",
        "scope": "openid email",
        "state": "s",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    page = httpx.get(f"{provider.issuer}/authorize", params=query)
    assert page.status_code == 200
    assert 'value="eve@acme.example"' in page.text
    assert "Eve &lt;script&gt;" in page.text  # names are escaped
    without_pkce = {k: v for k, v in query.items() if not k.startswith("code_")}
    refused = httpx.get(f"{provider.issuer}/authorize", params=without_pkce)
    assert refused.status_code == 302
    assert "error=invalid_request" in refused.headers["location"]
    elsewhere = httpx.get(
        f"{provider.issuer}/authorize", params={**query, "redirect_uri": "https://evil.example/cb"}
    )
    assert elsewhere.status_code == 400
    discovery = httpx.get(f"{provider.issuer}/.well-known/openid-configuration").json()
    assert discovery["issuer"] == provider.issuer
    assert discovery["code_challenge_methods_supported"] == ["S256"]


def test_the_dev_provider_refuses_an_unknown_auto_approve_user() -> None:
    with pytest.raises(ValueError, match=r"nobody@acme\.example"):
        DevOIDCProvider(auto_approve="nobody@acme.example")
