"""kit-storage: local files, Google Cloud Storage and memory behind one streaming API, with
validated keys, atomic writes and signed URLs.

``LocalStorage``, ``MemoryStorage`` and ``AsyncStorage`` are here; ``GCSStorage`` is
``kit_storage.gcs.GCSStorage`` (the ``gcs`` extra, google-cloud-storage).

Example::

    >>> import kit_storage
    >>> kit_storage.validate_key("avatars/42.png")
    'avatars/42.png'
"""

from __future__ import annotations

from kit_storage._async import AsyncStorage
from kit_storage._keys import validate_key
from kit_storage._local import LocalStorage
from kit_storage._memory import MemoryStorage
from kit_storage._signing import SignedRequest
from kit_storage._types import Folder, ObjectInfo, Storage
from kit_storage._version import __version__
from kit_storage.exceptions import (
    AlreadyExists,
    BackendUnavailable,
    BucketNotFound,
    ConfigurationError,
    CredentialsError,
    InvalidData,
    InvalidKey,
    InvalidSignature,
    InvalidUpload,
    KitStorageError,
    NotFound,
)

# The public API: every name a user imports, sorted. Core modules only: the Flask and
# FastAPI adapters are imported as kit_storage.flask / kit_storage.fastapi.
__all__ = [
    "AlreadyExists",
    "AsyncStorage",
    "BackendUnavailable",
    "BucketNotFound",
    "ConfigurationError",
    "CredentialsError",
    "Folder",
    "InvalidData",
    "InvalidKey",
    "InvalidSignature",
    "InvalidUpload",
    "KitStorageError",
    "LocalStorage",
    "MemoryStorage",
    "NotFound",
    "ObjectInfo",
    "SignedRequest",
    "Storage",
    "__version__",
    "validate_key",
]
