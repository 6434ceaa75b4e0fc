"""``LocalStorage``: the ``Storage`` API over a directory, with atomic writes.

Layout under ``root``::

    root/avatars/42.png            the object "avatars/42.png", byte for byte
    root/avatars/.kit-tmp-1a2b...  a write in progress (never listed)
    root/.kit/meta/avatars/42.png  its content type and metadata (JSON "sidecar")

Path safety. Keys pass :func:`~kit_storage.validate_key`; segments starting with
``.kit`` are reserved (refused with ``InvalidKey``). Then every path is walked one
component at a time from a file descriptor of the resolved root, opening each folder
with ``O_NOFOLLOW | O_DIRECTORY`` and the final file with ``O_NOFOLLOW``, and doing every
create, rename and delete relative to the parent folder's descriptor (``dir_fd``). So a
symbolic link anywhere under the root is never followed, for reads or writes, and there
is no window between checking a path and using it: a key that runs into a symlink raises
``InvalidKey``.

Atomic writes. Data is streamed into ``.kit-tmp-<random>`` in the destination folder
(``O_CREAT | O_EXCL``), fsynced, renamed over the final name (``os.replace``) and the
folder fsynced; any error removes the temp file. A process killed mid-write leaves the
previous content whole and may leave a temp file on disk: ``list()`` never shows one and
:meth:`LocalStorage.cleanup_temp` removes old ones. ``if_not_exists=True`` uses
``os.link`` from the temp file, which fails atomically if the name is taken.

Sidecars are written atomically after the data and record the data file's inode, size
and modification time: a sidecar that does not match (left over from a crash between
the two renames) is ignored, and the object falls back to a content type guessed from
its key and no metadata. ``md5`` is ``None`` here: hashing would cost about a third of
the write throughput; the ``etag`` changes with every write (inode, mtime, size).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import json
import os
import secrets
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from kit_storage._common import (
    check_delimiter,
    check_metadata,
    check_range,
    check_timeout,
    content_type_for,
    download_stream,
    make_signer,
    read_chunk,
    require_signer,
    within,
)
from kit_storage._keys import validate_key, validate_prefix
from kit_storage._signing import (
    SignedRequest,
    check_content_type,
    check_download_name,
    validate_expires_in,
)
from kit_storage._types import CHUNK_SIZE, Data, Folder, ObjectInfo, open_data
from kit_storage.exceptions import (
    AlreadyExists,
    BackendUnavailable,
    ConfigurationError,
    InvalidData,
    InvalidKey,
    NotFound,
)

__all__ = ["LocalStorage"]

TEMP_PREFIX = ".kit-tmp-"
RESERVED_PREFIX = ".kit"
_META_DIR = (".kit", "meta")
# Attempts at creating a folder that concurrent deletes keep pruning (each is cheap).
_RETRIES = 100
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class _Missing(Exception):
    """Internal: a folder on the way to a key does not exist (or is a file)."""


class LocalStorage:
    """Objects stored as files under ``root``, written atomically, never outside it.

    ``root`` is created when missing (``create=False`` makes a missing root a
    :class:`~kit_storage.ConfigurationError`) and resolved once. ``base_url`` and
    ``secret`` enable :meth:`url` and :meth:`upload_url` (HMAC-signed links the Flask and
    FastAPI adapters serve). ``fsync=False`` skips the fsyncs: faster, but a power cut
    can lose or empty recent writes (a killed process cannot).

    Example::

        >>> import tempfile
        >>> storage = LocalStorage(tempfile.mkdtemp())
        >>> storage.put("reports/2026.csv", b"a,b\\n1,2\\n").size
        8
        >>> storage.get("reports/2026.csv")
        b'a,b\\n1,2\\n'
        >>> storage.put("../etc/passwd", b"x")
        Traceback (most recent call last):
        ...
        kit_storage.exceptions.InvalidKey: key '../etc/passwd' has a '..' segment; keys are relative paths without '.' or '..'
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        base_url: str | None = None,
        secret: bytes | str | None = None,
        create: bool = True,
        fsync: bool = True,
    ) -> None:
        if not isinstance(root, str | os.PathLike):
            raise ConfigurationError(f"root must be a path, not {type(root).__name__}")
        path = Path(root)
        if create:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise ConfigurationError(f"root {str(path)!r} exists and is not a folder") from None
            except OSError as exc:
                raise BackendUnavailable(f"cannot create root {path}: {exc.strerror}") from None
        if not path.is_dir():
            raise ConfigurationError(
                f"root {str(path)!r} is not an existing folder; create it or pass create=True"
            )
        self.root = Path(os.path.realpath(path))
        self.fsync = bool(fsync)
        self._signer = make_signer(base_url, secret)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if the root folder still exists and a file can be created
        in it (a ``.kit-ping-*`` file, removed at once; listings never show it). False,
        never an exception, when the root is gone, read-only or not writable, or the
        file system does not answer within ``timeout`` seconds.

        Example::

            >>> import shutil, tempfile
            >>> storage = LocalStorage(tempfile.mkdtemp())
            >>> storage.ping()
            True
            >>> shutil.rmtree(storage.root)
            >>> storage.ping()
            False
        """
        timeout = check_timeout(timeout)

        def probe() -> bool:
            name = f"{RESERVED_PREFIX}-ping-{secrets.token_hex(8)}"
            dfd = os.open(self.root, _DIR_FLAGS)
            try:
                os.close(os.open(name, _TEMP_FLAGS, 0o600, dir_fd=dfd))
                os.unlink(name, dir_fd=dfd)
            finally:
                os.close(dfd)
            return True

        return within(probe, timeout)

    # -- paths -----------------------------------------------------------------------

    def _key(self, key: str) -> tuple[str, list[str]]:
        key = validate_key(key)
        parts = key.split("/")
        for part in parts:
            if part.startswith(RESERVED_PREFIX):
                raise InvalidKey(
                    f"key {key!r} has a segment starting with {RESERVED_PREFIX!r}, which "
                    "LocalStorage reserves for its temporary and metadata files"
                )
        return key, parts

    def _open_dir(self, parts: Iterable[str], *, create: bool, key: str) -> int:
        """A descriptor of ``root/<parts...>``, walked without following symlinks.

        Raises ``_Missing`` when a folder is absent (and ``create`` is False) or is a file
        on a read; ``InvalidKey`` for a symlink or, on a write, a file in the way.
        """
        fd = self._root_fd()
        try:
            for part in parts:
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise _Missing from None
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                    child = self._open_child_dir(part, fd, key)
                except OSError as exc:
                    if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                        self._refuse_link(part, fd, key)
                        if not create:
                            raise _Missing from None
                        raise InvalidKey(
                            f"key {key!r} needs {part!r} to be a folder, but an object is "
                            "stored there (a local folder cannot also be a file)"
                        ) from None
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_child_dir(self, part: str, fd: int, key: str) -> int:
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                self._refuse_link(part, fd, key)
                raise InvalidKey(f"key {key!r} needs {part!r} to be a folder") from None
            raise

    @staticmethod
    def _refuse_link(name: str, dir_fd: int, key: str) -> None:
        with contextlib.suppress(OSError):
            if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                raise InvalidKey(
                    f"key {key!r} runs into a symbolic link at {name!r}; LocalStorage never "
                    "follows links, so a key cannot lead outside its root"
                )

    def _root_fd(self) -> int:
        try:
            return os.open(self.root, _DIR_FLAGS)
        except OSError as exc:
            raise BackendUnavailable(f"cannot open root {self.root}: {exc.strerror}") from None

    def _meta_parts(self, parts: list[str]) -> list[str]:
        return [*_META_DIR, *parts[:-1]]

    def _unavailable(self, exc: OSError, key: str, doing: str) -> BackendUnavailable:
        return BackendUnavailable(
            f"cannot {doing} {key!r} under {self.root}: {exc.strerror or exc}"
        )

    def _open_file(self, key: str, parts: list[str]) -> tuple[int, os.stat_result]:
        """A read descriptor of the object and its stat, or NotFound."""
        try:
            dfd = self._open_dir(parts[:-1], create=False, key=key)
        except _Missing:
            raise NotFound(f"no object at {key!r}") from None
        except OSError as exc:
            raise self._unavailable(exc, key, "read") from None
        try:
            fd = os.open(parts[-1], _READ_FLAGS, dir_fd=dfd)
        except FileNotFoundError:
            raise NotFound(f"no object at {key!r}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self._refuse_link(parts[-1], dfd, key)
            raise self._unavailable(exc, key, "read") from None
        finally:
            os.close(dfd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise NotFound(f"no object at {key!r} (it is a folder of other keys)")
        return fd, st

    # -- metadata sidecars -------------------------------------------------------------

    def _read_meta(self, parts: list[str], st: os.stat_result) -> dict[str, Any] | None:
        try:
            dfd = self._open_dir(self._meta_parts(parts), create=False, key="/".join(parts))
        except (_Missing, OSError, InvalidKey):
            return None
        try:
            fd = os.open(parts[-1], _READ_FLAGS, dir_fd=dfd)
            with open(fd, "rb") as handle:
                record = json.loads(handle.read(64 * 1024))
        except (OSError, ValueError):
            return None
        finally:
            os.close(dfd)
        if not isinstance(record, dict) or record.get("fingerprint") != _fingerprint(st):
            return None  # stale: left by a crash between the data and sidecar renames
        return record

    def _write_meta(
        self, key: str, parts: list[str], st: os.stat_result, content_type: str,
        metadata: Mapping[str, str],
    ) -> None:  # fmt: skip
        record = {
            "fingerprint": _fingerprint(st),
            "content_type": content_type,
            "metadata": dict(metadata),
        }
        body = json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8")
        for attempt in range(2):
            try:
                dfd, tmp, fd = self._open_temp(key, self._meta_parts(parts))
            except InvalidKey:
                if attempt:
                    raise
                # A stale sidecar file where a folder is needed (left by a crash): clear it.
                self._clear_meta_path(parts)
                continue
            try:
                with open(fd, "wb", buffering=0) as out:
                    out.write(body)
                    if self.fsync:
                        os.fsync(out.fileno())
                os.replace(tmp, parts[-1], src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dfd)
                raise
            finally:
                os.close(dfd)
            return

    def _clear_meta_path(self, parts: list[str]) -> None:
        path = self.root.joinpath(*_META_DIR)
        for part in parts[:-1]:
            path = path / part
            if path.is_symlink() or path.is_file():
                path.unlink()
                return

    def _delete_meta(self, parts: list[str]) -> None:
        try:
            dfd = self._open_dir(self._meta_parts(parts), create=False, key="/".join(parts))
        except (_Missing, OSError, InvalidKey):
            return
        try:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(parts[-1], dir_fd=dfd)
        finally:
            os.close(dfd)
        self._prune(self._meta_parts(parts))

    def _prune(self, folder_parts: list[str]) -> None:
        """Remove now-empty folders from the deepest up (best effort, race-safe)."""
        for depth in range(len(folder_parts), 0, -1):
            if tuple(folder_parts[:depth]) in (_META_DIR[:1], _META_DIR):
                return
            try:
                dfd = self._open_dir(folder_parts[: depth - 1], create=False, key="")
            except (_Missing, OSError, InvalidKey):
                return
            try:
                os.rmdir(folder_parts[depth - 1], dir_fd=dfd)
            except OSError:
                return  # not empty (or already gone): stop here
            finally:
                os.close(dfd)

    # -- writing -----------------------------------------------------------------------

    @staticmethod
    def _make_temp(dfd: int) -> tuple[str, int]:
        for _ in range(100):
            name = TEMP_PREFIX + secrets.token_hex(8)
            try:
                return name, os.open(name, _TEMP_FLAGS, 0o644, dir_fd=dfd)
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, "no free temporary file name")

    def put(
        self,
        key: str,
        data: Data,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_not_exists: bool = False,
    ) -> ObjectInfo:
        """Stream ``data`` into ``key`` atomically (temp file, fsync, rename).

        ``data`` is bytes, a binary file object (read in 1 MiB chunks) or a
        ``pathlib.Path``. ``if_not_exists=True`` raises ``AlreadyExists`` if the key is
        taken, atomically.
        """
        key, parts = self._key(key)
        kind = content_type_for(key, content_type)
        meta = check_metadata(metadata)
        with open_data(data) as (stream, _size):
            # A local path is our own fresh file: let the kernel copy it (sendfile).
            kernel_copy = isinstance(data, os.PathLike)
            return self._write(key, parts, stream, kind, meta, if_not_exists, kernel_copy)

    def _write(
        self,
        key: str,
        parts: list[str],
        stream: IO[bytes],
        content_type: str,
        metadata: dict[str, str],
        if_not_exists: bool,
        kernel_copy: bool = False,
    ) -> ObjectInfo:
        if if_not_exists and self.exists(key):  # fail early; the link below decides
            raise AlreadyExists(f"an object already exists at {key!r}")
        try:
            dfd, tmp, fd = self._open_temp(key, parts[:-1])
        except OSError as exc:
            raise self._unavailable(exc, key, "write") from None
        name = parts[-1]
        try:
            try:
                with open(fd, "wb", buffering=0) as out:
                    _pump(stream, out.fileno(), kernel_copy)
                    if self.fsync:
                        os.fsync(out.fileno())
                st = os.stat(tmp, dir_fd=dfd, follow_symlinks=False)
                self._publish(key, dfd, tmp, name, if_not_exists)
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dfd)
                if isinstance(exc, OSError) and not isinstance(exc, BackendUnavailable):
                    raise self._unavailable(exc, key, "write") from None
                raise
            try:
                self._write_meta(key, parts, st, content_type, metadata)
            except OSError as exc:
                raise self._unavailable(exc, key, "write the metadata of") from None
        finally:
            os.close(dfd)
        return self._info(key, st, content_type, metadata)

    def _open_temp(self, key: str, folder: list[str]) -> tuple[int, str, int]:
        """The folder ``root/<folder...>`` (created as needed) and a new temp file in it."""
        for _ in range(_RETRIES):
            dfd = self._open_folder_for_write(key, folder)
            try:
                tmp, fd = self._make_temp(dfd)
            except FileNotFoundError:
                os.close(dfd)  # the empty folder was pruned by a concurrent delete
                continue
            except BaseException:
                os.close(dfd)
                raise
            return dfd, tmp, fd
        raise BackendUnavailable(f"cannot create the folders of {key!r} under {self.root}")

    def _open_folder_for_write(self, key: str, folder: list[str]) -> int:
        # A concurrent delete may prune a folder we just created: retry a few times.
        for _ in range(_RETRIES):
            try:
                return self._open_dir(folder, create=True, key=key)
            except (_Missing, FileNotFoundError):  # a parent was removed under us
                continue
        raise BackendUnavailable(f"cannot create the folders of {key!r} under {self.root}")

    def _publish(self, key: str, dfd: int, tmp: str, name: str, if_not_exists: bool) -> None:
        """Move the finished temp file onto ``name`` and make the rename durable."""
        if if_not_exists:
            try:
                os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            except FileExistsError:
                raise AlreadyExists(f"an object already exists at {key!r}") from None
            os.unlink(tmp, dir_fd=dfd)
        else:
            try:
                existing = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                if stat.S_ISDIR(existing.st_mode):
                    raise InvalidKey(
                        f"key {key!r} is a folder of other keys on local storage; a local "
                        "folder cannot also be a file"
                    )
                if stat.S_ISLNK(existing.st_mode):
                    self._refuse_link(name, dfd, key)
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        if self.fsync:
            os.fsync(dfd)

    # -- reading -----------------------------------------------------------------------

    def _info(
        self, key: str, st: os.stat_result, content_type: str, metadata: Mapping[str, str]
    ) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=st.st_size,
            content_type=content_type,
            etag=f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}",
            md5=None,
            updated=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
            metadata=dict(metadata),
        )

    def _info_from_stat(self, key: str, parts: list[str], st: os.stat_result) -> ObjectInfo:
        record = self._read_meta(parts, st)
        if record is None:
            return self._info(key, st, content_type_for(key, None), {})
        kind = record.get("content_type")
        meta = record.get("metadata")
        return self._info(
            key,
            st,
            kind if isinstance(kind, str) else content_type_for(key, None),
            meta if isinstance(meta, dict) else {},
        )

    def get(self, key: str) -> bytes:
        """The whole content (stream big objects with :meth:`open`)."""
        key, parts = self._key(key)
        fd, _st = self._open_file(key, parts)
        try:
            with open(fd, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise self._unavailable(exc, key, "read") from None

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> IO[bytes]:
        """A binary reader (and context manager) of bytes ``start`` to ``end``
        (exclusive; a range past the end is clipped).

        Example::

            >>> import tempfile
            >>> storage = LocalStorage(tempfile.mkdtemp())
            >>> _ = storage.put("a.txt", b"hello world")
            >>> with storage.open("a.txt", start=6, end=100) as reader:
            ...     reader.read()
            b'world'
        """
        key, parts = self._key(key)
        check_range(start, end)
        fd, st = self._open_file(key, parts)
        try:
            if end is None or end >= st.st_size:
                handle = open(fd, "rb")  # noqa: SIM115 - returned to the caller
                handle.seek(start)
                return handle
            raw = _RangeReader(fd, start, end)
        except BaseException:
            os.close(fd)
            raise
        return io.BufferedReader(raw, buffer_size=min(CHUNK_SIZE, max(end - start, 1)))

    def download_to(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Stream the object into the local file ``path`` (temp file, then rename)."""
        key, parts = self._key(key)
        fd, st = self._open_file(key, parts)
        with open(fd, "rb") as handle:
            info = self._info_from_stat(key, parts, st)
            download_stream(handle, path)
        return info

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            self.info(key)
        except NotFound:
            return False
        return True

    def info(self, key: str) -> ObjectInfo:
        """Size, content type, etag, update time and metadata (``md5`` is None)."""
        key, parts = self._key(key)
        fd, st = self._open_file(key, parts)
        os.close(fd)
        return self._info_from_stat(key, parts, st)

    def list(
        self, prefix: str = "", *, delimiter: str | None = None
    ) -> Iterator[ObjectInfo | Folder]:
        """Objects under ``prefix`` in key order, walked lazily one folder at a time
        (each folder's entries sorted), with :class:`Folder` entries when
        ``delimiter="/"``. Temporary and metadata files never appear."""
        prefix = validate_prefix(prefix)
        delimiter = check_delimiter(delimiter)
        return self._list(prefix, delimiter)

    def _list(self, prefix: str, delimiter: str | None) -> Iterator[ObjectInfo | Folder]:
        # Start from the deepest folder the prefix names fully ("a/b/c" -> folder "a/b").
        base = prefix.rsplit("/", 1)[0].split("/") if "/" in prefix else []
        if any(part.startswith(RESERVED_PREFIX) for part in base):
            return  # temp files and the metadata tree are not objects
        last_folder: str | None = None
        for key, st in self._walk(base):
            if not key.startswith(prefix):
                continue
            if delimiter is not None:
                cut = key.find(delimiter, len(prefix))
                if cut != -1:
                    folder = key[: cut + 1]
                    if folder != last_folder:
                        last_folder = folder
                        yield Folder(folder)
                    continue
            yield self._info_from_stat(key, key.split("/"), st)

    def _walk(self, parts: builtins.list[str]) -> Iterator[tuple[str, os.stat_result]]:
        """Files under ``root/<parts>`` as (key, stat), in key order: a folder ``d``
        sorts as ``d/`` so its keys fall where ``d/...`` does among its siblings."""
        try:
            dfd = self._open_dir(parts, create=False, key="/".join(parts))
        except (_Missing, InvalidKey):
            return
        except OSError as exc:
            raise self._unavailable(exc, "/".join(parts) or "/", "list") from None
        try:
            entries: builtins.list[tuple[str, str, os.stat_result | None]] = []
            with os.scandir(dfd) as scan:
                for entry in scan:
                    if entry.name.startswith(RESERVED_PREFIX):
                        continue  # temp files, the metadata tree
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        entries.append((entry.name + "/", entry.name, None))
                    elif stat.S_ISREG(st.st_mode):
                        entries.append((entry.name, entry.name, st))
                    # symlinks and special files are not objects
        except OSError as exc:
            raise self._unavailable(exc, "/".join(parts) or "/", "list") from None
        finally:
            os.close(dfd)
        entries.sort(key=lambda item: item[0])
        head = "/".join(parts) + "/" if parts else ""
        for _sort_key, name, file_stat in entries:
            if file_stat is None:
                yield from self._walk([*parts, name])
            else:
                yield head + name, file_stat

    # -- deleting, copying -----------------------------------------------------------

    def delete(self, key: str) -> bool:
        """Delete ``key`` and its metadata; True if it existed."""
        key, parts = self._key(key)
        try:
            dfd = self._open_dir(parts[:-1], create=False, key=key)
        except _Missing:
            return False
        except OSError as exc:
            raise self._unavailable(exc, key, "delete") from None
        try:
            existing = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
            if not stat.S_ISREG(existing.st_mode):
                self._refuse_link(parts[-1], dfd, key)
                return False
            os.unlink(parts[-1], dir_fd=dfd)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._unavailable(exc, key, "delete") from None
        finally:
            os.close(dfd)
        self._delete_meta(parts)
        self._prune(parts[:-1])
        return True

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete every key (all validated first); return how many existed."""
        checked = [self._key(k)[0] for k in keys]
        return sum(self.delete(k) for k in checked)

    def copy(self, source: str, destination: str, *, if_not_exists: bool = False) -> ObjectInfo:
        """Copy content, content type and metadata (streamed, atomic at the destination)."""
        source, source_parts = self._key(source)
        destination, dest_parts = self._key(destination)
        fd, st = self._open_file(source, source_parts)
        with open(fd, "rb") as handle:
            info = self._info_from_stat(source, source_parts, st)
            if source == destination and not if_not_exists:
                return info
            return self._write(
                destination, dest_parts, handle, info.content_type, dict(info.metadata),
                if_not_exists, kernel_copy=True,
            )  # fmt: skip

    def move(self, source: str, destination: str, *, if_not_exists: bool = False) -> ObjectInfo:
        """Rename within the root (atomic; keeps content type and metadata)."""
        source, source_parts = self._key(source)
        destination, dest_parts = self._key(destination)
        fd, st = self._open_file(source, source_parts)
        os.close(fd)
        info = self._info_from_stat(source, source_parts, st)
        if source == destination:
            if if_not_exists:
                raise AlreadyExists(f"an object already exists at {destination!r}")
            return info
        if if_not_exists and self.exists(destination):
            raise AlreadyExists(f"an object already exists at {destination!r}")
        try:
            sfd = self._open_dir(source_parts[:-1], create=False, key=source)
        except _Missing:
            raise NotFound(f"no object at {source!r}") from None
        try:
            for _ in range(_RETRIES):
                dfd = self._open_folder_for_write(destination, dest_parts[:-1])
                try:
                    self._rename(sfd, dfd, source, source_parts[-1], destination,
                                 dest_parts[-1], if_not_exists)  # fmt: skip
                    moved = os.stat(dest_parts[-1], dir_fd=dfd, follow_symlinks=False)
                    break
                except _Missing:
                    continue  # the destination folder was pruned under us: make it again
                finally:
                    os.close(dfd)
            else:
                raise BackendUnavailable(f"cannot create the folders of {destination!r}")
        except OSError as exc:
            raise self._unavailable(exc, source, "move") from None
        finally:
            os.close(sfd)
        try:
            self._write_meta(destination, dest_parts, moved, info.content_type, info.metadata)
        except OSError as exc:
            raise self._unavailable(exc, destination, "write the metadata of") from None
        self._delete_meta(source_parts)
        self._prune(source_parts[:-1])
        return self._info(destination, moved, info.content_type, info.metadata)

    def _rename(
        self, sfd: int, dfd: int, source: str, src_name: str, destination: str, dst_name: str,
        if_not_exists: bool,
    ) -> None:  # fmt: skip
        try:
            if if_not_exists:
                try:
                    os.link(src_name, dst_name, src_dir_fd=sfd, dst_dir_fd=dfd,
                            follow_symlinks=False)  # fmt: skip
                except FileExistsError:
                    raise AlreadyExists(f"an object already exists at {destination!r}") from None
                os.unlink(src_name, dir_fd=sfd)
            else:
                with contextlib.suppress(FileNotFoundError):
                    mode = os.stat(dst_name, dir_fd=dfd, follow_symlinks=False).st_mode
                    if stat.S_ISLNK(mode):
                        self._refuse_link(dst_name, dfd, destination)
                    if stat.S_ISDIR(mode):
                        raise InvalidKey(f"key {destination!r} is a folder of other keys")
                os.replace(src_name, dst_name, src_dir_fd=sfd, dst_dir_fd=dfd)
        except FileNotFoundError:
            try:
                os.stat(src_name, dir_fd=sfd, follow_symlinks=False)
            except FileNotFoundError:
                raise NotFound(f"no object at {source!r}") from None
            raise _Missing from None  # the source is there: the destination folder went
        if self.fsync:
            os.fsync(dfd)
            os.fsync(sfd)

    # -- housekeeping ----------------------------------------------------------------

    def cleanup_temp(self, older_than: float = 3600) -> int:
        """Remove temporary files left by killed writers, older than ``older_than``
        seconds (default one hour, so writes in progress are left alone); returns how
        many were removed.

        Example::

            >>> import tempfile
            >>> LocalStorage(tempfile.mkdtemp()).cleanup_temp()
            0
        """
        cutoff = time.time() - older_than
        removed = 0
        for folder, dirnames, filenames in os.walk(self.root, followlinks=False):
            for name in filenames:
                if not name.startswith(TEMP_PREFIX):
                    continue
                path = os.path.join(folder, name)
                with contextlib.suppress(FileNotFoundError):
                    if os.lstat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
            dirnames.sort()
        return removed

    # -- signed URLs -----------------------------------------------------------------

    def url(self, key: str, *, expires_in: float = 3600, download_name: str | None = None) -> str:
        """A signed GET URL for ``key`` that the adapters' file route serves.

        Example::

            >>> import tempfile
            >>> storage = LocalStorage(tempfile.mkdtemp(), base_url="/files", secret=b"k" * 32)
            >>> storage.url("a b.txt", expires_in=60).startswith("/files/a%20b.txt?expires=")
            True
        """
        key, _parts = self._key(key)
        validate_expires_in(expires_in)
        check_download_name(download_name)
        signer = require_signer(self._signer, "LocalStorage")
        return signer.sign("GET", key, expires_in, download_name)

    def upload_url(
        self, key: str, *, expires_in: float = 900, content_type: str | None = None
    ) -> str:
        """A signed PUT URL a browser can upload ``key``'s bytes to (through the
        adapters' file route)."""
        key, _parts = self._key(key)
        validate_expires_in(expires_in)
        check_content_type(content_type)
        signer = require_signer(self._signer, "LocalStorage")
        return signer.sign("PUT", key, expires_in, content_type=content_type)

    def verify_signed_url(
        self, key: str, params: Mapping[str, str], *, method: str = "GET"
    ) -> SignedRequest:
        """Check a signed URL's query parameters for ``method`` on ``key``; raise
        ``InvalidSignature`` if it was tampered with, expired or is for another method."""
        key, _parts = self._key(key)
        signer = require_signer(self._signer, "LocalStorage")
        return signer.verify(method, key, params)


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


def _pump(stream: IO[bytes], out: int, kernel_copy: bool) -> None:
    """Copy ``stream`` to the descriptor ``out`` in CHUNK_SIZE pieces, never whole.

    A file of our own is copied by the kernel (``sendfile``); a stream with
    ``readinto`` fills one reused buffer (no allocation per chunk); anything else with
    ``read(CHUNK_SIZE)``.
    """
    if kernel_copy:
        source = stream.fileno()
        try:
            while os.sendfile(out, source, None, 64 * CHUNK_SIZE):
                pass
            return
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            if os.lseek(out, 0, os.SEEK_CUR):  # pragma: no cover - failed mid-copy
                raise
            # no sendfile between these file systems: fall back to the buffered copy
    if isinstance(stream, io.BufferedIOBase | io.RawIOBase):
        buffer = memoryview(bytearray(CHUNK_SIZE))
        while True:
            count = stream.readinto(buffer)
            if count is None:
                raise InvalidData(
                    "put() got a non-blocking stream that returned None; pass a blocking one"
                )
            if not count:
                return
            _write_all(out, buffer[:count])
    while chunk := read_chunk(stream):
        _write_all(out, memoryview(chunk))


def _fingerprint(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns]


class _RangeReader(io.RawIOBase):
    """Reads ``fd`` from ``start`` up to ``end`` (exclusive), then reports EOF."""

    def __init__(self, fd: int, start: int, end: int) -> None:
        super().__init__()
        self._fd = fd
        self._pos = start
        self._end = end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), self._end - self._pos)
        if wanted <= 0:
            return 0
        count = os.preadv(self._fd, [view[:wanted]], self._pos)
        self._pos += count
        return count

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
