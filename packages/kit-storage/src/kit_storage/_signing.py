"""Signed URLs for :class:`~kit_storage.LocalStorage` and :class:`~kit_storage.MemoryStorage`.

A signed URL is ``{base_url}/{quoted key}?expires=...&sig=...[&dl=...][&ct=...]``. The
signature is HMAC-SHA256, keyed with the application's secret (at least 32 bytes), over
the HTTP method, the key, the expiry (Unix seconds), the download name and the content
type, so changing any of them (or using a download URL to upload) breaks it. The Flask and
FastAPI adapters call :meth:`URLSigner.verify` (through ``storage.verify_signed_url``)
before serving; a bad or expired signature raises :class:`~kit_storage.InvalidSignature`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from kit_storage._keys import validate_key
from kit_storage.exceptions import ConfigurationError, InvalidData, InvalidSignature

__all__ = [
    "MAX_EXPIRES_IN",
    "MIN_SECRET_BYTES",
    "SignedRequest",
    "URLSigner",
    "validate_expires_in",
]

#: Seven days: the longest a Google Cloud Storage V4 signature may live; the same bound
#: applies to local signed URLs so code behaves the same on every backend.
MAX_EXPIRES_IN = 7 * 24 * 3600
#: HMAC-SHA256 keys shorter than this are refused.
MIN_SECRET_BYTES = 32
_METHODS = frozenset({"GET", "PUT"})
_VERSION = "kit-storage-url-v1"
_UNSAFE_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTENT_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+(;[ -~]*)?")


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a verified signed URL allows: the (normalized) key, the method, when it
    expires (Unix seconds), and the signed download name or upload content type.

    Example::

        >>> SignedRequest("a.txt", "GET", 1767225600, "report.txt", None).download_name
        'report.txt'
    """

    key: str
    method: str
    expires: int
    download_name: str | None
    content_type: str | None


def validate_expires_in(expires_in: float) -> float:
    """Return ``expires_in`` if it is between 1 second and 7 days, else raise
    :class:`~kit_storage.InvalidData`.

    Example::

        >>> validate_expires_in(3600)
        3600
    """
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        raise InvalidData(f"expires_in must be a number of seconds, not {expires_in!r}")
    if not (1 <= expires_in <= MAX_EXPIRES_IN):
        raise InvalidData(
            f"expires_in={expires_in!r} is out of range: give between 1 second and "
            f"{MAX_EXPIRES_IN} seconds (7 days, the V4 signed-URL maximum)"
        )
    return expires_in


def check_download_name(name: str | None) -> str | None:
    """``None``, or a file name to suggest to the browser (no controls, <= 255 chars)."""
    if name is None:
        return None
    if not isinstance(name, str) or not name or len(name) > 255 or _UNSAFE_TEXT.search(name):
        raise InvalidData(
            f"download_name {name!r} is not a usable file name: give 1-255 characters "
            "without control or bidi characters"
        )
    return name


def check_content_type(content_type: str | None) -> str | None:
    """``None``, or a ``type/subtype[; params]`` media type, else :class:`InvalidData`."""
    if content_type is None:
        return None
    if (
        not isinstance(content_type, str)
        or len(content_type) > 255
        or not _CONTENT_TYPE.fullmatch(content_type)
    ):
        raise InvalidData(
            f"content_type {content_type!r} is not a media type such as 'image/png' "
            "(type/subtype, printable ASCII, at most 255 characters)"
        )
    return content_type


class URLSigner:
    """Make and check HMAC-signed URLs for one ``base_url``.

    ``base_url`` is where the adapter's serving route is mounted: an absolute ``http(s)``
    URL or a path starting with ``/``. ``secret`` is at least 32 bytes (a ``str`` is
    encoded as UTF-8); keep it out of the code, e.g. ``secrets.token_bytes(32)`` stored
    in the environment.

    Example::

        >>> signer = URLSigner(b"k" * 32, "https://app.example/files")
        >>> url = signer.sign("GET", "docs/a.pdf", 60)
        >>> url.startswith("https://app.example/files/docs/a.pdf?expires=")
        True
        >>> from urllib.parse import parse_qsl, urlsplit
        >>> params = dict(parse_qsl(urlsplit(url).query))
        >>> signer.verify("GET", "docs/a.pdf", params).key
        'docs/a.pdf'
    """

    def __init__(self, secret: bytes | str, base_url: str) -> None:
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if not isinstance(secret, bytes | bytearray):
            raise ConfigurationError(
                f"secret must be bytes, not {type(secret).__name__}; use secrets.token_bytes(32)"
            )
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"secret is {len(secret)} bytes; signed URLs need at least "
                f"{MIN_SECRET_BYTES} random bytes (secrets.token_bytes(32))"
            )
        if not isinstance(base_url, str):
            raise ConfigurationError(f"base_url must be a str, not {type(base_url).__name__}")
        parts = urlsplit(base_url)
        absolute = parts.scheme in ("http", "https") and bool(parts.netloc)
        if (
            not (absolute or (not parts.scheme and not parts.netloc and base_url.startswith("/")))
            or parts.query
            or parts.fragment
            or _UNSAFE_TEXT.search(base_url)
        ):
            raise ConfigurationError(
                f"base_url {base_url!r} must be an http(s) URL or a path starting with '/' "
                "(where the signed-URL route is mounted), without query or fragment"
            )
        self._secret = bytes(secret)
        self.base_url = base_url.rstrip("/")

    def sign(
        self,
        method: str,
        key: str,
        expires_in: float,
        download_name: str | None = None,
        content_type: str | None = None,
        *,
        now: float | None = None,
    ) -> str:
        """A URL allowing ``method`` on ``key`` for ``expires_in`` seconds."""
        method = _check_method(method)
        key = validate_key(key)
        validate_expires_in(expires_in)
        download_name = check_download_name(download_name)
        content_type = check_content_type(content_type)
        expires = math.ceil((time.time() if now is None else now) + expires_in)
        params = {"expires": str(expires)}
        if download_name is not None:
            params["dl"] = download_name
        if content_type is not None:
            params["ct"] = content_type
        params["sig"] = self._signature(method, key, expires, download_name, content_type)
        return f"{self.base_url}/{quote(key, safe='/')}?{urlencode(params, quote_via=quote)}"

    def verify(
        self,
        method: str,
        key: str,
        params: Mapping[str, str],
        now: float | None = None,
    ) -> SignedRequest:
        """Check a signed URL's query ``params`` for ``method`` on ``key`` (the unquoted
        path after ``base_url``); return what it allows or raise
        :class:`~kit_storage.InvalidSignature`."""
        method = _check_method(method)
        key = validate_key(key)
        sig = params.get("sig")
        raw_expires = params.get("expires")
        if not sig or not raw_expires:
            raise InvalidSignature("the link is not signed (no 'sig' or 'expires' parameter)")
        if not raw_expires.isascii() or not raw_expires.isdigit() or len(raw_expires) > 12:
            raise InvalidSignature("the link's 'expires' parameter is not a Unix time")
        expires = int(raw_expires)
        download_name = params.get("dl")
        content_type = params.get("ct")
        expected = self._signature(method, key, expires, download_name, content_type)
        if not hmac.compare_digest(expected.encode("ascii"), sig.encode("utf-8", "replace")):
            raise InvalidSignature(
                "the link's signature does not match: it was altered, is for another "
                "method, or was signed with another secret"
            )
        if (time.time() if now is None else now) > expires:
            raise InvalidSignature("the link has expired; ask for a new one")
        return SignedRequest(key, method, expires, download_name, content_type)

    def _signature(
        self,
        method: str,
        key: str,
        expires: int,
        download_name: str | None,
        content_type: str | None,
    ) -> str:
        # JSON keeps fields unambiguous: no separator trick can move text between them,
        # and None differs from "".
        message = json.dumps(
            [_VERSION, method, key, expires, download_name, content_type],
            ensure_ascii=True,
            separators=(",", ":"),
        ).encode("ascii")
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def __repr__(self) -> str:
        return f"URLSigner(base_url={self.base_url!r}, secret=<hidden>)"


def _check_method(method: str) -> str:
    upper = method.upper() if isinstance(method, str) else ""
    if upper not in _METHODS:
        raise InvalidData(f"signed URLs are for GET or PUT, not {method!r}")
    return upper
