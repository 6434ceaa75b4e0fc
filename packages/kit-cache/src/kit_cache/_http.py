"""HTTP response caching without a framework: the rules the Flask and FastAPI adapters share.

Which requests may be answered from the cache, which responses may be stored, the cache
key, the strong ETag, ``If-None-Match`` (RFC 9110 §13.1.2), the ``Cache-Control``,
``Vary`` and ``Age`` headers of cached responses, and RFC 9457 problem details for
kit-cache errors. The adapters (:mod:`kit_cache.flask`, :mod:`kit_cache.fastapi`) only
translate between their framework's request/response objects and the plain values here.

Example::

    >>> policy = ResponsePolicy(60, vary=["Accept-Language"])
    >>> headers = {"accept-language": "fr"}.get
    >>> lookup = policy.lookup("GET", headers)
    >>> policy.key(default_key_base("/items", "b=2&a=1"), headers, lookup)
    '/items?a=1&b=2|accept-language=fr'
    >>> entry = policy.capture(200, [("Content-Type", "application/json")], b"[]", 60)
    >>> entry.etag == etag_for(b"[]")
    True
    >>> policy.reply(entry, lookup, method="GET", if_none_match=entry.etag).status
    304
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode

from ._base import check_ttl
from .exceptions import (
    BackendError,
    BackendUnavailable,
    CacheKeyError,
    ConfigurationError,
    KitCacheError,
    SerializationError,
)

__all__ = [
    "CACHEABLE_METHODS",
    "NAMESPACE",
    "PROBLEM_CONTENT_TYPE",
    "STORED_HEADERS",
    "CachedResponse",
    "HeaderGetter",
    "Lookup",
    "Reply",
    "ResponsePolicy",
    "default_key_base",
    "etag_for",
    "etag_matches",
    "parse_cache_control",
    "problem_details",
]

NAMESPACE: Final = "http"
"""The cache namespace of every stored response: ``cache.clear("http")`` drops them all."""

CACHEABLE_METHODS: Final = frozenset({"GET", "HEAD"})

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"

STORED_HEADERS: Final = frozenset(
    {
        "content-type",
        "content-language",
        "content-disposition",
        "content-encoding",
        "content-location",
        "last-modified",
        "link",
    }
)
"""Response headers kept with a cached body (lower case). Everything else (``Set-Cookie``,
``Date``, per-request ids, ...) is never replayed to another client; add names with
``store_headers=``."""

HeaderGetter = Callable[[str], str | None]
"""Case-insensitive lookup of one request header: ``request.headers.get`` in both
frameworks."""

_FORMAT: Final = 1  # version of the stored dict; other versions read as a miss
_SENSITIVE: Final = frozenset({"authorization", "proxy-authorization", "cookie"})
_READABLE_VALUE: Final = 64
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_DIRECTIVE = re.compile(
    r"""\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)      # directive name
        (?:\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*))?  # optional token or quoted-string value
        \s*(?:,|$)""",
    re.VERBOSE,
)
_ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"')
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~"


# --------------------------------------------------------------------------- header parsing


def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """Parse a ``Cache-Control`` header into ``{directive: value or None}``, names lower-cased.

    Quoted values may contain commas (``no-cache="Set-Cookie, X-Foo"``); malformed parts are
    skipped.

    Example::

        >>> parse_cache_control('Public, max-age=60, no-cache="a, b"')
        {'public': None, 'max-age': '60', 'no-cache': 'a, b'}
    """
    directives: dict[str, str | None] = {}
    if not value:
        return directives
    pos, end = 0, len(value)
    while pos < end:
        match = _DIRECTIVE.match(value, pos)
        if match is None or match.end() == pos:
            comma = value.find(",", pos)
            if comma < 0:
                break
            pos = comma + 1
            continue
        name, raw = match.group(1).lower(), match.group(2)
        if raw is not None and raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        directives.setdefault(name, raw)
        pos = match.end()
    return directives


def _vary_tokens(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


# --------------------------------------------------------------------------- ETags


def etag_for(body: bytes) -> str:
    """A strong ETag for ``body``: a quoted 32-hex-digit BLAKE2b digest.

    The same bytes give the same tag in every process and on every machine (never
    Python's salted ``hash()``), so replicas behind a load balancer agree.

    Example::

        >>> etag_for(b"hello")
        '"46fb7408d4f285228f4af516ea25851b"'
    """
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header matches ``etag`` (RFC 9110 §13.1.2).

    The header is ``*`` or a list of entity tags; comparison is weak, so ``W/"x"``
    matches ``"x"``.

    Example::

        >>> etag_matches('W/"a", "b"', '"a"'), etag_matches("*", '"z"'), etag_matches('"c"', '"a"')
        (True, True, False)
    """
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = _opaque(etag)
    return any(_opaque(tag) == wanted for tag in _ENTITY_TAG.findall(if_none_match))


# --------------------------------------------------------------------------- keys


def _quote(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe=_PATH_SAFE)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def default_key_base(path: str, query: str) -> str:
    """The default key of a URL: the percent-encoded path plus the query sorted by name.

    ``?b=2&a=1`` and ``?a=1&b=2`` share one entry; the result is printable ASCII.

    Example::

        >>> default_key_base("/search", "q=caf%C3%A9&page=2")
        '/search?page=2&q=caf%C3%A9'
    """
    base = _quote(path or "/")
    if not query:
        return base
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return f"{base}?{urlencode(pairs)}" if pairs else base


# --------------------------------------------------------------------------- values


@dataclass(slots=True, frozen=True)
class Lookup:
    """What the cache may do for one request: ``read`` (False for ``no-cache``) and whether
    the request carried credentials (its response is then ``private``)."""

    read: bool
    authorized: bool


@dataclass(slots=True)
class CachedResponse:
    """A stored response: what goes into the cache as a small JSON-able dict."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    etag: str
    stored_at: float
    max_age: int | None

    def to_value(self) -> dict[str, Any]:
        """The dict stored in the cache (bytes round-trip through every kit serializer)."""
        return {
            "v": _FORMAT,
            "status": self.status,
            "headers": [[name, value] for name, value in self.headers],
            "body": self.body,
            "etag": self.etag,
            "stored_at": self.stored_at,
            "max_age": self.max_age,
        }

    @classmethod
    def from_value(cls, value: object) -> CachedResponse | None:
        """Rebuild from :meth:`to_value`'s dict; None (a miss) for anything else."""
        if not isinstance(value, dict) or value.get("v") != _FORMAT:
            return None
        status, headers, body = value.get("status"), value.get("headers"), value.get("body")
        etag, stored_at, max_age = value.get("etag"), value.get("stored_at"), value.get("max_age")
        if (
            not isinstance(status, int)
            or not isinstance(body, bytes)
            or not isinstance(etag, str)
            or not isinstance(stored_at, int | float)
            or not (max_age is None or isinstance(max_age, int))
            or not isinstance(headers, list)
        ):
            return None
        pairs: list[tuple[str, str]] = []
        for item in headers:
            if (
                not isinstance(item, list | tuple)
                or len(item) != 2
                or not all(isinstance(part, str) for part in item)
            ):
                return None
            pairs.append((item[0], item[1]))
        return cls(status, pairs, body, etag, float(stored_at), max_age)


@dataclass(slots=True, frozen=True)
class Reply:
    """A framework-free response for an adapter to send: status, headers, body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


# --------------------------------------------------------------------------- policy


class ResponsePolicy:
    """The caching rules of one decorated view, checked once at decoration time.

    - ``ttl``: seconds a response stays cached and its ``max-age``; ``None`` uses the
      cache's ``default_ttl`` (when that is ``None`` too, entries never expire and clients
      get ``Cache-Control: public, no-cache``, i.e. revalidate with the ETag every time).
    - ``vary``: request header names whose values are part of the key; they are listed in
      the response's ``Vary``.
    - ``allow_authorized``: also cache requests with an ``Authorization`` header. Such
      entries are keyed by a digest of the credentials and sent ``private``.
    - ``allow_cookies``: also store responses that set cookies. ``Set-Cookie`` itself is
      never stored: only the client whose request computed the response gets the cookie.
    - ``store_headers``: more response header names to keep besides :data:`STORED_HEADERS`.

    Example::

        >>> policy = ResponsePolicy(30)
        >>> policy.lookup("POST", {}.get) is None  # only GET and HEAD
        True
        >>> policy.lookup("GET", {"cache-control": "no-cache"}.get)
        Lookup(read=False, authorized=False)
    """

    __slots__ = ("allow_authorized", "allow_cookies", "keep", "ttl", "vary", "vary_header")

    def __init__(
        self,
        ttl: float | None = None,
        *,
        vary: Sequence[str] = (),
        allow_authorized: bool = False,
        allow_cookies: bool = False,
        store_headers: Sequence[str] = (),
    ) -> None:
        self.ttl = None if ttl is None else check_ttl(ttl)
        if isinstance(vary, str) or isinstance(store_headers, str):
            raise ConfigurationError(
                "vary= and store_headers= take a list of header names, e.g. vary=['Accept'], "
                f"got the string {vary if isinstance(vary, str) else store_headers!r}"
            )
        names: list[str] = []
        for name in [*vary, *store_headers]:
            if not isinstance(name, str) or not _TOKEN.match(name):
                raise ConfigurationError(f"invalid HTTP header name {name!r}")
            names.append(name)
        self.vary: tuple[str, ...] = tuple(dict.fromkeys(n.lower() for n in vary))
        shown = list(dict.fromkeys(vary))
        if allow_authorized and "authorization" not in self.vary:
            shown.append("Authorization")
        self.vary_header = ", ".join(shown)
        self.allow_authorized = bool(allow_authorized)
        self.allow_cookies = bool(allow_cookies)
        self.keep = STORED_HEADERS | {n.lower() for n in store_headers}

    # -- requests ------------------------------------------------------------------------

    def lookup(self, method: str, header: HeaderGetter) -> Lookup | None:
        """How the cache may serve this request, or None to bypass it (neither read nor
        store): a method other than GET/HEAD, ``Cache-Control: no-store``, or credentials
        without ``allow_authorized``. ``no-cache`` skips the read but stores the result."""
        if method.upper() not in CACHEABLE_METHODS:
            return None
        authorized = bool(header("authorization"))
        if authorized and not self.allow_authorized:
            return None
        directives = parse_cache_control(header("cache-control"))
        if "no-store" in directives:
            return None
        return Lookup(read="no-cache" not in directives, authorized=authorized)

    def key(self, base: str, header: HeaderGetter, lookup: Lookup) -> str:
        """The cache key: ``base`` (the URL, or the view's ``key=`` result) plus the values
        of the ``vary`` headers and, for an authorized request, a digest of its
        credentials. Credentials, cookies and long values appear only as digests."""
        parts = [base]
        for name in self.vary:
            value = header(name) or ""
            if name in _SENSITIVE or len(value) > _READABLE_VALUE:
                parts.append(f"{name}#{_digest(value)}")
            else:
                parts.append(f"{name}={_quote(value)}")
        if lookup.authorized and "authorization" not in self.vary:
            parts.append(f"authorization#{_digest(header('authorization') or '')}")
        return "|".join(parts)

    def ttl_for(self, cache: Any) -> float | None:
        """The TTL to store with: this policy's, else the cache's ``default_ttl``."""
        if self.ttl is not None:
            return self.ttl
        default = getattr(cache, "default_ttl", None)
        return None if default is None else float(default)

    # -- responses -----------------------------------------------------------------------

    def cacheable(self, status: int, headers: Iterable[tuple[str, str]]) -> bool:
        """Whether a response may be stored: status 200, no ``Set-Cookie`` (unless
        ``allow_cookies``), no ``Cache-Control: no-store`` or ``private``, and no ``Vary``
        on a request header the key does not include."""
        if status != 200:
            return False
        for name, value in headers:
            lower = name.lower()
            if lower == "set-cookie" and not self.allow_cookies:
                return False
            if lower == "cache-control":
                directives = parse_cache_control(value)
                if "no-store" in directives or "private" in directives:
                    return False
            elif lower == "vary":
                for name_ in _vary_tokens(value):
                    varied = name_.lower()
                    if varied == "*":
                        return False
                    if varied not in self.vary and not (
                        varied == "authorization" and self.allow_authorized
                    ):
                        return False
        return True

    def capture(
        self,
        status: int,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        ttl: float | None,
        *,
        now: float | None = None,
    ) -> CachedResponse | None:
        """The entry to store for a fresh response, or None if it may not be stored.

        A view's own ``ETag`` is kept; otherwise the tag is :func:`etag_for` the body.
        """
        headers = list(headers)
        if not self.cacheable(status, headers):
            return None
        etag: str | None = None
        kept: list[tuple[str, str]] = []
        for name, value in headers:
            lower = name.lower()
            if lower == "etag":
                etag = value.strip()
            elif lower in self.keep:
                kept.append((name, value))
        return CachedResponse(
            status=status,
            headers=kept,
            body=body,
            etag=etag or etag_for(body),
            stored_at=time.time() if now is None else now,
            max_age=None if ttl is None else math.floor(ttl),
        )

    def cache_headers(
        self, entry: CachedResponse, lookup: Lookup, *, age: int | None = None
    ) -> list[tuple[str, str]]:
        """``ETag``, ``Cache-Control``, ``Vary`` (and ``Age`` on a hit) for ``entry``."""
        scope = "private" if lookup.authorized else "public"
        control = (
            f"{scope}, no-cache" if entry.max_age is None else f"{scope}, max-age={entry.max_age}"
        )
        headers = [("ETag", entry.etag), ("Cache-Control", control)]
        if self.vary_header:
            headers.append(("Vary", self.vary_header))
        if age is not None:
            headers.append(("Age", str(age)))
        return headers

    def reply(
        self,
        entry: CachedResponse,
        lookup: Lookup,
        *,
        method: str,
        if_none_match: str | None,
        hit: bool = True,
        now: float | None = None,
    ) -> Reply:
        """The response for ``entry``: 304 without a body when ``If-None-Match`` matches,
        else the stored response (without a body for HEAD, ``Content-Length`` kept)."""
        age: int | None = None
        if hit:
            elapsed = (time.time() if now is None else now) - entry.stored_at
            age = max(0, int(elapsed))
            if entry.max_age is not None:
                age = min(age, entry.max_age)
        cache_headers = self.cache_headers(entry, lookup, age=age)
        if etag_matches(if_none_match, entry.etag):
            return Reply(304, cache_headers)
        headers = [*entry.headers, *cache_headers, ("Content-Length", str(len(entry.body)))]
        body = b"" if method.upper() == "HEAD" else entry.body
        return Reply(entry.status, headers, body)


# --------------------------------------------------------------------------- problems

_PROBLEM_BASE: Final = "https://kit.dev/problems/"

# (class, status, type slug, title, detail); the first matching class wins. Details are
# fixed sentences: exception messages may name hosts, keys or URLs and are only logged.
_PROBLEMS: Final[tuple[tuple[type[KitCacheError], int, str, str, str], ...]] = (
    (
        BackendUnavailable,
        503,
        "cache-unavailable",
        "Cache unavailable",
        "The cache backend is failing; requests to it are paused briefly. Try again later.",
    ),
    (
        BackendError,
        503,
        "cache-unavailable",
        "Cache unavailable",
        "The cache backend did not answer. Try again later.",
    ),
    (
        CacheKeyError,
        500,
        "cache-key-invalid",
        "Invalid cache key",
        "The server built a cache key it cannot use.",
    ),
    (
        ConfigurationError,
        500,
        "cache-misconfigured",
        "Cache misconfigured",
        "The server's cache is misconfigured.",
    ),
    (
        SerializationError,
        500,
        "cache-serialization-error",
        "Cache serialization error",
        "The server could not encode or decode a cached value.",
    ),
)


def problem_details(exc: KitCacheError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and RFC 9457 ``application/problem+json`` body for a kit-cache error.

    Backend failures are 503 (retry later); configuration, key and serialization errors
    are 500 (a server bug). The ``detail`` is a fixed sentence per kind of error, so no
    host name, key or credential from the exception message reaches the client.

    Example::

        >>> from kit_cache import BackendUnavailable
        >>> status, body = problem_details(BackendUnavailable("redis://:secret@db down"))
        >>> status, body["type"], "secret" in str(body)
        (503, 'https://kit.dev/problems/cache-unavailable', False)
    """
    status, slug, title = 500, "cache-error", "Cache error"
    detail = "The server's cache failed."
    for problem in _PROBLEMS:
        if isinstance(exc, problem[0]):
            _, status, slug, title, detail = problem
            break
    return status, {
        "type": _PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
