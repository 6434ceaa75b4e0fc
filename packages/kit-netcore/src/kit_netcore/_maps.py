"""Map backends: the kernel's pinned BPF maps, or the userspace engine's tables. Both take
and give raw bytes in the layouts of :mod:`kit_netcore._layout`, so one rule manager
drives either.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from kit_netcore import _layout
from kit_netcore._native import ffi, lib
from kit_netcore.exceptions import (
    BackendError,
    KitNetcoreError,
    NetcorePermissionError,
    ShieldFull,
    ShieldNotFound,
)

BPF_ANY = 0
BPF_NOEXIST = 1


def raise_for(code: int, what: str) -> None:
    """Raise the kit-netcore error for a negative errno from the C library."""
    if code >= 0:
        return
    number = -code
    # EPERM is a missing capability; EACCES is one too for an unprivileged process, but
    # for root it is the verifier rejecting the program (a bug, not a permission).
    if number == errno.EPERM or (number == errno.EACCES and os.geteuid() != 0):
        raise NetcorePermissionError(f"{what} was refused")
    if number == errno.E2BIG:
        raise ShieldFull(f"{what}: the map is full")
    raise BackendError(what, errno=number)


class MapBackend(Protocol):
    """What the rule manager needs from a set of maps."""

    ncpus: int

    def lookup(self, map_id: int, key: bytes) -> bytes | None: ...
    def update(self, map_id: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None: ...
    def delete(self, map_id: int, key: bytes) -> bool: ...
    def keys(self, map_id: int) -> Iterator[bytes]: ...
    def update_batch(self, map_id: int, keys: Sequence[bytes], values: Sequence[bytes]) -> None: ...
    def close(self) -> None: ...


def _value_size(map_id: int, ncpus: int) -> int:
    spec = _layout.MAPS[map_id]
    if spec.percpu:
        return ((spec.value_size + 7) // 8 * 8) * ncpus
    return spec.value_size


class KernelMaps:
    """The maps pinned under ``pin_dir``, opened by path (``bpf_obj_get``)."""

    def __init__(self, pin_dir: str) -> None:
        self.ncpus = int(lib.nc_num_possible_cpus())
        if self.ncpus <= 0:
            raise_for(self.ncpus or -errno.EINVAL, "reading the possible CPUs")
        self._fds: list[int] = []
        try:
            for spec in _layout.MAPS:
                path = os.path.join(pin_dir, spec.name)
                fd = int(lib.nc_obj_get(path.encode()))
                if fd == -errno.ENOENT:
                    raise ShieldNotFound(
                        f"no shield map pinned at {path}: load the shield first "
                        "(Shield.load(...) or `kit-netcore attach IFACE`), or pass the "
                        "pin_root it was loaded with"
                    )
                raise_for(fd, f"opening the pinned map {path}")
                self._fds.append(fd)
        except KitNetcoreError:
            self.close()
            raise

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def _fd(self, map_id: int) -> int:
        if not self._fds:
            raise BackendError("the shield's maps are closed")
        return self._fds[map_id]

    def lookup(self, map_id: int, key: bytes) -> bytes | None:
        size = _value_size(map_id, self.ncpus)
        value = ffi.new("char[]", size)
        code = int(lib.nc_map_lookup(self._fd(map_id), key, value))
        if code == -errno.ENOENT:
            return None
        raise_for(code, f"looking up {_layout.MAPS[map_id].name}")
        return bytes(ffi.buffer(value, size))

    def update(self, map_id: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        code = int(lib.nc_map_update(self._fd(map_id), key, value, flags))
        raise_for(code, f"updating {_layout.MAPS[map_id].name}")

    def delete(self, map_id: int, key: bytes) -> bool:
        code = int(lib.nc_map_delete(self._fd(map_id), key))
        if code == -errno.ENOENT:
            return False
        raise_for(code, f"deleting from {_layout.MAPS[map_id].name}")
        return True

    def keys(self, map_id: int) -> Iterator[bytes]:
        size = _layout.MAPS[map_id].key_size
        fd = self._fd(map_id)
        current: Any = ffi.NULL
        while True:
            nxt = ffi.new("char[]", size)
            code = int(lib.nc_map_next_key(fd, current, nxt))
            if code == -errno.ENOENT:
                return
            raise_for(code, f"listing {_layout.MAPS[map_id].name}")
            key = bytes(ffi.buffer(nxt, size))
            yield key
            current = nxt

    def update_batch(self, map_id: int, keys: Sequence[bytes], values: Sequence[bytes]) -> None:
        if not keys:
            return
        count = ffi.new("uint32_t *", len(keys))
        code = int(
            lib.nc_map_update_batch(self._fd(map_id), b"".join(keys), b"".join(values), count, 0)
        )
        if code == -errno.EINVAL and len(keys) > 0:  # no batch support: one call each
            for key, value in zip(keys, values, strict=True):
                self.update(map_id, key, value)
            return
        raise_for(code, f"batch update of {_layout.MAPS[map_id].name} ({count[0]} written)")


class EngineMaps:
    """The tables of one userspace engine (one CPU slot)."""

    ncpus = 1

    def __init__(self) -> None:
        engine = lib.nc_engine_new()
        if engine == ffi.NULL:
            raise MemoryError("the userspace engine could not allocate its tables")
        self.engine: Any = ffi.gc(engine, lib.nc_engine_free)

    def close(self) -> None:
        """Nothing to release early: the engine is freed with this object."""

    def lookup(self, map_id: int, key: bytes) -> bytes | None:
        size = _value_size(map_id, 1)
        value = ffi.new("char[]", size)
        code = int(lib.nc_engine_lookup(self.engine, map_id, key, value))
        if code == -errno.ENOENT:
            return None
        raise_for(code, f"looking up {_layout.MAPS[map_id].name}")
        return bytes(ffi.buffer(value, size))

    def update(self, map_id: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        code = int(lib.nc_engine_update(self.engine, map_id, key, value, flags))
        raise_for(code, f"updating {_layout.MAPS[map_id].name}")

    def delete(self, map_id: int, key: bytes) -> bool:
        code = int(lib.nc_engine_delete(self.engine, map_id, key))
        if code == -errno.ENOENT:
            return False
        raise_for(code, f"deleting from {_layout.MAPS[map_id].name}")
        return True

    def keys(self, map_id: int) -> Iterator[bytes]:
        # Collected first: a table may be rehashed by an insert while we iterate.
        size = _layout.MAPS[map_id].key_size
        found: list[bytes] = []
        current: Any = ffi.NULL
        while True:
            nxt = ffi.new("char[]", size)
            code = int(lib.nc_engine_next_key(self.engine, map_id, current, nxt))
            if code == -errno.ENOENT:
                break
            raise_for(code, f"listing {_layout.MAPS[map_id].name}")
            found.append(bytes(ffi.buffer(nxt, size)))
            current = nxt
        yield from found

    def update_batch(self, map_id: int, keys: Sequence[bytes], values: Sequence[bytes]) -> None:
        for key, value in zip(keys, values, strict=True):
            self.update(map_id, key, value)
