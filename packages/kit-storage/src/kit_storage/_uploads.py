"""Framework-free helpers for the Flask and FastAPI adapters: checking uploads and serving
signed URLs.

Uploads
    :func:`save_upload` streams a client's file into a storage through
    :class:`CappedReader`, which raises :class:`~kit_storage.InvalidUpload` (413) as soon
    as more than ``max_bytes`` arrive, so nothing partial is stored (``LocalStorage``
    writes to a temporary file and renames it only when the body is complete;
    ``MemoryStorage`` stores only a finished body; GCS never finalizes the upload).
    :func:`check_upload_type` decides the content type from the file's first 2 KiB with
    ``puremagic`` and checks it against the allow-list and the type the client declared.

    **Text types.** Plain text has no signature, so puremagic cannot recognise it. A file
    is treated as text when its first bytes decode as UTF-8 and contain no NUL or other
    control character (tab, CR, LF and form feed excepted). Text is then stored as the
    declared type when that is one of :data:`TEXT_TYPES` (``text/plain``, ``text/csv``,
    ``text/markdown``, ``text/tab-separated-values``), else as ``text/plain``, with
    ``; charset=utf-8``; a weak
    puremagic guess on text (``BMW,car`` looks like a BMP to it) does not override a
    declared text type, a confident one (``GIF89a``, ``<!DOCTYPE html``) does. HTML, SVG
    and XML are never accepted as plain text.

Serving
    :func:`prepare_download` verifies a signed GET URL and answers the conditional and
    Range headers (one range; 206, 304, 416); :func:`authorize_upload` verifies a signed
    PUT URL and its Content-Type. The adapters only translate the result into responses.
"""

from __future__ import annotations

import codecs
import hashlib
import math
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime
from typing import IO, Any, cast
from urllib.parse import quote

import puremagic

from kit_storage._keys import validate_key
from kit_storage._signing import SignedRequest, check_content_type
from kit_storage._types import CHUNK_SIZE, ObjectInfo, Storage
from kit_storage.exceptions import (
    ConfigurationError,
    InvalidSignature,
    InvalidUpload,
    KitStorageError,
)

__all__ = [
    "PEEK_BYTES",
    "TEXT_TYPES",
    "CappedReader",
    "Download",
    "RangeNotSatisfiable",
    "authorize_upload",
    "capped_chunks",
    "check_servable",
    "check_upload_type",
    "content_disposition",
    "info_json",
    "prepare_download",
    "problem_for",
    "save_upload",
    "sniff_types",
]

#: How many leading bytes are sniffed.
PEEK_BYTES = 2048
#: Text types accepted on the "decodes as UTF-8, no control characters" rule.
TEXT_TYPES = frozenset({"text/plain", "text/csv", "text/markdown", "text/tab-separated-values"})
_GENERIC = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/x-ms-bmp": "image/bmp",
    "application/x-pdf": "application/pdf",
    "text/x-csv": "text/csv",
    "application/csv": "text/csv",
    "text/x-markdown": "text/markdown",
}
# Below this puremagic confidence a match on UTF-8 text is treated as a coincidence.
_WEAK = 0.5
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")
# Types a browser would run as active content on the app's origin: always downloaded.
_ACTIVE = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
    }
)


def _essence(media_type: str | None) -> str:
    """``type/subtype`` in lower case, parameters dropped, aliases resolved."""
    if not media_type:
        return ""
    essence = media_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(essence, essence)


def _allowed(media_type: str, allowed: frozenset[str] | None) -> bool:
    if allowed is None:
        return True
    return media_type in allowed or f"{media_type.split('/', 1)[0]}/*" in allowed


def _normalize_allowed(allowed_types: Iterable[str] | None) -> frozenset[str] | None:
    if allowed_types is None:
        return None
    if isinstance(allowed_types, str):
        raise ConfigurationError(
            f"allowed_types must be a collection of media types, not the str {allowed_types!r}; "
            'write allowed_types={"image/png"}'
        )
    result = frozenset(_essence(t) for t in allowed_types)
    if not result or "" in result:
        raise ConfigurationError(
            "allowed_types is empty or has an empty entry: list media types such as "
            "'image/png' or 'image/*', or pass None to accept any type"
        )
    return result


def sniff_types(head: bytes) -> tuple[list[str], float]:
    """The media types puremagic recognises in ``head`` (best first) and the best
    confidence; ``([], 0.0)`` when it recognises nothing.

    Example::

        >>> sniff_types(b"%PDF-1.7\\n")[0][0]
        'application/pdf'
        >>> sniff_types(b"just words")
        ([], 0.0)
    """
    if not head:
        return [], 0.0
    try:
        matches = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        return [], 0.0
    types: list[str] = []
    best = 0.0
    for match in sorted(matches, key=lambda m: -m.confidence):
        media_type = _essence(match.mime_type)
        if media_type in _GENERIC:
            continue
        best = max(best, match.confidence)
        if media_type not in types:
            types.append(media_type)
    return types, best


def _looks_like_text(head: bytes, complete: bool) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        text = decoder.decode(head, final=complete)
    except UnicodeDecodeError:
        return False
    return _CONTROL.search(text) is None


def check_upload_type(
    head: bytes,
    *,
    allowed_types: Iterable[str] | None,
    declared_type: str | None = None,
    complete: bool = False,
) -> str:
    """The media type to store for a file starting with ``head``; raise
    :class:`~kit_storage.InvalidUpload` (415) when it is not allowed or contradicts
    ``declared_type`` (the client's Content-Type; ``application/octet-stream`` or None
    mean "unknown"). ``complete`` says ``head`` is the whole file. ``allowed_types``
    entries may be ``type/*``; None allows every type.

    Example::

        >>> check_upload_type(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(32), allowed_types={"image/*"})
        'image/png'
        >>> check_upload_type(b"a,b\\n1,2\\n", allowed_types={"text/csv"}, declared_type="text/csv")
        'text/csv; charset=utf-8'
        >>> check_upload_type(b"%PDF-1.7\\n", allowed_types={"image/png"}, declared_type="image/png")
        Traceback (most recent call last):
        ...
        kit_storage.exceptions.InvalidUpload: the file was sent as image/png but its content is application/pdf
    """
    allowed = _normalize_allowed(allowed_types)
    declared = _essence(declared_type)
    if declared in _GENERIC:
        declared = ""
    candidates, confidence = sniff_types(head)
    text = _looks_like_text(head, complete)
    weak = not candidates or confidence < _WEAK
    if declared:
        if declared in candidates or (text and weak and declared in TEXT_TYPES):
            chosen = declared
        else:
            found = (
                candidates[0] if candidates else ("text" if text else "unrecognised binary data")
            )
            raise InvalidUpload(
                f"the file was sent as {declared} but its content is {found}", status=415
            )
    elif candidates:
        fitting = [c for c in candidates if _allowed(c, allowed)]
        if fitting:
            chosen = fitting[0]
        elif text and weak:
            chosen = "text/plain"
        else:
            chosen = candidates[0]
    elif text:
        chosen = "text/plain"
    else:
        chosen = "application/octet-stream"
    if not _allowed(chosen, allowed):
        assert allowed is not None
        what = (
            "a file whose type cannot be recognised"
            if chosen == "application/octet-stream"
            else f"{chosen} files"
        )
        raise InvalidUpload(
            f"{what} are not accepted here; allowed: {', '.join(sorted(allowed))}",
            status=415,
        )
    if text and chosen in TEXT_TYPES:
        return f"{chosen}; charset=utf-8"  # checked above: browsers need not guess
    return chosen


class CappedReader:
    """A binary reader over ``head`` then ``stream`` that raises
    :class:`~kit_storage.InvalidUpload` (413) once more than ``max_bytes`` are read.

    Example::

        >>> import io
        >>> reader = CappedReader(io.BytesIO(b"abcdef"), 4)
        >>> reader.read(3)
        b'abc'
        >>> reader.read(3)
        Traceback (most recent call last):
        ...
        kit_storage.exceptions.InvalidUpload: the upload is larger than the 4-byte limit
    """

    def __init__(self, stream: IO[bytes], max_bytes: int, *, head: bytes = b"") -> None:
        self._stream = stream
        self._head = head
        self._max = _check_max_bytes(max_bytes)
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all the rest when negative), b"" at the end."""
        if size is None or size < 0:
            parts: list[bytes] = []
            while chunk := self.read(CHUNK_SIZE):
                parts.append(chunk)
            return b"".join(parts)
        if size == 0:
            return b""
        if self._head:
            chunk = self._head[:size]
            self._head = self._head[size:]
        else:
            chunk = bytes(self._stream.read(size))
        self.count += len(chunk)
        if self.count > self._max:
            raise InvalidUpload(f"the upload is larger than the {self._max}-byte limit", status=413)
        return chunk

    def close(self) -> None:
        """Nothing to release: the caller owns the underlying stream."""


def _check_max_bytes(max_bytes: int) -> int:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ConfigurationError(f"max_bytes must be a positive int, not {max_bytes!r}")
    return max_bytes


async def capped_chunks(chunks: AsyncIterable[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """Pass ``chunks`` through, raising :class:`~kit_storage.InvalidUpload` (413) once
    more than ``max_bytes`` have gone by; the source is closed either way.

    Example::

        >>> import asyncio
        >>> async def body():
        ...     yield b"abc"
        ...     yield b"def"
        >>> async def collect(limit: int) -> list[bytes]:
        ...     return [chunk async for chunk in capped_chunks(body(), limit)]
        >>> asyncio.run(collect(6))
        [b'abc', b'def']
        >>> asyncio.run(collect(5))
        Traceback (most recent call last):
        ...
        kit_storage.exceptions.InvalidUpload: the upload is larger than the 5-byte limit
    """
    _check_max_bytes(max_bytes)
    total = 0
    iterator = aiter(chunks)
    try:
        async for chunk in iterator:
            total += len(chunk)
            if total > max_bytes:
                raise InvalidUpload(
                    f"the upload is larger than the {max_bytes}-byte limit", status=413
                )
            yield chunk
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def _peek(stream: IO[bytes], size: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while total < size:
        chunk = stream.read(size - total)
        if not chunk:
            break
        parts.append(bytes(chunk))
        total += len(chunk)
    return b"".join(parts)


def save_upload(
    storage: Storage,
    key: str,
    stream: IO[bytes],
    *,
    max_bytes: int,
    allowed_types: Iterable[str] | None,
    declared_type: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> ObjectInfo:
    """Stream an uploaded file into ``storage`` under ``key`` after checking its type
    (see :func:`check_upload_type`) and with a size cap (413 past ``max_bytes``; nothing
    is stored then). With ``allowed_types=None`` any type is accepted and the type stored
    is the one recognised from the content (a declared type is kept only when the content
    agrees with it).

    Example::

        >>> import io
        >>> from kit_storage._memory import MemoryStorage
        >>> storage = MemoryStorage()
        >>> info = save_upload(storage, "notes/a.txt", io.BytesIO(b"hi"), max_bytes=10,
        ...                    allowed_types={"text/plain"})
        >>> info.content_type, info.size
        ('text/plain; charset=utf-8', 2)
    """
    key = validate_key(key)
    _check_max_bytes(max_bytes)
    head = _peek(stream, min(PEEK_BYTES, max_bytes + 1))
    if len(head) > max_bytes:
        raise InvalidUpload(f"the upload is larger than the {max_bytes}-byte limit", status=413)
    complete = len(head) < PEEK_BYTES
    try:
        content_type = check_upload_type(
            head, allowed_types=allowed_types, declared_type=declared_type, complete=complete
        )
    except InvalidUpload:
        if allowed_types is not None:
            raise
        candidates, _ = sniff_types(head)
        content_type = candidates[0] if candidates else "application/octet-stream"
    reader = CappedReader(stream, max_bytes, head=head)
    return storage.put(key, cast(IO[bytes], reader), content_type=content_type, metadata=metadata)


# -- serving signed URLs ---------------------------------------------------------------


class RangeNotSatisfiable(KitStorageError):
    """The requested byte range lies outside the object (HTTP 416)."""

    status = 416
    title = "Range not satisfiable"
    slug = "range-not-satisfiable"
    public_detail = True

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        #: The object's size, for the ``Content-Range: bytes */size`` header.
        self.size = size


def problem_for(exc: KitStorageError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, RFC 9457 body and extra headers for an error escaping a file route.

    Example::

        >>> status, body, headers = problem_for(RangeNotSatisfiable("past the end", size=10))
        >>> status, body["title"], headers
        (416, 'Range not satisfiable', {'Content-Range': 'bytes */10'})
    """
    headers: dict[str, str] = {}
    if isinstance(exc, RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{exc.size}"
    return exc.status, exc.problem(), headers


def _verify(storage: Storage, key: str, query: Mapping[str, str], method: str) -> SignedRequest:
    verify = getattr(storage, "verify_signed_url", None)
    if verify is None:
        raise ConfigurationError(
            f"{type(storage).__name__} has no verify_signed_url(): the file route serves "
            "LocalStorage and MemoryStorage signed URLs; GCS signed URLs go to the bucket"
        )
    result = verify(key, query, method=method)
    assert isinstance(result, SignedRequest)
    return result


def check_servable(storage: Storage) -> None:
    """Fail early (ConfigurationError) when ``storage`` cannot verify signed URLs."""
    if not callable(getattr(storage, "verify_signed_url", None)):
        raise ConfigurationError(
            f"{type(storage).__name__} cannot verify signed URLs, so it cannot be served by "
            "the file route; use LocalStorage or MemoryStorage with base_url= and secret="
        )


@dataclass(frozen=True, slots=True)
class Download:
    """What to answer to a signed GET: ``status`` (200, 206 or 304), the response
    ``headers``, and for 200/206 the bytes ``start`` to ``end`` (exclusive) of ``key``."""

    status: int
    headers: dict[str, str]
    key: str
    start: int
    end: int

    @property
    def has_body(self) -> bool:
        """Whether the response carries the object's bytes."""
        return self.status in (200, 206)


def _etag_header(etag: str) -> str:
    if re.fullmatch(r"[\x21\x23-\x7e]{1,200}", etag):
        return f'"{etag}"'
    return '"' + hashlib.sha256(etag.encode("utf-8", "replace")).hexdigest()[:32] + '"'


def _etag_matches(header: str, etag: str) -> bool:
    """Weak comparison, as If-None-Match requires."""
    if header.strip() == "*":
        return True
    tags = [t.strip() for t in header.split(",")]
    bare = etag.removeprefix("W/")
    return any(t.removeprefix("W/") == bare for t in tags if t)


def content_disposition(download_name: str | None, content_type: str, key: str) -> str:
    """``attachment`` with RFC 6266 file names when ``download_name`` is given or the type
    is active content a browser would run (HTML, SVG, XML, JavaScript), else ``inline``.

    Example::

        >>> content_disposition("résumé.pdf", "application/pdf", "a/b.pdf")
        'attachment; filename="r_sum_.pdf"; filename*=UTF-8\\'\\'r%C3%A9sum%C3%A9.pdf'
        >>> content_disposition(None, "image/png", "a/b.png")
        'inline'
    """
    if download_name is None and _essence(content_type) not in _ACTIVE:
        return "inline"
    name = download_name if download_name is not None else key.rsplit("/", 1)[-1]
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end exclusive), None to ignore the header (invalid or several ranges), or
    raise RangeNotSatisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(
                f"bytes=-{suffix} asks for nothing of a {size}-byte file", size=size
            )
        return max(0, size - suffix), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(
            f"the range starts at byte {start} but the file has {size} bytes", size=size
        )
    end = size if last == "" else min(int(last) + 1, size)
    return start, end


def prepare_download(
    storage: Storage,
    key: str,
    query: Mapping[str, str],
    *,
    range_header: str | None = None,
    if_none_match: str | None = None,
    if_modified_since: str | None = None,
    if_range: str | None = None,
    now: float | None = None,
) -> Download:
    """Verify a signed GET URL for ``key`` (InvalidSignature -> 403) and work out the
    answer: 304 when the client's copy is current, 206 for one satisfiable range, 416
    (:class:`RangeNotSatisfiable`) for an unsatisfiable one, else 200.

    Example::

        >>> from urllib.parse import parse_qsl, urlsplit
        >>> from kit_storage._memory import MemoryStorage
        >>> storage = MemoryStorage(base_url="/files", secret=b"k" * 32)
        >>> _ = storage.put("a.txt", b"0123456789")
        >>> query = dict(parse_qsl(urlsplit(storage.url("a.txt")).query))
        >>> answer = prepare_download(storage, "a.txt", query, range_header="bytes=-3")
        >>> answer.status, answer.start, answer.end, answer.headers["Content-Range"]
        (206, 7, 10, 'bytes 7-9/10')
    """
    signed = _verify(storage, key, query, "GET")
    info = storage.info(signed.key)
    clock = time.time() if now is None else now
    etag = _etag_header(info.etag)
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(info.updated, usegmt=True),
        "Cache-Control": f"private, max-age={max(0, math.floor(signed.expires - clock))}",
        "X-Content-Type-Options": "nosniff",
    }
    if _not_modified(info, etag, if_none_match, if_modified_since):
        return Download(304, headers, signed.key, 0, 0)
    headers["Content-Type"] = info.content_type
    headers["Content-Disposition"] = content_disposition(
        signed.download_name, info.content_type, signed.key
    )
    headers["Accept-Ranges"] = "bytes"
    size = info.size
    span = None
    if range_header is not None and (if_range is None or _if_range_holds(if_range, etag, info)):
        span = _parse_range(range_header, size)
    if span is None:
        headers["Content-Length"] = str(size)
        return Download(200, headers, signed.key, 0, size)
    start, end = span
    headers["Content-Length"] = str(end - start)
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return Download(206, headers, signed.key, start, end)


def _not_modified(
    info: ObjectInfo, etag: str, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    if if_none_match is not None:
        return _etag_matches(if_none_match, etag)
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            return False
        return int(info.updated.timestamp()) <= since.timestamp()
    return False


def _if_range_holds(if_range: str, etag: str, info: ObjectInfo) -> bool:
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return value == etag  # strong comparison
    try:
        return parsedate_to_datetime(value).timestamp() >= int(info.updated.timestamp())
    except (TypeError, ValueError):
        return False


def authorize_upload(
    storage: Storage,
    key: str,
    query: Mapping[str, str],
    *,
    content_type_header: str | None,
    content_length: int | None,
    max_bytes: int,
) -> tuple[str, str | None]:
    """Verify a signed PUT URL; return the key and the content type to store.

    The request's Content-Type must match the type the URL was signed for (else
    :class:`~kit_storage.InvalidSignature`, as Google Cloud Storage answers 403); when
    the URL names no type, the client's is ignored and the type is guessed from the key
    (returned as None). A Content-Length over ``max_bytes`` is refused (413) before any
    byte is read.

    Example::

        >>> from urllib.parse import parse_qsl, urlsplit
        >>> from kit_storage._memory import MemoryStorage
        >>> storage = MemoryStorage(base_url="/files", secret=b"k" * 32)
        >>> url = storage.upload_url("in/a.png", content_type="image/png")
        >>> query = dict(parse_qsl(urlsplit(url).query))
        >>> authorize_upload(storage, "in/a.png", query, content_type_header="image/png",
        ...                  content_length=100, max_bytes=1000)
        ('in/a.png', 'image/png')
    """
    signed = _verify(storage, key, query, "PUT")
    if content_length is not None and content_length > max_bytes:
        raise InvalidUpload(
            f"the upload is {content_length} bytes, over the {max_bytes}-byte limit", status=413
        )
    if signed.content_type is None:
        return signed.key, None
    if _essence(content_type_header) != _essence(signed.content_type):
        raise InvalidSignature(
            f"the upload's Content-Type {content_type_header!r} is not the "
            f"{signed.content_type!r} this link was signed for"
        )
    check_content_type(signed.content_type)
    return signed.key, signed.content_type


def info_json(info: ObjectInfo) -> dict[str, Any]:
    """The JSON answer to a successful signed PUT."""
    return {
        "key": info.key,
        "size": info.size,
        "content_type": info.content_type,
        "etag": info.etag,
        "md5": info.md5,
        "updated": info.updated.isoformat(),
    }
