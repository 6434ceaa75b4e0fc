"""User input to rule keys: addresses and CIDRs, list files, and the checks on ttl, pps,
burst and ports. Every refusal is an :class:`~kit_netcore.exceptions.InvalidRule` that says
what was wrong and what to do.

A target parses into a :class:`Target`: the family (4 or 6), the prefix length, the
address as 16 bytes in network order, masked to the prefix (an IPv4 address fills the
first 4 bytes, the other 12 are zero, as in ``nc_common.h``), and the ``ipaddress``
network. IPv4-mapped IPv6 (``::ffff:192.0.2.1``) becomes the IPv4 address, because that
is what the packets carry.

Example::

    >>> parse_target("198.51.100.0/24")
    Target(family=4, prefixlen=24, addr=b'\\xc63d\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00', network=IPv4Network('198.51.100.0/24'))
    >>> parse_target("::ffff:203.0.113.7").network
    IPv4Network('203.0.113.7/32')
    >>> parse_target("10.0.0.1/8")
    Traceback (most recent call last):
    ...
    kit_netcore.exceptions.InvalidRule: '10.0.0.1/8' has host bits set: did you mean 10.0.0.0/8? A rule covers a whole network: give its first address, or 10.0.0.1 alone for that one host.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from kit_netcore.exceptions import InvalidRule

__all__ = [
    "MAX_BURST",
    "MAX_PORTS",
    "MAX_PPS",
    "MAX_TTL",
    "IPAddress",
    "IPNetwork",
    "Target",
    "check_burst",
    "check_ports",
    "check_pps",
    "check_ttl",
    "iter_list",
    "parse_address",
    "parse_list_line",
    "parse_target",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Longest ttl accepted, in seconds (10 years); ``ttl=None`` is a rule that never expires.
MAX_TTL = 10 * 365 * 86400.0
#: Highest rate accepted, in packets (or requests) per second.
MAX_PPS = 1e9
#: Largest burst accepted.
MAX_BURST = 1_000_000
#: Most ports one rate rule may name.
MAX_PORTS = 1024

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_ZERO12 = bytes(12)
_EXAMPLES = "e.g. '203.0.113.7', '198.51.100.0/24' or '2001:db8::/32'"
_MAX_TEXT = 128  # longer than any address/prefix text; keeps messages short


class Target(NamedTuple):
    """A parsed rule target: what the maps are keyed by.

    ``addr`` is always 16 bytes, network order, masked to ``prefixlen``; an IPv4 address
    fills ``addr[0:4]``.
    """

    family: int
    prefixlen: int
    addr: bytes
    network: IPNetwork


def _quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 4] + "...'"


def _unmap(network: IPNetwork) -> IPNetwork:
    """``::ffff:a.b.c.d/L`` (L >= 96) as the IPv4 network it stands for."""
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _target(network: IPNetwork) -> Target:
    network = _unmap(network)
    packed = network.network_address.packed
    if network.version == 4:
        return Target(4, network.prefixlen, packed + _ZERO12, network)
    return Target(6, network.prefixlen, packed, network)


def parse_target(value: object, *, what: str = "target") -> Target:
    """Parse an address or CIDR network given by a user into a :class:`Target`.

    Accepts a string (``"203.0.113.7"``, ``"198.51.100.0/24"``, ``"2001:db8::/32"``,
    surrounding spaces ignored, an IPv6 zone ``%eth0`` dropped) or an
    ``IPv4Address``/``IPv6Address``/``IPv4Network``/``IPv6Network``. A network with host
    bits set is refused, naming the network that was probably meant. ``what`` names the
    value in messages.

    Example::

        >>> t = parse_target("2001:db8::/32")
        >>> t.family, t.prefixlen, t.addr.hex()
        (6, 32, '20010db8000000000000000000000000')
        >>> parse_target(ipaddress.ip_address("192.0.2.1")).network
        IPv4Network('192.0.2.1/32')
    """
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return _target(value)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        if isinstance(value, ipaddress.IPv6Address) and value.scope_id is not None:
            value = ipaddress.IPv6Address(value.packed)
        return _target(ipaddress.ip_network(value))
    if not isinstance(value, str):
        raise InvalidRule(
            f"{what} must be an IP address or network as a string or ipaddress object "
            f"({_EXAMPLES}), not {type(value).__name__}."
        )
    text = value.strip()
    if not text:
        raise InvalidRule(f"{what} is empty: give an IP address or CIDR network ({_EXAMPLES}).")
    if len(text) > _MAX_TEXT:
        raise InvalidRule(f"{what} {_quote(value)} is too long to be an IP address or network.")
    address, slash, prefix = text.partition("/")
    if "%" in address:  # an IPv6 zone (fe80::1%eth0) means nothing to a packet filter
        address = address.split("%", 1)[0]
    text = address + slash + prefix
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            try:
                host_only = ipaddress.ip_address(address)
            except ValueError:
                host_only = None
            if host_only is not None and slash:
                kind = "an IPv4" if host_only.version == 4 else "an IPv6"
                raise InvalidRule(
                    f"{what} {_quote(value)}: {prefix!r} is not a prefix length for {kind} "
                    f"network; give 0..{host_only.max_prefixlen} (e.g. "
                    f"{'198.51.100.0/24' if host_only.version == 4 else '2001:db8::/32'})."
                ) from None
            raise InvalidRule(
                f"{what} {_quote(value)} is not an IP address or CIDR network ({exc}); {_EXAMPLES}."
            ) from None
        loose = _unmap(loose)
        host = _unmap(ipaddress.ip_network(address))
        raise InvalidRule(
            f"{_quote(text)} has host bits set: did you mean {loose}? A rule covers a whole "
            f"network: give its first address, or {host.network_address} alone for that one "
            "host."
        ) from None
    return _target(network)


def parse_address(value: object, *, what: str = "address") -> Target:
    """Parse one host address (no prefix, or a full-length one) into a :class:`Target`.

    Example::

        >>> parse_address("::ffff:192.0.2.1").network
        IPv4Network('192.0.2.1/32')
        >>> parse_address("192.0.2.0/24")
        Traceback (most recent call last):
        ...
        kit_netcore.exceptions.InvalidRule: address must be a single IP address, not the network 192.0.2.0/24.
    """
    target = parse_target(value, what=what)
    if target.prefixlen != target.network.max_prefixlen:
        raise InvalidRule(f"{what} must be a single IP address, not the network {target.network}.")
    return target


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_ttl(ttl: object) -> float | None:
    """A rule's time to live in seconds: None (forever) or a positive finite number up to
    :data:`MAX_TTL`.

    Example::

        >>> check_ttl(600), check_ttl(None)
        (600.0, None)
        >>> check_ttl(0)
        Traceback (most recent call last):
        ...
        kit_netcore.exceptions.InvalidRule: ttl must be a positive number of seconds, got 0; pass ttl=None for a rule that never expires.
    """
    if ttl is None:
        return None
    if not _is_number(ttl):
        raise InvalidRule(
            f"ttl must be a number of seconds or None, not {type(ttl).__name__} {_quote(ttl)}."
        )
    assert isinstance(ttl, int | float)
    if not (math.isfinite(ttl) and ttl > 0):
        raise InvalidRule(
            f"ttl must be a positive number of seconds, got {ttl!r}; pass ttl=None for a rule "
            "that never expires."
        )
    if ttl > MAX_TTL:
        raise InvalidRule(
            f"ttl must be at most {MAX_TTL:.0f} seconds (10 years), got {ttl!r}; pass ttl=None "
            "for a rule that never expires."
        )
    return float(ttl)


def check_pps(pps: object) -> float:
    """A rate in packets (or requests) per second: finite, above 0, at most :data:`MAX_PPS`.

    Example::

        >>> check_pps(100)
        100.0
        >>> check_pps(float("nan"))
        Traceback (most recent call last):
        ...
        kit_netcore.exceptions.InvalidRule: pps must be a finite number above 0 and at most 1e+09 (packets per second), got nan.
    """
    if not _is_number(pps):
        raise InvalidRule(
            f"pps must be a number of packets per second, not {type(pps).__name__} {_quote(pps)}."
        )
    assert isinstance(pps, int | float)
    if not (math.isfinite(pps) and 0 < pps <= MAX_PPS):
        raise InvalidRule(
            f"pps must be a finite number above 0 and at most {MAX_PPS:g} (packets per "
            f"second), got {pps!r}."
        )
    return float(pps)


def check_burst(burst: object) -> int:
    """How many packets a source may send at once above the rate: an integer from 1 to
    :data:`MAX_BURST`.

    Example::

        >>> check_burst(200)
        200
        >>> check_burst(2.5)
        Traceback (most recent call last):
        ...
        kit_netcore.exceptions.InvalidRule: burst must be an integer 1..1000000 (packets), not float 2.5.
    """
    if not isinstance(burst, int) or isinstance(burst, bool):
        raise InvalidRule(
            f"burst must be an integer 1..{MAX_BURST} (packets), not "
            f"{type(burst).__name__} {_quote(burst)}."
        )
    if not 1 <= burst <= MAX_BURST:
        raise InvalidRule(f"burst must be an integer 1..{MAX_BURST} (packets), got {burst}.")
    return burst


def check_ports(ports: object) -> tuple[int, ...] | None:
    """The destination ports of a rate rule: None (every packet) or 1 to :data:`MAX_PORTS`
    distinct TCP/UDP ports 1..65535 (a single int is one port). Returns them sorted.

    Example::

        >>> check_ports([443, 80, 443]), check_ports(None), check_ports(8080)
        ((80, 443), None, (8080,))
        >>> check_ports([0])
        Traceback (most recent call last):
        ...
        kit_netcore.exceptions.InvalidRule: ports must be TCP/UDP port numbers 1..65535, got 0.
    """
    if ports is None:
        return None
    if isinstance(ports, int) and not isinstance(ports, bool):
        ports = (ports,)
    if isinstance(ports, str | bytes) or not isinstance(ports, Iterable):
        raise InvalidRule(
            f"ports must be a list of port numbers (e.g. [80, 443]) or None for every "
            f"packet, not {type(ports).__name__} {_quote(ports)}."
        )
    found: set[int] = set()
    for port in ports:
        if not isinstance(port, int) or isinstance(port, bool):
            raise InvalidRule(
                f"ports must be integers 1..65535, not {type(port).__name__} {_quote(port)}."
            )
        if not 1 <= port <= 65535:
            raise InvalidRule(f"ports must be TCP/UDP port numbers 1..65535, got {port}.")
        found.add(port)
        if len(found) > MAX_PORTS:
            raise InvalidRule(
                f"a rate rule may name at most {MAX_PORTS} ports; pass ports=None to limit "
                "every packet."
            )
    if not found:
        raise InvalidRule(
            "ports is empty: name at least one port (e.g. [80, 443]) or pass ports=None to "
            "limit every packet."
        )
    return tuple(sorted(found))


def parse_list_line(line: str) -> IPNetwork | None:
    """One line of a block or allow list: an address or CIDR, or None for a blank or
    comment line.

    ``#`` and ``;`` start a comment (whole-line or trailing, so Spamhaus DROP and FireHOL
    netsets load as they are); spaces and tabs around the entry are ignored.

    Example::

        >>> parse_list_line("198.51.100.0/24   # scanners")
        IPv4Network('198.51.100.0/24')
        >>> parse_list_line("  # a comment") is None, parse_list_line("") is None
        (True, True)
    """
    if not isinstance(line, str):
        raise InvalidRule(f"list lines must be strings, not {type(line).__name__}.")
    for mark in ("#", ";"):
        line = line.split(mark, 1)[0]
    entry = line.strip()
    if not entry:
        return None
    return parse_target(entry, what="entry").network


def iter_list(lines: Iterable[str], *, source: str = "<list>") -> Iterator[IPNetwork]:
    """The networks of a block or allow list, in order; an invalid line raises
    :class:`~kit_netcore.exceptions.InvalidRule` naming ``source`` and the line number.

    Example::

        >>> list(iter_list(["# drop list", "192.0.2.1", "2001:db8::/32 ; SBL1"]))
        [IPv4Network('192.0.2.1/32'), IPv6Network('2001:db8::/32')]
        >>> list(iter_list(["192.0.2.1", "nonsense"], source="drop.txt"))
        Traceback (most recent call last):
        ...
        kit_netcore.exceptions.InvalidRule: drop.txt:2: entry 'nonsense' is not an IP address or CIDR network ('nonsense' does not appear to be an IPv4 or IPv6 network); e.g. '203.0.113.7', '198.51.100.0/24' or '2001:db8::/32'.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    for number, line in enumerate(lines, 1):
        try:
            network = parse_list_line(line)
        except InvalidRule as exc:
            raise InvalidRule(f"{source}:{number}: {exc}") from None
        if network is not None:
            yield network
