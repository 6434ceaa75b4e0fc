"""Flask adapter: checked uploads from ``request.files``, a blueprint serving local signed
URLs (GET with Range, signed PUT uploads), and the :class:`KitStorage` extension. The only
module that imports Flask.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import IO, cast
from urllib.parse import urlsplit

try:
    from flask import Blueprint, Flask, Response, current_app, jsonify, request
except ImportError as exc:  # pragma: no cover - exercised by the slim session
    raise ImportError('kit_storage.flask needs Flask: pip install "kit-storage[flask]"') from exc

from kit_storage._local import LocalStorage
from kit_storage._types import CHUNK_SIZE, ObjectInfo, Storage
from kit_storage._uploads import (
    CappedReader,
    authorize_upload,
    check_servable,
    info_json,
    prepare_download,
    problem_for,
    save_upload,
)
from kit_storage.exceptions import ConfigurationError, InvalidUpload, KitStorageError

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "KitStorage",
    "get_storage",
    "save_upload_from_request",
    "storage_blueprint",
]

EXTENSION_KEY = "kit-storage"
#: Size cap of signed PUT uploads unless ``max_upload_bytes`` says otherwise (100 MiB).
DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024


def save_upload_from_request(
    storage: Storage,
    key: str,
    field: str = "file",
    *,
    max_bytes: int,
    allowed_types: Iterable[str] | None,
    metadata: Mapping[str, str] | None = None,
) -> ObjectInfo:
    """Store the file posted in form field ``field`` under ``key``, streamed from
    ``request.files[field].stream`` with a size cap (413) and a content-type allow-list
    checked against the file's first bytes (415); see
    :func:`kit_storage._uploads.check_upload_type`.

    Werkzeug parses the whole multipart body before the view runs: set Flask's
    ``MAX_CONTENT_LENGTH`` too, so an oversized request is cut off while it arrives.

    Example::

        >>> from flask import Flask
        >>> from kit_storage._memory import MemoryStorage
        >>> app, storage = Flask(__name__), MemoryStorage()
        >>> @app.post("/avatar")
        ... def avatar() -> dict[str, int]:
        ...     info = save_upload_from_request(storage, "avatars/1.png", max_bytes=1 << 20,
        ...                                     allowed_types={"image/png"})
        ...     return {"size": info.size}
    """
    upload = request.files.get(field)
    if upload is None:
        raise InvalidUpload(
            f"the request has no file in form field {field!r}; send multipart/form-data "
            f"with the file under {field!r}",
            status=400,
        )
    return save_upload(
        storage,
        key,
        upload.stream,
        max_bytes=max_bytes,
        allowed_types=allowed_types,
        declared_type=upload.mimetype or None,
        metadata=metadata,
    )


def storage_blueprint(
    storage: Storage,
    *,
    url_prefix: str = "/files",
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    name: str = "kit_storage",
) -> Blueprint:
    """A blueprint serving ``storage``'s signed URLs (LocalStorage or MemoryStorage
    created with ``base_url`` pointing at ``url_prefix``):

    - ``GET {url_prefix}/<key>?expires=&sig=[&dl=]`` streams the object with
      Content-Type, Content-Length, ETag, Last-Modified, Accept-Ranges,
      Content-Disposition, ``X-Content-Type-Options: nosniff`` and private caching; one
      ``Range`` gives 206 (416 when unsatisfiable); ``If-None-Match`` gives 304;
    - ``PUT`` to an :meth:`upload_url` stores the body, streamed, up to
      ``max_upload_bytes`` (413 beyond), and answers 201 with the object's info;
    - a tampered, expired or wrong-method link gets 403 ``application/problem+json``.

    Example::

        >>> from flask import Flask
        >>> from kit_storage._memory import MemoryStorage
        >>> app = Flask(__name__)
        >>> storage = MemoryStorage(base_url="/files", secret=b"k" * 32)
        >>> app.register_blueprint(storage_blueprint(storage, url_prefix="/files"))
    """
    check_servable(storage)
    if isinstance(max_upload_bytes, bool) or not isinstance(max_upload_bytes, int):
        raise ConfigurationError(f"max_upload_bytes must be an int, not {max_upload_bytes!r}")
    if max_upload_bytes < 1:
        raise ConfigurationError(f"max_upload_bytes must be positive, not {max_upload_bytes}")
    blueprint = Blueprint(name, __name__, url_prefix=url_prefix.rstrip("/") or None)

    @blueprint.route("/<path:key>", methods=["GET"])
    def download(key: str) -> Response:
        answer = prepare_download(
            storage,
            key,
            request.args.to_dict(),
            range_header=request.headers.get("Range"),
            if_none_match=request.headers.get("If-None-Match"),
            if_modified_since=request.headers.get("If-Modified-Since"),
            if_range=request.headers.get("If-Range"),
        )
        if not answer.has_body or request.method == "HEAD":
            return Response(status=answer.status, headers=answer.headers)
        reader = storage.open(answer.key, start=answer.start, end=answer.end)
        return Response(
            _stream(reader),
            status=answer.status,
            headers=answer.headers,
            direct_passthrough=True,
        )

    @blueprint.route("/<path:key>", methods=["PUT"])
    def upload(key: str) -> Response:
        checked_key, content_type = authorize_upload(
            storage,
            key,
            request.args.to_dict(),
            content_type_header=request.headers.get("Content-Type"),
            content_length=request.content_length,
            max_bytes=max_upload_bytes,
        )
        body = CappedReader(request.stream, max_upload_bytes)
        info = storage.put(checked_key, cast(IO[bytes], body), content_type=content_type)
        response = jsonify(info_json(info))
        response.status_code = 201
        return response

    blueprint.register_error_handler(KitStorageError, _problem_response)
    return blueprint


def _stream(reader: IO[bytes]) -> Iterator[bytes]:
    with reader:
        while chunk := reader.read(CHUNK_SIZE):
            yield chunk


class KitStorage:
    """The Flask extension: ``KitStorage(app)`` or ``ext = KitStorage()`` then
    ``ext.init_app(app)``.

    Uses ``storage`` when given, else builds a ``LocalStorage`` from ``app.config``:
    ``KIT_STORAGE_ROOT`` (required), ``KIT_STORAGE_SECRET`` and ``KIT_STORAGE_BASE_URL``
    (both, for signed URLs). When the storage comes from the config with a base URL, the
    file route (:func:`storage_blueprint`) is mounted at the base URL's path, with
    ``KIT_STORAGE_MAX_UPLOAD_BYTES`` as the signed-PUT cap. Answers
    :class:`KitStorageError` with RFC 9457 ``application/problem+json``.

    Example::

        >>> from flask import Flask
        >>> from kit_storage._memory import MemoryStorage
        >>> app = Flask(__name__)
        >>> ext = KitStorage(app, storage=MemoryStorage())
        >>> with app.app_context():
        ...     get_storage() is ext.storage
        True
    """

    def __init__(self, app: Flask | None = None, storage: Storage | None = None) -> None:
        self.app: Flask | None = None
        self._given = storage
        self.storage: Storage | None = storage
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Build or take the storage, mount the file route, register the error handler."""
        storage = self._given
        if storage is None:
            storage = self._from_config(app)
        self.storage = storage
        app.extensions[EXTENSION_KEY] = self
        app.register_error_handler(KitStorageError, _problem_response)
        self.app = app

    def _from_config(self, app: Flask) -> Storage:
        root = app.config.get("KIT_STORAGE_ROOT")
        if not root:
            raise ConfigurationError(
                "KIT_STORAGE_ROOT is not set: give the directory files are stored in, or "
                "pass storage= to KitStorage"
            )
        secret = app.config.get("KIT_STORAGE_SECRET")
        base_url = app.config.get("KIT_STORAGE_BASE_URL")
        max_upload = app.config.get("KIT_STORAGE_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES)
        storage: Storage = LocalStorage(root, base_url=base_url, secret=secret)
        if base_url:
            prefix = urlsplit(base_url).path.rstrip("/") or "/"
            app.register_blueprint(
                storage_blueprint(storage, url_prefix=prefix, max_upload_bytes=max_upload)
            )
        return storage


def get_storage(app: Flask | None = None) -> Storage:
    """The storage of the :class:`KitStorage` extension on ``app`` (default: the current
    app); ConfigurationError when the extension is not set up.

    Example::

        >>> from flask import Flask
        >>> from kit_storage._memory import MemoryStorage
        >>> app = Flask(__name__)
        >>> _ = KitStorage(app, storage=MemoryStorage())
        >>> type(get_storage(app)).__name__
        'MemoryStorage'
    """
    target = app if app is not None else current_app
    ext = target.extensions.get(EXTENSION_KEY)
    if not isinstance(ext, KitStorage) or ext.storage is None:
        raise ConfigurationError("KitStorage is not initialised on this app: call KitStorage(app)")
    return ext.storage


def _problem_response(exc: KitStorageError) -> Response:
    status, body, headers = problem_for(exc)
    response: Response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    response.headers.update(headers)
    return response
