"""Google Cloud Storage behind the kit-storage API, on the official google-cloud-storage
client (install the ``gcs`` extra: ``pip install "kit-storage[gcs]"``).

- Credentials: inline service-account JSON (a ``str`` starting with ``{`` or a ``dict``),
  the path of a JSON key file, or ``None`` for application default credentials. When an
  emulator is configured (``base_url=`` or ``STORAGE_EMULATOR_HOST``) requests go out
  anonymously and any credentials given are used only to sign URLs.
- Uploads stream: up to ``chunk_size`` with a known size in one multipart request,
  anything larger (or of unknown size) as a resumable upload sent ``chunk_size`` at a time.
- ``if_not_exists`` is a generation precondition (``ifGenerationMatch=0``), so two racing
  writers cannot both win.
- ``url()``/``upload_url()`` are V4 signed URLs: signed locally with a service-account
  private key, or through IAM ``signBlob`` when the credentials only carry a token
  (Compute Engine, Cloud Run, GKE workload identity).

Example::

    >>> from kit_storage.gcs import GCSStorage
    >>> store = GCSStorage("my-bucket", base_url="http://127.0.0.1:9023")
    >>> store.bucket
    'my-bucket'
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

try:
    import google.auth
    import google.auth.credentials
    import google.auth.exceptions
    import google.auth.transport.requests
    import google.oauth2.credentials
    import requests
    from google.api_core import exceptions as api_exceptions
    from google.api_core.retry import Retry
    from google.cloud import storage  # type: ignore[import-untyped]
    from google.cloud.storage.exceptions import (  # type: ignore[import-untyped]
        DataCorruption,
        InvalidResponse,
    )
    from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]
    from google.oauth2 import service_account
except ImportError as exc:  # pragma: no cover - exercised by the slim session
    raise ImportError(
        'kit_storage.gcs needs google-cloud-storage: pip install "kit-storage[gcs]"'
    ) from exc

from kit_storage._common import (
    check_delimiter,
    check_metadata,
    check_range,
    check_timeout,
    content_type_for,
    within,
)
from kit_storage._keys import validate_key, validate_prefix
from kit_storage._signing import check_content_type, check_download_name, validate_expires_in
from kit_storage._types import CHUNK_SIZE, Data, Folder, ObjectInfo, open_data
from kit_storage.exceptions import (
    AlreadyExists,
    BackendUnavailable,
    BucketNotFound,
    ConfigurationError,
    CredentialsError,
    InvalidData,
    KitStorageError,
    NotFound,
)

__all__ = ["GCSStorage"]

_T = TypeVar("_T")

#: Resumable uploads and chunked reads move data in multiples of 256 KiB (a GCS rule).
CHUNK_QUANTUM = 256 * 1024
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
_SCOPES = ["https://www.googleapis.com/auth/devstorage.full_control"]
# Bucket names: 3-63 characters (222 with dots), lowercase letters, digits, -, _ and .
_BUCKET = re.compile(r"[a-z0-9][a-z0-9_.-]{1,220}[a-z0-9]")
_NETWORK_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionError,
    TimeoutError,
)


class GCSStorage:
    """Objects in one Google Cloud Storage bucket.

    ``credentials`` is inline service-account JSON (``str`` or ``dict``), a key file path,
    ready-made ``google.auth`` credentials, or ``None`` for application default
    credentials. ``client`` replaces the client kit-storage would build (then
    ``credentials`` only signs URLs). ``base_url`` points the JSON API at an emulator
    (requests then go out anonymously). ``service_account_email`` is the account IAM
    ``signBlob`` signs URLs as when the credentials hold no private key. ``retry_timeout``
    bounds the client's retries of a failing call (0 turns retries off).

    Example::

        >>> store = GCSStorage("uploads", base_url="http://127.0.0.1:9023", chunk_size=1024 * 1024)
        >>> store.chunk_size
        1048576
    """

    def __init__(
        self,
        bucket: str,
        *,
        credentials: str
        | os.PathLike[str]
        | Mapping[str, Any]
        | google.auth.credentials.Credentials
        | None = None,
        project: str | None = None,
        client: storage.Client | None = None,
        base_url: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        service_account_email: str | None = None,
        timeout: float = 60.0,
        retry_timeout: float = 120.0,
        page_size: int = 1000,
    ) -> None:
        if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket):
            raise ConfigurationError(
                f"bucket {bucket!r} is not a valid bucket name: 3-222 characters from a-z 0-9 "
                "- _ . (give the bare name, not gs://...)"
            )
        if (
            isinstance(chunk_size, bool)
            or not isinstance(chunk_size, int)
            or chunk_size <= 0
            or chunk_size % CHUNK_QUANTUM
        ):
            raise ConfigurationError(
                f"chunk_size={chunk_size!r} must be a positive multiple of 256 KiB "
                f"({CHUNK_QUANTUM} bytes), e.g. {DEFAULT_CHUNK_SIZE}"
            )
        for name, value in (("timeout", timeout), ("retry_timeout", retry_timeout)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigurationError(f"{name}={value!r} must be a number of seconds >= 0")
        if (
            isinstance(page_size, bool)
            or not isinstance(page_size, int)
            or not 1 <= page_size <= 1000
        ):
            raise ConfigurationError(f"page_size={page_size!r} must be between 1 and 1000")
        self._bucket_name = bucket
        self._chunk_size = chunk_size
        self._timeout = timeout
        self._retry: Retry | None = (
            DEFAULT_RETRY.with_timeout(retry_timeout) if retry_timeout else None
        )
        self._page_size = page_size
        self._service_account_email = service_account_email
        self._bucket_seen = False

        loaded = _load_credentials(credentials) if credentials is not None else None
        signing, loaded_project = loaded if loaded is not None else (None, None)
        if client is None:
            emulator = base_url or os.environ.get("STORAGE_EMULATOR_HOST")
            options = {"api_endpoint": base_url.rstrip("/")} if base_url else None
            if emulator:
                anonymous = google.auth.credentials.AnonymousCredentials  # untyped __init__
                transport: google.auth.credentials.Credentials = anonymous()  # type: ignore[no-untyped-call]
                project = project or loaded_project or "kit-emulator"
            elif signing is not None:
                transport = signing
                project = project or loaded_project
            else:
                try:
                    transport, adc_project = google.auth.default(scopes=_SCOPES)
                except google.auth.exceptions.DefaultCredentialsError:
                    raise CredentialsError(
                        "no credentials given and no application default credentials found: "
                        "pass credentials= (service-account JSON or a key file path), set "
                        "GOOGLE_APPLICATION_CREDENTIALS, or run on Google Cloud"
                    ) from None
                project = project or adc_project
            try:
                client = storage.Client(
                    project=project, credentials=transport, client_options=options
                )
            except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
                raise ConfigurationError(
                    f"cannot build a storage client for bucket {bucket!r}: {exc}"
                ) from None
        self._client = client
        self._signing = signing if signing is not None else client._credentials
        self._bucket = client.bucket(bucket)

    # ------------------------------------------------------------------ properties

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self._bucket_name

    @property
    def chunk_size(self) -> int:
        """Bytes per resumable-upload request and per ranged read."""
        return self._chunk_size

    @property
    def client(self) -> storage.Client:
        """The google-cloud-storage client in use (for what kit-storage does not cover)."""
        return self._client

    def __repr__(self) -> str:
        return f"GCSStorage(bucket={self._bucket_name!r})"

    def check(self) -> None:
        """Fetch the bucket once: :class:`BucketNotFound` if it does not exist,
        :class:`CredentialsError` if the credentials are refused."""
        self._call(
            lambda: self._bucket.reload(timeout=self._timeout, retry=self._retry), bucket_level=True
        )
        self._bucket_seen = True

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if the bucket answers a listing of at most one object
        within ``timeout`` seconds (one cheap metadata request, no retries).

        False, never an exception, when Google Cloud Storage (or the token endpoint) is
        unreachable or late, the bucket does not exist, or the credentials are refused.
        It needs ``storage.objects.list`` (in ``roles/storage.objectViewer`` and
        ``objectAdmin``), not the bucket-level ``storage.buckets.get`` of :meth:`check`.

        Example (nothing listens on port 9; with a real bucket it answers True)::

            >>> GCSStorage("uploads", base_url="http://127.0.0.1:9").ping(timeout=0.5)
            False
        """
        timeout = check_timeout(timeout)

        def probe() -> bool:
            blobs = self._bucket.list_blobs(max_results=1, timeout=timeout, retry=None)
            for _ in blobs:
                break
            return True

        return within(probe, timeout)

    # ------------------------------------------------------------------ writing

    def put(
        self,
        key: str,
        data: Data,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_not_exists: bool = False,
    ) -> ObjectInfo:
        """Stream ``data`` to ``key``; with ``if_not_exists`` the write carries
        ``ifGenerationMatch=0`` and a taken key raises :class:`AlreadyExists`."""
        key = validate_key(key)
        ctype = content_type_for(key, content_type)
        meta = check_metadata(metadata)
        with open_data(data) as (stream, size):
            small = size is not None and size <= self._chunk_size
            blob = self._bucket.blob(key, chunk_size=None if small else self._chunk_size)
            blob.metadata = meta or None
            blob.content_type = ctype
            upload = _TypedReader(stream)
            extra: dict[str, Any] = {"if_generation_match": 0} if if_not_exists else {}
            self._call(
                lambda: blob.upload_from_file(
                    upload,
                    size=size,
                    content_type=ctype,
                    timeout=self._timeout,
                    retry=self._retry,
                    **extra,
                ),
                key=key,
                taken=key if if_not_exists else None,
            )
        return _info(blob)

    def copy(self, source: str, destination: str, *, if_not_exists: bool = False) -> ObjectInfo:
        """Server-side copy (a rewrite loop, so any size works), content type and metadata
        included."""
        source, destination = validate_key(source), validate_key(destination)
        if source == destination:
            if if_not_exists and self.exists(source):
                raise AlreadyExists(f"an object already exists under {destination!r}")
            return self.info(source)
        src = self._bucket.blob(source)
        dst = self._bucket.blob(destination)
        extra: dict[str, Any] = {"if_generation_match": 0} if if_not_exists else {}
        token: str | None = None

        def step() -> tuple[str | None, int, int]:
            return dst.rewrite(src, token=token, timeout=self._timeout, retry=self._retry, **extra)  # type: ignore[no-any-return]

        while True:
            token, _done, _total = self._call(
                step, key=source, taken=destination if if_not_exists else None
            )
            if token is None:
                break
        if dst.size is None:
            return self.info(destination)
        return _info(dst)

    def move(self, source: str, destination: str, *, if_not_exists: bool = False) -> ObjectInfo:
        """Copy, then delete the source (GCS has no rename)."""
        source, destination = validate_key(source), validate_key(destination)
        info = self.copy(source, destination, if_not_exists=if_not_exists)
        if source != destination:
            self.delete(source)
        return info

    def delete(self, key: str) -> bool:
        """Delete ``key``: True if it existed, False if there was nothing to delete."""
        key = validate_key(key)
        blob = self._bucket.blob(key)
        try:
            self._call(lambda: blob.delete(timeout=self._timeout, retry=self._retry), key=key)
        except NotFound:
            return False
        return True

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete every key (all validated first); returns how many existed."""
        checked = [validate_key(key) for key in keys]
        return sum(1 for key in checked if self.delete(key))

    # ------------------------------------------------------------------ reading

    def info(self, key: str) -> ObjectInfo:
        """Size, content type, etag, md5 (hex), update time and metadata."""
        return _info(self._loaded(validate_key(key)))

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            self.info(key)
        except NotFound:
            return False
        return True

    def get(self, key: str) -> bytes:
        """The whole content; stream big objects with :meth:`open` or :meth:`download_to`."""
        key = validate_key(key)
        blob = self._bucket.blob(key)
        data: bytes = self._call(
            lambda: blob.download_as_bytes(timeout=self._timeout, retry=self._retry), key=key
        )
        return data

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> IO[bytes]:
        """A buffered reader of bytes ``start`` to ``end`` (exclusive, clipped to the size),
        fetched ``chunk_size`` at a time as it is read, pinned to the generation it opened."""
        key = validate_key(key)
        check_range(start, end)
        blob = self._loaded(key)
        size = blob.size or 0
        stop = size if end is None else min(end, size)
        raw = _RangeReader(self, blob, min(start, stop), stop)
        return io.BufferedReader(raw, buffer_size=self._chunk_size)

    def download_to(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Stream the object into ``path`` in one checksummed download, written to a temp
        file beside it and renamed into place."""
        key = validate_key(key)
        blob = self._loaded(key)
        target = Path(path)
        if not target.parent.is_dir():
            raise InvalidData(f"download_to(): no folder {str(target.parent)!r}; create it first")
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".kit-tmp-")
        except OSError as exc:
            raise BackendUnavailable(f"cannot write in {target.parent}: {exc.strerror}") from None
        try:
            with open(fd, "wb") as out:
                self._call(
                    lambda: blob.download_to_file(
                        out,
                        if_generation_match=blob.generation,
                        timeout=self._timeout,
                        retry=self._retry,
                    ),
                    key=key,
                )
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError) and not isinstance(exc, KitStorageError):
                raise BackendUnavailable(f"cannot write {target}: {exc.strerror or exc}") from None
            raise
        return _info(blob)

    def list(
        self, prefix: str = "", *, delimiter: str | None = None
    ) -> Iterator[ObjectInfo | Folder]:
        """Objects under ``prefix`` in key order, fetched lazily page by page; with
        ``delimiter="/"`` sub-folders come back as :class:`Folder` entries."""
        prefix = validate_prefix(prefix)
        check_delimiter(delimiter)
        return self._list(prefix, delimiter)

    def _list(self, prefix: str, delimiter: str | None) -> Iterator[ObjectInfo | Folder]:
        iterator = self._client.list_blobs(
            self._bucket_name,
            prefix=prefix or None,
            delimiter=delimiter,
            page_size=self._page_size,
            timeout=self._timeout,
            retry=self._retry,
        )
        pages = iter(iterator.pages)
        while True:
            page = self._call(lambda: next(pages, None), bucket_level=True)
            if page is None:
                return
            entries: list[tuple[str, ObjectInfo | Folder]] = [
                (blob.name, _info(blob)) for blob in page
            ]
            entries.extend((folder, Folder(folder)) for folder in page.prefixes)
            entries.sort(key=lambda entry: entry[0])
            for _name, entry in entries:
                yield entry

    # ------------------------------------------------------------------ signed URLs

    def url(self, key: str, *, expires_in: float = 3600, download_name: str | None = None) -> str:
        """A V4 signed GET URL; ``download_name`` makes browsers save the file under it."""
        key = validate_key(key)
        seconds = validate_expires_in(expires_in)
        name = check_download_name(download_name)
        disposition = _attachment(name) if name is not None else None
        return self._sign(key, "GET", seconds, response_disposition=disposition)

    def upload_url(
        self, key: str, *, expires_in: float = 900, content_type: str | None = None
    ) -> str:
        """A V4 signed PUT URL; a browser must send the same ``Content-Type`` header."""
        key = validate_key(key)
        seconds = validate_expires_in(expires_in)
        ctype = check_content_type(content_type)
        return self._sign(key, "PUT", seconds, content_type=ctype)

    def _sign(self, key: str, method: str, seconds: float, **options: Any) -> str:
        credentials = self._signing
        kwargs: dict[str, Any] = {}
        if isinstance(credentials, google.auth.credentials.Signing):
            kwargs["credentials"] = credentials
        elif isinstance(credentials, google.auth.credentials.AnonymousCredentials):
            raise ConfigurationError(
                f"GCSStorage({self._bucket_name!r}) has no credentials to sign URLs with: pass "
                "credentials= (a service-account key), or run with a service account and "
                "service_account_email="
            )
        else:  # token-only credentials: IAM signBlob signs as the service account
            try:
                if not credentials.valid:
                    credentials.refresh(google.auth.transport.requests.Request())
            except google.auth.exceptions.GoogleAuthError as exc:
                raise CredentialsError(
                    f"cannot get an access token to sign URLs for bucket {self._bucket_name!r}: "
                    f"{type(exc).__name__}"
                ) from None
            email = self._service_account_email or getattr(
                credentials, "service_account_email", None
            )
            if not email or email == "default":
                raise ConfigurationError(
                    "these credentials hold no private key, so URLs are signed with IAM signBlob: "
                    "pass service_account_email= (the account needs "
                    "roles/iam.serviceAccountTokenCreator on itself)"
                )
            kwargs.update(
                credentials=credentials, service_account_email=email, access_token=credentials.token
            )
        blob = self._bucket.blob(key)
        try:
            url: str = blob.generate_signed_url(
                version="v4",
                expiration=timedelta(seconds=int(seconds)),
                method=method,
                **options,
                **kwargs,
            )
        except google.auth.exceptions.TransportError as exc:
            raise CredentialsError(
                f"IAM signBlob refused to sign a URL for bucket {self._bucket_name!r}: {exc}"
            ) from None
        except _NETWORK_ERRORS:
            raise BackendUnavailable(
                f"cannot reach IAM signBlob to sign a URL for bucket {self._bucket_name!r}"
            ) from None
        return url

    # ------------------------------------------------------------------ plumbing

    def _loaded(self, key: str) -> storage.Blob:
        blob = self._bucket.blob(key)
        self._call(lambda: blob.reload(timeout=self._timeout, retry=self._retry), key=key)
        return blob

    def _read_range(self, blob: storage.Blob, start: int, stop: int) -> bytes:
        data: bytes = self._call(
            lambda: blob.download_as_bytes(
                start=start,
                end=stop - 1,
                if_generation_match=blob.generation,
                timeout=self._timeout,
                retry=self._retry,
            ),
            key=blob.name,
        )
        return data

    def _call(
        self,
        fn: Callable[[], _T],
        *,
        key: str | None = None,
        bucket_level: bool = False,
        taken: str | None = None,
    ) -> _T:
        """Run one client call, translating its errors into kit-storage's."""
        try:
            result = fn()
        except KitStorageError:
            raise
        except api_exceptions.NotFound:
            if bucket_level or not self._bucket_exists():
                raise BucketNotFound(
                    f"bucket {self._bucket_name!r} does not exist (or is not visible to these "
                    "credentials); create it or fix the name"
                ) from None
            raise NotFound(f"no object {key!r} in bucket {self._bucket_name!r}") from None
        except api_exceptions.PreconditionFailed:
            if taken is not None:
                raise AlreadyExists(f"an object already exists under {taken!r}") from None
            raise NotFound(f"object {key!r} changed while it was read; open it again") from None
        except (api_exceptions.Forbidden, api_exceptions.Unauthorized) as exc:
            raise CredentialsError(
                f"the credentials were refused for bucket {self._bucket_name!r} "
                f"(HTTP {exc.code}); check the account's roles on the bucket"
            ) from None
        except google.auth.exceptions.TransportError:
            raise BackendUnavailable(
                f"cannot reach Google's token endpoint for bucket {self._bucket_name!r}"
            ) from None
        except google.auth.exceptions.GoogleAuthError:
            raise CredentialsError(
                f"the credentials were refused for bucket {self._bucket_name!r}: no access "
                "token could be had (an expired or revoked key, or the wrong account)"
            ) from None
        except api_exceptions.BadRequest as exc:
            raise InvalidData(
                f"bucket {self._bucket_name!r} refused the request: {exc.message}"
            ) from None
        except (
            api_exceptions.GoogleAPICallError,
            api_exceptions.RetryError,
            InvalidResponse,
        ) as exc:
            raise BackendUnavailable(
                f"Google Cloud Storage failed on bucket {self._bucket_name!r}: {type(exc).__name__}"
            ) from None
        except DataCorruption:
            raise BackendUnavailable(
                f"a checksum mismatch on bucket {self._bucket_name!r}; the transfer was corrupted"
            ) from None
        except _NETWORK_ERRORS as exc:
            raise BackendUnavailable(
                f"cannot reach Google Cloud Storage for bucket {self._bucket_name!r}: {type(exc).__name__}"
            ) from None
        self._bucket_seen = True
        return result

    def _bucket_exists(self) -> bool:
        """After a 404 on an object: tell a missing object from a missing bucket (once)."""
        if self._bucket_seen:
            return True
        try:
            self._bucket.reload(timeout=self._timeout, retry=self._retry)
        except api_exceptions.NotFound:
            return False
        except (api_exceptions.GoogleAPICallError, google.auth.exceptions.GoogleAuthError):
            return True  # e.g. 403: an account without storage.buckets.get; assume it exists
        except _NETWORK_ERRORS:
            return True
        self._bucket_seen = True
        return True


class _RangeReader(io.RawIOBase):
    """Bytes ``start``..``stop`` of one object generation, one ranged request per chunk."""

    def __init__(self, owner: GCSStorage, blob: storage.Blob, start: int, stop: int) -> None:
        self._owner = owner
        self._blob = blob
        self._pos = start
        self._stop = stop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = min(len(view), self._stop - self._pos, self._owner.chunk_size)
        if count <= 0:
            return 0
        data = self._owner._read_range(self._blob, self._pos, self._pos + count)
        if not data:
            raise BackendUnavailable(
                f"object {self._blob.name!r} in bucket {self._owner.bucket!r} ended early"
            )
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class _TypedReader(io.RawIOBase):
    """The caller's stream from where it stands, checked to give bytes (the client would
    fail obscurely on ``str``), with positions counted from there: the resumable upload
    reads ``tell()`` and, when the stream can seek, seeks back to resend a chunk."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._pos = 0
        try:
            self._base: int | None = stream.tell() if stream.seekable() else None
        except (AttributeError, OSError, ValueError):
            self._base = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._base is not None

    def read(self, size: int | None = -1) -> bytes:
        wanted = -1 if size is None or size < 0 else size
        parts: list[bytes] = []
        got = 0
        while wanted < 0 or got < wanted:  # the caller's stream sees reads <= CHUNK_SIZE
            step = CHUNK_SIZE if wanted < 0 else min(CHUNK_SIZE, wanted - got)
            chunk = self._stream.read(step)
            if chunk is None:
                raise InvalidData(
                    "put() got a non-blocking stream that returned None; pass a blocking one"
                )
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise InvalidData(
                    f"put() read {type(chunk).__name__} from the file object; "
                    "open it in binary mode"
                )
            if not chunk:
                break
            parts.append(bytes(chunk))
            got += len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self._base is None:
            raise io.UnsupportedOperation("this upload stream cannot seek")
        if whence == io.SEEK_SET:
            self._stream.seek(self._base + offset)
        else:
            self._stream.seek(offset, whence)
        self._pos = self._stream.tell() - self._base
        return self._pos


def _info(blob: storage.Blob) -> ObjectInfo:
    md5 = base64.b64decode(blob.md5_hash).hex() if blob.md5_hash else None
    updated = blob.updated or datetime.now(UTC)
    return ObjectInfo(
        key=blob.name,
        size=int(blob.size or 0),
        content_type=blob.content_type or "application/octet-stream",
        etag=blob.etag or str(blob.generation or ""),
        md5=md5,
        updated=updated.astimezone(UTC),
        metadata=dict(blob.metadata or {}),
    )


def _attachment(name: str) -> str:
    """``Content-Disposition`` for a download name: an ASCII fallback plus RFC 5987."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name
    )
    quoted = urllib.parse.quote(name, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"


def _load_credentials(
    value: object,
) -> tuple[google.auth.credentials.Credentials, str | None]:
    """Credentials and their project from inline JSON, a dict, a key file or an object."""
    if isinstance(value, google.auth.credentials.Credentials):
        return value, None
    if isinstance(value, Mapping):
        info = dict(value)
        source = "the credentials dict"
    elif isinstance(value, str) and value.lstrip().startswith("{"):
        info = _parse_json(value, "the inline credentials JSON")
        source = "the inline credentials JSON"
    elif isinstance(value, str | os.PathLike):
        path = Path(value)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CredentialsError(
                f"no credentials file at {str(path)!r}; check the path"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialsError(f"cannot read credentials file {str(path)!r}: {exc}") from None
        info = _parse_json(text, f"credentials file {str(path)!r}")
        source = f"credentials file {str(path)!r}"
    else:
        raise CredentialsError(
            f"credentials must be service-account JSON (str or dict), a key file path or "
            f"google.auth credentials, not {type(value).__name__}"
        )
    kind = info.get("type")
    try:
        if kind == "service_account":
            sa = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=_SCOPES
            )
            return sa, info.get("project_id")
        if kind == "authorized_user":
            user = google.oauth2.credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                info, _SCOPES
            )
            return user, info.get("quota_project_id")
    except (google.auth.exceptions.GoogleAuthError, ValueError) as exc:
        raise CredentialsError(f"{source} is not usable credentials: {_first_line(exc)}") from None
    raise CredentialsError(
        f"{source} has type {kind!r}; inline or file credentials must be 'service_account' "
        "or 'authorized_user' JSON (for other kinds use application default credentials)"
    )


def _parse_json(text: str, what: str) -> dict[str, Any]:
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:  # the message names the position, never the content
        raise CredentialsError(
            f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(info, dict):
        raise CredentialsError(f"{what} must be a JSON object, not {type(info).__name__}")
    return info


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
