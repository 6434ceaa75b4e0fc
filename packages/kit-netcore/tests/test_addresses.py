"""Parsing user input into rule keys, and the checks on ttl, pps, burst and ports."""

from __future__ import annotations

import ipaddress

import pytest

from kit_netcore._addresses import (
    MAX_BURST,
    MAX_PORTS,
    MAX_TTL,
    Target,
    check_burst,
    check_ports,
    check_pps,
    check_ttl,
    iter_list,
    parse_address,
    parse_list_line,
    parse_target,
)
from kit_netcore.exceptions import InvalidRule


@pytest.mark.parametrize(
    ("given", "family", "prefixlen", "addr_hex", "network"),
    [
        ("203.0.113.7", 4, 32, "cb007107" + "00" * 12, "203.0.113.7/32"),
        ("198.51.100.0/24", 4, 24, "c6336400" + "00" * 12, "198.51.100.0/24"),
        (" 10.0.0.0/8\n", 4, 8, "0a000000" + "00" * 12, "10.0.0.0/8"),
        ("10.0.0.0/255.0.0.0", 4, 8, "0a000000" + "00" * 12, "10.0.0.0/8"),
        ("0.0.0.0/0", 4, 0, "00" * 16, "0.0.0.0/0"),
        ("2001:db8::/32", 6, 32, "20010db8" + "00" * 12, "2001:db8::/32"),
        ("2001:DB8::1", 6, 128, "20010db8" + "00" * 11 + "01", "2001:db8::1/128"),
        ("fe80::1%eth0", 6, 128, "fe80" + "00" * 13 + "01", "fe80::1/128"),
        ("::/0", 6, 0, "00" * 16, "::/0"),
        # IPv4-mapped IPv6 is the IPv4 address the packets carry
        ("::ffff:203.0.113.7", 4, 32, "cb007107" + "00" * 12, "203.0.113.7/32"),
        ("::ffff:198.51.100.0/120", 4, 24, "c6336400" + "00" * 12, "198.51.100.0/24"),
        ("::ffff:0:0/96", 4, 0, "00" * 16, "0.0.0.0/0"),
        # wider than the mapped range: stays IPv6
        ("::/80", 6, 80, "00" * 16, "::/80"),
    ],
)
def test_parse_target_strings(
    given: str, family: int, prefixlen: int, addr_hex: str, network: str
) -> None:
    target = parse_target(given)
    assert target == Target(
        family, prefixlen, bytes.fromhex(addr_hex), ipaddress.ip_network(network)
    )
    assert len(target.addr) == 16


@pytest.mark.parametrize(
    "given",
    [
        ipaddress.ip_address("192.0.2.1"),
        ipaddress.ip_network("192.0.2.1/32"),
        ipaddress.ip_address("::ffff:192.0.2.1"),
        ipaddress.ip_network("::ffff:192.0.2.1/128"),
    ],
)
def test_parse_target_ipaddress_objects(given: object) -> None:
    assert parse_target(given).network == ipaddress.IPv4Network("192.0.2.1/32")


def test_scoped_ipv6_address_object_loses_its_zone() -> None:
    target = parse_target(ipaddress.IPv6Address("fe80::1%eth0"))
    assert target.network == ipaddress.IPv6Network("fe80::1/128")


@pytest.mark.parametrize(
    ("given", "meant", "host"),
    [
        ("10.0.0.1/8", "10.0.0.0/8", "10.0.0.1"),
        ("192.168.1.77/24", "192.168.1.0/24", "192.168.1.77"),
        ("2001:db8::1/32", "2001:db8::/32", "2001:db8::1"),
        ("::ffff:10.0.0.1/104", "10.0.0.0/8", "10.0.0.1"),
    ],
)
def test_host_bits_refused_naming_the_network(given: str, meant: str, host: str) -> None:
    with pytest.raises(InvalidRule) as caught:
        parse_target(given)
    message = str(caught.value)
    assert f"did you mean {meant}?" in message
    assert f"or {host} alone" in message


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("example.com", "is not an IP address or CIDR network"),
        ("10.0.0.300", "is not an IP address or CIDR network"),
        ("10.0.0.0/33", "'33' is not a prefix length for an IPv4 network; give 0..32"),
        ("2001:db8::/129", "'129' is not a prefix length for an IPv6 network; give 0..128"),
        ("10.0.0.0/x", "is not a prefix length"),
        ("1" * 500, "too long"),
    ],
)
def test_parse_target_refusals_say_what_is_wrong(given: str, expected: str) -> None:
    with pytest.raises(InvalidRule) as caught:
        parse_target(given)
    assert expected in str(caught.value)
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize("given", [None, 3232235777, b"10.0.0.1", True, ["10.0.0.1"]])
def test_parse_target_refuses_other_types(given: object) -> None:
    with pytest.raises(InvalidRule, match="must be an IP address or network"):
        parse_target(given)


def test_what_names_the_value() -> None:
    with pytest.raises(InvalidRule, match=r"^allow target is empty"):
        parse_target("", what="allow target")


def test_parse_address_single_host_only() -> None:
    assert parse_address("2001:db8::7").prefixlen == 128
    assert parse_address("192.0.2.9/32").network == ipaddress.IPv4Network("192.0.2.9/32")
    with pytest.raises(InvalidRule, match=r"single IP address, not the network 192\.0\.2\.0/24"):
        parse_address("192.0.2.0/24")


def test_ttl() -> None:
    assert check_ttl(None) is None
    assert check_ttl(1) == 1.0
    assert check_ttl(0.5) == 0.5
    assert check_ttl(MAX_TTL) == MAX_TTL
    for bad, expected in [
        (0, "positive"),
        (-5, "positive"),
        (float("nan"), "positive"),
        (float("inf"), "positive"),
        (MAX_TTL * 2, "at most"),
        ("600", "number of seconds or None"),
        (True, "number of seconds or None"),
    ]:
        with pytest.raises(InvalidRule, match=expected) as caught:
            check_ttl(bad)
        assert "ttl=None" in str(caught.value) or "None" in str(caught.value)


def test_pps() -> None:
    assert check_pps(100) == 100.0
    assert check_pps(0.5) == 0.5
    assert check_pps(1e9) == 1e9
    for bad in (0, -1, 1e9 + 1, float("nan"), float("inf")):
        with pytest.raises(InvalidRule, match="pps must be a finite number above 0"):
            check_pps(bad)
    for bad_type in ("100", None, False):
        with pytest.raises(InvalidRule, match="pps must be a number"):
            check_pps(bad_type)


def test_burst() -> None:
    assert check_burst(1) == 1
    assert check_burst(MAX_BURST) == MAX_BURST
    for bad in (0, -3, MAX_BURST + 1):
        with pytest.raises(InvalidRule, match=r"burst must be an integer 1\.\.1000000"):
            check_burst(bad)
    for bad_type in (2.0, "2", True, None):
        with pytest.raises(InvalidRule, match="burst must be an integer"):
            check_burst(bad_type)


def test_ports() -> None:
    assert check_ports(None) is None
    assert check_ports([443, 80, 80]) == (80, 443)
    assert check_ports((1, 65535)) == (1, 65535)
    assert check_ports(range(1, MAX_PORTS + 1)) == tuple(range(1, MAX_PORTS + 1))
    assert check_ports(22) == (22,)
    with pytest.raises(InvalidRule, match="ports is empty"):
        check_ports([])
    with pytest.raises(InvalidRule, match="at most 1024 ports"):
        check_ports(range(1, MAX_PORTS + 2))
    for bad in ([0], [65536], [-1]):
        with pytest.raises(InvalidRule, match=r"1\.\.65535"):
            check_ports(bad)
    for bad_type in ("80,443", [80.0], [True], object()):
        with pytest.raises(InvalidRule, match="ports must be"):
            check_ports(bad_type)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("", None),
        ("   \t", None),
        ("# a comment", None),
        ("; Spamhaus DROP List", None),
        ("192.0.2.1", "192.0.2.1/32"),
        ("  192.0.2.0/24\t# trailing comment", "192.0.2.0/24"),
        ("198.51.100.0/24 ; SBL123", "198.51.100.0/24"),
        ("2001:db8::/32#x", "2001:db8::/32"),
        ("::ffff:192.0.2.1\n", "192.0.2.1/32"),
    ],
)
def test_parse_list_line(line: str, expected: str | None) -> None:
    result = parse_list_line(line)
    assert result == (ipaddress.ip_network(expected) if expected else None)


def test_list_lines_are_strict_about_host_bits() -> None:
    with pytest.raises(InvalidRule, match=r"did you mean 10\.0\.0\.0/8"):
        parse_list_line("10.0.0.1/8 # oops")


def test_iter_list_numbers_the_bad_line() -> None:
    lines = ["# header", "192.0.2.1", "", "not-an-address"]
    with pytest.raises(InvalidRule, match=r"^drop\.txt:4: entry 'not-an-address'"):
        list(iter_list(lines, source="drop.txt"))
    text = "192.0.2.1\n# c\n2001:db8::/32\n"
    assert list(iter_list(text)) == [
        ipaddress.ip_network("192.0.2.1/32"),
        ipaddress.ip_network("2001:db8::/32"),
    ]
