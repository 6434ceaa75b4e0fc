"""FastAPI adapter: checked ``UploadFile`` uploads, a router serving local signed URLs
(GET with Range, signed PUT uploads) and problem+json handlers.

The only module that imports FastAPI/Starlette. Blocking storage calls run in worker
threads, so the event loop never waits on the disk or the network.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping

try:
    from fastapi import APIRouter, FastAPI, Request, UploadFile
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.background import BackgroundTask
except ImportError as exc:  # pragma: no cover - exercised by the slim session
    raise ImportError(
        'kit_storage.fastapi needs FastAPI: pip install "kit-storage[fastapi]"'
    ) from exc

from kit_storage._async import AsyncReader, AsyncStorage
from kit_storage._types import ObjectInfo, Storage
from kit_storage._uploads import (
    authorize_upload,
    capped_chunks,
    check_servable,
    info_json,
    prepare_download,
    problem_for,
    save_upload,
)
from kit_storage.exceptions import ConfigurationError, InvalidUpload, KitStorageError

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "install_problem_handlers",
    "save_upload_file",
    "storage_router",
]

#: Size cap of signed PUT uploads unless ``max_upload_bytes`` says otherwise (100 MiB).
DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024


def _sync(storage: Storage | AsyncStorage) -> Storage:
    return storage.storage if isinstance(storage, AsyncStorage) else storage


async def save_upload_file(
    storage: Storage | AsyncStorage,
    key: str,
    upload: UploadFile,
    *,
    max_bytes: int,
    allowed_types: Iterable[str] | None,
    metadata: Mapping[str, str] | None = None,
) -> ObjectInfo:
    """Store an ``UploadFile`` under ``key``, streamed in a worker thread, with a size cap
    (413) and a content-type allow-list checked against the file's first bytes (415);
    see :func:`kit_storage._uploads.check_upload_type`.

    Example::

        >>> from fastapi import FastAPI, UploadFile
        >>> from kit_storage._memory import MemoryStorage
        >>> app, storage = FastAPI(), MemoryStorage()
        >>> @app.post("/avatar")
        ... async def avatar(file: UploadFile) -> dict[str, int]:
        ...     info = await save_upload_file(storage, "avatars/1.png", file,
        ...                                   max_bytes=1 << 20, allowed_types={"image/png"})
        ...     return {"size": info.size}
    """
    if upload.size is not None and upload.size > max_bytes:
        raise InvalidUpload(
            f"the upload is {upload.size} bytes, over the {max_bytes}-byte limit", status=413
        )
    return await asyncio.to_thread(
        save_upload,
        _sync(storage),
        key,
        upload.file,
        max_bytes=max_bytes,
        allowed_types=allowed_types,
        declared_type=upload.content_type,
        metadata=metadata,
    )


def storage_router(
    storage: Storage | AsyncStorage,
    *,
    prefix: str = "/files",
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
) -> APIRouter:
    """An ``APIRouter`` serving ``storage``'s signed URLs (LocalStorage or MemoryStorage
    created with ``base_url`` pointing at ``prefix``):

    - ``GET``/``HEAD {prefix}/{key}?expires=&sig=[&dl=]`` streams the object with
      Content-Type, Content-Length, ETag, Last-Modified, Accept-Ranges,
      Content-Disposition, ``X-Content-Type-Options: nosniff`` and private caching; one
      ``Range`` gives 206 (416 when unsatisfiable); ``If-None-Match`` gives 304;
    - ``PUT`` to an ``upload_url`` stores the body as it arrives, up to
      ``max_upload_bytes`` (413 beyond), and answers 201 with the object's info;
    - a tampered, expired or wrong-method link gets 403 ``application/problem+json``.

    Example::

        >>> from fastapi import FastAPI
        >>> from kit_storage._memory import MemoryStorage
        >>> app = FastAPI()
        >>> storage = MemoryStorage(base_url="/files", secret=b"k" * 32)
        >>> app.include_router(storage_router(storage, prefix="/files"))
    """
    sync = _sync(storage)
    files = storage if isinstance(storage, AsyncStorage) else AsyncStorage(storage)
    check_servable(sync)
    if isinstance(max_upload_bytes, bool) or not isinstance(max_upload_bytes, int):
        raise ConfigurationError(f"max_upload_bytes must be an int, not {max_upload_bytes!r}")
    if max_upload_bytes < 1:
        raise ConfigurationError(f"max_upload_bytes must be positive, not {max_upload_bytes}")
    router = APIRouter(prefix=prefix.rstrip("/"))

    @router.api_route("/{key:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def download(key: str, request: Request) -> Response:
        headers = request.headers
        try:
            answer = await asyncio.to_thread(
                prepare_download,
                sync,
                key,
                dict(request.query_params),
                range_header=headers.get("range"),
                if_none_match=headers.get("if-none-match"),
                if_modified_since=headers.get("if-modified-since"),
                if_range=headers.get("if-range"),
            )
            if not answer.has_body or request.method == "HEAD":
                return Response(status_code=answer.status, headers=answer.headers)
            reader = await files.open(answer.key, start=answer.start, end=answer.end)
        except KitStorageError as exc:
            return _problem(exc)
        return StreamingResponse(
            _body(reader),
            status_code=answer.status,
            headers=answer.headers,
            background=BackgroundTask(reader.aclose),
        )

    @router.put("/{key:path}", include_in_schema=False)
    async def upload(key: str, request: Request) -> Response:
        try:
            checked_key, content_type = authorize_upload(
                sync,
                key,
                dict(request.query_params),
                content_type_header=request.headers.get("content-type"),
                content_length=_content_length(request.headers.get("content-length")),
                max_bytes=max_upload_bytes,
            )
            info = await files.put(
                checked_key,
                capped_chunks(request.stream(), max_upload_bytes),
                content_type=content_type,
            )
        except KitStorageError as exc:
            return _problem(exc)
        return JSONResponse(info_json(info), status_code=201)

    return router


async def _body(reader: AsyncReader) -> AsyncIterator[bytes]:
    try:
        async for chunk in reader:
            yield chunk
    finally:
        await reader.aclose()


def _content_length(value: str | None) -> int | None:
    if value is None or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def _problem(exc: KitStorageError) -> JSONResponse:
    status, body, headers = problem_for(exc)
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Answer :class:`KitStorageError` with an RFC 9457 ``application/problem+json``
    response (the detail of 5xx errors is a fixed sentence; the message is not shown).

    Example::

        >>> from fastapi import FastAPI
        >>> install_problem_handlers(FastAPI())
    """

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KitStorageError)
        return _problem(exc)

    app.add_exception_handler(KitStorageError, handle)
