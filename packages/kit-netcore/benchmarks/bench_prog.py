"""Program cost with BPF_PROG_TEST_RUN: the shield's layout (exact hash + 8-bit stride
hashes) against an LPM-trie-only layout, both with 100,000 single addresses and 1,000 CIDR
ranges loaded and an all-traffic rate limit on.

The same packet runs on every repetition, so to keep caches honest each variant is
compiled with ``-DNC_BENCH_SPAN``: the program replaces the IPv4 source by a random one
(``bpf_get_prandom_u32``) from a span before deciding. The drop path draws from the
100,000 blocked addresses, the pass path from 65,536 addresses matched by nothing (each
of which gets a rate-limit bucket). The figures include that random draw (a few ns).

Needs root (BPF_PROG_TEST_RUN) and clang; run through ``benchmarks/run.py``.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import struct
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from kit_netcore import Shield
from kit_netcore._native import ffi, lib

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"
SINGLES = 100_000
RANGES = 1_000
BLOCK_BASE = int(ipaddress.IPv4Address("10.0.0.0"))
PASS_BASE = int(ipaddress.IPv4Address("192.168.0.0"))
PASS_SPAN = 65_536
LINE_RATE_NS = 67.2  # 10 GbE, 64-byte frames, one core


def _udp_frame(dport: int = 443) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, bytes(4), bytes([192, 0, 2, 1]))
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + struct.pack("!HHHH", 40000, dport, 8, 0)


def _compile(out: Path, *defines: str) -> Path:
    return _compile_file(BPF_DIR / "shield.bpf.c", out, *defines)


def _compile_file(source: Path, out: Path, *defines: str) -> Path:
    multiarch = subprocess.run(
        ["gcc", "-print-multiarch"], capture_output=True, text=True, check=False
    ).stdout.strip()
    cmd = ["clang", "-O2", "-g", "-target", "bpf", "-mcpu=v3", f"-I{BPF_DIR}"]
    if multiarch:
        cmd.append(f"-I/usr/include/{multiarch}")
    cmd += [*(f"-D{d}" for d in defines), "-c", str(source), "-o", str(out)]
    subprocess.run(cmd, check=True)
    return out


def _ranges() -> list[ipaddress.IPv4Network]:
    """1,000 distinct CIDRs, /12 to /24 (mostly /20-/24, like public drop lists), in
    100.64.0.0/10 and 172.16.0.0/12, clear of both spans."""
    rng = random.Random(8)
    found: set[ipaddress.IPv4Network] = set()
    pools = [ipaddress.IPv4Network("100.64.0.0/10"), ipaddress.IPv4Network("172.16.0.0/12")]
    weights = [(24, 50), (23, 10), (22, 12), (21, 8), (20, 10), (16, 6), (14, 2), (12, 2)]
    lengths = [length for length, w in weights for _ in range(w)]
    while len(found) < RANGES:
        pool = rng.choice(pools)
        length = max(rng.choice(lengths), pool.prefixlen)
        offset = rng.randrange(1 << (length - pool.prefixlen)) << (32 - length)
        found.add(ipaddress.IPv4Network((int(pool.network_address) + offset, length)))
    return sorted(found)


def _lines() -> list[str]:
    singles = [str(ipaddress.IPv4Address(BLOCK_BASE + i)) for i in range(SINGLES)]
    return singles + [str(n) for n in _ranges()]


def _fill_lpm(pin_dir: Path, lines: list[str]) -> None:
    fd = int(lib.nc_obj_get(str(pin_dir / "nc_lpm_block4").encode()))
    if fd < 0:
        raise RuntimeError(f"nc_lpm_block4 not pinned ({fd})")
    try:
        keys, values = [], []
        entry = struct.pack("<QQII", 0, 0, 32, 0)
        for line in lines:
            net = ipaddress.IPv4Network(line)
            keys.append(struct.pack("<I4s", net.prefixlen, net.network_address.packed))
            values.append(entry)
        count = ffi.new("uint32_t *", len(keys))
        code = int(lib.nc_map_update_batch(fd, b"".join(keys), b"".join(values), count, 0))
        if code < 0:
            raise RuntimeError(f"LPM batch update failed: {code}")
    finally:
        os.close(fd)


def _measure(shield: Shield, repeat: int, rounds: int) -> float:
    frame = _udp_frame()
    best = float("inf")
    for _ in range(rounds):
        _, ns = shield.test_run(frame, repeat=repeat)
        best = min(best, float(ns))
    return best


def run(quick: bool) -> list[dict[str, Any]]:
    """Rows for the pass and drop paths, shield layout vs LPM-trie-only layout."""
    repeat, rounds = (100_000, 3) if quick else (1_000_000, 7)
    lines = _lines()
    work = Path(tempfile.mkdtemp(prefix="kitnc-bench-"))
    pin_root = Path(f"/sys/fs/bpf/kitnc-bench-{uuid.uuid4().hex[:8]}")
    results: dict[tuple[str, str], float] = {}
    try:
        for path, (base, span) in {
            "drop": (BLOCK_BASE, SINGLES),
            "pass": (PASS_BASE, PASS_SPAN),
        }.items():
            for layout in ("stride", "lpm"):
                defines = [f"NC_BENCH_SPAN={span}", f"NC_BENCH_BASE={base:#x}u"]
                if layout == "lpm":
                    defines.append("NC_LAYOUT_LPM")
                obj = _compile(work / f"{layout}-{path}.o", *defines)
                shield = Shield.load("lo", pin_root=pin_root / f"{layout}-{path}", object_path=obj)
                try:
                    if layout == "stride":
                        shield.load_list(lines)
                    else:
                        _fill_lpm(shield.pin_dir, lines)
                    shield.rate_limit(pps=1e9, burst=1_000_000)
                    results[(path, layout)] = _measure(shield, repeat, rounds)
                finally:
                    shield.remove()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(pin_root, ignore_errors=True)
    rows = []
    for path in ("drop", "pass"):
        kit_ns, lpm_ns = results[(path, "stride")], results[(path, "lpm")]
        rows.append(
            {
                "name": f"XDP {path} path, 100k addresses + 1k CIDRs + rate limit (ns/packet)",
                "kit": "kit-netcore",
                "peer": "LPM-trie-only layout",
                "kit_us": kit_ns / 1000,
                "peer_us": lpm_ns / 1000,
                "ratio": kit_ns / lpm_ns,
                "target": f"<= {LINE_RATE_NS} ns",
                "verdict": "meets target" if kit_ns <= LINE_RATE_NS else "misses target",
            }
        )
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)


def calibration(quick: bool) -> dict[str, float]:
    """ns per repetition of: an empty program, a random draw, a random draw + one lookup
    in a 100,000-entry hash (random keys, so mostly cache misses)."""
    repeat, rounds = (100_000, 3) if quick else (1_000_000, 7)
    work = Path(tempfile.mkdtemp(prefix="kitnc-cal-"))
    pin_root = Path(f"/sys/fs/bpf/kitnc-cal-{uuid.uuid4().hex[:8]}")
    source = Path(__file__).resolve().parent / "calibrate.bpf.c"
    frame = _udp_frame()
    found: dict[str, float] = {}
    try:
        for name in ("noop", "random", "lookup"):
            obj = work / f"{name}.o"
            _compile_file(source, obj, f"NC_CAL_{name.upper()}")
            pin_dir = pin_root / name
            pin_dir.mkdir(parents=True)
            fd = int(lib.nc_load(str(obj).encode(), str(pin_dir).encode()))
            if fd < 0:
                raise RuntimeError(f"loading {obj} failed: {fd}")
            try:
                if name == "lookup":
                    map_fd = int(lib.nc_obj_get(str(pin_dir / "cal_hash").encode()))
                    keys = b"".join(struct.pack("<I", i) for i in range(SINGLES))
                    count = ffi.new("uint32_t *", SINGLES)
                    lib.nc_map_update_batch(map_fd, keys, bytes(8 * SINGLES), count, 0)
                    os.close(map_fd)
                retval = ffi.new("uint32_t *")
                duration = ffi.new("uint32_t *")
                best = float("inf")
                for _ in range(rounds):
                    lib.nc_test_run(fd, frame, len(frame), repeat, retval, duration)
                    best = min(best, float(duration[0]))
                found[name] = best
            finally:
                os.close(fd)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(pin_root, ignore_errors=True)
    return found
