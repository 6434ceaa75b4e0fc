"""Flask adapter: the :class:`KitJobs` extension. The only module that imports Flask."""

from __future__ import annotations

try:
    from flask import Flask, Response, jsonify
except ImportError as exc:  # pragma: no cover - exercised by the slim session
    raise ImportError('kit_jobs.flask needs Flask: pip install "kit-jobs[flask]"') from exc

from .exceptions import KitJobsError

__all__ = ["KitJobs"]

EXTENSION_KEY = "kit-jobs"


class KitJobs:
    """The Flask extension: ``KitJobs(app)`` or ``ext = KitJobs()`` then ``ext.init_app(app)``.

    Reads ``KIT_JOBS_*`` settings from ``app.config`` and answers :class:`KitJobsError`
    with an RFC 9457 ``application/problem+json`` response.
    """

    def __init__(self, app: Flask | None = None) -> None:
        self.app: Flask | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Configure from ``app.config`` and register the error handler and teardown."""
        # <REPLACE ME: read settings with app.config.setdefault("KIT_JOBS_...", default),
        # build the core objects from them and fail here, naming the key, if one is invalid>
        app.extensions[EXTENSION_KEY] = self
        app.register_error_handler(KitJobsError, _problem_response)
        app.teardown_appcontext(self._teardown)
        self.app = app

    def _teardown(self, exc: BaseException | None) -> None:
        """Release per-request resources (<REPLACE ME: or remove if there are none>)."""


def _problem_response(exc: KitJobsError) -> Response:
    response: Response = jsonify(exc.problem())
    response.status_code = exc.status
    response.mimetype = "application/problem+json"
    return response
