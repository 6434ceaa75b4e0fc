"""What every backend shares: content types, metadata and range checks, chunked reads,
atomic local downloads, URL signers and listings with folders."""

from __future__ import annotations

import contextlib
import math
import mimetypes
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from kit_storage._keys import FORBIDDEN_CHARACTERS
from kit_storage._signing import URLSigner, check_content_type
from kit_storage._types import CHUNK_SIZE
from kit_storage.exceptions import BackendUnavailable, ConfigurationError, InvalidData

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "MAX_METADATA_BYTES",
    "check_delimiter",
    "check_metadata",
    "check_range",
    "check_timeout",
    "content_type_for",
    "download_stream",
    "iter_listing",
    "make_signer",
    "read_chunk",
    "require_signer",
    "within",
]

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_METADATA_BYTES = 8 * 1024
_METADATA_KEY = re.compile(r"[A-Za-z0-9_.-]{1,128}")


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
        if FORBIDDEN_CHARACTERS.search(value):
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


def check_timeout(timeout: float) -> float:
    """``timeout`` as float seconds, or :class:`ConfigurationError` if it is not > 0."""
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout < math.inf
    ):
        raise ConfigurationError(f"timeout={timeout!r}: give seconds > 0")
    return float(timeout)


def within(probe: Callable[[], bool], timeout: float) -> bool:
    """``probe()`` run on a helper thread: its answer if it comes within ``timeout``
    seconds, False if it raises or is late (the thread is left to finish on its own)."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="kit-storage-ping")
    try:
        return bool(pool.submit(probe).result(timeout=timeout))
    except Exception:  # down, refused, late: not healthy
        return False
    finally:
        pool.shutdown(wait=False)
