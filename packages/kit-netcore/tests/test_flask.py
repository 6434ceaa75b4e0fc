"""The Flask extension: the shield in front of the app, settings, problem+json errors."""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from kit_netcore import (
    BackendError,
    ClientRateLimited,
    ConfigurationError,
    InvalidRule,
    UserspaceShield,
)
from kit_netcore.flask import EXTENSION_KEY, KitNetcore
from kit_netcore.middleware import ShieldMiddleware

BLOCKED = "203.0.113.7"


def make_app(shield: UserspaceShield | None, **config: object) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    KitNetcore(app, shield=shield)

    @app.get("/")
    def index() -> str:
        return "hello"

    @app.post("/ban/<path:address>")
    def ban(address: str) -> dict[str, str]:
        assert shield is not None
        rule = shield.block(address, ttl=600)
        return {"network": str(rule.network)}

    @app.get("/slow-down")
    def slow_down() -> str:
        raise ClientRateLimited(retry_after=2.5)

    @app.get("/broken")
    def broken() -> str:
        raise BackendError("bpf_map_update_elem(nc_block4) failed", errno=12)

    return app


@pytest.fixture
def shield() -> UserspaceShield:
    engine = UserspaceShield()
    engine.block(BLOCKED)
    return engine


def test_blocked_client_gets_403_before_the_view(shield: UserspaceShield) -> None:
    app = make_app(shield)
    client = app.test_client()
    assert client.get("/").text == "hello"
    refused = client.get("/", environ_overrides={"REMOTE_ADDR": BLOCKED})
    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["type"] == "https://kit.dev/problems/client-blocked"
    assert isinstance(app.wsgi_app, ShieldMiddleware)
    assert app.extensions[EXTENSION_KEY].shield is shield


def test_rate_limited_client_gets_429_with_retry_after(shield: UserspaceShield) -> None:
    shield.rate_limit(pps=0.01, burst=1)
    client = make_app(shield).test_client()
    assert client.get("/").status_code == 200
    limited = client.get("/")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1


def test_trusted_proxies_setting(shield: UserspaceShield) -> None:
    app = make_app(shield, KIT_NETCORE_TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.1")
    client = app.test_client()
    via_proxy = client.get("/", headers={"X-Forwarded-For": BLOCKED})  # peer 127.0.0.1
    assert via_proxy.status_code == 403
    hops = make_app(shield, KIT_NETCORE_TRUSTED_PROXIES=1).test_client()
    assert hops.get("/", headers={"X-Forwarded-For": BLOCKED}).status_code == 403
    untrusted = make_app(shield).test_client()  # default: the header is not believed
    assert untrusted.get("/", headers={"X-Forwarded-For": BLOCKED}).status_code == 200


def test_port_setting(shield: UserspaceShield) -> None:
    shield.rate_limit(pps=0.01, burst=1, ports=[443])
    client = make_app(shield, KIT_NETCORE_PORT=443).test_client()
    assert [client.get("/").status_code for _ in range(2)] == [200, 429]


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"KIT_NETCORE_TRUSTED_PROXIES": "10.0.0.0/99"}, "KIT_NETCORE_TRUSTED_PROXIES"),
        ({"KIT_NETCORE_TRUSTED_PROXIES": 0}, "KIT_NETCORE_TRUSTED_PROXIES"),
        ({"KIT_NETCORE_PORT": 70000}, "KIT_NETCORE_PORT"),
    ],
)
def test_invalid_settings_fail_in_init_app_naming_the_key(
    shield: UserspaceShield, config: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"^{key}: "):
        make_app(shield, **config)


def test_app_factory_and_double_install(shield: UserspaceShield) -> None:
    netcore = KitNetcore(shield=shield)
    first, second = Flask("one"), Flask("two")
    netcore.init_app(first)
    netcore.init_app(second)
    assert netcore.app is first
    assert isinstance(second.wsgi_app, ShieldMiddleware)
    with pytest.raises(ConfigurationError, match="already installed"):
        netcore.init_app(first)


def test_shield_must_have_check() -> None:
    with pytest.raises(ConfigurationError, match=r"check\(address"):
        KitNetcore(shield="203.0.113.7")  # type: ignore[arg-type]


def test_errors_from_views_are_problem_json(
    shield: UserspaceShield, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app(shield).test_client()
    invalid = client.post("/ban/10.0.0.1/8")
    assert invalid.status_code == 422
    assert invalid.mimetype == "application/problem+json"
    assert "did you mean 10.0.0.0/8?" in invalid.get_json()["detail"]
    assert client.post("/ban/198.51.100.0/24").get_json() == {"network": "198.51.100.0/24"}
    slow = client.get("/slow-down")
    assert slow.status_code == 429
    assert slow.headers["Retry-After"] == "3"
    assert slow.get_json()["retry_after"] == 2.5
    with caplog.at_level(logging.ERROR, logger="kit_netcore"):
        broken = client.get("/broken")
    assert broken.status_code == 503
    assert "nc_block4" not in broken.text
    assert "nc_block4" in caplog.text


def test_without_a_shield_only_errors_are_handled() -> None:
    app = Flask(__name__)
    KitNetcore(app)

    @app.get("/")
    def index() -> str:
        raise InvalidRule("ttl must be a positive number of seconds, got 0")

    assert not isinstance(app.wsgi_app, ShieldMiddleware)
    response = app.test_client().get("/", environ_overrides={"REMOTE_ADDR": BLOCKED})
    assert response.status_code == 422
