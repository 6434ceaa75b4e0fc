"""FastAPI adapter: a lifespan that holds the mailer, a ``Depends`` callable and
problem+json handlers.

The only module that imports FastAPI/Starlette.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated

try:
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import JSONResponse
except ImportError as exc:  # pragma: no cover - exercised by the slim session
    raise ImportError('kit_mail.fastapi needs FastAPI: pip install "kit-mail[fastapi]"') from exc

from kit_mail._base import Mailer
from kit_mail._config import mailer_from_env
from kit_mail.exceptions import ConfigurationError, KitMailError

__all__ = [
    "STATE_KEY",
    "MailerDependency",
    "get_mailer",
    "install_problem_handlers",
    "kit_mail_lifespan",
]

#: The ``app.state`` attribute that holds the mailer.
STATE_KEY = "kit_mail"

logger = logging.getLogger("kit_mail")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def kit_mail_lifespan(mailer: Mailer | None = None, *, prefix: str = "KIT_MAIL_") -> Lifespan:
    """A lifespan that puts a mailer on ``app.state.kit_mail`` for :func:`get_mailer`.

    ``mailer`` is used as given (and left open at shutdown: whoever made it owns it);
    without one, the mailer is built at start-up by :func:`~kit_mail.mailer_from_env`
    from the ``KIT_MAIL_*`` environment variables (``prefix``) and closed at shutdown.
    ``FastAPI(lifespan=kit_mail_lifespan())``; inside a lifespan of your own, enter
    ``kit_mail_lifespan()(app)`` with ``async with``.

    Example::

        >>> import asyncio
        >>> from fastapi import FastAPI
        >>> from kit_mail._dev import MemoryMailer
        >>> app = FastAPI(lifespan=kit_mail_lifespan(MemoryMailer()))
        >>> async def start_and_look() -> str:
        ...     async with kit_mail_lifespan(MemoryMailer())(app):
        ...         return app.state.kit_mail.name
        >>> asyncio.run(start_and_look())
        'memory'
    """
    if mailer is not None and not isinstance(mailer, Mailer):
        raise ConfigurationError(
            f"mailer must be a kit-mail mailer (e.g. SMTPMailer), not {type(mailer).__name__}."
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = mailer is None
        current = mailer_from_env(prefix) if mailer is None else mailer
        setattr(app.state, STATE_KEY, current)
        try:
            yield
        finally:
            delattr(app.state, STATE_KEY)
            if owned:
                current.close()

    return lifespan


def get_mailer(request: Request) -> Mailer:
    """The app's mailer, for ``Depends(get_mailer)`` (or :data:`MailerDependency`).

    Raises :class:`~kit_mail.ConfigurationError` when the app was not started with
    :func:`kit_mail_lifespan`.
    """
    mailer = getattr(request.app.state, STATE_KEY, None)
    if mailer is None:
        raise ConfigurationError(
            "No mailer on app.state: create the app with "
            "FastAPI(lifespan=kit_mail_lifespan()) (or enter kit_mail_lifespan()(app) in your "
            "own lifespan)."
        )
    assert isinstance(mailer, Mailer)
    return mailer


#: ``mailer: MailerDependency`` in a path operation's parameters gives the app's mailer.
MailerDependency = Annotated[Mailer, Depends(get_mailer)]


def install_problem_handlers(app: FastAPI) -> None:
    """Answer :class:`KitMailError` with an RFC 9457 ``application/problem+json`` response.

    5xx errors are logged on the ``kit_mail`` logger with the provider's answer, which
    the response does not show.

    Example::

        >>> from fastapi import FastAPI
        >>> app = FastAPI()
        >>> install_problem_handlers(app)
        >>> KitMailError in app.exception_handlers
        True
    """

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KitMailError)
        if exc.status >= 500:
            logger.error("mail error answered with %s: %s", exc.status, exc, exc_info=exc)
        return JSONResponse(
            exc.problem(), status_code=exc.status, media_type="application/problem+json"
        )

    app.add_exception_handler(KitMailError, handle)
