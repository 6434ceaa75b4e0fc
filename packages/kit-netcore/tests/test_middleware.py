"""The WSGI and ASGI middleware in front of a real UserspaceShield: WSGI through werkzeug's
test client, ASGI through httpx's ASGI transport, by hand for WebSocket and lifespan
scopes, and once through a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from werkzeug.test import Client

from kit_netcore import BackendError, ConfigurationError, Decision, UserspaceShield
from kit_netcore.middleware import (
    ShieldASGIMiddleware,
    ShieldMiddleware,
    TrustedProxies,
    client_ip,
)

BLOCKED = "203.0.113.7"


# ---- apps behind the middleware ------------------------------------------------------


class WSGIApp:
    """Says hello and counts the requests that reached it."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.calls += 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]


class ASGIApp:
    def __init__(self) -> None:
        self.scopes: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope["type"])
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture
def shield() -> UserspaceShield:
    engine = UserspaceShield()
    engine.block(BLOCKED)
    return engine


def wsgi_client(
    shield: UserspaceShield, **options: Any
) -> tuple[Client, WSGIApp, ShieldMiddleware]:
    app = WSGIApp()
    middleware = ShieldMiddleware(app, shield, **options)
    return Client(middleware), app, middleware


def get(client: Client, remote: str | None = "198.51.100.1", **kwargs: Any) -> Any:
    environ: dict[str, Any] = {"SERVER_PORT": "80"}
    if remote is not None:
        environ["REMOTE_ADDR"] = remote
    environ.update(kwargs.pop("environ", {}))
    return client.get("/", environ_overrides=environ, **kwargs)


# ---- WSGI ---------------------------------------------------------------------------


def test_wsgi_passes_an_unlisted_client(shield: UserspaceShield) -> None:
    client, app, _ = wsgi_client(shield)
    response = get(client)
    assert response.status_code == 200
    assert response.get_data() == b"hello"
    assert app.calls == 1


def test_wsgi_refuses_a_blocked_client_with_problem_json(shield: UserspaceShield) -> None:
    client, app, _ = wsgi_client(shield)
    response = get(client, BLOCKED)
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/problem+json"
    assert int(response.headers["Content-Length"]) == len(response.get_data())
    assert json.loads(response.get_data()) == {
        "type": "https://kit.dev/problems/client-blocked",
        "title": "Client blocked",
        "status": 403,
        "detail": "Requests from your address are blocked.",
    }
    assert app.calls == 0


def test_wsgi_blocks_a_whole_range_and_mapped_ipv6_peers(shield: UserspaceShield) -> None:
    shield.block("2001:db8:bad::/48")
    client, app, _ = wsgi_client(shield)
    assert get(client, "2001:db8:bad:1::9").status_code == 403
    assert get(client, f"::ffff:{BLOCKED}").status_code == 403
    assert get(client, "2001:db8:600d::1").status_code == 200
    assert app.calls == 1


def test_wsgi_allow_list_wins_over_block(shield: UserspaceShield) -> None:
    shield.block("198.51.100.0/24")
    shield.allow("198.51.100.10")
    client, _, _ = wsgi_client(shield)
    assert get(client, "198.51.100.10").status_code == 200
    assert get(client, "198.51.100.11").status_code == 403


def test_wsgi_rate_limit_answers_429_with_retry_after(shield: UserspaceShield) -> None:
    shield.rate_limit(pps=0.01, burst=2)
    client, app, _ = wsgi_client(shield)
    statuses = [get(client).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = get(client)
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == "application/problem+json"
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 100  # one token every 100 s, rounded up
    body = json.loads(refused.get_data())
    assert body["type"] == "https://kit.dev/problems/client-rate-limited"
    assert body["status"] == 429
    assert 0 < body["retry_after"] <= 100
    assert app.calls == 2
    # another source has its own bucket
    assert get(client, "198.51.100.2").status_code == 200


def test_wsgi_one_check_per_request(shield: UserspaceShield) -> None:
    client, _, _ = wsgi_client(shield)
    before = shield.stats().total
    for _ in range(5):
        get(client)
    get(client, BLOCKED)
    stats = shield.stats()
    assert stats.total - before == 6
    assert stats.packets["block"] == 1


def test_wsgi_port_is_the_server_port_or_the_one_given(shield: UserspaceShield) -> None:
    shield.rate_limit(pps=0.001, burst=1, ports=[443])
    server_port, _, _ = wsgi_client(shield)  # SERVER_PORT is 80: no rule for it
    assert [get(server_port).status_code for _ in range(3)] == [200, 200, 200]
    fixed, _, _ = wsgi_client(shield, port=443)  # behind a TLS proxy
    assert [get(fixed, "198.51.100.5").status_code for _ in range(2)] == [200, 429]
    tls, _, _ = wsgi_client(shield)
    assert [
        get(tls, "198.51.100.6", environ={"SERVER_PORT": "443"}).status_code for _ in range(2)
    ] == [200, 429]
    none, _, _ = wsgi_client(shield, port=None)
    assert get(none, "198.51.100.7", environ={"SERVER_PORT": "443"}).status_code == 200
    assert get(none, "198.51.100.7", environ={"SERVER_PORT": "443"}).status_code == 200


def test_wsgi_ignores_forwarded_headers_without_trusted_proxies(shield: UserspaceShield) -> None:
    client, _, _ = wsgi_client(shield)
    spoofed = {"X-Forwarded-For": BLOCKED, "Forwarded": f"for={BLOCKED}"}
    assert get(client, "10.0.0.2", headers=spoofed).status_code == 200
    # and a blocked peer cannot hide behind a header either
    assert get(client, BLOCKED, headers={"X-Forwarded-For": "192.0.2.1"}).status_code == 403


def test_wsgi_trusted_proxy_networks(shield: UserspaceShield) -> None:
    client, _, _ = wsgi_client(shield, trusted_proxies=["10.0.0.0/8"])
    via_proxy = {"X-Forwarded-For": f"192.0.2.1, {BLOCKED}, 10.0.0.9"}
    assert get(client, "10.0.0.2", headers=via_proxy).status_code == 403
    # the header of an untrusted peer is not believed
    assert get(client, "192.0.2.50", headers={"X-Forwarded-For": BLOCKED}).status_code == 200
    # RFC 7239 Forwarded when there is no X-Forwarded-For
    forwarded = {"Forwarded": f'for="{BLOCKED}:4711";proto=https'}
    assert get(client, "10.0.0.2", headers=forwarded).status_code == 403
    # a client that is itself a trusted address: the leftmost entry
    assert get(client, "10.0.0.2", headers={"X-Forwarded-For": "10.1.1.1"}).status_code == 200


def test_wsgi_trusted_proxy_hops(shield: UserspaceShield) -> None:
    client, _, _ = wsgi_client(shield, trusted_proxies=1)
    assert get(client, "10.0.0.2", headers={"X-Forwarded-For": BLOCKED}).status_code == 403
    # hops count from the right: what the client wrote itself is not used
    assert (
        get(client, "10.0.0.2", headers={"X-Forwarded-For": f"{BLOCKED}, 192.0.2.1"}).status_code
        == 200
    )


def test_wsgi_passes_a_peer_that_is_not_an_ip_address(
    shield: UserspaceShield, caplog: pytest.LogCaptureFixture
) -> None:
    client, app, _ = wsgi_client(shield)
    with caplog.at_level(logging.DEBUG, logger="kit_netcore"):
        assert get(client, "unix:/run/app.sock").status_code == 200
        assert get(client, None).status_code == 200
    assert app.calls == 2
    assert "not an IP address: 'unix:/run/app.sock'" in caplog.text


class FailingChecker:
    def check(self, address: str, *, port: int | None, proto: str | None) -> Decision:
        raise BackendError("bpf_map_lookup_elem(nc_block4) failed", errno=9)


def test_wsgi_a_failing_shield_answers_503_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    app = WSGIApp()
    client = Client(ShieldMiddleware(app, FailingChecker()))
    with caplog.at_level(logging.ERROR, logger="kit_netcore"):
        response = get(client)
    assert response.status_code == 503
    body = json.loads(response.get_data())
    assert body["detail"] == "The packet shield cannot be reached right now. Try again later."
    assert "nc_block4" in caplog.text
    assert app.calls == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": 0}, "port must be"),
        ({"port": "443"}, "port must be"),
        ({"trusted_proxies": "10.0.0.0/33"}, "is not an IP network"),
        ({"trusted_proxies": 0}, "hops must be an integer 1..32"),
        ({"trusted_proxies": True}, "not a bool"),
        ({"trusted_proxies": 1.5}, "not float"),
    ],
)
def test_bad_options_fail_at_construction(
    shield: UserspaceShield, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ShieldMiddleware(WSGIApp(), shield, **options)
    with pytest.raises(ConfigurationError, match=message):
        ShieldASGIMiddleware(ASGIApp(), shield, **options)


def test_the_shield_must_have_check() -> None:
    with pytest.raises(ConfigurationError, match=r"check\(address"):
        ShieldMiddleware(WSGIApp(), object())  # type: ignore[arg-type]


# ---- client_ip and TrustedProxies ----------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "header", "proxies", "expected"),
    [
        ("192.0.2.1", None, None, "192.0.2.1"),
        ("[2001:db8::1]:443", None, None, "2001:db8::1"),
        ("fe80::1%eth0", None, None, "fe80::1"),
        ("192.0.2.1:5000", None, None, "192.0.2.1"),
        ("10.0.0.1", "garbage, 10.0.0.3", ["10.0.0.0/8"], "10.0.0.3"),
        ("10.0.0.1", "198.51.100.1, garbage", ["10.0.0.0/8"], "10.0.0.1"),
        ("10.0.0.1", "[2001:db8::5]:1234", ["10.0.0.0/8"], "2001:db8::5"),
        ("10.0.0.1", "a, b", 3, "10.0.0.1"),
        ("10.0.0.1", "198.51.100.1, 198.51.100.2", 2, "198.51.100.1"),
        ("10.0.0.1", "198.51.100.1, nonsense", 1, "10.0.0.1"),
        ("", "198.51.100.1", 1, None),
        ("testclient", None, None, None),
    ],
)
def test_client_ip(peer: str, header: str | None, proxies: object, expected: str | None) -> None:
    result = client_ip(peer, header, trusted_proxies=TrustedProxies.from_setting(proxies))
    assert (str(result) if result is not None else None) == expected


def test_trusted_proxies_settings() -> None:
    assert TrustedProxies.from_setting(None) is None
    assert TrustedProxies.from_setting("  ") is None
    proxies = TrustedProxies.from_setting("10.0.0.0/8 127.0.0.1,::1")
    assert repr(proxies) == "TrustedProxies(['10.0.0.0/8', '127.0.0.1/32', '::1/128'])"
    assert TrustedProxies.from_setting(proxies) is proxies
    assert repr(TrustedProxies.from_setting(3)) == "TrustedProxies(hops=3)"
    assert (
        repr(TrustedProxies.from_setting(("192.0.2.0/24",))) == "TrustedProxies(['192.0.2.0/24'])"
    )
    with pytest.raises(ConfigurationError, match="not both"):
        TrustedProxies(["10.0.0.0/8"], hops=1)
    with pytest.raises(ConfigurationError, match="need proxy networks"):
        TrustedProxies([])
    with pytest.raises(ConfigurationError, match="not a single string"):
        TrustedProxies("10.0.0.0/8")
    assert not TrustedProxies(["10.0.0.0/8"]).is_trusted("not an address")


# ---- ASGI ---------------------------------------------------------------------------


def asgi_client(
    shield: UserspaceShield, client: tuple[str, int] = ("198.51.100.1", 50000), **options: Any
) -> tuple[httpx.AsyncClient, ASGIApp]:
    app = ASGIApp()
    transport = httpx.ASGITransport(app=ShieldASGIMiddleware(app, shield, **options), client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://test:8080"), app


async def test_asgi_pass_block_and_rate(shield: UserspaceShield) -> None:
    shield.rate_limit(pps=0.01, burst=1, ports=[8080])  # the port in scope["server"]
    async with asgi_client(shield)[0] as ok_client:
        assert (await ok_client.get("/")).text == "hello"
        limited = await ok_client.get("/")
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["type"] == "https://kit.dev/problems/client-rate-limited"
    client, app = asgi_client(shield, client=(BLOCKED, 1234))
    async with client:
        blocked = await client.get("/")
    assert blocked.status_code == 403
    assert blocked.json()["type"] == "https://kit.dev/problems/client-blocked"
    assert app.scopes == []


async def test_asgi_trusted_proxies(shield: UserspaceShield) -> None:
    client, _ = asgi_client(shield, client=("10.0.0.2", 1), trusted_proxies="10.0.0.0/8")
    async with client:
        blocked = await client.get("/", headers={"X-Forwarded-For": BLOCKED})
        split = await client.get(
            "/", headers=[("X-Forwarded-For", BLOCKED), ("X-Forwarded-For", "10.0.0.3")]
        )
        fine = await client.get("/", headers={"X-Forwarded-For": "192.0.2.1"})
    assert (blocked.status_code, split.status_code, fine.status_code) == (403, 403, 200)
    untrusted, _ = asgi_client(shield, client=("192.0.2.9", 1), trusted_proxies="10.0.0.0/8")
    async with untrusted:
        assert (await untrusted.get("/", headers={"X-Forwarded-For": BLOCKED})).status_code == 200


async def call_asgi(app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]]) -> list[Any]:
    sent: list[Any] = []
    queue = list(incoming)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def ws_scope(client: str, extensions: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/ws",
        "headers": [],
        "client": (client, 5555),
        "server": ("127.0.0.1", 8000),
        "extensions": extensions or {},
    }


async def test_asgi_websocket_handshake_refused(shield: UserspaceShield) -> None:
    app = ASGIApp()
    middleware = ShieldASGIMiddleware(app, shield)
    connect = [{"type": "websocket.connect"}]
    closed = await call_asgi(middleware, ws_scope(BLOCKED), connect)
    assert closed == [{"type": "websocket.close", "code": 1008}]
    denial = ws_scope(BLOCKED, {"websocket.http.response": {}})
    answered = await call_asgi(middleware, denial, connect)
    assert [m["type"] for m in answered] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert answered[0]["status"] == 403
    assert (b"content-type", b"application/problem+json") in answered[0]["headers"]
    assert json.loads(answered[1]["body"])["status"] == 403
    accepted = await call_asgi(middleware, ws_scope("192.0.2.1"), connect)
    assert accepted == [{"type": "websocket.accept"}]
    assert app.scopes == ["websocket"]


async def test_asgi_lifespan_passes_through_unchecked() -> None:
    class Refuse:
        def check(self, address: str, *, port: int | None, proto: str | None) -> Decision:
            raise AssertionError("lifespan must not be checked")

    app = ASGIApp()
    sent = await call_asgi(
        ShieldASGIMiddleware(app, Refuse()),
        {"type": "lifespan", "asgi": {"version": "3.0"}},
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
    )
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert app.scopes == ["lifespan"]


async def test_asgi_scope_without_client_passes(
    shield: UserspaceShield, caplog: pytest.LogCaptureFixture
) -> None:
    app = ASGIApp()
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [],
        "client": None,
    }
    with caplog.at_level(logging.DEBUG, logger="kit_netcore"):
        sent = await call_asgi(ShieldASGIMiddleware(app, shield), scope, [])
    assert sent[0]["status"] == 200
    assert "not an IP address: None" in caplog.text


# ---- a real server ------------------------------------------------------------------


@pytest.fixture
def served(shield: UserspaceShield) -> Iterator[str]:
    """The shielded ASGI app on a real uvicorn server on 127.0.0.1, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        ShieldASGIMiddleware(ASGIApp(), shield),
        lifespan="off",
        ws="none",
        http="h11",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            threading.Event().wait(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def test_real_uvicorn_server_on_loopback(shield: UserspaceShield, served: str) -> None:
    assert httpx.get(served).text == "hello"
    shield.block("127.0.0.1")
    refused = httpx.get(served)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "https://kit.dev/problems/client-blocked"
    shield.unblock("127.0.0.1")
    port = int(served.rsplit(":", 1)[1])
    shield.rate_limit(pps=0.01, burst=1, ports=[port])  # "server": the port uvicorn listens on
    with httpx.Client() as client:
        first = client.get(served)
        second = client.get(served)
    assert (first.status_code, second.status_code) == (200, 429)
    assert int(second.headers["retry-after"]) >= 1
