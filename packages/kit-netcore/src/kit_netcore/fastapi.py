"""FastAPI adapter: the shield middleware and problem+json handlers.

The only module that imports FastAPI/Starlette.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
except ImportError as exc:  # pragma: no cover - exercised by the slim session
    raise ImportError(
        'kit_netcore.fastapi needs FastAPI: pip install "kit-netcore[fastapi]"'
    ) from exc

from kit_netcore.exceptions import KitNetcoreError
from kit_netcore.middleware import (
    Checker,
    ShieldASGIMiddleware,
    TrustedProxies,
    _check_checker,
    _check_port,
)

__all__ = ["install_problem_handlers", "install_shield"]

logger = logging.getLogger("kit_netcore")


def install_shield(
    app: FastAPI,
    shield: Checker,
    trusted_proxies: TrustedProxies | Iterable[str] | int | str | None = None,
    *,
    port: int | Literal["server"] | None = "server",
) -> None:
    """Check every HTTP request and WebSocket handshake against ``shield`` before the app
    sees it, and answer :class:`~kit_netcore.exceptions.KitNetcoreError` with problem+json
    (:func:`install_problem_handlers`).

    ``shield`` is any object with ``check(address, *, port, proto)``, in practice
    :class:`~kit_netcore.UserspaceShield`. A block-listed client gets a 403, one over a
    rate limit a 429 with ``Retry-After`` (``application/problem+json``); a refused
    WebSocket handshake is refused the same way (or closed with 1008). The client is the
    socket peer unless ``trusted_proxies`` (proxy CIDRs or a number of hops) says whose
    ``X-Forwarded-For`` to believe. ``port`` is the destination port given to ``check``:
    ``"server"`` (the port in the ASGI scope), a fixed port (443 behind a proxy) or None.
    Call it before the app starts (Starlette refuses middleware added later); invalid
    arguments fail here.

    Example::

        >>> from types import SimpleNamespace
        >>> class Shield:
        ...     def check(self, address, *, port, proto):
        ...         return SimpleNamespace(allowed=True, reason="pass", retry_after=None)
        >>> app = FastAPI()
        >>> install_shield(app, Shield(), trusted_proxies=["10.0.0.0/8"])
        >>> [m.cls.__name__ for m in app.user_middleware]
        ['ShieldASGIMiddleware']
    """
    # Checked here so that a bad argument fails now, not at the app's first request.
    app.add_middleware(
        ShieldASGIMiddleware,
        shield=_check_checker(shield),
        trusted_proxies=TrustedProxies.from_setting(trusted_proxies),
        port=_check_port(port),
    )
    install_problem_handlers(app)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer :class:`~kit_netcore.exceptions.KitNetcoreError` with an RFC 9457
    ``application/problem+json`` response (with ``Retry-After`` on a 429).

    5xx errors are logged on the ``kit_netcore`` logger with their message, which the
    response does not show.

    Example::

        >>> app = FastAPI()
        >>> install_problem_handlers(app)
        >>> KitNetcoreError in app.exception_handlers
        True
    """

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KitNetcoreError)
        if exc.status >= 500:
            logger.error("packet shield error answered with %s: %s", exc.status, exc, exc_info=exc)
        return JSONResponse(
            exc.problem(),
            status_code=exc.status,
            media_type="application/problem+json",
            headers=exc.headers(),
        )

    app.add_exception_handler(KitNetcoreError, handle)
