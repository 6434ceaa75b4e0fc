"""The FastAPI adapter: install_shield and the problem+json handlers, over httpx's ASGI
transport (not starlette.testclient, which warns when it finds httpx)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket

from kit_netcore import (
    BackendError,
    ClientRateLimited,
    ConfigurationError,
    UserspaceShield,
)
from kit_netcore.fastapi import install_problem_handlers, install_shield

BLOCKED = "203.0.113.7"


@pytest.fixture
def shield() -> UserspaceShield:
    engine = UserspaceShield()
    engine.block(BLOCKED)
    return engine


def make_app(shield: UserspaceShield, **options: Any) -> FastAPI:
    app = FastAPI()
    install_shield(app, shield, **options)

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"hello": "world"}

    @app.post("/ban/{address:path}")
    def ban(address: str) -> dict[str, str]:
        return {"network": str(shield.block(address, ttl=600).network)}

    @app.get("/slow-down")
    async def slow_down() -> None:
        raise ClientRateLimited(retry_after=0.2)

    @app.get("/broken")
    async def broken() -> None:
        raise BackendError("bpf_obj_get(/sys/fs/bpf/kit_netcore/eth0/prog) failed", errno=2)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    return app


@asynccontextmanager
async def client_for(
    app: FastAPI, client: tuple[str, int] = ("198.51.100.1", 40000)
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://test:8000") as http:
        yield http


async def test_shield_refuses_blocked_and_limited_clients(shield: UserspaceShield) -> None:
    shield.rate_limit(pps=0.01, burst=1, ports=[8000])
    app = make_app(shield)
    async with client_for(app) as client:
        assert (await client.get("/")).json() == {"hello": "world"}
        limited = await client.get("/")
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert int(limited.headers["retry-after"]) >= 1
    async with client_for(app, (BLOCKED, 1)) as client:
        blocked = await client.get("/")
    assert blocked.status_code == 403
    assert blocked.json()["type"] == "https://kit.dev/problems/client-blocked"


async def test_trusted_proxies(shield: UserspaceShield) -> None:
    app = make_app(shield, trusted_proxies=["10.0.0.0/8"])
    async with client_for(app, ("10.0.0.2", 1)) as client:
        response = await client.get("/", headers={"X-Forwarded-For": BLOCKED})
    assert response.status_code == 403
    plain = make_app(shield)
    async with client_for(plain, ("10.0.0.2", 1)) as client:
        response = await client.get("/", headers={"X-Forwarded-For": BLOCKED})
    assert response.status_code == 200


async def test_fixed_port(shield: UserspaceShield) -> None:
    shield.rate_limit(pps=0.01, burst=1, ports=[443])
    app = make_app(shield, port=443)
    async with client_for(app) as client:
        statuses = [(await client.get("/")).status_code for _ in range(2)]
    assert statuses == [200, 429]


async def test_errors_from_endpoints_are_problem_json(
    shield: UserspaceShield, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(shield)
    async with client_for(app) as client:
        invalid = await client.post("/ban/10.0.0.1/8")
        fine = await client.post("/ban/192.0.2.0/24")
        slow = await client.get("/slow-down")
        with caplog.at_level(logging.ERROR, logger="kit_netcore"):
            broken = await client.get("/broken")
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"
    assert "did you mean 10.0.0.0/8?" in invalid.json()["detail"]
    assert fine.json() == {"network": "192.0.2.0/24"}
    assert slow.status_code == 429
    assert slow.headers["retry-after"] == "1"
    assert broken.status_code == 503
    assert "/sys/fs/bpf" not in broken.text
    assert "/sys/fs/bpf" in caplog.text


async def websocket_handshake(app: FastAPI, client: str) -> list[dict[str, Any]]:
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "http_version": "1.1",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "client": (client, 1),
        "server": ("test", 8000),
        "subprotocols": [],
        "state": {},
        "extensions": {"websocket.http.response": {}},
    }
    incoming = [{"type": "websocket.connect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_websocket_handshake_is_shielded(shield: UserspaceShield) -> None:
    app = make_app(shield)
    refused = await websocket_handshake(app, BLOCKED)
    assert refused[0]["type"] == "websocket.http.response.start"
    assert refused[0]["status"] == 403
    assert json.loads(refused[1]["body"])["type"] == "https://kit.dev/problems/client-blocked"
    accepted = await websocket_handshake(app, "192.0.2.1")
    assert [m["type"] for m in accepted] == ["websocket.accept", "websocket.close"]


def test_invalid_arguments_fail_at_install(shield: UserspaceShield) -> None:
    app = FastAPI()
    with pytest.raises(ConfigurationError, match="is not an IP network"):
        install_shield(app, shield, trusted_proxies=["10.0.0.0/99"])
    with pytest.raises(ConfigurationError, match="port must be"):
        install_shield(app, shield, port=0)
    with pytest.raises(ConfigurationError, match=r"check\(address"):
        install_shield(app, object())  # type: ignore[arg-type]
    assert app.user_middleware == []


async def test_problem_handlers_alone() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/")
    async def index() -> None:
        raise ClientRateLimited()

    async with client_for(app) as client:
        response = await client.get("/")
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    assert response.json()["detail"].startswith("Too many requests")
