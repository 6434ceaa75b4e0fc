"""kit-netcore end to end over a veth: how cheaply the receiver disposes of a flood.

    sudo python packages/kit-netcore/benchmarks/bench_e2e.py [--quick] [--json OUT]

**veth is not a NIC.** A veth builds an skb for every frame whatever is attached, and
native XDP on a veth first copies each frame into a page with XDP headroom
(``veth_convert_skb_to_xdp_buff``), so the numbers here show the *relative order* of the
three setups on this kernel, not what XDP does on a NIC driver (where XDP runs before any
skb exists; see the XDP paper's figures in the design notes).

Setup: one veth pair (``tests/_netns.py``), the receiver end in the root namespace, the
sender end in its own namespace, where ``trafficgen.c`` (pinned to one CPU) writes
60-byte IPv4/UDP frames from one spoofed source (203.0.113.7) to the receiver's address,
port 9 (nothing listens there), for a fixed time. Three setups on the receiver, measured
in interleaved rounds (the order rotating every round):

- ``xdp``: the kit-netcore shield attached in native mode, blocking the source;
- ``nft``: an nftables table in the **netdev family, ingress hook** of the receiver
  (priority -500, the earliest nftables hook, before the IP stack), dropping the source
  with ``ip saddr @block4 counter drop`` (a hash set, like the shield's exact map, and a
  counter, like the shield's per-reason counters); created and deleted by the benchmark;
- ``none``: no filter: the stack takes each datagram up to UDP, finds the port closed and
  frees it (the ICMP port-unreachable replies are rate-limited by the kernel to about one
  a second for one source, and routed back into the sender namespace).

Each round checks that every frame sent was disposed of where expected: the shield's
``block`` counter or the nft rule's counter must equal the frames sent, and with no
filter the receiver's ``rx_packets`` must have grown by at least as much.

What is measured, per setup:

- **disposal rate** (packets/s): frames sent in the round / its duration. A veth hands
  each frame to the receiver in the sender's own context: the receive work (XDP, or
  netfilter and the IP stack) runs in ``NET_RX`` softirq on the sender's CPU, and a full
  receive ring or backlog makes the send fail (trafficgen retries it), so the rate is
  bounded by sender cost + receiver cost per frame. The sender's cost is the same in all
  three setups; the differences are the receiver's. Reported as microseconds per packet
  (1e6 / rate), fastest round.
- **receiver CPU per packet** (microseconds): softirq time from ``/proc/stat`` (summed
  over CPUs) during the round / frames sent, median of the rounds. Without
  ``CONFIG_IRQ_TIME_ACCOUNTING`` the kernel samples this per tick (a tick that lands in a
  softirq is softirq time), so it is a statistical estimate: with N ticks in softirq its
  relative error is about 1/sqrt(N); the report carries N. ``getrusage`` cannot separate
  it: a softirq run in the sender's syscall is charged to the sender's system time.

Rows follow ``packages/kit-mail/benchmarks/run.py``: ``ratio`` = kit time / peer time, so
below 1 means the shield disposes of a packet faster (or with less CPU) than the peer.
``run(quick)`` returns them for ``benchmarks/run.py``; it raises :class:`BenchUnavailable`
when the machine cannot run it (not root, no ``nft``, no native XDP on veth).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import _netns  # tests/_netns.py: the veth helpers

import kit_netcore
from kit_netcore import Shield

PACKAGE = "kit-netcore"
SOURCE = "203.0.113.7"
PORT = 9
FRAME_BYTES = 60
USER_HZ = os.sysconf("SC_CLK_TCK")
VETH_NOTE = (
    "veth is not a NIC: a veth builds an skb for every frame anyway (and native XDP on a "
    "veth copies it into an XDP buffer first), so these rows give the relative order of "
    "XDP, nftables and no filter on this kernel, not NIC numbers."
)

# On a veth, native XDP pays a copy per frame that nftables' ingress hook does not, so
# parity is what to expect here; the rows are information, not a pass/fail target.
NFT_TARGET = "info (veth: XDP copies each frame first)"


class BenchUnavailable(RuntimeError):
    """The end-to-end benchmark cannot run on this machine (the reason is the message)."""


@dataclass(frozen=True)
class Mode:
    name: str
    seconds: float
    rounds: int


FULL = Mode("full", 3.0, 7)
QUICK = Mode("quick", 1.0, 3)


@dataclass
class Round:
    sent: int
    seconds: float
    softirq_ticks: int
    busy_ticks: int

    @property
    def us_per_packet(self) -> float:
        return self.seconds / self.sent * 1e6

    @property
    def softirq_us(self) -> float:
        return self.softirq_ticks / USER_HZ / self.sent * 1e6


@dataclass
class Setup:
    name: str
    label: str
    enter: Callable[[], None]
    leave: Callable[[], None]
    disposed: Callable[[], int]  # a counter that must grow by the frames sent
    exact: bool  # the counter counts exactly our frames (else: at least)
    rounds: list[Round] = field(default_factory=list)


# --------------------------------------------------------------------------- /proc/stat


def _cpu_ticks() -> tuple[int, int]:
    """(softirq, busy) ticks summed over every CPU, from /proc/stat's per-CPU lines."""
    softirq = busy = 0
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            values = [int(v) for v in line.split()[1:]]
            # user nice system idle iowait irq softirq steal guest guest_nice
            softirq += values[6]
            busy += sum(values[:8]) - values[3] - values[4]
    return softirq, busy


# --------------------------------------------------------------------------- nftables


def _nft(*args: str, stdin: str | None = None, check: bool = True) -> str:
    """Run ``nft`` (resolved on PATH) and return its standard output."""
    nft = shutil.which("nft")
    if nft is None:
        raise BenchUnavailable("'nft' is not on PATH")
    proc = subprocess.run([nft, *args], input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"nft {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


class NftDrop:
    """An nftables netdev/ingress table on ``ifname`` dropping ``source`` (and counting)."""

    def __init__(self, ifname: str, source: str) -> None:
        self.ifname = ifname
        self.source = source
        self.table = f"kitnc_{os.getpid()}_{secrets.token_hex(3)}"
        self.active = False

    def ruleset(self) -> str:
        return (
            f"table netdev {self.table} {{\n"
            f"  set block4 {{ type ipv4_addr; elements = {{ {self.source} }} }}\n"
            f"  chain ingress {{\n"
            f'    type filter hook ingress device "{self.ifname}" priority -500; policy accept;\n'
            f"    ip saddr @block4 counter drop\n"
            f"  }}\n"
            f"}}\n"
        )

    def add(self) -> None:
        _nft("-f", "-", stdin=self.ruleset())
        self.active = True

    def delete(self) -> None:
        if self.active:
            _nft("delete", "table", "netdev", self.table, check=False)
            self.active = False

    def packets(self) -> int:
        """The drop rule's counter (0 when the table is not there)."""
        if not self.active:
            return 0
        out = _nft("-j", "list", "chain", "netdev", self.table, "ingress")
        for item in json.loads(out)["nftables"]:
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    return int(expr["counter"]["packets"])
        raise RuntimeError(f"no counter in nft table {self.table}")


def sweep_stale_nft() -> None:
    """Delete ``kitnc_<pid>_*`` tables left by benchmark processes that are gone."""
    for line in _nft("list", "tables", check=False).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].startswith("kitnc_"):
            pid = parts[2].split("_")[1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                _nft("delete", "table", parts[1], parts[2], check=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- the run


def _check_machine() -> None:
    reason = _netns.traffic_unavailable()
    if reason is not None:
        raise BenchUnavailable(reason)
    for tool in ("nft", "taskset"):
        if shutil.which(tool) is None:
            raise BenchUnavailable(f"{tool!r} is not on PATH")


def _sender_cpu() -> int:
    return max(os.sched_getaffinity(0))


@contextlib.contextmanager
def _testbed() -> Iterator[tuple[_netns.VethPair, _netns.TrafficGen, Shield]]:
    _netns.sweep_stale()
    sweep_stale_nft()
    with (
        tempfile.TemporaryDirectory(prefix="kitnc-bench-") as tmp,
        _netns.pin_root() as pins,
        _netns.VethPair.create() as pair,
    ):
        gen = _netns.TrafficGen(_netns.build_trafficgen(tmp), pair)
        shield = Shield.load(pair.rx, pin_root=pins)
        try:
            try:
                shield.attach(mode="native")
            except Exception as exc:
                raise BenchUnavailable(f"native XDP on a veth did not attach: {exc!r}") from exc
            shield.detach()
            shield.block(SOURCE)
            yield pair, gen, shield
        finally:
            shield.remove()


def _rx_packets(ifname: str) -> int:
    return int(Path("/sys/class/net", ifname, "statistics", "rx_packets").read_text())


def _one_round(setup: Setup, gen: _netns.TrafficGen, seconds: float, cpu: int) -> Round:
    setup.enter()
    try:
        disposed_before = setup.disposed()
        soft_before, busy_before = _cpu_ticks()
        result = gen.send([SOURCE], seconds=seconds, dport=PORT, cpu=cpu)
        soft_after, busy_after = _cpu_ticks()
        sent = int(result["sent"])
        # a receive ring or backlog may still hold the last frames for a moment
        deadline = time.monotonic() + 5.0
        while (disposed := setup.disposed() - disposed_before) < sent:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
    finally:
        setup.leave()
    if sent <= 0:
        raise RuntimeError(f"{setup.name}: trafficgen sent nothing ({result})")
    if (setup.exact and disposed != sent) or disposed < sent:
        raise RuntimeError(f"{setup.name}: {sent} frames sent but {disposed} disposed of")
    return Round(
        sent=sent,
        seconds=float(result["seconds"]),
        softirq_ticks=soft_after - soft_before,
        busy_ticks=busy_after - busy_before,
    )


def _measure(mode: Mode) -> tuple[list[Setup], dict[str, Any]]:
    cpu = _sender_cpu()
    with _testbed() as (pair, gen, shield):
        nft = NftDrop(pair.rx, SOURCE)
        setups = [
            Setup(
                "xdp",
                f"kit-netcore Shield, native XDP, block({SOURCE!r})",
                enter=lambda: shield.attach(mode="native"),
                leave=shield.detach,
                disposed=lambda: shield.stats().packets["block"],
                exact=True,
            ),
            Setup(
                "nft",
                "nftables netdev ingress (priority -500): ip saddr @block4 counter drop",
                enter=nft.add,
                leave=nft.delete,
                disposed=nft.packets,
                exact=True,  # a new table (and counter) every round
            ),
            Setup(
                "none",
                "no filter: the stack frees each datagram at the closed UDP port",
                enter=lambda: None,
                leave=lambda: None,
                disposed=lambda: _rx_packets(pair.rx),
                exact=False,
            ),
        ]
        for setup in setups:  # warm-up: page cache, JIT, neighbour and route caches
            _one_round(setup, gen, min(0.5, mode.seconds), cpu)
        for round_no in range(mode.rounds):
            shift = round_no % len(setups)
            for setup in setups[shift:] + setups[:shift]:
                setup.rounds.append(_one_round(setup, gen, mode.seconds, cpu))
        info = {
            "xdp_program_ns_per_packet": round(
                _program_ns_per_packet(setups[0], gen, pair.rx, cpu), 1
            ),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "sender_cpu": cpu,
            "kit_netcore": kit_netcore.__version__,
            "nft": _nft_version(),
            "mode": mode.name,
            "rounds": mode.rounds,
            "seconds_per_round": mode.seconds,
            "frame_bytes": FRAME_BYTES,
            "user_hz": USER_HZ,
            "note": VETH_NOTE,
        }
    return setups, info


def _program_ns_per_packet(setup: Setup, gen: _netns.TrafficGen, ifname: str, cpu: int) -> float:
    """The shield program's own run time per packet on this traffic, from the kernel's BPF
    run-time statistics (``kernel.bpf_stats_enabled``, on for this one extra round only:
    it adds a clock read to every run)."""
    stats_switch = Path("/proc/sys/kernel/bpf_stats_enabled")
    bpftool = shutil.which("bpftool")
    if bpftool is None or not stats_switch.exists():
        return float("nan")
    previous = stats_switch.read_text().strip()

    def read() -> tuple[int, int]:
        prog_id = _netns.xdp_prog_id(ifname)
        if prog_id is None:
            raise RuntimeError(f"no XDP program on {ifname}")
        out = subprocess.run(
            [bpftool, "-j", "prog", "show", "id", str(prog_id)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        info = json.loads(out)
        return int(info.get("run_time_ns", 0)), int(info.get("run_cnt", 0))

    setup.enter()
    try:
        stats_switch.write_text("1")
        try:
            ns0, cnt0 = read()
            gen.send([SOURCE], seconds=1.0, dport=PORT, cpu=cpu)
            ns1, cnt1 = read()
        finally:
            stats_switch.write_text(previous)
    finally:
        setup.leave()
    return (ns1 - ns0) / (cnt1 - cnt0) if cnt1 > cnt0 else float("nan")


def _nft_version() -> str:
    return _nft("--version", check=False).strip()


# --------------------------------------------------------------------------- rows


def _row(
    name: str,
    kit: Setup,
    peer: Setup,
    metric: str,
    *,
    target: str,
    meets: Callable[[float], bool] | None,
) -> dict[str, Any]:
    if metric == "wall":
        kit_us = min(r.us_per_packet for r in kit.rounds)
        peer_us = min(r.us_per_packet for r in peer.rounds)
        stat = "fastest of interleaved rounds: 1e6 / disposal rate (sender + receiver, one CPU)"
    else:
        kit_us = statistics.median(r.softirq_us for r in kit.rounds)
        peer_us = statistics.median(r.softirq_us for r in peer.rounds)
        stat = "median of interleaved rounds: softirq time (/proc/stat, tick-sampled) / packets"
    ratio = kit_us / peer_us
    verdict = "info" if meets is None else ("meets target" if meets(ratio) else "misses target")
    return {
        "name": name,
        "kit": PACKAGE,
        "peer": peer.label,
        "kit_us": round(kit_us, 4),
        "peer_us": round(peer_us, 4),
        "ratio": round(ratio, 4),
        "target": target,
        "verdict": verdict,
        "kit_call": kit.label,
        "kit_pps": round(max(r.sent / r.seconds for r in kit.rounds)),
        "peer_pps": round(max(r.sent / r.seconds for r in peer.rounds)),
        "kit_softirq_ticks": [r.softirq_ticks for r in kit.rounds],
        "peer_softirq_ticks": [r.softirq_ticks for r in peer.rounds],
        "rounds": len(kit.rounds),
        "stat": stat,
        "note": VETH_NOTE,
    }


def rows_from(setups: list[Setup]) -> list[dict[str, Any]]:
    """The comparison rows of one measured run."""
    xdp, nft, none = setups
    flood = f"flood of {FRAME_BYTES}-byte UDP frames from one blocked source over veth"
    return [
        _row(
            f"{flood}: disposal time per packet, XDP shield vs nftables netdev ingress drop",
            xdp,
            nft,
            "wall",
            target=NFT_TARGET,
            meets=None,
        ),
        _row(
            f"{flood}: disposal time per packet, XDP shield vs no filter (closed port)",
            xdp,
            none,
            "wall",
            target="< 1.0x",
            meets=lambda r: r < 1.0,
        ),
        _row(
            f"{flood}: receiver softirq CPU per packet, XDP shield vs nftables netdev ingress",
            xdp,
            nft,
            "cpu",
            target=NFT_TARGET,
            meets=None,
        ),
        _row(
            f"{flood}: receiver softirq CPU per packet, XDP shield vs no filter (closed port)",
            xdp,
            none,
            "cpu",
            target="< 1.0x",
            meets=lambda r: r < 1.0,
        ),
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    """Measure the three setups and return the comparison rows (see the module docstring).

    Raises :class:`BenchUnavailable` when the machine cannot run the benchmark.
    """
    _check_machine()
    print(VETH_NOTE, flush=True)
    setups, _info = _measure(QUICK if quick else FULL)
    return rows_from(setups)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--json", type=Path, help="also write the rows and run info here")
    args = parser.parse_args(argv)
    try:
        _check_machine()
    except BenchUnavailable as exc:
        print(f"bench_e2e: cannot run here: {exc}", file=sys.stderr)
        return 2
    print(VETH_NOTE)
    setups, info = _measure(QUICK if args.quick else FULL)
    rows = rows_from(setups)
    for setup in setups:
        pps = max(r.sent / r.seconds for r in setup.rounds)
        cpu = statistics.median(r.softirq_us for r in setup.rounds)
        print(f"  {setup.name:5s} {pps:12,.0f} packets/s disposed, {cpu:.3f} us softirq/packet")
    print(
        f"  the shield program itself: {info['xdp_program_ns_per_packet']} ns per packet "
        "(kernel BPF run-time stats, one extra round)"
    )
    for r in rows:
        print(
            f"{r['name']}: {r['kit_us']:.3f} us vs {r['peer_us']:.3f} us "
            f"({r['ratio']:.3f}x, target {r['target']}: {r['verdict']})"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps({"package": PACKAGE, "results": rows, "info": info}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
