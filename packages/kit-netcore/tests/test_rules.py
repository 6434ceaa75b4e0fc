"""The rule manager over the userspace engine: lists, CIDR expansion, expiry, rate limits,
bulk lists, counters. The same code drives the kernel maps (test_shield.py,
test_differential.py)."""

from __future__ import annotations

import ipaddress
import struct
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_netcore import InvalidRule, RateRule, ShieldFull, UserspaceShield


def test_exact_addresses_block_and_unblock() -> None:
    shield = UserspaceShield()
    shield.block("203.0.113.7")
    shield.block("2001:db8::7")
    assert shield.check("203.0.113.7").reason == "block"
    assert shield.check("2001:db8::7").reason == "block"
    assert shield.check("203.0.113.8").allowed
    assert shield.check("::ffff:203.0.113.7").reason == "block"  # IPv4-mapped is IPv4
    assert shield.unblock("203.0.113.7") is True
    assert shield.unblock("203.0.113.7") is False
    assert shield.check("203.0.113.7").allowed


@pytest.mark.parametrize("prefixlen", [0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31])
def test_every_band_of_ipv4_ranges(prefixlen: int) -> None:
    network = ipaddress.IPv4Network(("172.16.0.0", 12)).supernet(new_prefix=min(prefixlen, 12))
    if prefixlen > 12:
        network = next(ipaddress.IPv4Network("172.16.0.0/12").subnets(new_prefix=prefixlen))
    shield = UserspaceShield()
    shield.block(network)
    first, last = network.network_address, network.broadcast_address
    assert shield.check(str(first)).reason == "block"
    assert shield.check(str(last)).reason == "block"
    if int(first) > 0:
        assert shield.check(str(first - 1)).allowed
    if int(last) < 2**32 - 1:
        assert shield.check(str(last + 1)).allowed
    assert [str(r.network) for r in shield.rules()] == [str(network)]


@pytest.mark.parametrize("prefixlen", [0, 8, 32, 47, 48, 56, 63, 64, 121, 127])
def test_ipv6_ranges(prefixlen: int) -> None:
    network = ipaddress.IPv6Network(("2001:db8::", 32)).supernet(new_prefix=min(prefixlen, 32))
    if prefixlen > 32:
        network = next(ipaddress.IPv6Network("2001:db8::/32").subnets(new_prefix=prefixlen))
    shield = UserspaceShield()
    shield.block(network)
    assert shield.check(str(network.network_address)).reason == "block"
    assert shield.check(str(network.broadcast_address)).reason == "block"
    if prefixlen:
        assert shield.check(str(network.broadcast_address + 1)).allowed


def test_overlapping_ranges_in_one_band_survive_each_other() -> None:
    shield = UserspaceShield()
    shield.block("10.0.0.0/9")
    shield.block("10.0.0.0/12")  # same /16 stride: shares keys with the /9
    assert shield.unblock("10.0.0.0/12")
    assert shield.check("10.3.0.1").reason == "block"  # still covered by the /9
    shield.block("10.0.0.0/12")
    assert shield.unblock("10.0.0.0/9")
    assert shield.check("10.3.0.1").reason == "block"  # the /12 is still there
    assert shield.check("10.100.0.1").allowed  # the rest of the /9 is not
    assert shield.unblock("10.0.0.0/12")
    assert shield.check("10.3.0.1").allowed


def test_hits_are_counted_per_rule() -> None:
    shield = UserspaceShield()
    shield.block("10.0.0.0/9")
    shield.block("10.0.0.0/12")
    shield.block("192.0.2.1")
    for address in ["10.1.0.1", "10.2.0.1", "10.64.0.1", "192.0.2.1"]:
        shield.check(address)
    hits = {str(r.network): r.hits for r in shield.rules()}
    assert hits == {"10.0.0.0/9": 1, "10.0.0.0/12": 2, "192.0.2.1/32": 1}


def test_allow_list_wins_over_block_list() -> None:
    shield = UserspaceShield()
    shield.block("198.51.100.0/24")
    shield.block("198.51.100.10")
    shield.allow("198.51.100.8/29")
    assert shield.check("198.51.100.10") == shield.check("198.51.100.9")
    assert shield.check("198.51.100.10").reason == "allow"
    assert shield.check("198.51.100.20").reason == "block"
    assert shield.disallow("198.51.100.8/29")
    assert shield.check("198.51.100.10").reason == "block"


def test_allow_list_beats_rate_limits() -> None:
    shield = UserspaceShield()
    shield.rate_limit(pps=0.001, burst=1)
    shield.allow("192.0.2.1")
    assert all(shield.check("192.0.2.1").allowed for _ in range(5))
    assert shield.check("192.0.2.2").allowed
    assert shield.check("192.0.2.2").reason == "rate"


def test_expired_rules_stop_matching_and_gc_removes_them() -> None:
    shield = UserspaceShield()
    shield.block("192.0.2.1", ttl=0.05)
    shield.block("198.51.100.0/24", ttl=0.05)
    shield.block("10.0.0.0/9")  # forever, in the same band as the next one
    shield.block("10.0.0.0/12", ttl=0.05)
    rule = shield.block("203.0.113.0/24", ttl=3600)
    short = next(r for r in shield.rules() if str(r.network) == "198.51.100.0/24")
    # expiry is kept per rule and reported as Unix time: the longer ttl ends later
    assert rule.expires_at is not None and short.expires_at is not None
    assert short.expires_at < rule.expires_at
    assert not shield.check("192.0.2.1").allowed
    time.sleep(0.1)
    assert shield.check("192.0.2.1").allowed
    assert shield.check("198.51.100.1").allowed
    assert shield.check("10.1.0.1").reason == "block"  # the /9 still covers it
    assert shield.check("203.0.113.1").reason == "block"
    assert len(shield.rules()) == 5
    assert shield.gc() == 3
    assert sorted(str(r.network) for r in shield.rules()) == ["10.0.0.0/9", "203.0.113.0/24"]
    assert shield.check("10.1.0.1").reason == "block"


def test_reblocking_renews_the_ttl() -> None:
    shield = UserspaceShield()
    shield.block("192.0.2.1", ttl=0.05)
    shield.block("192.0.2.1", ttl=60)
    time.sleep(0.1)
    assert shield.check("192.0.2.1").reason == "block"


def test_ban_is_a_plain_callable() -> None:
    shield = UserspaceShield()
    ban = shield.ban
    assert ban("203.0.113.9", 30) is None
    assert shield.check("203.0.113.9").reason == "block"
    ban("2001:db8:1:2::/64", 30)  # the network a limiter keys an IPv6 client by
    assert shield.check("2001:db8:1:2::7").reason == "block"
    with pytest.raises(InvalidRule, match="not an IP address"):
        ban("ip:203.0.113.9", 30)
    with pytest.raises(InvalidRule, match="ttl"):
        ban("203.0.113.9", -1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.block("10.0.0.1/8"), "did you mean 10.0.0.0/8"),
        (lambda s: s.block("not an address"), "not an IP address"),
        (lambda s: s.block(42), "must be an IP address"),
        (lambda s: s.allow("192.0.2.1", ttl=float("nan")), "ttl"),
        (lambda s: s.rate_limit(pps=0, burst=1), "pps"),
        (lambda s: s.rate_limit(pps=1, burst=0), "burst"),
        (lambda s: s.rate_limit(pps=1, burst=1, ports=[70000]), "ports"),
        (lambda s: s.check("192.0.2.1", port=-1), "port"),
        (lambda s: s.check("192.0.2.1", proto="sctp"), "proto"),
        (lambda s: s.check("nonsense"), "not an IP address"),
        (lambda s: s.top_sources(0), "positive integer"),
        (lambda s: s.load_list(["192.0.2.1"], action="drop"), "'block' or 'allow'"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(call: object, message: str) -> None:
    shield = UserspaceShield()
    with pytest.raises(InvalidRule, match=message):
        call(shield)  # type: ignore[operator]
    assert shield.rules() == []


def test_rate_limit_cuts_a_source_to_its_burst() -> None:
    shield = UserspaceShield()
    rule = shield.rate_limit(pps=0.001, burst=3, ports=[443])
    assert isinstance(rule, RateRule) and rule.ports == (443,)
    verdicts = [shield.check("192.0.2.1", port=443).allowed for _ in range(6)]
    assert verdicts == [True, True, True, False, False, False]
    assert shield.check("192.0.2.2", port=443).allowed  # per source
    assert all(shield.check("192.0.2.1", port=80).allowed for _ in range(5))  # other port
    decision = shield.check("192.0.2.1", port=443)
    assert decision.reason == "rate"
    assert decision.retry_after is not None and 900 < decision.retry_after <= 1000
    assert shield.stats().rate_drops == {rule.id: 4}


def test_rate_limit_refills_at_its_rate() -> None:
    shield = UserspaceShield()
    shield.rate_limit(pps=20, burst=1)
    assert shield.check("192.0.2.1").allowed
    assert not shield.check("192.0.2.1").allowed
    time.sleep(0.06)  # one interval is 50 ms
    assert shield.check("192.0.2.1").allowed


def test_port_rules_take_precedence_over_the_all_traffic_rule() -> None:
    shield = UserspaceShield()
    shield.rate_limit(pps=0.001, burst=1)
    port_rule = shield.rate_limit(pps=0.001, burst=3, ports=[53])
    assert [shield.check("192.0.2.1", port=53, proto="udp").allowed for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert [shield.check("192.0.2.1", port=80).allowed for _ in range(2)] == [True, False]
    shield.remove_rate_limit(port_rule)
    assert not shield.check("192.0.2.1", port=53, proto="udp").allowed  # now the all-rule
    shield.clear_rate_limits()
    assert all(shield.check("192.0.2.1", port=p).allowed for p in (53, 80, 443))


def test_rate_rule_slots_run_out_with_a_clear_error() -> None:
    shield = UserspaceShield()
    for port in range(1, 16):
        shield.rate_limit(pps=10, burst=10, ports=[port])
    with pytest.raises(ShieldFull, match="rate-limit rules are in use"):
        shield.rate_limit(pps=10, burst=10, ports=[99])


def test_concurrent_checks_allow_exactly_the_burst() -> None:
    shield = UserspaceShield()
    shield.rate_limit(pps=0.001, burst=100)
    allowed: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = sum(shield.check("192.0.2.1").allowed for _ in range(500))
        with lock:
            allowed.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 100
    assert shield.stats().packets["rate"] == 8 * 500 - 100


def test_load_list_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "drop.txt"
    path.write_text(
        "; Spamhaus-style header\n"
        "192.0.2.1\n"
        "  198.51.100.0/24 ; SBL123\n"
        "# a comment\n"
        "\n"
        "2001:db8::/32\n"
        "2001:db8:ffff::1\n"
    )
    shield = UserspaceShield()
    assert shield.load_list(path, ttl=600) == 4
    assert {str(r.network) for r in shield.rules()} == {
        "192.0.2.1/32",
        "198.51.100.0/24",
        "2001:db8::/32",
        "2001:db8:ffff::1/128",
    }
    assert all(r.expires_at is not None for r in shield.rules())
    assert shield.load_list(["10.0.0.0/8"], action="allow") == 1
    assert shield.check("10.1.1.1").reason == "allow"


def test_an_invalid_line_loads_nothing(tmp_path: Path) -> None:
    path = tmp_path / "drop.txt"
    path.write_text("192.0.2.1\n198.51.100.0/24\n10.0.0.1/8\n")
    shield = UserspaceShield()
    with pytest.raises(InvalidRule, match=r"drop.txt:3: .*did you mean 10.0.0.0/8"):
        shield.load_list(path)
    assert shield.rules() == []
    with pytest.raises(InvalidRule, match="cannot read the list"):
        shield.load_list(tmp_path / "missing.txt")


def test_counters_and_top_sources() -> None:
    shield = UserspaceShield(track_sources=True)
    shield.block("203.0.113.0/24")
    for _ in range(3):
        shield.check("192.0.2.1")
    shield.check("203.0.113.5")
    shield.check("2001:db8::1")
    stats = shield.stats()
    assert stats.packets["pass"] == 4 and stats.packets["block"] == 1
    assert stats.total == 5 and stats.dropped == 1
    top = shield.top_sources(2)
    assert [(str(s.address), s.packets, s.dropped) for s in top] == [
        ("192.0.2.1", 3, 0),
        ("203.0.113.5", 1, 1),
    ]
    assert UserspaceShield().top_sources() == []  # not tracked


def _udp4(src: str) -> bytes:
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, ipaddress.IPv4Address(src).packed, bytes(4)
    )
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + struct.pack("!HHHH", 1, 53, 8, 0)


def test_frames_malformed_and_control() -> None:
    passing = UserspaceShield()
    dropping = UserspaceShield(drop_malformed=True)
    truncated = _udp4("192.0.2.1")[:30]
    arp = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + bytes(28)
    assert passing.run_frame(truncated) == 2
    assert dropping.run_frame(truncated) == 1
    dropping.block("0.0.0.0/0")
    assert dropping.run_frame(arp) == 2  # ARP is never dropped
    assert dropping.run_frame(_udp4("192.0.2.1")) == 1
    stats = dropping.stats()
    assert (stats.packets["malformed"], stats.packets["control"], stats.packets["block"]) == (
        1,
        1,
        1,
    )
    assert stats.bytes["block"] == 42 and stats.dropped == 2


networks4 = st.builds(
    lambda addr, length: ipaddress.IPv4Network((addr, length), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)


@settings(max_examples=60, deadline=None)
@given(
    rules=st.lists(networks4, max_size=12),
    removed=st.lists(st.integers(0, 11), max_size=6),
    probes=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=30),
)
def test_expansion_matches_ipaddress(
    rules: list[ipaddress.IPv4Network], removed: list[int], probes: list[int]
) -> None:
    """Any mix of added and removed IPv4 ranges blocks exactly what ``ipaddress`` says."""
    shield = UserspaceShield()
    live = set()
    for network in rules:
        shield.block(network)
        live.add(network)
    for index in removed:
        if index < len(rules) and rules[index] in live:
            assert shield.unblock(rules[index])
            live.discard(rules[index])
    extra = [int(n.network_address) for n in live] + [int(n.broadcast_address) for n in live]
    for value in probes + extra:
        address = ipaddress.IPv4Address(value)
        expected = any(address in n for n in live)
        assert (not shield.check(str(address)).allowed) == expected, (address, sorted(live))


def test_lru_tables_keep_working_past_their_size() -> None:
    """Tracking more sources than nc_sources holds evicts old ones, never fails."""
    shield = UserspaceShield(track_sources=True)
    shield.rate_limit(pps=1000, burst=10)
    for i in range(66_000):
        assert shield.check(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}").allowed
    assert sum(1 for _ in shield._maps.keys(14)) == 65_536  # nc_sources is full, not over
    assert len(shield.top_sources(3)) == 3
