"""``ping()``: the shields' health check. The userspace shield is always healthy; the kernel
shield follows its pins, its maps and its attachment, changed behind its back by ``ip``,
another handle or the interface going away.

The kernel tests need root: skipped without it, a failure in CI.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _netns import in_ci, pin_root, traffic_unavailable, xdp_prog_id

from kit_netcore import ConfigurationError, Shield, UserspaceShield


def test_userspace_shield_is_always_healthy() -> None:
    shield = UserspaceShield()
    assert shield.ping() is True
    shield.block("203.0.113.0/24")
    assert shield.ping(timeout=0.1) is True


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), "1", True, None])
def test_a_bad_timeout_is_refused(timeout: object) -> None:
    with pytest.raises(ConfigurationError, match="timeout="):
        UserspaceShield().ping(timeout=timeout)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- kernel


@pytest.fixture
def kernel() -> None:
    why = traffic_unavailable()
    if why:
        if in_ci():
            pytest.fail(f"{why}; CI must run kit-netcore's kernel tests as root")
        pytest.skip(why)


@pytest.fixture
def pins(kernel: None) -> Iterator[Path]:
    with pin_root() as path:
        yield path


@pytest.fixture
def veth(kernel: None) -> Iterator[str]:
    name = f"ncp{os.getpid() % 100000}"
    subprocess.run(
        ["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"], check=True
    )
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    subprocess.run(["ip", "link", "set", name + "p", "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)


def _xdp_off(ifname: str) -> None:
    """Detach whatever XDP program is on ``ifname``, the way an operator would."""
    subprocess.run(["ip", "link", "set", "dev", ifname, "xdpgeneric", "off"], check=True)
    assert xdp_prog_id(ifname) is None


def test_kernel_shield_follows_its_attachment(pins: Path, veth: str) -> None:
    shield = Shield.load(veth, pin_root=pins)
    try:
        assert shield.ping() is True  # loaded and pinned; not attached, not expected to be
        shield.attach(mode="generic")
        assert shield.ping() is True
        _xdp_off(veth)  # detached behind its back: the interface is unprotected
        assert shield.ping() is False
        shield.attach(mode="generic")
        assert shield.ping() is True
        shield.detach()  # detached on purpose: healthy, nothing expected
        assert shield.ping() is True
    finally:
        shield.remove()
    assert shield.ping() is False  # removed: closed and unpinned


def test_an_opened_handle_expects_what_it_found(pins: Path, veth: str) -> None:
    loader = Shield.load(veth, pin_root=pins)
    try:
        with Shield.open(veth, pin_root=pins) as idle:
            assert idle.ping() is True  # not attached when opened
        loader.attach(mode="generic")
        with Shield.open(veth, pin_root=pins) as watcher:
            assert watcher.ping() is True
            _xdp_off(veth)
            assert watcher.ping() is False
        assert watcher.ping() is False  # closed
    finally:
        loader.remove()


def test_kernel_shield_is_down_once_unpinned_elsewhere(pins: Path, veth: str) -> None:
    shield = Shield.load(veth, pin_root=pins)
    other = Shield.open(veth, pin_root=pins)
    try:
        assert other.ping() is True
        shield.remove()  # e.g. `kit-netcore remove` from another process
        assert other.ping() is False
    finally:
        other.close()


def test_kernel_shield_is_down_when_its_interface_goes_away(pins: Path, veth: str) -> None:
    shield = Shield.load(veth, pin_root=pins)
    try:
        shield.attach(mode="generic")
        assert shield.ping() is True
        subprocess.run(["ip", "link", "del", veth], check=True)
        assert shield.ping() is False
    finally:
        shield.remove()
