"""The kernel shield: kit-netcore's XDP program loaded with its maps pinned under bpffs,
attached to an interface, and steered through the pinned maps from any process.

Lifecycle::

    Shield.load(ifname)   load the program, pin (or reuse) its maps under <pin_root>/<ifname>
    .attach(mode)         attach it (an atomic replace if our program is already there)
    Shield.open(ifname)   another process: the same maps, through their pins
    .detach()             detach; the maps and rules stay pinned
    .remove()             detach and unpin everything: nothing is left behind

A netlink attach and the pins outlive the process that made them: the shield keeps
filtering after your program exits, until someone detaches it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Literal

from kit_netcore import _layout
from kit_netcore._health import check_timeout
from kit_netcore._maps import KernelMaps, raise_for
from kit_netcore._native import ffi, lib
from kit_netcore._rules import RuleSet
from kit_netcore.exceptions import (
    ConfigurationError,
    InterfaceNotFound,
    KitNetcoreError,
    NetcorePermissionError,
    ShieldNotFound,
)

__all__ = ["DEFAULT_PIN_ROOT", "Shield"]

#: Where maps and the program are pinned: ``<pin_root>/<ifname>/<map name>`` and ``.../prog``.
DEFAULT_PIN_ROOT = "/sys/fs/bpf/kit_netcore"

Mode = Literal["auto", "native", "generic"]
_MODES: dict[str, int] = {"auto": 0, "generic": 1, "native": 2}
_MODE_NAMES = {1: "generic", 2: "native"}


def _object_path() -> Path:
    return Path(str(resources.files("kit_netcore") / "bpf" / "shield.bpf.o"))


def _ifindex(ifname: str) -> int:
    if not isinstance(ifname, str) or not ifname or len(ifname) > 15 or "/" in ifname:
        raise InterfaceNotFound(f"{ifname!r} is not an interface name (see `ip link`).")
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise InterfaceNotFound(f"no network interface {ifname!r} (see `ip link`).") from None


def _fs_type(path: Path) -> str | None:
    """The file system type of the mount that holds ``path`` (from /proc/self/mounts)."""
    best, fstype = "", None
    resolved = str(path.resolve())
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            parts = line.split()
            if len(parts) < 3:
                continue
            point = parts[1].replace("\\040", " ")
            inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, fstype = point, parts[2]
    return fstype


def _check_pin_root(pin_root: Path) -> None:
    existing = pin_root
    while not existing.exists():
        existing = existing.parent
    if _fs_type(existing) != "bpf":
        raise ConfigurationError(
            f"pin_root {pin_root} is not on a BPF file system: mount one "
            "(`mount -t bpf bpf /sys/fs/bpf`) or pass a pin_root under a bpffs mount."
        )


class Shield(RuleSet):
    """kit-netcore's XDP program on one interface, with its pinned maps.

    Use :meth:`load` (as root, or with ``CAP_BPF`` + ``CAP_NET_ADMIN``) or :meth:`open`,
    never the constructor. The rule API (``block``, ``allow``, ``rate_limit``,
    ``load_list``, ``stats``, ``rules``, ``top_sources``, ``gc``) writes the maps the
    running program reads: a change takes effect on the next packet, with no reload.

    Example (as root)::

        shield = Shield.load("eth0")
        shield.allow("10.0.0.0/8")          # your own access first
        shield.attach(mode="generic")       # try generic mode before native
        shield.block("203.0.113.0/24", ttl=3600)
        print(shield.stats().packets)
        shield.remove()                     # detach and unpin
    """

    def __init__(self, ifname: str, pin_dir: Path, prog_fd: int, maps: KernelMaps) -> None:
        self.ifname = ifname
        self.pin_dir = pin_dir
        self._prog_fd = prog_fd
        self._maps = maps
        # ping() expects the program attached: since attach(), or since open() found it so.
        self._expect_attached = False

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def load(
        cls,
        ifname: str,
        *,
        pin_root: str | os.PathLike[str] = DEFAULT_PIN_ROOT,
        drop_malformed: bool = False,
        track_sources: bool = False,
        object_path: str | os.PathLike[str] | None = None,
    ) -> Shield:
        """Load the program for ``ifname`` and pin its maps under ``pin_root/ifname``.
        Maps already pinned there (an earlier load) are reused with their rules. The
        program is not attached yet: call :meth:`attach`."""
        _ifindex(ifname)
        root = Path(pin_root)
        _check_pin_root(root)
        pin_dir = root / ifname
        obj = Path(object_path) if object_path is not None else _object_path()
        if not obj.is_file():
            raise ConfigurationError(f"the BPF object {obj} does not exist; reinstall kit-netcore.")
        try:
            pin_dir.mkdir(parents=True, exist_ok=True)
        except PermissionError:
            raise NetcorePermissionError(f"cannot create {pin_dir}") from None
        fd = int(lib.nc_load(str(obj).encode(), str(pin_dir).encode()))
        if fd < 0:
            log = ffi.string(lib.nc_last_error()).decode(errors="replace").strip().splitlines()
            detail = " / ".join(line.strip() for line in log[-3:] if line.strip())
            what = f"loading {obj.name} for {ifname}" + (f" ({detail})" if detail else "")
            raise_for(fd, what)
        try:
            maps = KernelMaps(str(pin_dir))
        except BaseException:
            os.close(fd)
            raise
        shield = cls(ifname, pin_dir, fd, maps)
        shield._set_flags(drop_malformed=drop_malformed, track_sources=track_sources)
        return shield

    @classmethod
    def open(cls, ifname: str, *, pin_root: str | os.PathLike[str] = DEFAULT_PIN_ROOT) -> Shield:
        """The shield loaded for ``ifname`` (by this or another process), through its pins."""
        pin_dir = Path(pin_root) / ifname
        prog = pin_dir / "prog"
        fd = int(lib.nc_obj_get(str(prog).encode()))
        if fd == -errno.ENOENT:
            raise ShieldNotFound(
                f"no shield pinned at {pin_dir}: load one first (Shield.load({ifname!r}) or "
                f"`kit-netcore attach {ifname}`), or pass the pin_root it was loaded with."
            )
        raise_for(fd, f"opening {prog}")
        try:
            maps = KernelMaps(str(pin_dir))
        except BaseException:
            os.close(fd)
            raise
        shield = cls(ifname, pin_dir, fd, maps)
        with contextlib.suppress(KitNetcoreError):  # the interface may be gone: not attached
            shield._expect_attached = shield.attached_mode is not None
        return shield

    def close(self) -> None:
        """Close this process's handles; the program and maps stay (pinned, attached)."""
        self._maps.close()
        if self._prog_fd >= 0:
            os.close(self._prog_fd)
            self._prog_fd = -1

    def __enter__(self) -> Shield:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Shield {self.ifname} pinned at {self.pin_dir}>"

    # ------------------------------------------------------------------ health

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if this handle is open, the program is still pinned and its
        maps answer, and, when it was attached (by :meth:`attach` on this handle, or
        already when :meth:`open` opened it) and not detached since, it is still attached
        to the interface. False, never an exception, otherwise: someone ran
        ``kit-netcore detach`` or ``remove``, ``ip link set dev IF xdp off``, the
        interface went away, or the handle was closed. A few system calls, well within
        ``timeout``.

        Example (as root)::

            shield = Shield.load("eth0")
            shield.ping()                   # True: loaded and pinned, not attached yet
            shield.attach(mode="generic")
            shield.ping()                   # True while it stays attached
        """
        check_timeout(timeout)
        if self._prog_fd < 0:
            return False
        try:
            pinned = int(lib.nc_obj_get(str(self.pin_dir / "prog").encode()))
            if pinned < 0:
                return False
            os.close(pinned)
            self._config()  # the maps answer
            if self._expect_attached:
                prog_id, _ = self._query()
                return self._ours(prog_id)
        except (KitNetcoreError, OSError):
            return False
        return True

    # ------------------------------------------------------------------ attach

    def _prog_id(self) -> int:
        out = ffi.new("uint32_t *")
        raise_for(int(lib.nc_prog_id(self._prog_fd, out)), "reading the program id")
        return int(out[0])

    def _query(self) -> tuple[int, int]:
        prog_id = ffi.new("uint32_t *")
        mode = ffi.new("int *")
        code = int(lib.nc_query(_ifindex(self.ifname), prog_id, mode))
        raise_for(code, f"querying XDP on {self.ifname}")
        return int(prog_id[0]), int(mode[0])

    @property
    def attached_mode(self) -> str | None:
        """``"native"`` or ``"generic"`` while this shield's program is attached, else None."""
        prog_id, mode = self._query()
        return _MODE_NAMES.get(mode) if self._ours(prog_id) else None

    def attach(self, mode: Mode = "auto") -> None:
        """Attach the program: ``"native"`` (in the driver), ``"generic"`` (after the
        kernel builds an skb; works everywhere, slower) or ``"auto"`` (native, else
        generic). If a kit-netcore program is already attached it is replaced atomically
        (no moment without filtering); any other XDP program is left alone and refused."""
        if mode not in _MODES:
            raise ConfigurationError(f"mode must be 'auto', 'native' or 'generic', not {mode!r}.")
        ifindex = _ifindex(self.ifname)
        current, current_mode = self._query()
        old_fd = -1
        if current:
            old_fd = int(lib.nc_prog_fd_by_id(current))
            raise_for(old_fd, f"opening the XDP program attached to {self.ifname}")
            name = ffi.new("char[16]")
            raise_for(int(lib.nc_prog_name(old_fd, name)), "reading the attached program's name")
            if ffi.string(name) != b"kit_shield":
                os.close(old_fd)
                raise ConfigurationError(
                    f"another XDP program (id {current}, {ffi.string(name).decode()!r}) is "
                    f"attached to {self.ifname}; detach it first (`ip link set dev "
                    f"{self.ifname} xdp off`)."
                )
            if mode != "auto" and _MODE_NAMES.get(current_mode) != mode:
                # a replace cannot change the mode: detach, then attach
                raise_for(
                    int(lib.nc_detach(ifindex, current_mode)), f"detaching from {self.ifname}"
                )
                os.close(old_fd)
                old_fd = -1
            elif mode == "auto":
                mode = _MODE_NAMES.get(current_mode, "auto")  # type: ignore[assignment]
        try:
            code = int(lib.nc_attach(ifindex, self._prog_fd, _MODES[mode], old_fd))
        finally:
            if old_fd >= 0:
                os.close(old_fd)
        if code in (-errno.EPERM, -errno.EACCES):
            raise NetcorePermissionError(f"attaching XDP to {self.ifname} was refused")
        if code == -errno.EOPNOTSUPP and mode == "native":
            raise ConfigurationError(
                f"the driver of {self.ifname} has no native XDP support: use mode='generic'."
            )
        raise_for(code, f"attaching XDP ({mode}) to {self.ifname}")
        self._expect_attached = True

    def _ours(self, prog_id: int) -> bool:
        """Whether ``prog_id`` is this handle's program or the one pinned for this shield
        now (a later load may have replaced ours)."""
        if not prog_id:
            return False
        if self._prog_fd >= 0 and prog_id == self._prog_id():
            return True
        pinned = int(lib.nc_obj_get(str(self.pin_dir / "prog").encode()))
        if pinned < 0:
            return False
        try:
            out = ffi.new("uint32_t *")
            return lib.nc_prog_id(pinned, out) == 0 and int(out[0]) == prog_id
        finally:
            os.close(pinned)

    def detach(self) -> None:
        """Detach this shield's program (or the one a later load put in its place); rules
        and counters stay pinned. A no-op when it is not attached; another program attached
        there is left alone."""
        prog_id, mode = self._query()
        if not self._ours(prog_id):
            self._expect_attached = False
            return
        code = int(lib.nc_detach(_ifindex(self.ifname), mode))
        if code in (-errno.EPERM, -errno.EACCES):
            raise NetcorePermissionError(f"detaching XDP from {self.ifname} was refused")
        raise_for(code, f"detaching XDP from {self.ifname}")
        self._expect_attached = False

    def remove(self) -> None:
        """Detach and unpin the program and every map: nothing is left behind (the kernel
        frees them once the last handle closes)."""
        with contextlib.suppress(InterfaceNotFound):  # gone, and its XDP program with it
            self.detach()
        self.close()
        shutil.rmtree(self.pin_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the pin root, when this was its last shield
            self.pin_dir.parent.rmdir()

    # ------------------------------------------------------------------ testing

    def test_run(self, frame: bytes, *, repeat: int = 1) -> tuple[int, int]:
        """Run one frame through the loaded program with ``BPF_PROG_TEST_RUN`` (nothing is
        sent or dropped for real): ``(verdict, mean ns per run)``, verdict 1 drop, 2 pass.
        The program's counters and buckets do change."""
        retval = ffi.new("uint32_t *")
        duration = ffi.new("uint32_t *")
        code = int(lib.nc_test_run(self._prog_fd, frame, len(frame), repeat, retval, duration))
        raise_for(code, "BPF_PROG_TEST_RUN")
        return int(retval[0]), int(duration[0])


_ = _layout  # the layouts are used through RuleSet
