"""The kernel shield's lifecycle: load, pin, open from another process, attach in each
mode, atomic replace, detach, remove, and the errors on the way. Traffic itself is in
test_traffic.py; verdicts against the engine in test_differential.py.

Needs root: skipped without it, a failure in CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _netns import in_ci, pin_root, traffic_unavailable, xdp_prog_id

from kit_netcore import (
    ConfigurationError,
    InterfaceNotFound,
    NetcorePermissionError,
    Shield,
    ShieldNotFound,
)
from kit_netcore._native import lib


@pytest.fixture(autouse=True)
def _root() -> None:
    why = traffic_unavailable()
    if why:
        if in_ci():
            pytest.fail(f"{why}; CI must run kit-netcore's kernel tests as root")
        pytest.skip(why)


@pytest.fixture
def pins() -> Iterator[Path]:
    with pin_root() as path:
        yield path


@pytest.fixture
def veth() -> Iterator[str]:
    name = f"ncs{os.getpid() % 100000}"
    subprocess.run(
        ["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"], check=True
    )
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    subprocess.run(["ip", "link", "set", name + "p", "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


def _frame(src: bytes = bytes([192, 0, 2, 1])) -> bytes:
    ip = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]) + src + bytes([10, 0, 0, 1])
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + bytes([0, 1, 0, 53, 0, 8, 0, 0])


def test_load_pins_every_map_and_the_program(pins: Path, veth: str) -> None:
    shield = Shield.load(veth, pin_root=pins)
    try:
        names = sorted(p.name for p in (pins / veth).iterdir())
        assert "prog" in names and "nc_block4" in names and len(names) == 17
        assert shield.attached_mode is None
        assert shield.test_run(_frame())[0] == 2
        shield.block("192.0.2.0/24")
        assert shield.test_run(_frame())[0] == 1
    finally:
        shield.remove()
    assert not pins.exists() or not (pins / veth).exists()


def test_rules_survive_a_reload_and_reach_another_process(pins: Path, veth: str) -> None:
    first = Shield.load(veth, pin_root=pins)
    first.block("198.51.100.0/24", ttl=600)
    first.close()
    shield = Shield.load(veth, pin_root=pins)  # pinned maps are reused
    try:
        assert [str(r.network) for r in shield.rules()] == ["198.51.100.0/24"]
        script = textwrap.dedent(
            f"""
            from kit_netcore import Shield
            with Shield.open({veth!r}, pin_root={str(pins)!r}) as other:
                other.block("192.0.2.1")
                print(len(other.rules()))
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "2"
        assert shield.test_run(_frame())[0] == 1  # the other process's rule, no reload
    finally:
        shield.remove()


@pytest.mark.parametrize("mode", ["native", "generic", "auto"])
def test_attach_detach_in_each_mode(pins: Path, veth: str, mode: str) -> None:
    shield = Shield.load(veth, pin_root=pins)
    try:
        shield.attach(mode=mode)  # type: ignore[arg-type]
        assert shield.attached_mode == ("native" if mode == "auto" else mode)
        assert xdp_prog_id(veth) is not None
        shield.detach()
        assert shield.attached_mode is None and xdp_prog_id(veth) is None
        shield.detach()  # a no-op when not attached
    finally:
        shield.remove()


def test_reload_replaces_the_attached_program_atomically(pins: Path, veth: str) -> None:
    shield = Shield.load(veth, pin_root=pins)
    shield.attach(mode="native")
    old_id = xdp_prog_id(veth)
    shield.block("192.0.2.1")
    shield.close()
    newer = Shield.load(veth, pin_root=pins)
    try:
        newer.attach()  # auto keeps the running mode and swaps in one netlink call
        new_id = xdp_prog_id(veth)
        assert new_id is not None and new_id != old_id
        assert newer.attached_mode == "native"
        assert [str(r.network) for r in newer.rules()] == ["192.0.2.1/32"]
        newer.attach(mode="generic")  # a mode change detaches first
        assert newer.attached_mode == "generic"
    finally:
        newer.remove()
    assert xdp_prog_id(veth) is None


def test_another_xdp_program_is_left_alone(pins: Path, veth: str, tmp_path: Path) -> None:
    source = tmp_path / "other.bpf.c"
    source.write_text(
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n"
        'char LICENSE[] SEC("license") = "GPL";\n'
        'SEC("xdp") int other_prog(struct xdp_md *ctx) { return XDP_PASS; }\n'
    )
    obj = tmp_path / "other.o"
    multiarch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True)
    subprocess.run(
        [
            *("clang", "-O2", "-target", "bpf", f"-I/usr/include/{multiarch.stdout.strip()}"),
            *("-c", str(source), "-o", str(obj)),
        ],
        check=True,
    )
    other_pins = pins / "other"
    other_pins.mkdir()
    fd = lib.nc_load(str(obj).encode(), str(other_pins).encode())
    assert fd >= 0
    ifindex = int(Path(f"/sys/class/net/{veth}/ifindex").read_text())
    assert lib.nc_attach(ifindex, fd, 1, -1) == 0
    shield = Shield.load(veth, pin_root=pins)
    try:
        with pytest.raises(ConfigurationError, match=r"another XDP program .*other_prog"):
            shield.attach()
        shield.detach()  # not ours: left attached
        assert xdp_prog_id(veth) is not None
    finally:
        shield.remove()
        lib.nc_detach(ifindex, 1)
        os.close(fd)


def test_errors_name_what_to_do(pins: Path, tmp_path: Path) -> None:
    with pytest.raises(InterfaceNotFound, match="no network interface 'nonexistent0'"):
        Shield.load("nonexistent0", pin_root=pins)
    with pytest.raises(ShieldNotFound, match="load one first"):
        Shield.open("lo", pin_root=pins)
    with pytest.raises(ConfigurationError, match="not on a BPF file system"):
        Shield.load("lo", pin_root=tmp_path)
    with pytest.raises(ConfigurationError, match="does not exist"):
        Shield.load("lo", pin_root=pins, object_path=tmp_path / "missing.o")
    shield = Shield.load("lo", pin_root=pins)
    try:
        with pytest.raises(ConfigurationError, match="mode must be"):
            shield.attach(mode="turbo")  # type: ignore[arg-type]
    finally:
        shield.remove()


def _in_child_as_nobody(action: Callable[[], str]) -> str:
    """Run ``action`` in a forked child that dropped to uid/gid 65534 (no capabilities
    left) and return what it printed; kit_netcore is already imported, no exec needed."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            message = action()
        except BaseException as exc:
            message = f"unexpected {type(exc).__name__}: {exc}"
        os.write(write_end, message.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read().decode()
    os.waitpid(pid, 0)
    return output


def test_without_privileges_a_permission_error_names_the_capability(pins: Path, veth: str) -> None:
    os.chmod(pins, 0o777)  # so the failure is the BPF call, not the directory
    shield = Shield.load(veth, pin_root=pins / "loaded")

    def load() -> str:
        try:
            Shield.load(veth, pin_root=pins)
        except NetcorePermissionError as exc:
            return f"{isinstance(exc, PermissionError)} {exc}"
        return "loaded"

    def attach() -> str:
        try:
            shield.attach()
        except NetcorePermissionError as exc:
            return f"{isinstance(exc, PermissionError)} {exc}"
        return "attached"

    try:
        for action in (load, attach):
            output = _in_child_as_nobody(action)
            assert output.startswith("True "), output
            assert "CAP_BPF + CAP_NET_ADMIN" in output
        assert xdp_prog_id(veth) is None
    finally:
        shield.remove()
