"""Every error kit-storage raises derives from :class:`KitStorageError`.

::

    KitStorageError
    ├── ConfigurationError        an invalid option, root, bucket name or credentials (500)
    │   ├── BucketNotFound        the configured bucket does not exist (500)
    │   └── CredentialsError      credentials missing, unreadable or refused (500)
    ├── InvalidKey                a key that is empty, absolute, has ``..``, control
    │                             characters, or is too long (400)
    ├── InvalidData               ``put`` given something it cannot store: a ``str``, a
    │                             text-mode file, a local path that does not exist (400)
    ├── InvalidUpload             an upload over the size cap or of a refused type (413/415)
    ├── NotFound                  no object under this key (404)
    ├── AlreadyExists             ``put(..., if_not_exists=True)`` and the key is taken (409)
    ├── InvalidSignature          a signed URL that is tampered with or expired (403)
    └── BackendUnavailable        the disk or the bucket cannot be reached or written:
                                  disk full, permission denied, network down (503)

Each class carries the HTTP ``status``, ``title`` and problem-type ``slug`` the adapters
use to answer with an RFC 9457 ``application/problem+json`` response. The ``detail`` of a
5xx problem is a fixed sentence: the message can name paths, buckets or accounts and is
only logged.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyExists",
    "BackendUnavailable",
    "BucketNotFound",
    "ConfigurationError",
    "CredentialsError",
    "InvalidData",
    "InvalidKey",
    "InvalidSignature",
    "InvalidUpload",
    "KitStorageError",
    "NotFound",
]


class KitStorageError(Exception):
    """Base class of every kit-storage error."""

    #: HTTP status of the problem response when this error escapes a view.
    status: int = 500
    #: Short, human-readable summary of the problem type (RFC 9457 ``title``).
    title: str = "Storage error"
    #: The ``type`` slug after ``https://kit.dev/problems/``.
    slug: str = "storage-error"
    #: Whether ``str(self)`` may be shown to the client (4xx only).
    public_detail: bool = False

    def problem(self) -> dict[str, Any]:
        """This error as an RFC 9457 problem object (``application/problem+json``).

        Example::

            >>> NotFound("no object 'avatars/42.png'").problem()["status"]
            404
            >>> BackendUnavailable("/srv/files: No space left on device").problem()["detail"]
            'The file storage cannot be reached right now. Try again later.'
        """
        detail = str(self) if self.public_detail else _FIXED_DETAIL.get(self.slug, self.title)
        return {
            "type": f"https://kit.dev/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": detail,
        }


class ConfigurationError(KitStorageError, ValueError):
    """An option, root directory, bucket name or credential setting is invalid; the message
    names it and says what to do."""

    title = "Storage misconfigured"
    slug = "storage-misconfigured"


class BucketNotFound(ConfigurationError):
    """The configured bucket does not exist (or this account cannot see it)."""

    title = "Bucket not found"
    slug = "bucket-not-found"


class CredentialsError(ConfigurationError):
    """Credentials are missing, unreadable, malformed or refused by the provider."""

    title = "Storage credentials invalid"
    slug = "storage-credentials"


class InvalidKey(KitStorageError, ValueError):
    """A key kit-storage refuses: empty, absolute, with ``.`` or ``..`` segments, a
    backslash, control characters, or over the length limit."""

    status = 400
    title = "Invalid file key"
    slug = "invalid-key"
    public_detail = True


class InvalidData(KitStorageError, ValueError):
    """``put`` was given something it cannot store: a ``str`` (ambiguous between content
    and a path), a text-mode file, or a local path that does not exist."""

    status = 400
    title = "Invalid data"
    slug = "invalid-data"
    public_detail = True


class InvalidUpload(KitStorageError, ValueError):
    """An upload refused by the adapters: over the size cap (413) or of a content type
    not on the allow-list (415)."""

    status = 413
    title = "Upload refused"
    slug = "upload-refused"
    public_detail = True

    def __init__(self, message: str, *, status: int = 413) -> None:
        super().__init__(message)
        self.status = status


class NotFound(KitStorageError, LookupError):
    """No object is stored under this key."""

    status = 404
    title = "File not found"
    slug = "file-not-found"
    public_detail = True


class AlreadyExists(KitStorageError):
    """``put(..., if_not_exists=True)`` found the key already taken."""

    status = 409
    title = "File already exists"
    slug = "file-exists"
    public_detail = True


class InvalidSignature(KitStorageError):
    """A signed URL whose signature does not match, or that has expired."""

    status = 403
    title = "Invalid or expired link"
    slug = "invalid-signature"
    public_detail = True


class BackendUnavailable(KitStorageError, OSError):
    """The disk or bucket cannot be read or written: disk full, permission denied, network
    down, a server error from the provider."""

    status = 503
    title = "Storage unavailable"
    slug = "storage-unavailable"


_FIXED_DETAIL: dict[str, str] = {
    "storage-error": "A file storage operation failed.",
    "storage-misconfigured": "The server's file storage is misconfigured.",
    "bucket-not-found": "The server's file storage is misconfigured.",
    "storage-credentials": "The server's file storage is misconfigured.",
    "storage-unavailable": "The file storage cannot be reached right now. Try again later.",
}
