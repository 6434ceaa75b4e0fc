"""Bulk loading and the userspace engine.

- ``load_list`` of 100,000 addresses (one batch update per map) against one
  ``bpf_map_update_elem`` call per entry from Python, into the same pinned map (the
  peer's keys are packed before its clock starts; kit parses the text lines). Needs root.
- ``UserspaceShield.check`` per request against a pure-Python lookup with ``ipaddress``
  (a set of blocked addresses plus one set of networks per prefix length in use, the
  fastest pure-Python layout), both holding the same 100,000 addresses and 1,000 ranges.
"""

from __future__ import annotations

import ipaddress
import shutil
import struct
import time
import timeit
import uuid
from pathlib import Path
from typing import Any

from bench_prog import BLOCK_BASE, SINGLES, _lines, _ranges

from kit_netcore import Shield, UserspaceShield
from kit_netcore._native import lib


def bulk_load(quick: bool) -> dict[str, Any]:
    """Seconds for 100k entries: load_list vs one update call each (fresh maps each)."""
    singles = [str(ipaddress.IPv4Address(BLOCK_BASE + i)) for i in range(SINGLES)]
    pin_root = Path(f"/sys/fs/bpf/kitnc-bulk-{uuid.uuid4().hex[:8]}")
    rounds = 1 if quick else 3
    kit = peer = float("inf")
    try:
        for i in range(rounds):
            shield = Shield.load("lo", pin_root=pin_root / f"a{i}")
            try:
                started = time.perf_counter()
                shield.load_list(singles)
                kit = min(kit, time.perf_counter() - started)
            finally:
                shield.remove()
            shield = Shield.load("lo", pin_root=pin_root / f"b{i}")
            try:
                fd = shield._maps._fd(6)  # nc_block4
                entry = struct.pack("<QQII", 0, 0, 32, 0)
                keys = [ipaddress.IPv4Address(a).packed for a in singles]
                started = time.perf_counter()
                for key in keys:
                    if lib.nc_map_update(fd, key, entry, 0) != 0:
                        raise RuntimeError("update failed")
                peer = min(peer, time.perf_counter() - started)
            finally:
                shield.remove()
    finally:
        shutil.rmtree(pin_root, ignore_errors=True)
    return {
        "name": "load_list, 100,000 addresses (s per load)",
        "kit": "kit-netcore",
        "peer": "one bpf_map_update_elem per entry",
        "kit_us": kit * 1e6,
        "peer_us": peer * 1e6,
        "ratio": kit / peer,
        "target": "< 1 s",
        "verdict": "meets target" if kit < 1.0 else "misses target",
    }


class PurePythonList:
    """What a pure-Python block list looks like at its fastest: exact set + per-length sets."""

    def __init__(self, lines: list[str]) -> None:
        self.exact: set[ipaddress.IPv4Address] = set()
        self.by_length: dict[int, set[int]] = {}
        for line in lines:
            net = ipaddress.ip_network(line)
            if net.prefixlen == 32:
                self.exact.add(net.network_address)  # type: ignore[arg-type]
            else:
                shift = 32 - net.prefixlen
                self.by_length.setdefault(shift, set()).add(int(net.network_address) >> shift)
        self.shifts = sorted(self.by_length)

    def blocked(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        if ip in self.exact:
            return True
        value = int(ip)
        return any((value >> s) in self.by_length[s] for s in self.shifts)


def engine_check(quick: bool) -> dict[str, Any]:
    lines = _lines()
    engine = UserspaceShield()
    engine.load_list(lines)
    peer = PurePythonList(lines)
    probes = [str(ipaddress.IPv4Address(BLOCK_BASE + i * 7919 % SINGLES)) for i in range(500)]
    probes += [f"192.168.{i % 256}.{i // 256}" for i in range(500)]
    ranges = _ranges()
    probes += [str(n.network_address + 1) for n in ranges[:200]]
    for address in probes:  # both agree before being timed
        assert (not engine.check(address, port=443).allowed) == peer.blocked(address), address

    def kit_round() -> None:
        check = engine.check
        for address in probes:
            check(address, port=443)

    def peer_round() -> None:
        blocked = peer.blocked
        for address in probes:
            blocked(address)

    rounds, number = (3, 5) if quick else (15, 20)
    kit = peer_t = float("inf")
    for _ in range(rounds):
        kit = min(kit, timeit.timeit(kit_round, number=number) / (number * len(probes)))
        peer_t = min(peer_t, timeit.timeit(peer_round, number=number) / (number * len(probes)))
    return {
        "name": "userspace check per request, 100k addresses + 1k CIDRs",
        "kit": "kit-netcore",
        "peer": "pure-Python ipaddress lookup",
        "kit_us": kit * 1e6,
        "peer_us": peer_t * 1e6,
        "ratio": kit / peer_t,
        "target": "< 1.0 (faster)",
        "verdict": "meets target" if kit < peer_t else "misses target",
    }
