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


class _CallMaps:
    """The map calls both backends share, over four C primitives that return 0 or -errno."""

    ncpus: int

    def _lookup(self, map_id: int, key: bytes, value: Any) -> int:
        raise NotImplementedError

    def _update(self, map_id: int, key: bytes, value: bytes, flags: int) -> int:
        raise NotImplementedError

    def _delete(self, map_id: int, key: bytes) -> int:
        raise NotImplementedError

    def _next_key(self, map_id: int, key: Any, next_key: Any) -> int:
        raise NotImplementedError

    def lookup(self, map_id: int, key: bytes) -> bytes | None:
        size = _value_size(map_id, self.ncpus)
        value = ffi.new("char[]", size)
        code = self._lookup(map_id, key, value)
        if code == -errno.ENOENT:
            return None
        raise_for(code, f"looking up {_layout.MAPS[map_id].name}")
        return bytes(ffi.buffer(value, size))

    def update(self, map_id: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        raise_for(self._update(map_id, key, value, flags), f"updating {_layout.MAPS[map_id].name}")

    def delete(self, map_id: int, key: bytes) -> bool:
        code = self._delete(map_id, key)
        if code == -errno.ENOENT:
            return False
        raise_for(code, f"deleting from {_layout.MAPS[map_id].name}")
        return True

    def keys(self, map_id: int) -> Iterator[bytes]:
        """Every key, collected before the first is yielded: the caller may change the map
        while it iterates (a kernel hash restarts a walk whose key was deleted, an engine
        table may be rehashed by an insert)."""
        size = _layout.MAPS[map_id].key_size
        found: list[bytes] = []
        current: Any = ffi.NULL
        while True:
            nxt = ffi.new("char[]", size)
            code = self._next_key(map_id, current, nxt)
            if code == -errno.ENOENT:
                break
            raise_for(code, f"listing {_layout.MAPS[map_id].name}")
            found.append(bytes(ffi.buffer(nxt, size)))
            current = nxt
        yield from found

    def update_batch(self, map_id: int, keys: Sequence[bytes], values: Sequence[bytes]) -> None:
        for key, value in zip(keys, values, strict=True):
            self.update(map_id, key, value)


class KernelMaps(_CallMaps):
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

    def _lookup(self, map_id: int, key: bytes, value: Any) -> int:
        return int(lib.nc_map_lookup(self._fd(map_id), key, value))

    def _update(self, map_id: int, key: bytes, value: bytes, flags: int) -> int:
        return int(lib.nc_map_update(self._fd(map_id), key, value, flags))

    def _delete(self, map_id: int, key: bytes) -> int:
        return int(lib.nc_map_delete(self._fd(map_id), key))

    def _next_key(self, map_id: int, key: Any, next_key: Any) -> int:
        return int(lib.nc_map_next_key(self._fd(map_id), key, next_key))

    def update_batch(self, map_id: int, keys: Sequence[bytes], values: Sequence[bytes]) -> None:
        """One ``bpf_map_update_batch`` call (one call per entry where the kernel has none)."""
        if not keys:
            return
        count = ffi.new("uint32_t *", len(keys))
        code = int(
            lib.nc_map_update_batch(self._fd(map_id), b"".join(keys), b"".join(values), count, 0)
        )
        if code == -errno.EINVAL:
            super().update_batch(map_id, keys, values)
            return
        raise_for(code, f"batch update of {_layout.MAPS[map_id].name} ({count[0]} written)")


class EngineMaps(_CallMaps):
    """The tables of one userspace engine (one CPU slot)."""

    ncpus = 1

    def __init__(self) -> None:
        engine = lib.nc_engine_new()
        if engine == ffi.NULL:
            raise MemoryError("the userspace engine could not allocate its tables")
        self.engine: Any = ffi.gc(engine, lib.nc_engine_free)

    def close(self) -> None:
        """Nothing to release early: the engine is freed with this object."""

    def _lookup(self, map_id: int, key: bytes, value: Any) -> int:
        return int(lib.nc_engine_lookup(self.engine, map_id, key, value))

    def _update(self, map_id: int, key: bytes, value: bytes, flags: int) -> int:
        return int(lib.nc_engine_update(self.engine, map_id, key, value, flags))

    def _delete(self, map_id: int, key: bytes) -> int:
        return int(lib.nc_engine_delete(self.engine, map_id, key))

    def _next_key(self, map_id: int, key: Any, next_key: Any) -> int:
        return int(lib.nc_engine_next_key(self.engine, map_id, key, next_key))
