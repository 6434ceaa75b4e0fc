"""``MemoryStorage``: the ``Storage`` API over a dict, for tests and prototypes.

Also home of the checks every backend shares (content type, metadata, ranges, atomic
local downloads), imported by the other backends.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import mimetypes
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from kit_storage._keys import validate_key, validate_prefix
from kit_storage._signing import (
    SignedRequest,
    URLSigner,
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
    NotFound,
)

__all__ = ["MemoryStorage"]

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_METADATA_BYTES = 8 * 1024
_METADATA_KEY = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def content_type_for(key: str, content_type: str | None) -> str:
    """The explicit ``content_type`` (validated), else one guessed from the key's
    extension, else ``application/octet-stream``.

    Example::

        >>> content_type_for("a/report.pdf", None), content_type_for("blob", None)
        ('application/pdf', 'application/octet-stream')
    """
    if content_type is not None:
        checked = check_content_type(content_type)
        assert checked is not None
        return checked
    guessed, _encoding = mimetypes.guess_type(key, strict=False)
    return guessed or DEFAULT_CONTENT_TYPE


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """A validated copy of ``metadata``: string keys ``[A-Za-z0-9_.-]{1,128}``, string
    values without control characters, at most 8 KiB in all; else :class:`InvalidData`.

    Example::

        >>> check_metadata({"owner": "42"})
        {'owner': '42'}
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidData(
            f"metadata must be a mapping of str to str, not {type(metadata).__name__}"
        )
    result: dict[str, str] = {}
    total = 0
    for name, value in metadata.items():
        if not isinstance(name, str) or not _METADATA_KEY.fullmatch(name):
            raise InvalidData(
                f"metadata key {name!r} is invalid: use 1-128 characters from A-Z a-z 0-9 _ . -"
            )
        if not isinstance(value, str):
            raise InvalidData(
                f"metadata value for {name!r} must be a str, not {type(value).__name__}"
            )
        if _CONTROL.search(value):
            raise InvalidData(f"metadata value for {name!r} contains a control character")
        total += len(name) + len(value.encode("utf-8"))
        result[name] = value
    if total > MAX_METADATA_BYTES:
        raise InvalidData(
            f"metadata is {total} bytes; keep keys and values under {MAX_METADATA_BYTES} bytes"
        )
    return result


def check_range(start: int, end: int | None) -> None:
    """Refuse a byte range unless ``0 <= start <= end`` (``end`` exclusive or None)."""
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise InvalidData(f"start={start!r} must be an int >= 0")
    if end is not None and (isinstance(end, bool) or not isinstance(end, int) or end < start):
        raise InvalidData(f"end={end!r} must be None or an int >= start ({start})")


def read_chunk(stream: IO[bytes]) -> bytes:
    """One chunk (at most CHUNK_SIZE bytes) from a caller's stream, type-checked."""
    chunk = stream.read(CHUNK_SIZE)
    if chunk is None:  # a non-blocking raw stream with nothing ready
        raise InvalidData("put() got a non-blocking stream that returned None; pass a blocking one")
    if not isinstance(chunk, bytes | bytearray | memoryview):
        raise InvalidData(
            f"put() read {type(chunk).__name__} from the file object; open it in binary mode"
        )
    return bytes(chunk) if not isinstance(chunk, bytes) else chunk


def download_stream(reader: IO[bytes], path: str | os.PathLike[str]) -> None:
    """Copy ``reader`` into ``path`` atomically: a temp file beside it, then a rename."""
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        raise InvalidData(f"download_to(): no folder {str(parent)!r}; create it first")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".kit-tmp-")
    except OSError as exc:
        raise BackendUnavailable(f"cannot write in {parent}: {exc.strerror}") from None
    try:
        with open(fd, "wb", buffering=0) as out:
            while chunk := reader.read(CHUNK_SIZE):
                out.write(chunk)
            os.fsync(out.fileno())  # so a power cut cannot leave an empty file behind
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, BackendUnavailable):
            raise BackendUnavailable(f"cannot write {target}: {exc.strerror or exc}") from None
        raise


def make_signer(base_url: str | None, secret: bytes | str | None) -> URLSigner | None:
    """A signer when both are given, None when neither is; one alone is a mistake."""
    if base_url is None and secret is None:
        return None
    if base_url is None or secret is None:
        missing = "base_url" if base_url is None else "secret"
        raise ConfigurationError(f"signed URLs need both base_url and secret; {missing} is missing")
    return URLSigner(secret, base_url)


def require_signer(signer: URLSigner | None, backend: str) -> URLSigner:
    """The signer, or a ConfigurationError saying how to configure one."""
    if signer is None:
        raise ConfigurationError(
            f"{backend} cannot make signed URLs: pass base_url= (where the adapter's file "
            "route is mounted) and secret= (at least 32 random bytes)"
        )
    return signer


def iter_listing(
    keys: Iterable[str], prefix: str, delimiter: str | None
) -> Iterator[tuple[str, bool]]:
    """Given keys in sorted order, yield ``(key, False)`` for objects and
    ``(folder_prefix, True)`` once per sub-folder when ``delimiter == "/"``."""
    last_folder: str | None = None
    for key in keys:
        if not key.startswith(prefix):
            continue
        if delimiter is not None:
            cut = key.find(delimiter, len(prefix))
            if cut != -1:
                folder = key[: cut + 1]
                if folder != last_folder:
                    last_folder = folder
                    yield folder, True
                continue
        yield key, False


def check_delimiter(delimiter: str | None) -> str | None:
    """Only ``None`` or ``"/"`` are supported."""
    if delimiter is not None and delimiter != "/":
        raise InvalidData(f"delimiter={delimiter!r} is not supported; use None or '/'")
    return delimiter


@dataclass(frozen=True, slots=True)
class _Entry:
    data: bytes
    content_type: str
    metadata: dict[str, str]
    md5: str
    updated: datetime
    generation: int


class MemoryStorage:
    """The ``Storage`` API kept in a dict: fast, thread-safe, gone when the process ends.

    Use it in your own tests instead of a real bucket or directory. Signed URLs work
    like :class:`~kit_storage.LocalStorage`'s when ``base_url`` and ``secret`` are given.

    Example::

        >>> storage = MemoryStorage()
        >>> storage.put("notes/a.txt", b"hello").content_type
        'text/plain'
        >>> storage.get("notes/a.txt")
        b'hello'
        >>> [item.key for item in storage.list("notes/")]
        ['notes/a.txt']
    """

    def __init__(self, *, base_url: str | None = None, secret: bytes | str | None = None) -> None:
        self._objects: dict[str, _Entry] = {}
        self._lock = threading.RLock()
        self._generation = 0
        self._signer = make_signer(base_url, secret)

    def __repr__(self) -> str:
        return f"MemoryStorage(objects={len(self._objects)})"

    # -- writing -------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: Data,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_not_exists: bool = False,
    ) -> ObjectInfo:
        """Store ``data`` under ``key`` (read in chunks), replacing any previous object."""
        key = validate_key(key)
        kind = content_type_for(key, content_type)
        meta = check_metadata(metadata)
        if if_not_exists and self.exists(key):  # fail before reading a big body
            raise AlreadyExists(f"an object already exists at {key!r}")
        buffer = bytearray()
        digest = hashlib.md5(usedforsecurity=False)
        with open_data(data) as (stream, _size):
            while chunk := read_chunk(stream):
                buffer += chunk
                digest.update(chunk)
        return self._store(key, bytes(buffer), kind, meta, digest.hexdigest(), if_not_exists)

    def _store(
        self,
        key: str,
        data: bytes,
        content_type: str,
        metadata: dict[str, str],
        md5: str,
        if_not_exists: bool,
    ) -> ObjectInfo:
        with self._lock:
            if if_not_exists and key in self._objects:
                raise AlreadyExists(f"an object already exists at {key!r}")
            self._generation += 1
            entry = _Entry(
                data, content_type, dict(metadata), md5, datetime.now(UTC), self._generation
            )
            self._objects[key] = entry
        return _info(key, entry)

    # -- reading -------------------------------------------------------------------

    def _entry(self, key: str) -> _Entry:
        with self._lock:
            entry = self._objects.get(key)
        if entry is None:
            raise NotFound(f"no object at {key!r}")
        return entry

    def get(self, key: str) -> bytes:
        """The whole content of ``key``."""
        return self._entry(validate_key(key)).data

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> IO[bytes]:
        """A reader of bytes ``start`` to ``end`` (exclusive, clipped to the size)."""
        key = validate_key(key)
        check_range(start, end)
        data = self._entry(key).data
        return io.BytesIO(data[start:end])

    def download_to(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Write the object into the local file ``path`` atomically; return its info."""
        key = validate_key(key)
        entry = self._entry(key)
        download_stream(io.BytesIO(entry.data), path)
        return _info(key, entry)

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        key = validate_key(key)
        with self._lock:
            return key in self._objects

    def info(self, key: str) -> ObjectInfo:
        """Size, content type, md5 (also the etag), update time and metadata."""
        key = validate_key(key)
        return _info(key, self._entry(key))

    def list(
        self, prefix: str = "", *, delimiter: str | None = None
    ) -> Iterator[ObjectInfo | Folder]:
        """Objects under ``prefix`` in key order (a snapshot of the keys taken at the
        first ``next()``), with :class:`Folder` entries when ``delimiter="/"``."""
        prefix = validate_prefix(prefix)
        delimiter = check_delimiter(delimiter)
        return self._list(prefix, delimiter)

    def _list(self, prefix: str, delimiter: str | None) -> Iterator[ObjectInfo | Folder]:
        with self._lock:
            keys = sorted(k for k in self._objects if k.startswith(prefix))
        for name, is_folder in iter_listing(keys, prefix, delimiter):
            if is_folder:
                yield Folder(name)
                continue
            with self._lock:
                entry = self._objects.get(name)
            if entry is not None:  # deleted since the snapshot
                yield _info(name, entry)

    # -- deleting, copying ---------------------------------------------------------

    def delete(self, key: str) -> bool:
        """Delete ``key``; True if it existed."""
        key = validate_key(key)
        with self._lock:
            return self._objects.pop(key, None) is not None

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete every key (all validated first); return how many existed."""
        checked = [validate_key(k) for k in keys]
        with self._lock:
            return sum(self._objects.pop(k, None) is not None for k in checked)

    def copy(self, source: str, destination: str, *, if_not_exists: bool = False) -> ObjectInfo:
        """Copy content, content type and metadata to ``destination``."""
        source = validate_key(source)
        destination = validate_key(destination)
        with self._lock:
            entry = self._entry(source)
            if source == destination and not if_not_exists:
                return _info(destination, entry)
            return self._store(
                destination, entry.data, entry.content_type, entry.metadata, entry.md5,
                if_not_exists,
            )  # fmt: skip

    def move(self, source: str, destination: str, *, if_not_exists: bool = False) -> ObjectInfo:
        """Copy, then delete the source (atomically here)."""
        source = validate_key(source)
        destination = validate_key(destination)
        with self._lock:
            info = self.copy(source, destination, if_not_exists=if_not_exists)
            if source != destination:
                del self._objects[source]
            return info

    # -- signed URLs ---------------------------------------------------------------

    def url(self, key: str, *, expires_in: float = 3600, download_name: str | None = None) -> str:
        """A signed GET URL for ``key`` (needs ``base_url`` and ``secret``).

        Example::

            >>> storage = MemoryStorage(base_url="https://app.example/files", secret=b"k" * 32)
            >>> storage.url("a.txt").startswith("https://app.example/files/a.txt?expires=")
            True
        """
        key = validate_key(key)
        validate_expires_in(expires_in)
        check_download_name(download_name)
        signer = require_signer(self._signer, "MemoryStorage")
        return signer.sign("GET", key, expires_in, download_name)

    def upload_url(
        self, key: str, *, expires_in: float = 900, content_type: str | None = None
    ) -> str:
        """A signed PUT URL a browser can upload ``key``'s bytes to."""
        key = validate_key(key)
        validate_expires_in(expires_in)
        check_content_type(content_type)
        signer = require_signer(self._signer, "MemoryStorage")
        return signer.sign("PUT", key, expires_in, content_type=content_type)

    def verify_signed_url(
        self, key: str, params: Mapping[str, str], *, method: str = "GET"
    ) -> SignedRequest:
        """Check a signed URL's query parameters; raise ``InvalidSignature`` if tampered
        with, expired or for another method."""
        signer = require_signer(self._signer, "MemoryStorage")
        return signer.verify(method, key, params)


def _info(key: str, entry: _Entry) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=len(entry.data),
        content_type=entry.content_type,
        etag=f"{entry.md5}-{entry.generation:x}",
        md5=entry.md5,
        updated=entry.updated,
        metadata=dict(entry.metadata),
    )
