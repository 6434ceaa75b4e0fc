"""Client address resolution behind proxies, and the key functions."""

from __future__ import annotations

import pytest

from kit_auth.exceptions import ConfigurationError, InvalidInput
from kit_auth.ratelimit import (
    RequestInfo,
    TrustedProxies,
    by_ip,
    by_ip_and_user,
    by_user,
    client_address,
    ip_key,
)

PROXIES = TrustedProxies(["10.0.0.0/8", "127.0.0.1", "2001:db8:ffff::/48"])


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    # a spoofed X-Forwarded-For must not pick the key (fastapi-limiter#10)
    for spoof in ("1.2.3.4", "1.2.3.4, 5.6.7.8", "garbage", ""):
        assert client_address("198.51.100.9", spoof, trusted_proxies=None) == "198.51.100.9"


def test_header_ignored_when_the_peer_is_not_a_trusted_proxy() -> None:
    assert client_address("198.51.100.9", "1.2.3.4", trusted_proxies=PROXIES) == "198.51.100.9"


def test_trusted_chain_is_walked_from_the_right() -> None:
    header = "6.6.6.6, 203.0.113.5, 10.0.0.7, 10.0.0.1"
    assert client_address("10.0.0.2", header, trusted_proxies=PROXIES) == "203.0.113.5"
    # the client-chosen leftmost entry never wins over the recorded one
    assert client_address("127.0.0.1", "203.0.113.5", trusted_proxies=PROXIES) == "203.0.113.5"


def test_all_trusted_returns_the_leftmost() -> None:
    assert client_address("10.0.0.2", "10.9.9.9, 10.0.0.1", trusted_proxies=PROXIES) == "10.9.9.9"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("203.0.113.5, not-an-ip", "10.0.0.2"),  # garbage right after the proxy: the proxy
        ("garbage, 10.0.0.1", "10.0.0.1"),  # stops at the last good trusted hop
        ("203.0.113.5:4711, 10.0.0.1", "203.0.113.5"),  # port stripped
        ('"[2001:db8::5]:443", 10.0.0.1', "2001:db8::5"),
        (" , 10.0.0.1", "10.0.0.1"),
        ("x" * 10_000, "10.0.0.2"),
        ("unknown", "10.0.0.2"),
    ],
)
def test_malformed_entries_are_handled_safely(header: str, expected: str) -> None:
    assert client_address("10.0.0.2", header, trusted_proxies=PROXIES) == expected


def test_addresses_are_normalized() -> None:
    assert client_address("::ffff:192.0.2.1", None, trusted_proxies=None) == "192.0.2.1"
    assert client_address("2001:DB8:0:0::1", None, trusted_proxies=None) == "2001:db8::1"
    assert client_address("fe80::1%eth0", None, trusted_proxies=None) == "fe80::1"
    header = "::ffff:203.0.113.9"
    assert client_address("10.0.0.1", header, trusted_proxies=PROXIES) == "203.0.113.9"
    assert (
        client_address("2001:db8:ffff::1", "2001:db8:1::1", trusted_proxies=PROXIES)
        == "2001:db8:1::1"
    )


def test_unknown_or_odd_peers() -> None:
    assert client_address(None, "1.2.3.4", trusted_proxies=None) == "unknown"
    assert client_address("", None, trusted_proxies=PROXIES) == "unknown"
    assert (
        client_address("unix:/run/app.sock", "1.2.3.4", trusted_proxies=PROXIES)
        == "unix:/run/app.sock"
    )


def test_hops() -> None:
    two = TrustedProxies(hops=2)
    assert (
        client_address("10.0.0.2", "6.6.6.6, 203.0.113.5, 10.0.0.1", trusted_proxies=two)
        == "203.0.113.5"
    )
    assert client_address("10.0.0.2", "10.0.0.1", trusted_proxies=two) == "10.0.0.2"  # too few
    assert client_address("10.0.0.2", "bad, 10.0.0.1", trusted_proxies=two) == "10.0.0.2"


def test_rfc7239_forwarded_when_no_x_forwarded_for() -> None:
    forwarded = 'for=6.6.6.6, for="[2001:db8:1::7]:4711";proto=https, for=10.0.0.1'
    assert (
        client_address("10.0.0.2", None, trusted_proxies=PROXIES, forwarded=forwarded)
        == "2001:db8:1::7"
    )
    # X-Forwarded-For wins when both are present
    assert (
        client_address("10.0.0.2", "203.0.113.5", trusted_proxies=PROXIES, forwarded=forwarded)
        == "203.0.113.5"
    )


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((["10.0.0.0/33"],), {}),
        (("10.0.0.0/8",), {}),
        ((), {}),
        ((["10.0.0.0/8"],), {"hops": 1}),
        ((), {"hops": 0}),
    ],
)
def test_trusted_proxies_validate(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        TrustedProxies(*args, **kwargs)  # type: ignore[arg-type]


def test_client_address_validates_arguments() -> None:
    with pytest.raises(InvalidInput):
        client_address(42, None, trusted_proxies=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        client_address("1.2.3.4", None, trusted_proxies=["10.0.0.0/8"])  # type: ignore[arg-type]


def test_ip_key_groups_ipv6() -> None:
    assert (
        ip_key("2001:db8:1:2:aaaa::1") == ip_key("2001:db8:1:2:bbbb::9") == "ip:2001:db8:1:2::/64"
    )
    assert ip_key("2001:db8:1:2:aaaa::1", ipv6_prefix=None) == "ip:2001:db8:1:2:aaaa::1"
    assert ip_key("2001:db8:1:2:aaaa::1", ipv6_prefix=56) == "ip:2001:db8:1::/56"
    assert ip_key("::ffff:192.0.2.1") == "ip:192.0.2.1"
    with pytest.raises(InvalidInput):
        ip_key("1.2.3.4", ipv6_prefix=0)
    with pytest.raises(InvalidInput):
        ip_key("")


def test_key_functions() -> None:
    anon = RequestInfo("2001:db8::1", {"User-Agent": "x"}, None, "/login")
    user = RequestInfo("192.0.2.1", principal_id="42")
    assert by_ip(anon) == "ip:2001:db8::/64"
    assert by_user(anon) == by_ip(anon)
    assert by_user(user) == "user:42"
    assert by_ip_and_user(user) == "ip:192.0.2.1|user:42"
    assert by_ip(RequestInfo(None)) == "ip:unknown"
