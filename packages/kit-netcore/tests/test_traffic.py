"""The shield on real traffic: XDP in native mode on a veth, frames from another namespace.

Each test gets a fresh veth pair (``_netns.VethPair``: the receiver end in the root
namespace, where the shield is attached, the sender end in ``kitnc-<pid>-<hex>``), a fresh
pin root under /sys/fs/bpf and a compiled ``benchmarks/trafficgen.c``. What arrives is
counted twice: by UDP sockets bound on the receiver, per source address, and by the
shield's own counters (``Shield.stats()``), which must match what was sent exactly.

Needs root, iproute2 and a C compiler. Outside CI the module is skipped with the reason
when they are missing; with ``CI`` set that is a failure, never a skip.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from _netns import (
    TrafficGen,
    UdpSink,
    VethPair,
    build_trafficgen,
    in_ci,
    leftovers,
    pin_root,
    sweep_stale,
    traffic_unavailable,
    xdp_attached,
    xdp_prog_id,
)

from kit_netcore import Shield, Stats

# 60-byte frames (64 on the wire with the FCS): trafficgen's default payloads
FRAME4 = 14 + 20 + 8 + 18
FRAME6 = 14 + 40 + 8 + 8


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI is set, so this is a failure and not a skip: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module", autouse=True)
def _traffic_ready() -> None:
    reason = traffic_unavailable()
    if reason is not None:
        _unavailable(reason)
    sweep_stale()


@pytest.fixture(scope="module")
def trafficgen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_trafficgen(tmp_path_factory.mktemp("trafficgen"))


@pytest.fixture
def pair() -> Iterator[VethPair]:
    with VethPair.create() as created:
        yield created
    assert leftovers(created) == []


@pytest.fixture
def pins() -> Iterator[Path]:
    with pin_root() as root:
        yield root
    assert not root.exists()


@pytest.fixture
def gen(trafficgen: Path, pair: VethPair) -> TrafficGen:
    return TrafficGen(trafficgen, pair)


def _load_attached(pair: VethPair, pins: Path, *, track_sources: bool = False) -> Shield:
    shield = Shield.load(pair.rx, pin_root=pins, track_sources=track_sources)
    try:
        shield.attach(mode="native")
    except Exception as exc:
        shield.remove()
        _unavailable(f"native XDP on a veth did not attach: {exc!r}")
    assert shield.attached_mode == "native"
    return shield


@pytest.fixture
def shield(pair: VethPair, pins: Path) -> Iterator[Shield]:
    loaded = _load_attached(pair, pins)
    try:
        yield loaded
    finally:
        loaded.remove()


@pytest.fixture
def sink4(pair: VethPair) -> Iterator[UdpSink]:
    with UdpSink(pair.rx_ip4) as sink:
        yield sink


@pytest.fixture
def sink6(pair: VethPair) -> Iterator[UdpSink]:
    with UdpSink(pair.rx_ip6) as sink:
        yield sink


def _delta(before: Stats, after: Stats) -> dict[str, int]:
    return {reason: after.packets[reason] - before.packets[reason] for reason in after.packets}


def _bytes_delta(before: Stats, after: Stats) -> dict[str, int]:
    return {reason: after.bytes[reason] - before.bytes[reason] for reason in after.bytes}


# --------------------------------------------------------------------------- block / allow


def test_a_blocked_source_is_dropped_and_the_others_pass(
    shield: Shield, gen: TrafficGen, sink4: UdpSink
) -> None:
    shield.block("203.0.113.7")
    before = shield.stats()
    sent = gen.send(["203.0.113.7", "203.0.113.8"], count=1000, dport=sink4.port)
    got = sink4.settle(gen)
    after = shield.stats()

    assert sent["sent"] == 1000
    assert got["203.0.113.7"] == 0
    assert got["203.0.113.8"] == 500
    delta = _delta(before, after)
    assert delta["block"] == 500
    assert delta["pass"] >= 500  # plus the settle marker and any kernel chatter
    assert _bytes_delta(before, after)["block"] == 500 * FRAME4
    assert [r.hits for r in shield.rules() if str(r.network) == "203.0.113.7/32"] == [500]


def test_a_blocked_ipv6_source_is_dropped(shield: Shield, gen: TrafficGen, sink6: UdpSink) -> None:
    shield.block("2001:db8::7")
    before = shield.stats()
    gen.send(["2001:db8::7", "2001:db8::8"], count=600, dport=sink6.port)
    got = sink6.settle(gen)
    delta = _delta(before, shield.stats())

    assert got["2001:db8::7"] == 0
    assert got["2001:db8::8"] == 300
    assert delta["block"] == 300
    assert _bytes_delta(before, shield.stats())["block"] == 300 * FRAME6


def test_a_cidr_block_drops_the_whole_range(
    shield: Shield, gen: TrafficGen, sink4: UdpSink, sink6: UdpSink
) -> None:
    shield.block("198.51.100.0/24")
    shield.block("2001:db8:1::/64")
    before = shield.stats()
    # trafficgen walks a CIDR address by address: 512 frames = every /24 address twice
    gen.send(["198.51.100.0/24"], count=512, dport=sink4.port)
    gen.send(["203.0.113.1"], count=100, dport=sink4.port)
    gen.send(["2001:db8:1::/120", "2001:db8:2::1"], count=512, dport=sink6.port)
    got4, got6 = sink4.settle(gen), sink6.settle(gen)

    assert not [a for a in got4 if a.startswith("198.51.100.")]
    assert got4["203.0.113.1"] == 100
    assert not [a for a in got6 if a.startswith("2001:db8:1:")]
    assert got6["2001:db8:2::1"] == 256
    assert _delta(before, shield.stats())["block"] == 512 + 256


def test_the_allow_list_beats_the_block_list(
    shield: Shield, gen: TrafficGen, sink4: UdpSink
) -> None:
    shield.block("198.51.100.0/24")
    shield.allow("198.51.100.7")
    shield.allow("198.51.100.128/28")
    before = shield.stats()
    gen.send(["198.51.100.0/24"], count=512, dport=sink4.port)
    got = sink4.settle(gen)
    delta = _delta(before, shield.stats())

    allowed = {"198.51.100.7"} | {f"198.51.100.{i}" for i in range(128, 144)}
    assert set(got) == allowed
    assert all(got[a] == 2 for a in allowed)
    assert delta["allow"] == 2 * len(allowed)
    assert delta["block"] == 512 - 2 * len(allowed)


def test_unblock_lets_the_source_back_in(shield: Shield, gen: TrafficGen, sink4: UdpSink) -> None:
    shield.block("203.0.113.0/24")
    gen.send(["203.0.113.5"], count=50, dport=sink4.port)
    assert sink4.settle(gen)["203.0.113.5"] == 0
    assert shield.unblock("203.0.113.0/24") is True
    gen.send(["203.0.113.5"], count=50, dport=sink4.port)
    assert sink4.settle(gen)["203.0.113.5"] == 50


# --------------------------------------------------------------------------- rate limits


def test_a_source_over_its_rate_is_cut_to_its_burst(
    shield: Shield, gen: TrafficGen, sink4: UdpSink, pair: VethPair
) -> None:
    # pps so low that no token comes back during the test: exactly `burst` get through
    rule = shield.rate_limit(pps=0.001, burst=20, ports=[sink4.port])
    before = shield.stats()
    gen.send(["203.0.113.9", "203.0.113.10"], count=400, dport=sink4.port)
    got = sink4.settle(gen)
    after = shield.stats()

    assert got["203.0.113.9"] == 20
    assert got["203.0.113.10"] == 20  # every source has its own bucket
    assert _delta(before, after)["rate"] == 400 - 40
    assert after.rate_drops[rule.id] - before.rate_drops.get(rule.id, 0) == 360

    # another port is not limited
    with UdpSink(pair.rx_ip4) as other:
        gen.send(["203.0.113.9"], count=100, dport=other.port)
        assert other.settle(gen)["203.0.113.9"] == 100


def test_a_rate_limit_on_every_port_and_the_allow_list(
    shield: Shield, gen: TrafficGen, sink4: UdpSink, pair: VethPair
) -> None:
    shield.allow(pair.tx_ip4)  # the settle marker, and an allowed client, are never limited
    shield.rate_limit(pps=0.001, burst=5, ports=None)
    gen.send(["198.51.100.50", pair.tx_ip4], count=200, dport=sink4.port)
    got = sink4.settle(gen)
    assert got["198.51.100.50"] == 5
    assert got[pair.tx_ip4] == 100


def test_counters_match_what_was_sent(
    shield: Shield, gen: TrafficGen, sink4: UdpSink, sink6: UdpSink
) -> None:
    shield.block("203.0.113.0/25")
    shield.block("2001:db8::/48")
    shield.allow("198.51.100.1")
    shield.allow("2001:db8:ffff::1")
    shield.rate_limit(pps=0.001, burst=3, ports=[sink4.port, sink6.port])
    before = shield.stats()
    gen.send(["203.0.113.0/25"], count=250, dport=sink4.port)  # block
    gen.send(["198.51.100.1"], count=70, dport=sink4.port)  # allow (not rate limited)
    gen.send(["198.51.100.2"], count=40, dport=sink4.port)  # rate: 3 pass, 37 dropped
    gen.send(["2001:db8::5"], count=30, dport=sink6.port)  # block
    gen.send(["2001:db8:ffff::1"], count=20, dport=sink6.port)  # allow
    gen.send(["2001:db8:1234::1"], count=10, dport=sink6.port)  # rate: 3 pass, 7 dropped
    got4, got6 = sink4.settle(gen), sink6.settle(gen)
    delta = _delta(before, shield.stats())

    assert delta["block"] == 250 + 30
    assert delta["allow"] == 70 + 20
    assert delta["rate"] == 37 + 7
    assert delta["pass"] >= 3 + 3
    assert delta["malformed"] == 0
    assert sum(got4.values()) == 70 + 3 and sum(got6.values()) == 20 + 3


# --------------------------------------------------------------------------- other processes


def _in_another_process(pair: VethPair, pins: Path, body: str) -> str:
    code = textwrap.dedent(
        f"""
        import sys
        from kit_netcore import Shield
        with Shield.open({pair.rx!r}, pin_root={str(pins)!r}) as shield:
        """
    ) + textwrap.indent(textwrap.dedent(body), "    ")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_rules_from_a_second_process_apply_without_reload(
    shield: Shield, pair: VethPair, pins: Path, gen: TrafficGen, sink4: UdpSink
) -> None:
    gen.send(["203.0.113.44"], count=30, dport=sink4.port)
    assert sink4.settle(gen)["203.0.113.44"] == 30
    passed_before = shield.stats().packets["pass"]
    program = xdp_prog_id(pair.rx)
    assert program is not None

    out = _in_another_process(
        pair,
        pins,
        """
        shield.block("203.0.113.0/24")
        print(shield.attached_mode)
        """,
    )
    assert out.strip() == "native"
    gen.send(["203.0.113.44"], count=30, dport=sink4.port)
    assert sink4.settle(gen)["203.0.113.44"] == 0
    stats = shield.stats()
    assert stats.packets["pass"] >= passed_before  # same program, counters not reset
    assert xdp_prog_id(pair.rx) == program  # no reload, no replace
    assert shield.attached_mode == "native"
    assert any(str(r.network) == "203.0.113.0/24" for r in shield.rules())

    _in_another_process(pair, pins, 'assert shield.unblock("203.0.113.0/24")')
    gen.send(["203.0.113.44"], count=30, dport=sink4.port)
    assert sink4.settle(gen)["203.0.113.44"] == 30


def test_a_second_load_reuses_the_pinned_rules(
    shield: Shield, pair: VethPair, pins: Path, gen: TrafficGen, sink4: UdpSink
) -> None:
    shield.block("203.0.113.77")
    again = Shield.load(pair.rx, pin_root=pins)
    try:
        again.attach(mode="native")  # an atomic replace of the running program
        assert again.attached_mode == "native"
        before = again.stats()
        gen.send(["203.0.113.77", "203.0.113.78"], count=100, dport=sink4.port)
        got = sink4.settle(gen)
        assert got["203.0.113.77"] == 0 and got["203.0.113.78"] == 50
        assert _delta(before, again.stats())["block"] == 50
    finally:
        again.remove()


# --------------------------------------------------------------------------- lifecycle


def test_detach_restores_traffic_and_attach_brings_the_rules_back(
    shield: Shield, pair: VethPair, gen: TrafficGen, sink4: UdpSink
) -> None:
    shield.block("203.0.113.7")
    gen.send(["203.0.113.7"], count=40, dport=sink4.port)
    assert sink4.settle(gen)["203.0.113.7"] == 0

    shield.detach()
    assert shield.attached_mode is None
    assert not xdp_attached(pair.rx)
    before = shield.stats()
    gen.send(["203.0.113.7"], count=40, dport=sink4.port)
    assert sink4.settle(gen)["203.0.113.7"] == 40
    assert shield.stats().total == before.total  # nothing ran while detached

    shield.attach(mode="native")
    gen.send(["203.0.113.7"], count=40, dport=sink4.port)
    assert sink4.settle(gen)["203.0.113.7"] == 0


def test_remove_leaves_no_pin_and_closing_the_pair_no_namespace(
    trafficgen: Path, pins: Path
) -> None:
    pair = VethPair.create()
    try:
        shield = _load_attached(pair, pins)
        shield.block("203.0.113.0/24")
        pin_dir = pins / pair.rx
        assert (pin_dir / "prog").exists()
        shield.remove()
        assert not pin_dir.exists()
        assert not pins.exists() or list(pins.iterdir()) == []
        assert not xdp_attached(pair.rx)
        gen = TrafficGen(trafficgen, pair)
        with UdpSink(pair.rx_ip4) as sink:
            gen.send(["203.0.113.1"], count=25, dport=sink.port)
            assert sink.settle(gen)["203.0.113.1"] == 25
    finally:
        pair.close()
    assert leftovers(pair) == []
    assert not Path("/run/netns", pair.netns).exists()


# --------------------------------------------------------------------------- more shapes


def test_vlan_tagged_frames_are_filtered(trafficgen: Path, pins: Path) -> None:
    with VethPair.create(vlan=100) as pair:
        shield = _load_attached(pair, pins)
        try:
            shield.block("203.0.113.66")
            gen = TrafficGen(trafficgen, pair)
            before = shield.stats()
            gen.send(["203.0.113.66"], count=80, dport=9, vlan=100)
            gen.send(["203.0.113.67"], count=20, dport=9, vlan=100)
            with UdpSink(pair.rx_ip4) as marker:  # in order after the tagged frames
                gen.send([pair.tx_ip4], count=1, dport=marker.port)
                assert marker.wait_quiet(quiet=1.0)[pair.tx_ip4] == 1
            delta = _delta(before, shield.stats())
            assert delta["block"] == 80
            assert delta["pass"] >= 20 + 1
        finally:
            shield.remove()
    assert leftovers(pair) == []


def test_top_sources_counts_real_traffic(pair: VethPair, pins: Path, gen: TrafficGen) -> None:
    shield = _load_attached(pair, pins, track_sources=True)
    try:
        shield.block("203.0.113.3")
        with UdpSink(pair.rx_ip4) as sink:
            gen.send(["203.0.113.1"], count=300, dport=sink.port)
            gen.send(["203.0.113.2"], count=200, dport=sink.port)
            gen.send(["203.0.113.3"], count=100, dport=sink.port)
            sink.settle(gen)
        top = {str(s.address): s for s in shield.top_sources(10)}
        assert top["203.0.113.1"].packets == 300 and top["203.0.113.1"].dropped == 0
        assert top["203.0.113.2"].packets == 200
        assert top["203.0.113.3"].packets == 100 and top["203.0.113.3"].dropped == 100
        first = [str(s.address) for s in shield.top_sources(3)]
        assert first == ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
    finally:
        shield.remove()
