"""Real traffic for kit-netcore's tests and benchmarks: a veth pair across two namespaces.

The receiver end stays in the root network namespace, so XDP is attached there and the
test process reaches its bpffs pins directly; the sender end lives in a fresh namespace
``kitnc-<pid>-<hex>`` and ``benchmarks/trafficgen.c`` writes spoofed-source frames on it::

    with VethPair.create() as pair, UdpSink(pair.rx_ip4) as sink:
        gen = TrafficGen(build_trafficgen(tmp_dir), pair)
        gen.send(["203.0.113.7"], count=100, dport=sink.port)
        received = sink.settle(gen)          # Counter: source address -> datagrams

Cleanup is guaranteed three ways: the context manager, an ``atexit`` hook for pairs still
open, and :func:`sweep_stale`, which removes namespaces and pin roots left by a process
that no longer runs (both carry the creator's pid in their names). Deleting the
namespace deletes the veth pair (a veth dies with its peer), its routes, neighbours and
any XDP program attached to it.

Only ``ip`` (iproute2), ``sysctl`` and a C compiler are needed; everything runs as root.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import errno
import fcntl
import ipaddress
import json
import os
import re
import secrets
import select
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

BPFFS = Path("/sys/fs/bpf")
NETNS_PREFIX = "kitnc-"
IF_PREFIX = "ncv"
PIN_PREFIX = "kitnc-test-"
TRAFFICGEN_C = Path(__file__).resolve().parent.parent / "benchmarks" / "trafficgen.c"

# Spoofed sources come from the documentation ranges (RFC 5737, RFC 3849); the link
# addresses from the benchmarking ranges (RFC 2544 198.18.0.0/15) and a ULA prefix.
SPOOF_RANGES4 = ("198.51.100.0/24", "203.0.113.0/24")
SPOOF_RANGES6 = ("2001:db8::/32",)


def in_ci() -> bool:
    """Return True when ``CI`` is set to a non-empty value other than 0/false."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def _run(args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}"
        )
    return proc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- readiness


def traffic_unavailable() -> str | None:
    """Why real veth traffic cannot run here, or None when it can.

    Checks root, ``ip``/``sysctl``/``cc`` on PATH and a bpffs at /sys/fs/bpf (mounting
    one when it is missing). Whether XDP itself works is found out by loading it.
    """
    if sys.platform != "linux":
        return "veth traffic needs Linux"
    if os.geteuid() != 0:
        return "veth traffic needs root (CAP_NET_ADMIN + CAP_BPF + CAP_SYS_ADMIN for netns)"
    for tool in ("ip", "sysctl", "cc"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not on PATH"
    try:
        ensure_bpffs()
    except RuntimeError as exc:
        return str(exc)
    return None


def ensure_bpffs(path: Path = BPFFS) -> None:
    """Mount a bpffs at ``path`` unless one is already there."""
    if _is_bpffs(path):
        return
    path.mkdir(parents=True, exist_ok=True)
    proc = _run(["mount", "-t", "bpf", "bpf", str(path)], check=False)
    if proc.returncode != 0 or not _is_bpffs(path):
        raise RuntimeError(f"cannot mount bpffs at {path}: {proc.stderr.strip()}")


def _is_bpffs(path: Path) -> bool:
    try:
        mounts = Path("/proc/self/mounts").read_text()
    except OSError:
        return False
    return any(
        len(parts) >= 3 and parts[1] == str(path) and parts[2] == "bpf"
        for parts in (line.split() for line in mounts.splitlines())
    )


# --------------------------------------------------------------------------- cleanup


_LIVE: dict[str, VethPair] = {}


def _close_live() -> None:
    for pair in list(_LIVE.values()):
        with contextlib.suppress(Exception):
            pair.close()


atexit.register(_close_live)


def sweep_stale() -> list[str]:
    """Remove namespaces, veths and pin roots left by test processes that are gone.

    Names carry the creator's pid (``kitnc-<pid>-<hex>``, ``kitnc-test-<pid>-<hex>``);
    only those whose pid no longer runs are touched. Returns what was removed.
    """
    removed: list[str] = []
    netns_dir = Path("/run/netns")
    if netns_dir.is_dir():
        for entry in netns_dir.iterdir():
            match = re.fullmatch(rf"{NETNS_PREFIX}(\d+)-[0-9a-f]+", entry.name)
            if match and not _pid_alive(int(match.group(1))):
                _run(["ip", "netns", "delete", entry.name], check=False)
                removed.append(f"netns {entry.name}")
    # a veth whose sender end never made it into a namespace: its alias names the pid
    for name, alias in _links_with_alias():
        match = re.fullmatch(rf"{NETNS_PREFIX}(\d+)", alias)
        if name.startswith(IF_PREFIX) and match and not _pid_alive(int(match.group(1))):
            _run(["ip", "link", "delete", name], check=False)
            removed.append(f"link {name}")
    if BPFFS.is_dir() and _is_bpffs(BPFFS):
        for entry in BPFFS.iterdir():
            match = re.fullmatch(rf"{PIN_PREFIX}(\d+)-[0-9a-f]+", entry.name)
            if match and not _pid_alive(int(match.group(1))):
                remove_tree(entry)
                removed.append(f"pins {entry}")
    return removed


def _links_with_alias() -> list[tuple[str, str]]:
    proc = _run(["ip", "-j", "link", "show"], check=False)
    if proc.returncode != 0:
        return []
    links: list[dict[str, Any]] = json.loads(proc.stdout or "[]")
    return [(str(link["ifname"]), str(link.get("ifalias", ""))) for link in links]


def remove_tree(path: Path) -> None:
    """Remove a directory of bpffs pins (files unlinked, directories removed bottom-up)."""
    if not path.exists():
        return
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(root, name))
        for name in dirs:
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(os.path.join(root, name))
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(path)


@contextlib.contextmanager
def pin_root() -> Iterator[Path]:
    """A fresh bpffs directory ``/sys/fs/bpf/kitnc-test-<pid>-<hex>``, removed afterwards."""
    ensure_bpffs()
    path = BPFFS / f"{PIN_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir()
    try:
        yield path
    finally:
        remove_tree(path)


def leftovers(pair: VethPair) -> list[str]:
    """What of ``pair`` still exists (namespace, either veth end): [] after a clean close."""
    found: list[str] = []
    if Path("/run/netns", pair.netns).exists():
        found.append(f"netns {pair.netns}")
    if Path("/sys/class/net", pair.rx).exists():
        found.append(f"link {pair.rx}")
    for name, _alias in _links_with_alias():
        if name == pair.tx:
            found.append(f"link {pair.tx}")
    return found


def xdp_prog_id(ifname: str) -> int | None:
    """The id of the XDP program attached to ``ifname`` (``ip -j link show``), or None."""
    out = _run(["ip", "-j", "link", "show", "dev", ifname]).stdout
    links: list[dict[str, Any]] = json.loads(out)
    xdp = links[0].get("xdp") if links else None
    if not xdp:
        return None
    prog = xdp.get("prog") or (xdp.get("attached") or [{}])[0].get("prog") or {}
    return int(prog["id"]) if "id" in prog else None


def xdp_attached(ifname: str) -> bool:
    """Whether any XDP program is attached to ``ifname``."""
    return xdp_prog_id(ifname) is not None


# --------------------------------------------------------------------------- the veth pair


def _sysctl_root(key: str, value: str) -> None:
    Path("/proc/sys", *key.split(".")).write_text(value)


@dataclass
class VethPair:
    """A veth pair: ``rx`` in the root namespace (the receiver), ``tx`` in ``netns``.

    Addresses: ``rx_ip4``/``tx_ip4`` in a random /30 of 198.18.0.0/16 and ``rx_ip6``/
    ``tx_ip6`` in a random ULA /64, with permanent neighbour entries both ways, no DAD and
    no link-local addresses (so the kernel sends as little of its own traffic as it can).
    The spoofed source ranges (:data:`SPOOF_RANGES4`/:data:`SPOOF_RANGES6`) are routed
    back through the sender, so replies (ICMP port unreachable, ...) never leave the
    machine, and ``rp_filter`` is off on ``rx``.

    With ``vlan`` set, rx VLAN offload is turned off on both ends so that XDP sees the
    tag in the frame, and when the kernel has 802.1Q a VLAN device ``vlan_dev`` (id
    ``vlan``) sits on ``rx`` with ``vlan_ip4``/``vlan_ip6``; without it ``vlan_dev`` stays
    empty and tagged frames are seen by XDP only (the stack drops them).
    """

    rx: str
    tx: str
    netns: str
    rx_mac: str = ""
    tx_mac: str = ""
    rx_ifindex: int = 0
    rx_ip4: str = ""
    tx_ip4: str = ""
    rx_ip6: str = ""
    tx_ip6: str = ""
    vlan: int | None = None
    vlan_dev: str = ""
    vlan_ip4: str = ""
    vlan_ip6: str = ""
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def create(cls, *, vlan: int | None = None) -> VethPair:
        """Create, address and bring up a new pair; raise RuntimeError when ``ip`` fails."""
        token = secrets.token_hex(4)
        pair = cls(
            rx=f"{IF_PREFIX}{token}r",
            tx=f"{IF_PREFIX}{token}s",
            netns=f"{NETNS_PREFIX}{os.getpid()}-{token}",
            vlan=vlan,
        )
        _LIVE[pair.netns] = pair
        try:
            pair._setup()
        except BaseException:
            pair.close()
            raise
        return pair

    def _setup(self) -> None:
        k = secrets.randbelow(16384)
        net4 = ipaddress.IPv4Address("198.18.0.0") + 4 * k
        self.rx_ip4, self.tx_ip4 = str(net4 + 1), str(net4 + 2)
        self.rx_ip6, self.tx_ip6 = f"fd6b:6e63:{k:x}::1", f"fd6b:6e63:{k:x}::2"
        _run(["ip", "netns", "add", self.netns])
        _run(["ip", "link", "add", self.rx, "type", "veth", "peer", "name", self.tx])
        # the alias lets sweep_stale() find a pair whose sender end never left the root ns
        _run(["ip", "link", "set", self.rx, "alias", f"{NETNS_PREFIX}{os.getpid()}"])
        _run(["ip", "link", "set", self.tx, "netns", self.netns])
        # receiver side (root namespace)
        _run(["ip", "link", "set", self.rx, "addrgenmode", "none"])
        _sysctl_root(f"net.ipv4.conf.{self.rx}.rp_filter", "0")
        _sysctl_root(f"net.ipv6.conf.{self.rx}.accept_dad", "0")
        _sysctl_root(f"net.ipv6.conf.{self.rx}.accept_ra", "0")
        _run(["ip", "addr", "add", f"{self.rx_ip4}/30", "dev", self.rx])
        _run(["ip", "-6", "addr", "add", f"{self.rx_ip6}/64", "dev", self.rx, "nodad"])
        # sender side
        ns = ["ip", "netns", "exec", self.netns]
        for key, value in (
            ("accept_dad", "0"),
            ("accept_ra", "0"),
            ("router_solicitations", "0"),
        ):
            _run([*ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{self.tx}.{key}={value}"])
        _run([*ns, "ip", "link", "set", self.tx, "addrgenmode", "none"])
        _run([*ns, "ip", "addr", "add", f"{self.tx_ip4}/30", "dev", self.tx])
        _run([*ns, "ip", "-6", "addr", "add", f"{self.tx_ip6}/64", "dev", self.tx, "nodad"])
        _run([*ns, "ip", "link", "set", "lo", "up"])
        if self.vlan is not None:
            self._setup_vlan(k)
        _run([*ns, "ip", "link", "set", self.tx, "up"])
        _run(["ip", "link", "set", self.rx, "up"])
        self.rx_mac = Path("/sys/class/net", self.rx, "address").read_text().strip()
        self.rx_ifindex = int(Path("/sys/class/net", self.rx, "ifindex").read_text())
        self.tx_mac = _run([*ns, "cat", f"/sys/class/net/{self.tx}/address"]).stdout.strip()
        # permanent neighbours both ways: no ARP or neighbour discovery on the wire
        for ip_ in (self.tx_ip4, self.tx_ip6):
            _run(
                [
                    "ip",
                    "neigh",
                    "replace",
                    ip_,
                    "lladdr",
                    self.tx_mac,
                    "nud",
                    "permanent",
                    "dev",
                    self.rx,
                ]
            )
        for ip_ in (self.rx_ip4, self.rx_ip6):
            _run(
                [
                    *ns,
                    "ip",
                    "neigh",
                    "replace",
                    ip_,
                    "lladdr",
                    self.rx_mac,
                    "nud",
                    "permanent",
                    "dev",
                    self.tx,
                ]
            )
        # replies to spoofed sources go back into the sender namespace, where they die; a
        # random metric lets two pairs (two test runs) route the same ranges side by side
        metric = str(1000 + secrets.randbelow(60000))
        for net in SPOOF_RANGES4:
            _run(["ip", "route", "add", net, "via", self.tx_ip4, "dev", self.rx, "metric", metric])
        for net in SPOOF_RANGES6:
            _run(
                [
                    "ip",
                    "-6",
                    "route",
                    "add",
                    net,
                    "via",
                    self.tx_ip6,
                    "dev",
                    self.rx,
                    "metric",
                    metric,
                ]
            )

    def _setup_vlan(self, k: int) -> None:
        assert self.vlan is not None
        set_rx_vlan_offload(self.rx, on=False)
        set_rx_vlan_offload(self.tx, on=False, netns=self.netns)
        dev = f"{self.rx[:-1]}v"
        added = _run(
            [
                "ip",
                "link",
                "add",
                "link",
                self.rx,
                "name",
                dev,
                "type",
                "vlan",
                "id",
                str(self.vlan),
            ],
            check=False,
        )
        if added.returncode != 0:  # no 802.1Q in this kernel: tagged frames reach XDP only
            return
        self.vlan_dev = dev
        net4 = ipaddress.IPv4Address("198.19.0.0") + 4 * k
        self.vlan_ip4 = str(net4 + 1)
        self.vlan_ip6 = f"fd6b:6e64:{k:x}::1"
        _run(["ip", "link", "set", dev, "addrgenmode", "none"])
        _sysctl_root(f"net.ipv4.conf.{dev}.rp_filter", "0")
        _sysctl_root(f"net.ipv6.conf.{dev}.accept_dad", "0")
        _run(["ip", "addr", "add", f"{self.vlan_ip4}/30", "dev", dev])
        _run(["ip", "-6", "addr", "add", f"{self.vlan_ip6}/64", "dev", dev, "nodad"])
        _run(["ip", "link", "set", dev, "up"])

    # ---- running things in the sender namespace

    def ns_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed to run inside the sender namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def exec(self, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the sender namespace and wait for it (output captured)."""
        return _run(self.ns_argv(argv), check=check)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``argv`` inside the sender namespace (``subprocess.Popen`` arguments)."""
        kwargs.setdefault("text", True)
        return subprocess.Popen(self.ns_argv(argv), **kwargs)

    # ---- lifetime

    def close(self) -> None:
        """Delete the namespace (and with it both veth ends, routes, neighbours, XDP)."""
        if self._closed:
            return
        self._closed = True
        _LIVE.pop(self.netns, None)
        if self.vlan_dev:
            _run(["ip", "link", "delete", self.vlan_dev], check=False)
        # deleting rx first is immediate; deleting the namespace then has nothing to free
        _run(["ip", "link", "delete", self.rx], check=False)
        _run(["ip", "netns", "delete", self.netns], check=False)
        # a veth whose peer was still in a dying namespace can linger for a moment
        for _ in range(50):
            if not leftovers(self):
                return
            time.sleep(0.1)

    def __enter__(self) -> VethPair:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- VLAN offload

_SIOCETHTOOL = 0x8946
_ETHTOOL_GFLAGS = 0x25
_ETHTOOL_SFLAGS = 0x26
_ETH_FLAG_RXVLAN = 1 << 8


def set_rx_vlan_offload(ifname: str, *, on: bool, netns: str | None = None) -> None:
    """Turn rx VLAN tag stripping on or off (``ethtool -K IF rxvlan off``).

    Uses ``ethtool`` when it is installed, else the legacy ``ETHTOOL_SFLAGS`` ioctl (still
    mapped to ``NETIF_F_HW_VLAN_CTAG_RX`` by the kernel). Inside ``netns`` it runs through
    ``ip netns exec``. With offload on, a NIC strips the tag before XDP runs; a veth fed
    from an AF_PACKET socket keeps it in the frame either way, so failures are ignored.
    """
    state = "on" if on else "off"
    prefix = ["ip", "netns", "exec", netns] if netns else []
    if shutil.which("ethtool"):
        _run([*prefix, "ethtool", "-K", ifname, "rxvlan", state], check=False)
        return
    if netns:
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); import _netns; "
            "_netns.set_rx_vlan_offload(sys.argv[2], on=sys.argv[3] == 'on')"
        )
        _run(
            [*prefix, sys.executable, "-c", code, str(Path(__file__).parent), ifname, state],
            check=False,
        )
        return
    value = ctypes.create_string_buffer(8)
    ifr = bytearray(struct.pack("16sP", ifname.encode(), ctypes.addressof(value)))
    ifr += bytes(40 - len(ifr))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            struct.pack_into("II", value, 0, _ETHTOOL_GFLAGS, 0)
            fcntl.ioctl(sock.fileno(), _SIOCETHTOOL, ifr)
            _, flags = struct.unpack("II", value.raw)
            flags = flags | _ETH_FLAG_RXVLAN if on else flags & ~_ETH_FLAG_RXVLAN
            struct.pack_into("II", value, 0, _ETHTOOL_SFLAGS, flags)
            fcntl.ioctl(sock.fileno(), _SIOCETHTOOL, ifr)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise


# --------------------------------------------------------------------------- trafficgen


def build_trafficgen(out_dir: Path | str) -> Path:
    """Compile ``benchmarks/trafficgen.c`` with ``cc -O2`` into ``out_dir``; return the path."""
    out = Path(out_dir) / "trafficgen"
    if out.exists() and out.stat().st_mtime >= TRAFFICGEN_C.stat().st_mtime:
        return out
    cc = os.environ.get("CC", "cc")
    _run([cc, "-O2", "-Wall", "-o", str(out), str(TRAFFICGEN_C)])
    return out


@dataclass
class TrafficGen:
    """The compiled generator, bound to a pair's sender end."""

    binary: Path
    pair: VethPair

    def argv(
        self,
        sources: Iterable[str],
        *,
        dport: int,
        count: int | None = None,
        seconds: float | None = None,
        family: int | None = None,
        dst_ip: str | None = None,
        dst_mac: str | None = None,
        vlan: int | None = None,
        payload: int | None = None,
        batch: int | None = None,
        cpu: int | None = None,
    ) -> list[str]:
        """The command line (inside the sender namespace) that :meth:`send` runs."""
        srcs = [str(s) for s in sources]
        if family is None:
            family = 6 if ":" in srcs[0] else 4
        if dst_ip is None:
            if vlan is not None and self.pair.vlan_dev:
                dst_ip = self.pair.vlan_ip4 if family == 4 else self.pair.vlan_ip6
            else:
                dst_ip = self.pair.rx_ip4 if family == 4 else self.pair.rx_ip6
        argv = [
            str(self.binary),
            "-i",
            self.pair.tx,
            "--dst-mac",
            dst_mac or self.pair.rx_mac,
            "--dst-ip",
            dst_ip,
            "--dport",
            str(dport),
            "--src",
            ",".join(srcs),
        ]
        if count is not None:
            argv += ["--count", str(count)]
        if seconds is not None:
            argv += ["--seconds", str(seconds)]
        if vlan is not None:
            argv += ["--vlan", str(vlan)]
        if payload is not None:
            argv += ["--payload", str(payload)]
        if batch is not None:
            argv += ["--batch", str(batch)]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu), *argv]
        return self.pair.ns_argv(argv)

    def send(self, sources: Iterable[str], **kwargs: Any) -> dict[str, Any]:
        """Send (see :meth:`argv`) and return trafficgen's JSON: sent, seconds, pps, retries."""
        proc = _run(self.argv(sources, **kwargs))
        result: dict[str, Any] = json.loads(proc.stdout)
        return result


# --------------------------------------------------------------------------- receiving


class UdpSink:
    """A UDP socket on the receiver that counts datagrams per source address.

    Bound to ``address`` (the receiver's IPv4 or IPv6 address) on ``port`` (0 = an
    ephemeral one, read back as ``.port``), with a large receive buffer so that a burst
    is not lost to the socket.
    """

    def __init__(self, address: str, port: int = 0, *, rcvbuf: int = 32 << 20) -> None:
        self.address = address
        self.family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):  # SO_RCVBUFFORCE: root may exceed rmem_max
            self.sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)
        self.sock.bind((address, port))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]

    def drain(self) -> collections.Counter[str]:
        """Read everything queued now, without waiting; count datagrams per source."""
        got: collections.Counter[str] = collections.Counter()
        while True:
            try:
                _data, addr = self.sock.recvfrom(2048)
            except BlockingIOError:
                return got
            got[str(ipaddress.ip_address(addr[0].split("%")[0]))] += 1

    def wait_quiet(self, quiet: float = 0.3, limit: float = 30.0) -> collections.Counter[str]:
        """Count until nothing has arrived for ``quiet`` seconds (at most ``limit``)."""
        got: collections.Counter[str] = collections.Counter()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.sock], [], [], quiet)
            if not ready:
                break
            got += self.drain()
        return got

    def settle(self, gen: TrafficGen, *, timeout: float = 10.0) -> collections.Counter[str]:
        """Count what the traffic sent so far delivered, without guessing a delay.

        Sends one marker datagram from the sender's own address to a second socket and
        waits for it: the receiver handles a veth's frames in order, so once the marker is
        in, every earlier frame has been dropped or queued. When the marker does not come
        (a rule drops it), falls back to :meth:`wait_quiet`.
        """
        family = 6 if self.family == socket.AF_INET6 else 4
        own = gen.pair.tx_ip6 if family == 6 else gen.pair.tx_ip4
        dst = gen.pair.rx_ip6 if family == 6 else gen.pair.rx_ip4
        with UdpSink(dst) as marker:
            gen.send([own], count=1, dport=marker.port, dst_ip=dst)
            ready, _, _ = select.select([marker.sock], [], [], timeout)
        got = self.drain()
        if not ready:
            got += self.wait_quiet()
        return got

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> UdpSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
