"""Who is calling: the client address behind proxies, and rate-limit key functions."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from kit_auth.exceptions import ConfigurationError, InvalidInput

__all__ = [
    "KeyFunc",
    "RequestInfo",
    "TrustedProxies",
    "by_ip",
    "by_ip_and_user",
    "by_user",
    "client_address",
    "ip_key",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: What :func:`client_address` returns when the socket peer is unknown: all such
#: requests share one bucket, which errs on the side of limiting.
UNKNOWN = "unknown"
_MAX_HEADER = 4096


class TrustedProxies:
    """The reverse proxies whose ``X-Forwarded-For`` entries may be believed.

    Either networks (CIDRs or single addresses) of your proxies, or ``hops=N``: exactly
    N proxies (each appending one entry) sit in front of the app.

    Example::

        >>> TrustedProxies(["10.0.0.0/8", "127.0.0.1"]).is_trusted("10.1.2.3")
        True
        >>> TrustedProxies(hops=1).hops
        1
        >>> TrustedProxies(["10.0.0.300/8"])
        Traceback (most recent call last):
        ...
        kit_auth.exceptions.ConfigurationError: TrustedProxies: '10.0.0.300/8' is not an IP network or address (e.g. '10.0.0.0/8', '::1').
    """

    __slots__ = ("hops", "networks")

    def __init__(self, networks: Iterable[str] = (), *, hops: int | None = None) -> None:
        if isinstance(networks, str):
            raise ConfigurationError(
                "TrustedProxies networks must be a list of CIDRs, e.g. ['10.0.0.0/8'], not a "
                "single string."
            )
        nets: list[IPNetwork] = []
        for item in networks:
            try:
                nets.append(ipaddress.ip_network(str(item).strip(), strict=False))
            except ValueError:
                raise ConfigurationError(
                    f"TrustedProxies: {item!r} is not an IP network or address "
                    "(e.g. '10.0.0.0/8', '::1')."
                ) from None
        if hops is not None and (type(hops) is not int or not 1 <= hops <= 32):
            raise ConfigurationError(f"TrustedProxies hops must be an integer 1..32, got {hops!r}.")
        if hops is not None and nets:
            raise ConfigurationError(
                "TrustedProxies takes either proxy networks or hops=N, not both."
            )
        if hops is None and not nets:
            raise ConfigurationError(
                "TrustedProxies needs proxy networks (e.g. ['10.0.0.0/8']) or hops=N; pass "
                "trusted_proxies=None to trust no proxy."
            )
        self.networks: tuple[IPNetwork, ...] = tuple(nets)
        self.hops = hops

    def __repr__(self) -> str:
        if self.hops is not None:
            return f"TrustedProxies(hops={self.hops})"
        return f"TrustedProxies({[str(n) for n in self.networks]!r})"

    def is_trusted(self, address: str | IPAddress) -> bool:
        """Whether ``address`` lies in one of the trusted networks (False if malformed).

        Example::

            >>> TrustedProxies(["::1"]).is_trusted("::ffff:127.0.0.1")
            False
        """
        ip = address if not isinstance(address, str) else _parse_ip(address)
        if ip is None:
            return False
        return any(ip.version == net.version and ip in net for net in self.networks)


def _parse_ip(text: str) -> IPAddress | None:
    """An address from a header entry or socket peer: strips spaces, quotes, brackets and a
    port; unwraps IPv4-mapped IPv6; None if malformed."""
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
            ip = ipaddress.IPv6Address(text.split("%", 1)[0])
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


def client_address(
    remote_addr: str | None,
    forwarded_for: str | None = None,
    *,
    trusted_proxies: TrustedProxies | None,
    forwarded: str | None = None,
) -> str:
    """The calling client's IP address, normalized (IPv4-mapped IPv6 unwrapped, IPv6
    compressed).

    ``remote_addr`` is the socket peer, ``forwarded_for`` the ``X-Forwarded-For`` header
    (several headers joined with ``,``), ``forwarded`` the RFC 7239 ``Forwarded`` header,
    used only when ``forwarded_for`` is absent.

    Without ``trusted_proxies`` the headers are **ignored** and the socket peer is the
    client: anyone can send ``X-Forwarded-For``, and a limiter keyed on it is bypassed by
    sending a new value each time (long2ice/fastapi-limiter#10). With trusted proxies the
    header is consulted only when the peer itself is a trusted proxy, and is walked from
    the right (the entries trusted proxies appended) skipping trusted addresses; the first
    untrusted one is the client. If every entry is trusted the leftmost is returned; a
    malformed entry stops the walk at the last good hop (so forged garbage shares the
    proxy's bucket instead of getting a fresh one). With ``hops=N`` the N-th entry from
    the right is the client (the peer if the header has fewer entries).

    Example::

        >>> client_address("198.51.100.9", "1.2.3.4", trusted_proxies=None)
        '198.51.100.9'
        >>> proxies = TrustedProxies(["10.0.0.0/8"])
        >>> client_address("10.0.0.2", "6.6.6.6, 203.0.113.5, 10.0.0.1", trusted_proxies=proxies)
        '203.0.113.5'
        >>> client_address("::ffff:192.0.2.1", None, trusted_proxies=None)
        '192.0.2.1'
    """
    if remote_addr is not None and not isinstance(remote_addr, str):
        raise InvalidInput(
            f"remote_addr must be a string or None, got {type(remote_addr).__name__}."
        )
    if trusted_proxies is not None and not isinstance(trusted_proxies, TrustedProxies):
        raise InvalidInput(
            f"trusted_proxies must be a TrustedProxies or None, got {type(trusted_proxies).__name__}."
        )
    peer = _parse_ip(remote_addr) if remote_addr else None
    if peer is None:
        return remote_addr.strip() if remote_addr and remote_addr.strip() else UNKNOWN
    if trusted_proxies is None:
        return str(peer)
    if forwarded_for:
        entries = forwarded_for[:_MAX_HEADER].split(",")
    elif forwarded:
        entries = _forwarded_for(forwarded[:_MAX_HEADER])
    else:
        return str(peer)
    if trusted_proxies.hops is not None:
        if len(entries) < trusted_proxies.hops:
            return str(peer)
        ip = _parse_ip(entries[-trusted_proxies.hops])
        return str(ip) if ip is not None else str(peer)
    if not trusted_proxies.is_trusted(peer):
        return str(peer)
    last = peer
    for entry in reversed(entries):
        ip = _parse_ip(entry)
        if ip is None:
            return str(last)
        if not trusted_proxies.is_trusted(ip):
            return str(ip)
        last = ip
    return str(last)


def ip_key(address: str, *, ipv6_prefix: int | None = 64) -> str:
    """A rate-limit key for an address: IPv6 grouped by ``/ipv6_prefix`` (default /64,
    the block one customer usually gets), IPv4 as is, anything unparsable verbatim.

    Example::

        >>> ip_key("2001:db8:1:2:aaaa::1")
        'ip:2001:db8:1:2::/64'
        >>> ip_key("192.0.2.1")
        'ip:192.0.2.1'
    """
    if ipv6_prefix is not None and (type(ipv6_prefix) is not int or not 1 <= ipv6_prefix <= 128):
        raise InvalidInput(f"ipv6_prefix must be an integer 1..128 or None, got {ipv6_prefix!r}.")
    ip = _parse_ip(address) if isinstance(address, str) else None
    if ip is None:
        if not isinstance(address, str) or not address:
            raise InvalidInput("An address string is required to build a rate-limit key.")
        return "ip:" + address[:128]
    if ip.version == 6 and ipv6_prefix is not None and ipv6_prefix < 128:
        return "ip:" + str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))
    return "ip:" + str(ip)


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a key function may look at, built by the Flask/FastAPI adapters.

    ``remote_addr`` is the client address already resolved with :func:`client_address`
    (the socket peer unless proxies are trusted), ``principal_id`` the authenticated
    user's id (None when anonymous).

    Example::

        >>> RequestInfo("192.0.2.1", principal_id="42", path="/api").principal_id
        '42'
    """

    remote_addr: str | None
    headers: Mapping[str, str] = field(default_factory=dict)
    principal_id: str | None = None
    path: str = ""


KeyFunc = Callable[[RequestInfo], str]


def by_ip(info: RequestInfo) -> str:
    """Key by client address (IPv6 grouped per /64).

    Example::

        >>> by_ip(RequestInfo("192.0.2.1"))
        'ip:192.0.2.1'
    """
    return ip_key(info.remote_addr or UNKNOWN)


def by_user(info: RequestInfo) -> str:
    """Key by principal id, falling back to the address for anonymous requests.

    Example::

        >>> by_user(RequestInfo("192.0.2.1", principal_id="42"))
        'user:42'
        >>> by_user(RequestInfo("192.0.2.1"))
        'ip:192.0.2.1'
    """
    if info.principal_id:
        return "user:" + str(info.principal_id)
    return by_ip(info)


def by_ip_and_user(info: RequestInfo) -> str:
    """Key by the pair (address, principal id): one user from one address.

    Example::

        >>> by_ip_and_user(RequestInfo("192.0.2.1", principal_id="42"))
        'ip:192.0.2.1|user:42'
        >>> by_ip_and_user(RequestInfo("192.0.2.1"))
        'ip:192.0.2.1|anon'
    """
    user = "user:" + str(info.principal_id) if info.principal_id else "anon"
    return by_ip(info) + "|" + user
