"""Every error kit-netcore raises derives from :class:`KitNetcoreError`.

::

    KitNetcoreError
    ├── ConfigurationError        an invalid option or setting: attach mode, pin root,
    │                             trusted proxies (ValueError, 500)
    ├── InvalidRule               a rule kit-netcore refuses before touching a map: a bad
    │                             address or CIDR, host bits set, a bad ttl, pps, burst or
    │                             port list (ValueError, 422)
    ├── NetcorePermissionError    loading or attaching needs root or CAP_BPF +
    │                             CAP_NET_ADMIN (PermissionError, 500)
    ├── InterfaceNotFound         no network interface of that name (ValueError, 404)
    ├── ShieldNotFound            no shield pinned for that interface: attach first (404)
    ├── ShieldFull                a map is full: too many rules, buckets or ranges (507)
    ├── BackendError              a libbpf or kernel call failed; ``errno`` says how (503)
    ├── ClientBlocked             the request's client is block-listed (403)
    └── ClientRateLimited         the request's client is over a rate limit; ``retry_after``
                                  seconds (429, with a ``Retry-After`` header)

Each class carries the HTTP ``status``, ``title`` and problem-type ``slug`` the adapters
use to answer with an RFC 9457 ``application/problem+json`` response, and the extra
response ``headers()`` (``Retry-After``). The ``detail`` of a 5xx is a fixed sentence:
the message names interfaces, pin paths and kernel errors that a client has no business
seeing; it stays in the exception (and the adapters' error log).
"""

from __future__ import annotations

import errno as _errno
import math
import os
from typing import Any

__all__ = [
    "BackendError",
    "ClientBlocked",
    "ClientRateLimited",
    "ConfigurationError",
    "InterfaceNotFound",
    "InvalidRule",
    "KitNetcoreError",
    "NetcorePermissionError",
    "ShieldFull",
    "ShieldNotFound",
]


class KitNetcoreError(Exception):
    """Base class of every kit-netcore error."""

    #: HTTP status of the problem response when this error escapes a view.
    status: int = 500
    #: Short, human-readable summary of the problem type (RFC 9457 ``title``).
    title: str = "Packet shield error"
    #: The ``type`` slug after ``https://kit.dev/problems/``.
    slug: str = "netcore-error"
    #: Whether ``str(self)`` may be shown to the client (4xx only).
    public_detail: bool = False

    def problem(self) -> dict[str, Any]:
        """This error as an RFC 9457 problem object (``application/problem+json``).

        Example::

            >>> InvalidRule("ttl must be positive, got -1").problem()["status"]
            422
            >>> BackendError("bpf_map_update_elem(nc_block4): errno 12", errno=12).problem()["detail"]
            'The packet shield cannot be reached right now. Try again later.'
        """
        detail = str(self) if self.public_detail else _FIXED_DETAIL.get(self.slug, self.title)
        return {
            "type": f"https://kit.dev/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": detail,
        }

    def headers(self) -> dict[str, str]:
        """Extra HTTP response headers for this error (``Retry-After`` on a 429).

        Example::

            >>> ClientBlocked().headers()
            {}
        """
        return {}


class ConfigurationError(KitNetcoreError, ValueError):
    """An option or setting is invalid (an attach mode, a pin root, trusted proxies); the
    message names it and says what to do."""

    title = "Packet shield misconfigured"
    slug = "netcore-misconfigured"


class InvalidRule(KitNetcoreError, ValueError):
    """A rule refused before any map is touched: an address or CIDR that does not parse, a
    network with host bits set (``10.0.0.1/8``: did you mean ``10.0.0.0/8``?), a ttl, pps,
    burst or port list out of range. The message says what was wrong and what to do.

    Example::

        >>> InvalidRule("burst must be an integer 1..1000000, got 0").status
        422
    """

    status = 422
    title = "Invalid shield rule"
    slug = "invalid-rule"
    public_detail = True


#: What loading or attaching the XDP program needs; quoted by :class:`NetcorePermissionError`.
PRIVILEGES_NEEDED = (
    "attaching XDP needs root or CAP_BPF + CAP_NET_ADMIN (CAP_SYS_ADMIN on kernels < 5.8)"
)


class NetcorePermissionError(KitNetcoreError, PermissionError):
    """The process may not load, pin or attach BPF objects.

    The message always ends with what is needed: root, or ``CAP_BPF`` + ``CAP_NET_ADMIN``
    (``CAP_SYS_ADMIN`` on kernels older than 5.8).

    Example::

        >>> str(NetcorePermissionError("cannot load the shield on eth0"))
        'cannot load the shield on eth0: attaching XDP needs root or CAP_BPF + CAP_NET_ADMIN (CAP_SYS_ADMIN on kernels < 5.8)'
    """

    title = "Packet shield not permitted"
    slug = "netcore-permission"

    def __init__(self, message: str = "") -> None:
        if PRIVILEGES_NEEDED not in message:
            message = f"{message}: {PRIVILEGES_NEEDED}" if message else PRIVILEGES_NEEDED
        super().__init__(message)


class InterfaceNotFound(KitNetcoreError, ValueError):
    """No network interface has that name (see ``ip link``).

    Example::

        >>> InterfaceNotFound("no network interface 'eht0' (see `ip link`)").status
        404
    """

    status = 404
    title = "Network interface not found"
    slug = "interface-not-found"
    public_detail = True


class ShieldNotFound(KitNetcoreError, LookupError):
    """No shield is pinned for that interface under the pin root: attach one first
    (``Shield.load(...).attach()`` or ``kit-netcore attach IFACE``), or pass the
    ``pin_root`` it was loaded with.

    Example::

        >>> ShieldNotFound("no shield pinned at /sys/fs/bpf/kit_netcore/eth0").status
        404
    """

    status = 404
    title = "Packet shield not found"
    slug = "shield-not-found"
    public_detail = True


class ShieldFull(KitNetcoreError):
    """A map is full: too many addresses, expanded range keys, ranges or rate rules. Remove
    rules, or prefer a few wide ranges to many single addresses.

    Example::

        >>> ShieldFull("nc_block4 holds 262144 entries").problem()["detail"]
        'The packet shield has no room for more rules.'
    """

    status = 507
    title = "Packet shield full"
    slug = "shield-full"


class BackendError(KitNetcoreError):
    """A libbpf or kernel call failed.

    ``errno`` is the positive error number (libbpf returns it negated; either sign is
    accepted) or None when there was none; ``strerror`` is its text.

    Example::

        >>> exc = BackendError("bpf_obj_get(/sys/fs/bpf/x) failed", errno=-2)
        >>> exc.errno, exc.strerror
        (2, 'No such file or directory')
    """

    status = 503
    title = "Packet shield unavailable"
    slug = "netcore-backend"

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        code = abs(errno) if errno is not None else None
        self.errno: int | None = code
        self.strerror: str | None = os.strerror(code) if code is not None else None
        if code is not None and f"errno {code}" not in message:
            name = _errno.errorcode.get(code, str(code))
            message = f"{message} ({name}, errno {code}: {self.strerror})"
        super().__init__(message)


class ClientBlocked(KitNetcoreError):
    """The request's client address is block-listed (HTTP 403).

    Example::

        >>> ClientBlocked().problem()["type"]
        'https://kit.dev/problems/client-blocked'
    """

    status = 403
    title = "Client blocked"
    slug = "client-blocked"
    public_detail = True

    def __init__(self, message: str = "Requests from your address are blocked.") -> None:
        super().__init__(message)


class ClientRateLimited(KitNetcoreError):
    """The request's client address is over a rate limit (HTTP 429).

    ``retry_after`` is the number of seconds until a retry can succeed (None if unknown);
    :meth:`headers` gives it as a ``Retry-After`` header, rounded up to whole seconds (at
    least 1), and :meth:`problem` as a ``retry_after`` member.

    Example::

        >>> exc = ClientRateLimited(retry_after=0.2)
        >>> exc.headers()
        {'Retry-After': '1'}
        >>> exc.problem()["retry_after"]
        0.2
    """

    status = 429
    title = "Too many requests"
    slug = "client-rate-limited"
    public_detail = True

    def __init__(
        self,
        message: str = "Too many requests from your address. Slow down.",
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        if retry_after is not None and not (math.isfinite(retry_after) and retry_after >= 0):
            retry_after = None
        self.retry_after: float | None = retry_after

    def problem(self) -> dict[str, Any]:
        """The problem object, with ``retry_after`` (seconds) when it is known."""
        problem = super().problem()
        if self.retry_after is not None:
            problem["retry_after"] = self.retry_after
        return problem

    def headers(self) -> dict[str, str]:
        """``Retry-After`` in whole seconds, rounded up, at least 1 (none when unknown)."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(retry_after_seconds(self.retry_after))}


def retry_after_seconds(seconds: float) -> int:
    """A ``Retry-After`` delay in whole seconds: rounded up, at least 1.

    Example::

        >>> retry_after_seconds(0.004), retry_after_seconds(2.5)
        (1, 3)
    """
    return max(1, math.ceil(seconds))


_FIXED_DETAIL: dict[str, str] = {
    "netcore-error": "The packet shield failed on the server.",
    "netcore-misconfigured": "The server's packet shield is misconfigured.",
    "netcore-permission": "The server may not operate its packet shield.",
    "shield-full": "The packet shield has no room for more rules.",
    "netcore-backend": "The packet shield cannot be reached right now. Try again later.",
}
