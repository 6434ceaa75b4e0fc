"""Errors as RFC 9457 ``application/problem+json``, and as an HTML page for browsers.

Every kit adapter answers its own errors with problem+json (kit-db 409/404, kit-auth
401/403, kit-storage 403/413/415, kit-jobs, kit-mail, kit-cache). The board adds its own
problems (:class:`Problem`: validation errors, a bad CSRF token, a missing row) in the
same format. One ``after_request`` hook then turns any problem response into an HTML page
when the client is a browser navigating (it asks for ``text/html`` first), so a person
sees a readable page while API clients and ``fetch()`` keep the JSON.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

__all__ = ["PROBLEM_TYPE", "NotFound", "Problem", "ValidationFailed", "install", "wants_html"]

PROBLEM_TYPE = "https://kit.dev/problems/"
PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error of the board itself, answered as problem+json with ``status``."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, **members: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.members = members

    def body(self) -> dict[str, Any]:
        return {
            "type": PROBLEM_TYPE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.members,
        }


class ValidationFailed(Problem):
    """Bad input: ``errors`` lists ``{"field": ..., "message": ...}``, one per problem."""

    status = 422
    slug = "validation-error"
    title = "Invalid input"

    def __init__(self, errors: dict[str, str]) -> None:
        fields = ", ".join(errors)
        super().__init__(
            f"Check {fields}: the values sent cannot be used.",
            errors=[{"field": f, "message": m} for f, m in errors.items()],
        )


class NotFound(Problem):
    status = 404
    slug = "not-found"
    title = "Not found"


class CSRFFailed(Problem):
    status = 400
    slug = "csrf-failed"
    title = "Form expired"


def wants_html() -> bool:
    """Whether the client asks for an HTML page by name (a browser navigating or posting
    a form); ``*/*`` (curl, ``fetch`` without headers) and JSON clients get JSON."""
    accept = request.accept_mimetypes
    if not any(value == "text/html" for value, _quality in accept):
        return False
    return accept["text/html"] >= max(accept["application/json"], accept[PROBLEM_JSON])


def _problem_response(exc: Problem) -> Response:
    response = jsonify(exc.body())
    response.status_code = exc.status
    response.mimetype = PROBLEM_JSON
    return response


def _http_problem(exc: HTTPException) -> Response:
    """Plain HTTP errors (an unknown URL, a wrong method, a body over
    ``MAX_CONTENT_LENGTH``) in the same format; RFC 9457 ``about:blank`` type."""
    code = exc.code or 500
    response = jsonify(
        {"type": "about:blank", "title": exc.name, "status": code, "detail": exc.description}
    )
    response.status_code = code
    response.mimetype = PROBLEM_JSON
    for name, value in exc.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def _as_html(response: Response) -> Response:
    if response.mimetype != PROBLEM_JSON or not wants_html():
        return response
    try:
        problem = json.loads(response.get_data(as_text=True))
    except ValueError:
        return response
    try:
        page = render_template("problem.html", problem=problem)
    except Exception:  # e.g. the database is down: the JSON problem is still right
        return response
    html = Response(page, status=response.status_code, mimetype="text/html")
    for name in ("WWW-Authenticate", "Retry-After", "RateLimit", "RateLimit-Policy"):
        if name in response.headers:
            html.headers[name] = response.headers[name]
    return html


def install(app: Flask) -> None:
    """Answer :class:`Problem` with problem+json and render problems for browsers."""
    app.register_error_handler(Problem, _problem_response)
    app.register_error_handler(HTTPException, _http_problem)
    app.after_request(_as_html)
