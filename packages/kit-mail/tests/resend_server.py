"""A local stand-in for the Resend API, served over real HTTP on loopback.

It implements what kit-mail uses, the way Resend documents it:

- ``POST /emails`` answers ``{"id": ...}``; ``POST /emails/batch`` takes a list of 1 to
  100 emails without attachments and answers ``{"data": [{"id": ...}, ...]}``;
- ``Authorization: Bearer <key>`` is required (401 ``missing_api_key``) and, when
  ``api_keys`` is given, must be one of them (403 ``invalid_api_key``);
- ``Idempotency-Key`` (at most 256 characters) is honored per API key and endpoint: the
  same key with the same body answers the first answer again and sends nothing; the same
  key with another body is 409 ``invalid_idempotent_request``;
- errors are JSON bodies like Resend's: ``{"statusCode": 422, "name": "validation_error",
  "message": "..."}``;
- ``GET /domains`` (what ``ResendMailer.ping`` asks) answers ``{"object": "list",
  "data": []}`` with the same key checks, and 401 ``restricted_api_key`` for a key in
  ``sending_only_keys`` (a sending-access key may only send).

Every request is recorded (:attr:`FakeResend.requests`); every email accepted is in
:attr:`FakeResend.sent`. :meth:`FakeResend.script` makes it misbehave: scripted answers
(429 with ``retry-after``, 500, 503, 422 ...) are given, in order, to the requests they
match, before any normal processing.

Use the ``resend_server`` fixture: ``from resend_server import resend_server_fixture  # noqa: F401``
(the fixture is *named* ``resend_server``).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["FakeResend", "RecordedRequest", "Scripted", "resend_server_fixture"]

_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received: headers with lower-case names, the JSON body."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")

    @property
    def user_agent(self) -> str | None:
        return self.headers.get("user-agent")


@dataclass
class Scripted:
    """An answer given instead of the normal one to the next ``times`` matching requests
    (``times=None``: every one). ``match`` picks requests (all by default); ``path``
    restricts it to one endpoint."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = 1
    path: str | None = None
    match: Callable[[RecordedRequest], bool] | None = None

    def matches(self, request: RecordedRequest) -> bool:
        if self.path is not None and request.path != self.path:
            return False
        return self.match is None or self.match(request)

    @classmethod
    def error(
        cls,
        status: int,
        name: str,
        message: str,
        *,
        retry_after: str | None = None,
        **kwargs: Any,
    ) -> Scripted:
        """A Resend-style JSON error answer."""
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        body = {"statusCode": status, "name": name, "message": message}
        return cls(status, body, headers, **kwargs)

    @classmethod
    def rate_limited(cls, retry_after: str | None = "0", **kwargs: Any) -> Scripted:
        return cls.error(
            429,
            "rate_limit_exceeded",
            "Too many requests. You can only make 2 requests per second.",
            retry_after=retry_after,
            **kwargs,
        )

    @classmethod
    def server_error(cls, status: int = 500, **kwargs: Any) -> Scripted:
        name = "application_error" if status == 500 else "service_unavailable"
        return cls.error(status, name, "Something went wrong on our side.", **kwargs)


class _Answer(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(status: int, name: str, message: str) -> _Answer:
    return _Answer(status, {"statusCode": status, "name": name, "message": message})


class FakeResend:
    """The server: start it with :meth:`start` (or the fixture); ``url`` is its base URL."""

    def __init__(
        self, api_keys: Collection[str] | None = None, sending_only_keys: Collection[str] = ()
    ) -> None:
        self.api_keys = set(api_keys) if api_keys is not None else None
        self.sending_only_keys = set(sending_only_keys)
        self.requests: list[RecordedRequest] = []
        self.sent: list[dict[str, Any]] = []
        self._scripts: list[Scripted] = []
        self._idempotency: dict[tuple[str, str, str], tuple[str, int, Any]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- control

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeResend:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def script(self, *answers: Scripted) -> None:
        """Queue scripted answers (each used ``times`` times, first match first)."""
        with self._lock:
            self._scripts.extend(answers)

    def clear_scripts(self) -> None:
        with self._lock:
            self._scripts.clear()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # ---------------------------------------------------------------- behaviour

    def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> _Answer:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        request = RecordedRequest(method, path, headers, body)
        with self._lock:
            self.requests.append(request)
            for scripted in self._scripts:
                if scripted.matches(request):
                    if scripted.times is not None:
                        scripted.times -= 1
                        if scripted.times <= 0:
                            self._scripts.remove(scripted)
                    return _Answer(scripted.status, scripted.body, dict(scripted.headers))
            return self._process(request)

    def _process(self, request: RecordedRequest) -> _Answer:
        if request.path not in ("/emails", "/emails/batch", "/domains"):
            raise _error(404, "not_found", "The requested endpoint does not exist.")
        if request.method != ("GET" if request.path == "/domains" else "POST"):
            raise _error(405, "method_not_allowed", "Method is not allowed for the requested path.")
        auth = request.authorization or ""
        api_key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if not api_key or api_key == "None":
            raise _error(401, "missing_api_key", "Missing API key in the authorization header.")
        if self.api_keys is not None and api_key not in self.api_keys | self.sending_only_keys:
            raise _error(403, "invalid_api_key", "API key is invalid.")
        if request.path == "/domains":
            if api_key in self.sending_only_keys:
                raise _error(
                    401, "restricted_api_key", "This API key is restricted to only send emails."
                )
            return _Answer(200, {"object": "list", "data": []})
        key = request.idempotency_key
        fingerprint = hashlib.sha256(
            json.dumps(request.body, sort_keys=True).encode("utf-8")
        ).hexdigest()
        if key is not None:
            if not key or len(key) > 256:
                raise _error(
                    400,
                    "invalid_idempotency_key",
                    "The key must be between 1-256 chars.",
                )
            stored = self._idempotency.get((api_key, request.path, key))
            if stored is not None:
                if stored[0] != fingerprint:
                    raise _error(
                        409,
                        "invalid_idempotent_request",
                        "Same idempotency key used with a different request payload.",
                    )
                return _Answer(stored[1], stored[2])
        if request.path == "/emails":
            emails = [self._validated(request.body, batch=False)]
        else:
            if not isinstance(request.body, list) or not 1 <= len(request.body) <= 100:
                raise _error(
                    422, "validation_error", "The batch must be a list of 1 to 100 emails."
                )
            emails = [self._validated(item, batch=True) for item in request.body]
        ids = [str(uuid.uuid4()) for _ in emails]
        for email, email_id in zip(emails, ids, strict=True):
            self.sent.append({**email, "id": email_id, "api_key": api_key})
        body: Any = (
            {"id": ids[0]} if request.path == "/emails" else {"data": [{"id": i} for i in ids]}
        )
        if key is not None:
            self._idempotency[(api_key, request.path, key)] = (fingerprint, 200, body)
        return _Answer(200, body)

    @staticmethod
    def _validated(email: Any, *, batch: bool) -> dict[str, Any]:
        if not isinstance(email, dict):
            raise _error(422, "validation_error", "The email must be a JSON object.")
        for name in ("from", "to", "subject"):
            if not email.get(name):
                raise _error(422, "missing_required_field", f"The `{name}` field is missing.")
        if not (email.get("html") or email.get("text")):
            raise _error(422, "validation_error", "Either `html` or `text` must be provided.")
        to = email["to"] if isinstance(email["to"], list) else [email["to"]]
        if len(to) > 50:
            raise _error(422, "validation_error", "The `to` field must have at most 50 emails.")
        if batch and "attachments" in email:
            raise _error(422, "validation_error", "Attachments are not supported with batch.")
        for tag in email.get("tags", []):
            if not _TAG.fullmatch(str(tag.get("name", ""))):
                raise _error(
                    422,
                    "validation_error",
                    "Tags should only contain ASCII letters, numbers, underscores, or dashes.",
                )
        return email

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    answer = fake._handle(self.command, self.path, headers, raw)
                except _Answer as error:
                    answer = error
                payload = (
                    answer.body.encode("utf-8")
                    if isinstance(answer.body, str)
                    else json.dumps(answer.body).encode("utf-8")
                )
                self.send_response(answer.status)
                content_type = answer.headers.pop("content-type", "application/json")
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(payload)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


@pytest.fixture(name="resend_server")
def resend_server_fixture() -> Iterator[FakeResend]:
    """A started :class:`FakeResend` accepting any bearer key; stopped after the test."""
    server = FakeResend().start()
    try:
        yield server
    finally:
        server.stop()
