"""Flask adapter: the :class:`KitNetcore` extension. The only module that imports Flask."""

from __future__ import annotations

import logging

try:
    from flask import Flask, Response, jsonify
except ImportError as exc:  # pragma: no cover - exercised by the slim session
    raise ImportError('kit_netcore.flask needs Flask: pip install "kit-netcore[flask]"') from exc

from kit_netcore.exceptions import ConfigurationError, KitNetcoreError
from kit_netcore.middleware import Checker, ShieldMiddleware, TrustedProxies

__all__ = ["EXTENSION_KEY", "KitNetcore"]

#: ``app.extensions[EXTENSION_KEY]`` holds the :class:`KitNetcore` extension.
EXTENSION_KEY = "kit-netcore"

logger = logging.getLogger("kit_netcore")


class KitNetcore:
    """The Flask extension: ``KitNetcore(app, shield=UserspaceShield())``, or
    ``netcore = KitNetcore(shield=...)`` then ``netcore.init_app(app)`` in an app factory.

    With a ``shield`` (any object with ``check(address, *, port, proto)``, in practice
    :class:`~kit_netcore.UserspaceShield`), ``init_app`` wraps ``app.wsgi_app`` in a
    :class:`~kit_netcore.middleware.ShieldMiddleware`: every request's client is checked
    once, before Flask routes it; a block-listed client gets a 403 and one over a rate
    limit a 429 with ``Retry-After``, both ``application/problem+json``. Without one, only
    the error handler is installed.

    Settings read from ``app.config``:

    - ``KIT_NETCORE_TRUSTED_PROXIES``: None (default: the socket peer is the client), a
      list of proxy CIDRs, a comma-separated string of them, or a number of hops; only
      then is ``X-Forwarded-For`` believed;
    - ``KIT_NETCORE_PORT``: the destination port given to ``check``: ``"server"``
      (default, the port Flask's server listens on), a fixed port such as 443 behind a
      proxy, or None.

    An invalid setting fails in ``init_app``, naming the key. :class:`KitNetcoreError`
    escaping a view (a ``ClientRateLimited`` you raise after your own ``check``, an
    ``InvalidRule`` from an admin endpoint) is answered with problem+json too; 5xx ones
    are logged on the ``kit_netcore`` logger.

    Example::

        >>> from types import SimpleNamespace
        >>> class Shield:
        ...     def check(self, address, *, port, proto):
        ...         return SimpleNamespace(allowed=address != "203.0.113.7", reason="block",
        ...                                retry_after=None)
        >>> app = Flask("demo")
        >>> _ = KitNetcore(app, shield=Shield())
        >>> _ = app.get("/")(lambda: "hello")
        >>> client = app.test_client()
        >>> client.get("/").status_code
        200
        >>> client.get("/", environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code
        403
    """

    def __init__(self, app: Flask | None = None, shield: Checker | None = None) -> None:
        if shield is not None and not callable(getattr(shield, "check", None)):
            raise ConfigurationError(
                "shield must have a check(address, *, port, proto) method (e.g. "
                f"kit_netcore.UserspaceShield()), not {type(shield).__name__}."
            )
        self.shield: Checker | None = shield
        self.app: Flask | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Wrap ``app.wsgi_app`` with the shield (if any) and register the problem+json
        error handler."""
        if EXTENSION_KEY in app.extensions:
            raise ConfigurationError(
                "KitNetcore is already installed on this app: call init_app once per app."
            )
        proxies_setting = app.config.setdefault("KIT_NETCORE_TRUSTED_PROXIES", None)
        port = app.config.setdefault("KIT_NETCORE_PORT", "server")
        try:
            trusted_proxies = TrustedProxies.from_setting(proxies_setting)
        except ConfigurationError as exc:
            raise ConfigurationError(f"KIT_NETCORE_TRUSTED_PROXIES: {exc}") from None
        if self.shield is not None:
            try:
                app.wsgi_app = ShieldMiddleware(  # type: ignore[method-assign]
                    app.wsgi_app, self.shield, trusted_proxies=trusted_proxies, port=port
                )
            except ConfigurationError as exc:
                raise ConfigurationError(f"KIT_NETCORE_PORT: {exc}") from None
        app.extensions[EXTENSION_KEY] = self
        app.register_error_handler(KitNetcoreError, _problem_response)
        if self.app is None:
            self.app = app


def _problem_response(exc: KitNetcoreError) -> Response:
    if exc.status >= 500:
        logger.error("packet shield error answered with %s: %s", exc.status, exc, exc_info=exc)
    response: Response = jsonify(exc.problem())
    response.status_code = exc.status
    response.mimetype = "application/problem+json"
    response.headers.update(exc.headers())
    return response
