"""The kernel program and the userspace engine decide every corpus frame the same way.

The same rules go into a kernel :class:`~kit_netcore.Shield` (loaded, never attached: frames
go through ``BPF_PROG_TEST_RUN``) and into a :class:`~kit_netcore.UserspaceShield`. Every
corpus frame then runs through both, interleaved, in the same order; verdicts, counters per
reason, rate-rule drops, per-rule hits and (when tracked) per-source counts must agree.

Needs root (CAP_BPF + CAP_NET_ADMIN): skipped without it, except in CI where it fails.
"""

from __future__ import annotations

import ipaddress
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _corpus import (
    V4_ALLOW_NET,
    V4_ALLOW_SINGLES,
    V4_BLOCK_NETS,
    V4_BLOCK_SINGLES,
    V4_EXPIRED,
    V6_ALLOW_SINGLES,
    V6_BLOCK_NETS,
    V6_BLOCK_SINGLES,
    V6_EXPIRED,
    Frame,
    corpus,
)

from kit_netcore import Shield, UserspaceShield
from kit_netcore._rules import RuleSet

REASONS = ("pass", "allow", "block", "rate", "malformed", "control")
DROP, PASS = 1, 2


def _require_root() -> None:
    if os.geteuid() == 0:
        return
    reason = "BPF_PROG_TEST_RUN needs root (CAP_BPF + CAP_NET_ADMIN)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run this test as root")
    pytest.skip(reason)


@pytest.fixture(params=[False, True], ids=["plain", "drop-malformed+track-sources"])
def options(request: pytest.FixtureRequest) -> bool:
    flag: bool = request.param
    return flag


@pytest.fixture
def kernel(options: bool) -> Iterator[Shield]:
    _require_root()
    pin_root = Path("/sys/fs/bpf") / f"kit_netcore_diff_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    shield = Shield.load("lo", pin_root=pin_root, drop_malformed=options, track_sources=options)
    try:
        yield shield
    finally:
        shield.remove()
    assert not pin_root.exists()


def _load_rules(shield: RuleSet) -> None:
    """Allow a /24 and singles; block singles and CIDRs of many lengths; one rule that
    expires at once; a port rate limit (burst 3) and an all-traffic one (burst 5)."""
    shield.allow(V4_ALLOW_NET)
    for address in (*V4_ALLOW_SINGLES, *V6_ALLOW_SINGLES):
        shield.allow(address)
    for address in (*V4_BLOCK_SINGLES, *V6_BLOCK_SINGLES):
        shield.block(address)
    for network in (*V4_BLOCK_NETS, *V6_BLOCK_NETS):
        shield.block(network)
    shield.block(V4_EXPIRED, ttl=0.001)
    shield.block(ipaddress.IPv6Network(f"{V6_EXPIRED}/120", strict=False), ttl=0.001)
    shield.rate_limit(pps=0.001, burst=3, ports=[53, 443])
    shield.rate_limit(pps=0.001, burst=5)


def _describe(frame: Frame) -> str:
    e = frame.expected
    parse = (
        "malformed"
        if e.malformed
        else f"family={e.family} proto={e.proto} control={int(e.control)} "
        f"ports={int(e.has_ports)}:{e.sport}->{e.dport} fragment={int(e.fragment)} "
        f"src={e.src.hex()}"
    )
    return f"[{frame.kind}] {parse}\n    frame {frame.data.hex()}"


def test_kernel_and_engine_agree_on_every_frame(kernel: Shield, options: bool) -> None:
    engine = UserspaceShield(drop_malformed=options, track_sources=options)
    _load_rules(kernel)
    _load_rules(engine)
    time.sleep(0.1)  # the ttl=0.001 rules are expired on both sides (coarse clock too)

    frames = [frame for frame in corpus() if len(frame.data) >= 14]  # the kernel's minimum
    differences = []
    for frame in frames:
        in_kernel, _ = kernel.test_run(frame.data)
        in_engine = engine.run_frame(frame.data)
        assert in_kernel in (DROP, PASS)
        if in_kernel != in_engine:
            differences.append(f"kernel {in_kernel} engine {in_engine} {_describe(frame)}")
    if differences:
        shown = "\n".join(differences[:25])
        pytest.fail(f"{len(differences)} of {len(frames)} verdicts differ:\n{shown}", pytrace=False)

    kernel_stats, engine_stats = kernel.stats(), engine.stats()
    assert kernel_stats.packets == engine_stats.packets
    assert kernel_stats.bytes == engine_stats.bytes
    assert kernel_stats.rate_drops == engine_stats.rate_drops
    assert kernel_stats.malformed_dropped == engine_stats.malformed_dropped
    assert kernel_stats.total == len(frames)
    for reason in REASONS:  # the corpus and the rules reach every outcome
        assert kernel_stats.packets[reason] > 0, reason
    assert all(drops > 0 for drops in kernel_stats.rate_drops.values())

    def hits(shield: RuleSet) -> list[tuple[str, str, bool, int]]:
        return [(r.action, str(r.network), r.expires_at is None, r.hits) for r in shield.rules()]

    assert hits(kernel) == hits(engine)
    matched = {(action, network) for action, network, _, count in hits(kernel) if count}
    assert ("allow", str(V4_ALLOW_NET)) in matched
    assert ("block", str(V4_EXPIRED) + "/32") not in matched  # expired: never matched
    assert len(matched) > 10

    if options:  # per-source counts, tracked on both sides
        everyone = 1_000_000
        assert kernel.top_sources(everyone) == engine.top_sources(everyone)
        assert kernel.top_sources(everyone)
