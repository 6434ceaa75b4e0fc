"""WSGI and ASGI middleware that ask a shield about each request's client before the app
sees it.

The shield is any object with a ``check(address, *, port, proto)`` method returning a
verdict (``allowed``, ``reason``, ``retry_after``): :class:`~kit_netcore.UserspaceShield`
in practice, which applies the same allow list, block list and rate limits as the XDP
program, in process and without root. One ``check`` call per request; a refused request
gets an RFC 9457 ``application/problem+json`` answer and never reaches the app:

- ``403`` (``https://kit.dev/problems/client-blocked``) for a block-listed client;
- ``429`` (``https://kit.dev/problems/client-rate-limited``) with ``Retry-After`` for a
  client over a rate limit.

The client is the socket peer (``REMOTE_ADDR``, ``scope["client"]``). ``X-Forwarded-For``
(or RFC 7239 ``Forwarded``) is read only when ``trusted_proxies`` says which proxies to
believe: anyone can send that header, and a shield keyed on it is bypassed by sending a
new value each time.

A peer that is not an IP address (a Unix socket, a test client's ``"testclient"``, no
peer at all) is **passed through** and logged at debug level on the ``kit_netcore``
logger: the shield judges IP sources, and refusing every request of a server bound to a
Unix socket behind a proxy that is not declared trusted would be an outage, not a defence.

Example::

    >>> class Deny:
    ...     def check(self, address, *, port, proto):
    ...         from types import SimpleNamespace
    ...         return SimpleNamespace(allowed=False, reason="block", retry_after=None)
    >>> def app(environ, start_response):
    ...     start_response("200 OK", [("Content-Type", "text/plain")])
    ...     return [b"hello"]
    >>> shielded = ShieldMiddleware(app, Deny())
    >>> seen = []
    >>> body = shielded({"REMOTE_ADDR": "203.0.113.7", "SERVER_PORT": "80"},
    ...                 lambda status, headers: seen.append(status))
    >>> seen, b"".join(body)[:40]
    (['403 Forbidden'], b'{"type":"https://kit.dev/problems/client')
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from kit_netcore.exceptions import (
    ClientBlocked,
    ClientRateLimited,
    ConfigurationError,
    KitNetcoreError,
)

if TYPE_CHECKING:  # pragma: no cover
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "ASGIApp",
    "Checker",
    "ShieldASGIMiddleware",
    "ShieldMiddleware",
    "TrustedProxies",
    "Verdict",
    "client_ip",
    "problem_response",
]

logger = logging.getLogger("kit_netcore")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# ASGI 3 types, spelled like starlette.types so that Starlette's add_middleware accepts
# the class, without importing a framework here.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MAX_HEADER = 4096  # forwarding headers longer than this are cut: nobody has 300 proxies
_WS_POLICY_VIOLATION = 1008


class Verdict(Protocol):
    """What :meth:`Checker.check` returns (:class:`~kit_netcore.Decision`): whether the
    source may pass, the reason (``"pass"``, ``"allow"``, ``"block"``, ``"rate"``) and,
    for ``"rate"``, the seconds until a retry can succeed."""

    @property
    def allowed(self) -> bool: ...

    @property
    def reason(self) -> str: ...

    @property
    def retry_after(self) -> float | None: ...


class Checker(Protocol):
    """Anything that decides for one request's source (:class:`~kit_netcore.UserspaceShield`)."""

    def check(self, address: str, *, port: int | None, proto: str | None) -> Verdict: ...


class TrustedProxies:
    """The reverse proxies whose ``X-Forwarded-For`` entries may be believed.

    Either networks (CIDRs or single addresses) of your proxies, or ``hops=N``: exactly N
    proxies (each appending one entry) sit in front of the app.

    Example::

        >>> TrustedProxies(["10.0.0.0/8", "127.0.0.1"]).is_trusted("10.1.2.3")
        True
        >>> TrustedProxies(hops=1)
        TrustedProxies(hops=1)
        >>> TrustedProxies(["10.0.0.300/8"])
        Traceback (most recent call last):
        ...
        kit_netcore.exceptions.ConfigurationError: trusted proxies: '10.0.0.300/8' is not an IP network or address (e.g. '10.0.0.0/8', '::1').
    """

    __slots__ = ("hops", "networks")

    def __init__(self, networks: Iterable[str] = (), *, hops: int | None = None) -> None:
        if isinstance(networks, str):
            raise ConfigurationError(
                "trusted proxies must be a list of CIDRs, e.g. ['10.0.0.0/8'], not a single string."
            )
        nets: list[IPNetwork] = []
        for item in networks:
            try:
                nets.append(ipaddress.ip_network(str(item).strip(), strict=False))
            except ValueError:
                raise ConfigurationError(
                    f"trusted proxies: {item!r} is not an IP network or address "
                    "(e.g. '10.0.0.0/8', '::1')."
                ) from None
        if hops is not None and (type(hops) is not int or not 1 <= hops <= 32):
            raise ConfigurationError(f"trusted proxy hops must be an integer 1..32, got {hops!r}.")
        if hops is not None and nets:
            raise ConfigurationError("trusted proxies take either networks or hops=N, not both.")
        if hops is None and not nets:
            raise ConfigurationError(
                "trusted proxies need proxy networks (e.g. ['10.0.0.0/8']) or hops=N; pass "
                "trusted_proxies=None to trust no proxy."
            )
        self.networks: tuple[IPNetwork, ...] = tuple(nets)
        self.hops: int | None = hops

    @classmethod
    def from_setting(cls, value: object) -> TrustedProxies | None:
        """Build from a setting: None (trust no proxy), a :class:`TrustedProxies`, an int
        (hops), a list of CIDRs, or a string: a number of hops (``"1"``) or CIDRs
        separated by commas or spaces (``"10.0.0.0/8, 127.0.0.1"``).

        Example::

            >>> TrustedProxies.from_setting("10.0.0.0/8, ::1")
            TrustedProxies(['10.0.0.0/8', '::1/128'])
            >>> TrustedProxies.from_setting("2"), TrustedProxies.from_setting(None)
            (TrustedProxies(hops=2), None)
        """
        if value is None or isinstance(value, TrustedProxies):
            return value
        if isinstance(value, bool):
            raise ConfigurationError(
                "trusted proxies must be CIDRs or a number of hops, not a bool."
            )
        if isinstance(value, int):
            return cls(hops=value)
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            if text.isdigit():
                return cls(hops=int(text))
            return cls(text.replace(",", " ").split())
        if isinstance(value, Iterable):
            return cls([str(item) for item in value])
        raise ConfigurationError(
            "trusted proxies must be None, a list of CIDRs, a comma-separated string of "
            f"CIDRs or a number of hops, not {type(value).__name__}."
        )

    def __repr__(self) -> str:
        if self.hops is not None:
            return f"TrustedProxies(hops={self.hops})"
        return f"TrustedProxies({[str(n) for n in self.networks]!r})"

    def is_trusted(self, address: str | IPAddress) -> bool:
        """Whether ``address`` lies in one of the trusted networks (False if malformed)."""
        ip = address if not isinstance(address, str) else _parse_ip(address)
        if ip is None:
            return False
        return any(ip.version == net.version and ip in net for net in self.networks)


def _parse_ip(text: str) -> IPAddress | None:
    """An address from a header entry or socket peer: strips spaces, quotes, brackets and a
    port; unwraps IPv4-mapped IPv6; drops an IPv6 zone; None if malformed."""
    text = text.strip().strip('"')
    if not text or len(text) > 64:
        return None
    if text.startswith("["):  # "[2001:db8::1]:443"
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # "192.0.2.1:8080"
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.scope_id is not None:
            return ipaddress.IPv6Address(ip.packed)
    return ip


def _forwarded_for(forwarded: str) -> list[str]:
    """The ``for=`` values of an RFC 7239 ``Forwarded`` header, in order."""
    values = []
    for element in forwarded.split(","):
        for pair in element.split(";"):
            name, _, value = pair.strip().partition("=")
            if name.strip().lower() == "for":
                values.append(value.strip())
    return values


def client_ip(
    peer: str | None,
    forwarded_for: str | None = None,
    *,
    trusted_proxies: TrustedProxies | None,
    forwarded: str | None = None,
) -> IPAddress | None:
    """The calling client's IP address, or None when the socket peer is not an IP address.

    ``peer`` is the socket peer, ``forwarded_for`` the ``X-Forwarded-For`` header (several
    headers joined with ``,``), ``forwarded`` the RFC 7239 ``Forwarded`` header, used only
    when ``forwarded_for`` is absent.

    Without ``trusted_proxies`` the headers are ignored and the peer is the client. With
    trusted networks the header is consulted only when the peer itself is a trusted proxy,
    and walked from the right (the entries trusted proxies appended) skipping trusted
    addresses; the first untrusted one is the client. A malformed entry stops the walk at
    the last good hop, so forged garbage is judged as the proxy that relayed it. With
    ``hops=N`` the N-th entry from the right is the client (the peer if the header has
    fewer entries). IPv4-mapped IPv6 is unwrapped.

    Example::

        >>> client_ip("198.51.100.9", "1.2.3.4", trusted_proxies=None)
        IPv4Address('198.51.100.9')
        >>> proxies = TrustedProxies(["10.0.0.0/8"])
        >>> client_ip("10.0.0.2", "6.6.6.6, 203.0.113.5, 10.0.0.1", trusted_proxies=proxies)
        IPv4Address('203.0.113.5')
        >>> client_ip("::ffff:192.0.2.1", None, trusted_proxies=None)
        IPv4Address('192.0.2.1')
        >>> client_ip("unix:/run/app.sock", None, trusted_proxies=None) is None
        True
    """
    ip = _parse_ip(peer) if peer else None
    if ip is None or trusted_proxies is None:
        return ip
    if forwarded_for:
        entries = forwarded_for[:_MAX_HEADER].split(",")
    elif forwarded:
        entries = _forwarded_for(forwarded[:_MAX_HEADER])
    else:
        return ip
    if trusted_proxies.hops is not None:
        if len(entries) < trusted_proxies.hops:
            return ip
        return _parse_ip(entries[-trusted_proxies.hops]) or ip
    if not trusted_proxies.is_trusted(ip):
        return ip
    for entry in reversed(entries):
        hop = _parse_ip(entry)
        if hop is None:
            return ip
        ip = hop
        if not trusted_proxies.is_trusted(hop):
            return hop
    return ip


def problem_response(error: KitNetcoreError) -> tuple[int, list[tuple[str, str]], bytes]:
    """The status, headers and body of the problem+json answer to ``error``.

    Example::

        >>> status, headers, body = problem_response(ClientRateLimited(retry_after=1.5))
        >>> status, headers[-1]
        (429, ('Retry-After', '2'))
    """
    body = json.dumps(error.problem(), separators=(",", ":")).encode()
    headers = [
        ("Content-Type", "application/problem+json"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        *error.headers().items(),
    ]
    return error.status, headers, body


PortSetting = int | Literal["server"] | None


def _check_port(port: object) -> PortSetting:
    if port is None:
        return None
    if port == "server":
        return "server"
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return port
    raise ConfigurationError(
        f'port must be "server" (the port the request came in on), a port 1..65535 or None, '
        f"got {port!r}."
    )


def _check_checker(checker: object) -> Checker:
    if not callable(getattr(checker, "check", None)):
        raise ConfigurationError(
            "the shield must have a check(address, *, port, proto) method (e.g. "
            f"kit_netcore.UserspaceShield()), got {type(checker).__name__}."
        )
    return cast(Checker, checker)


class _Shielded:
    """What both middlewares share: the checker, the proxies and the decision."""

    def __init__(self, checker: Checker, trusted_proxies: object, port: object) -> None:
        self.checker: Checker = _check_checker(checker)
        self.trusted_proxies: TrustedProxies | None = TrustedProxies.from_setting(trusted_proxies)
        self.port: PortSetting = _check_port(port)
        self._blocked = problem_response(ClientBlocked())

    def _refusal(
        self,
        peer: str | None,
        forwarded_for: str | None,
        forwarded: str | None,
        server_port: int | None,
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        ip = client_ip(
            peer, forwarded_for, trusted_proxies=self.trusted_proxies, forwarded=forwarded
        )
        if ip is None:
            logger.debug("shield: passing a request whose peer is not an IP address: %r", peer)
            return None
        port = server_port if self.port == "server" else self.port
        if port is not None and not 0 < port < 65536:
            port = None  # a server that reports a nonsense port: only all-traffic rules apply
        try:
            verdict = self.checker.check(str(ip), port=port, proto="tcp")
        except KitNetcoreError as exc:
            logger.error("shield check failed for %s: %s", ip, exc, exc_info=exc)
            return problem_response(exc)
        if verdict.allowed:
            return None
        logger.debug("shield: refused %s (%s)", ip, verdict.reason)
        if verdict.reason == "rate":
            return problem_response(ClientRateLimited(retry_after=verdict.retry_after))
        return self._blocked


class ShieldMiddleware(_Shielded):
    """WSGI middleware: ``app.wsgi_app = ShieldMiddleware(app.wsgi_app, shield)``.

    ``shield`` is a :class:`Checker` (:class:`~kit_netcore.UserspaceShield`);
    ``trusted_proxies`` is None (the peer is the client), a :class:`TrustedProxies`, a
    list of proxy CIDRs or a number of hops; ``port`` is the destination port given to
    ``check``: ``"server"`` (``SERVER_PORT``, the port this server listens on), a fixed
    port (e.g. 443 behind a proxy, to match ``rate_limit(ports=[443])``) or None (only
    rules for every packet apply).
    """

    def __init__(
        self,
        app: WSGIApplication,
        shield: Checker,
        *,
        trusted_proxies: TrustedProxies | Iterable[str] | int | str | None = None,
        port: int | Literal["server"] | None = "server",
    ) -> None:
        super().__init__(shield, trusted_proxies, port)
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        forwarded_for = forwarded = None
        if self.trusted_proxies is not None:
            forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
            forwarded = environ.get("HTTP_FORWARDED")
        try:
            server_port: int | None = int(environ.get("SERVER_PORT") or "")
        except ValueError:
            server_port = None
        refusal = self._refusal(environ.get("REMOTE_ADDR"), forwarded_for, forwarded, server_port)
        if refusal is None:
            return self.app(environ, start_response)
        status, headers, body = refusal
        start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
        return [body]


class ShieldASGIMiddleware(_Shielded):
    """ASGI 3 middleware: ``app = ShieldASGIMiddleware(app, shield)``, or
    ``app.add_middleware(ShieldASGIMiddleware, shield=shield)`` in Starlette/FastAPI.

    Checks ``http`` and ``websocket`` scopes (a refused WebSocket handshake gets the 403
    or 429 as an HTTP response when the server supports the denial-response extension,
    else it is closed with code 1008, which the server sends as a 403); ``lifespan`` and
    other scopes pass through. The arguments are those of :class:`ShieldMiddleware`;
    ``"server"`` is the port in ``scope["server"]``.
    """

    def __init__(
        self,
        app: ASGIApp,
        shield: Checker,
        *,
        trusted_proxies: TrustedProxies | Iterable[str] | int | str | None = None,
        port: int | Literal["server"] | None = "server",
    ) -> None:
        super().__init__(shield, trusted_proxies, port)
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        server = scope.get("server")
        forwarded_for = forwarded = None
        if self.trusted_proxies is not None:
            forwarded_for, forwarded = _forwarding_headers(scope.get("headers") or ())
        refusal = self._refusal(
            client[0] if client else None,
            forwarded_for,
            forwarded,
            server[1] if server and isinstance(server[1], int) else None,
        )
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, headers, body = refusal
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        if kind == "http":
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": body})
        elif "websocket.http.response" in (scope.get("extensions") or {}):
            await send({"type": "websocket.http.response.start", "status": status, "headers": raw})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": _WS_POLICY_VIOLATION})


def _forwarding_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    forwarded_for: list[str] = []
    forwarded: list[str] = []
    for name, value in headers:
        if name == b"x-forwarded-for":
            forwarded_for.append(value.decode("latin-1"))
        elif name == b"forwarded":
            forwarded.append(value.decode("latin-1"))
    return (",".join(forwarded_for) or None, ",".join(forwarded) or None)


_REASONS = {
    403: "Forbidden",
    404: "Not Found",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    507: "Insufficient Storage",
}
