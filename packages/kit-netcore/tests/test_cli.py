"""The ``kit-netcore`` command against the real kernel shield on a veth pair.

Each test gets a fresh veth pair (``_netns.VethPair``) and a fresh pin root under
/sys/fs/bpf; the commands run in process through ``main(argv)`` (output from capsys),
and through ``python -m kit_netcore.cli`` where the exit status and stderr of a real
process matter. Needs root; outside CI the root-only tests are skipped with the reason,
with ``CI`` set that is a failure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
)

from kit_netcore import Shield
from kit_netcore.cli import main


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI is set, so this is a failure and not a skip: {reason}")
    pytest.skip(reason)


@pytest.fixture
def pair() -> Iterator[VethPair]:
    reason = traffic_unavailable()
    if reason is not None:
        _unavailable(reason)
    sweep_stale()
    with VethPair.create() as created:
        yield created
    assert leftovers(created) == []


@pytest.fixture
def pins() -> Iterator[Path]:
    with pin_root() as root:
        yield root
    assert not root.exists()


class Cli:
    """``kit-netcore ... IFACE --pin-root PINS`` in process; returns (status, out, err)."""

    def __init__(self, capsys: pytest.CaptureFixture[str], iface: str, pins: Path) -> None:
        self.capsys = capsys
        self.iface = iface
        self.pins = pins

    def __call__(self, command: str, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        status = main([command, self.iface, *args, "--pin-root", str(self.pins)])
        captured = self.capsys.readouterr()
        return status, captured.out, captured.err

    def json(self, command: str, *args: str) -> Any:
        status, out, err = self(command, *args, "--json")
        assert (status, err) == (0, "")
        return json.loads(out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], pair: VethPair, pins: Path) -> Iterator[Cli]:
    runner = Cli(capsys, pair.rx, pins)
    yield runner
    if (pins / pair.rx).exists():  # a test that failed half-way: leave nothing behind
        with Shield.open(pair.rx, pin_root=pins) as shield:
            shield.remove()


def run_process(*argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kit_netcore.cli", *argv],
        capture_output=True,
        text=True,
        check=False,
        **kwargs,
    )


def test_attach_steer_inspect_detach(cli: Cli, pair: VethPair, pins: Path, tmp_path: Path) -> None:
    status, out, err = cli("attach", "--mode", "generic", "--track-sources")
    assert (status, err) == (0, "")
    assert out == f"attached to {pair.rx} in generic mode; maps pinned under {pins}/{pair.rx}\n"
    assert xdp_attached(pair.rx)
    assert (pins / pair.rx / "prog").exists()

    assert cli("allow", "192.0.2.0/24") == (0, "allow 192.0.2.0/24, expires never\n", "")
    status, out, _ = cli("block", "203.0.113.7", "--ttl", "600")
    assert status == 0
    assert out.startswith("block 203.0.113.7/32, expires 2")
    assert out.endswith("Z\n")
    listed = tmp_path / "drop.txt"
    listed.write_text("# scanners\n198.51.100.0/24 ; SBL1\n2001:db8::/32\n\n")
    assert cli("load-list", str(listed)) == (0, f"loaded 2 block rules from {listed}\n", "")
    rules = cli.json("rules")
    assert [(r["action"], r["network"], r["hits"]) for r in rules] == [
        ("allow", "192.0.2.0/24", 0),
        ("block", "198.51.100.0/24", 0),
        ("block", "203.0.113.7/32", 0),
        ("block", "2001:db8::/32", 0),
    ]
    assert rules[0]["expires_at"] is None
    assert isinstance(rules[2]["expires_at"], float)
    status, table, _ = cli("rules")
    assert table.splitlines()[0].split() == ["action", "network", "expires", "hits"]
    assert len(table.splitlines()) == 5

    status, out, _ = cli("rate-limit", "--pps", "100", "--burst", "200", "--ports", "443,80")
    assert status == 0
    assert out.endswith(": 100 pps, burst 200, ports 80,443\n")
    stats = cli.json("stats")
    assert set(stats) == {"packets", "bytes", "rate_drops"}
    assert set(stats["packets"]) == {"pass", "allow", "block", "rate", "malformed", "control"}
    assert list(stats["rate_drops"].values()) == [0]
    status, table, _ = cli("stats")
    assert table.splitlines()[0].split() == ["reason", "packets", "bytes"]
    assert cli("rate-limit", "--clear") == (0, f"removed every rate limit on {pair.rx}\n", "")
    assert cli.json("stats")["rate_drops"] == {}
    assert isinstance(cli.json("top", "-n", "3"), list)

    assert cli("unblock", "203.0.113.7") == (0, "unblocked 203.0.113.7\n", "")
    assert cli("unblock", "203.0.113.7") == (0, "no block rule for 203.0.113.7\n", "")
    assert cli("disallow", "192.0.2.0/24") == (0, "disallowed 192.0.2.0/24\n", "")
    assert cli("block", "192.0.2.200", "--ttl", "0.001")[0] == 0
    time.sleep(0.01)  # let it expire: gc removes only what already stopped matching
    assert cli("gc") == (0, "removed 1 expired rule\n", "")

    status, out, _ = cli("detach", "--keep-maps")
    assert out == f"detached from {pair.rx}; rules and maps kept under {pins}/{pair.rx}\n"
    assert not xdp_attached(pair.rx)
    assert [r["network"] for r in cli.json("rules")] == ["198.51.100.0/24", "2001:db8::/32"]
    # attaching again reuses the pinned maps, rules included
    assert cli("attach", "--mode", "generic")[0] == 0
    assert len(cli.json("rules")) == 2
    status, out, _ = cli("detach")
    assert out == f"detached from {pair.rx}; removed {pins}/{pair.rx}\n"
    assert not xdp_attached(pair.rx)
    assert not (pins / pair.rx).exists()


def test_blocked_source_is_dropped_on_the_wire(
    cli: Cli, pair: VethPair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gen = TrafficGen(build_trafficgen(tmp_path), pair)
    assert cli("attach", "--mode", "generic")[0] == 0
    assert cli("block", "203.0.113.0/24")[0] == 0
    assert cli("allow", pair.tx_ip4)[0] == 0  # the settle marker's source
    with UdpSink(pair.rx_ip4) as sink:
        gen.send(["203.0.113.7", "198.51.100.9"], count=200, dport=sink.port)
        got = sink.settle(gen)
    assert got["198.51.100.9"] == 100
    assert got["203.0.113.7"] == 0
    stats = cli.json("stats")
    assert stats["packets"]["block"] == 100
    rules = {r["network"]: r["hits"] for r in cli.json("rules")}
    assert rules["203.0.113.0/24"] == 100
    assert cli("detach")[0] == 0


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["block", "{iface}", "10.0.0.1/8"], 2, "did you mean 10.0.0.0/8?"),
        (["block", "{iface}", "203.0.113.7", "--ttl", "-1"], 2, "ttl must be a positive"),
        (["rate-limit", "{iface}", "--pps", "0", "--burst", "1"], 2, "pps must be"),
        (["load-list", "{iface}", "/nonexistent/list.txt"], 2, "/nonexistent/list.txt"),
        (["attach", "{iface}", "--mode", "generic"], 0, ""),
    ],
)
def test_bad_input_exits_2_without_a_traceback(
    pair: VethPair, pins: Path, args: list[str], status: int, message: str
) -> None:
    argv = [a.format(iface=pair.rx) for a in args]
    if args[0] != "attach":
        assert run_process("attach", pair.rx, "--pin-root", str(pins)).returncode == 0
    try:
        proc = run_process(*argv, "--pin-root", str(pins))
    finally:
        with Shield.open(pair.rx, pin_root=pins) as shield:
            shield.remove()
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr
    if message:
        assert proc.stderr.startswith("kit-netcore: ")
        assert message in proc.stderr
        assert proc.stdout == ""


def test_errors_without_a_shield(pins: Path, pair: VethPair) -> None:
    missing = run_process("stats", pair.rx, "--pin-root", str(pins))
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"kit-netcore: no shield pinned at {pins}/{pair.rx}")
    assert "Traceback" not in missing.stderr
    unknown = run_process("attach", "nosuchif0", "--pin-root", str(pins))
    assert unknown.returncode == 2
    assert unknown.stderr == "kit-netcore: no network interface 'nosuchif0' (see `ip link`).\n"


def test_without_privileges_the_message_names_them(pins: Path, pair: VethPair) -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        _unavailable("setpriv (util-linux) is not installed")
    assert setpriv is not None
    # still uid 0 (so files stay readable) but with no capability at all: the BPF calls
    # themselves are refused
    proc = subprocess.run(
        [
            setpriv,
            "--inh-caps=-all",
            "--bounding-set=-all",
            sys.executable,
            "-m",
            "kit_netcore.cli",
            "attach",
            pair.rx,
            "--pin-root",
            str(pins),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("kit-netcore: ")
    assert proc.stderr.rstrip().endswith(
        "attaching XDP needs root or CAP_BPF + CAP_NET_ADMIN (CAP_SYS_ADMIN on kernels < 5.8)"
    )
    assert not xdp_attached(pair.rx)


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["rate-limit", "eth0", "--pps", "10"]) == 2
    assert "--burst is required with --pps" in capsys.readouterr().err
    assert main(["rate-limit", "eth0", "--clear", "--burst", "3"]) == 2
    assert main(["rate-limit", "eth0", "--pps", "10", "--burst", "3", "--ports", "80,x"]) == 2
    assert "not a comma-separated list of ports" in capsys.readouterr().err
    assert main(["attach", "eth0", "--mode", "turbo"]) == 2
    assert main(["--help"]) == 0
    assert "attach" in capsys.readouterr().out
