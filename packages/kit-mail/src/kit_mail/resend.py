"""Sending through the Resend API with the official ``resend`` SDK (the ``resend`` extra).

:class:`ResendMailer` maps a :class:`~kit_mail.Message` to Resend's send parameters, sends
each request with an ``Idempotency-Key``, batches ``send_many`` into ``POST /emails/batch``
calls of up to 100 messages, retries 429, 5xx and network failures with backoff (honoring
``Retry-After``), and turns every failure into a :class:`~kit_mail.exceptions.KitMailError`
that quotes what Resend answered.

**The SDK's global state.** The ``resend`` SDK reads ``resend.api_key``, ``resend.api_url``
and ``resend.default_http_client`` from its module on every request, so two mailers with
different keys (or threads) would race if each set those globals. kit-mail never sets
``resend.api_key`` or ``resend.api_url``. Instead, the first mailer wraps
``resend.default_http_client`` once in a routing client (an ``resend.HTTPClient``, the SDK's
documented extension point): while a mailer's call is running, a ``contextvars`` variable
(private to the thread or task) tells the router which key, base URL and HTTP client to
use, and the router sends the request there with that key in ``Authorization``. Requests
made by other code through the SDK, outside a mailer call, go to the wrapped client
unchanged. Nothing is serialized behind a lock, and no key is ever stored in the SDK.

**Idempotency.** Every request carries an ``Idempotency-Key`` (Resend keeps keys for
24 hours): the message's ``idempotency_key``, or a generated ``kit-mail/<uuid4>`` when it
has none, so a retry after a 5xx or a dropped connection (when Resend may already have
accepted the message) never sends it twice. The key used is returned in the
:class:`~kit_mail.SendResult`; pass it back as ``idempotency_key`` to retry safely later.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from hashlib import sha256
from threading import Lock
from typing import Any, cast

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential

from kit_mail._base import BaseMailer, raise_for_batch
from kit_mail._health import check_timeout, within
from kit_mail._message import Address, Message
from kit_mail._result import SendResult
from kit_mail._version import __version__
from kit_mail.exceptions import (
    ConfigurationError,
    DeliveryError,
    InvalidMessage,
    KitMailError,
    ProviderRejected,
    ProviderUnavailable,
)

try:
    import resend
    from resend.exceptions import ResendError
    from resend.http_client import HTTPClient
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "kit_mail.resend needs the resend SDK 2.11.0 or newer (its pluggable HTTP client): "
        "pip install 'kit-mail[resend]', or upgrade resend."
    ) from exc

__all__ = ["DEFAULT_API_URL", "MAX_BATCH", "ResendMailer"]

#: Resend's API, used when neither ``api_url`` nor ``RESEND_API_URL`` is set.
DEFAULT_API_URL = "https://api.resend.com"
#: The most emails ``POST /emails/batch`` takes in one call.
MAX_BATCH = 100

_PROVIDER = "resend"
_MAX_KEY = 256
_MAX_TO = 50  # Resend: "to" takes at most 50 addresses
_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")
_TAG_VALUE = re.compile(r"[A-Za-z0-9_-]{0,256}")
_EMAILS = "/emails"
_BATCH = "/emails/batch"
# 429s that will not clear within seconds: reported at once, never retried.
_QUOTA_ERRORS = frozenset({"daily_quota_exceeded", "monthly_quota_exceeded"})


# --------------------------------------------------------------------------- routing


@dataclass(slots=True)
class _Route:
    """One SDK request made on behalf of one mailer: where it goes and what came back."""

    api_key: str
    api_url: str
    path: str
    client: HTTPClient
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    transport_error: BaseException | None = None


_route: ContextVar[_Route | None] = ContextVar("kit_mail_resend_route", default=None)
_install_lock = Lock()


class _RoutingHTTPClient(HTTPClient):
    """Sends a request made inside a :class:`ResendMailer` call with that mailer's key,
    URL and client; any other request goes to the client it wraps, unchanged."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        json: dict[str, object] | list[object] | None = None,
        files: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        extra: dict[str, Any] = {}
        if files is not None:
            extra["files"] = files
        if data is not None:
            extra["data"] = data
        route = _route.get()
        if route is None:
            answer = self.fallback.request(
                method=method, url=url, headers=headers, json=json, **extra
            )
            return cast("tuple[bytes, int, Mapping[str, str]]", answer)
        sent_headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        sent_headers["Authorization"] = f"Bearer {route.api_key}"
        try:
            content, status, answer_headers = route.client.request(
                method=method,
                url=f"{route.api_url}{route.path}",
                headers=sent_headers,
                json=json,
                **extra,
            )
        except BaseException as exc:
            route.transport_error = exc
            raise
        route.status = status
        route.headers = {str(k).lower(): str(v) for k, v in answer_headers.items()}
        return content, status, answer_headers


def _install_router() -> None:
    """Wrap ``resend.default_http_client`` in the router (again, if it was replaced)."""
    if isinstance(resend.default_http_client, _RoutingHTTPClient):
        return
    with _install_lock:
        if not isinstance(resend.default_http_client, _RoutingHTTPClient):
            resend.default_http_client = _RoutingHTTPClient(resend.default_http_client)


# --------------------------------------------------------------------------- failures


class _Failure(Exception):
    """One failed attempt, classified; turned into a KitMailError after the retries."""

    def __init__(
        self,
        *,
        status: int | None,
        name: str,
        text: str,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {name}: {text}")
        self.status = status
        self.name = name
        self.text = text
        self.retryable = retryable
        self.retry_after = retry_after

    def describe(self) -> str:
        if self.status is None:
            return f"could not reach Resend ({self.text})"
        return f"Resend answered {self.status} {self.name}: {self.text}"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _short(text: object, limit: int = 500) -> str:
    value = " ".join(str(text).split())
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _classify(exc: BaseException, route: _Route) -> _Failure:
    """Turn what one SDK call raised (and what the router saw) into a :class:`_Failure`."""
    if route.transport_error is not None:
        return _Failure(
            status=None, name="network", text=_short(route.transport_error), retryable=True
        )
    if isinstance(exc, ResendError):
        status = route.status
        if status is None or status < 400:
            try:
                status = int(exc.code)
            except (TypeError, ValueError):
                status = 500
        name = str(exc.error_type or "error")
        text = _short(exc.message or exc)
    else:  # the SDK failed on an answer it could not read (no content, a bad shape)
        status = route.status or 500
        name = type(exc).__name__
        text = _short(exc)
    if status == 429:
        retryable = name not in _QUOTA_ERRORS
    elif status == 409:
        # Another request with the same key is still running: wait and ask again.
        retryable = name == "concurrent_idempotent_requests"
    else:
        retryable = status >= 500 or status == 408
    after = _retry_after(route.headers) if retryable else None
    return _Failure(status=status, name=name, text=text, retryable=retryable, retry_after=after)


# --------------------------------------------------------------------------- params


def _tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for name, value in tags.items():
        if not _TAG.fullmatch(name):
            raise InvalidMessage(
                f"tag name {name!r} is not valid for Resend: use 1 to 256 ASCII letters, "
                "digits, underscores or dashes."
            )
        if not _TAG_VALUE.fullmatch(value):
            raise InvalidMessage(
                f"tag {name!r} value {value!r} is not valid for Resend: use at most 256 ASCII "
                "letters, digits, underscores or dashes."
            )
        out.append({"name": name, "value": value} if value else {"name": name})
    return out


def _new_key() -> str:
    return f"kit-mail/{uuid.uuid4()}"


def _batch_key(keys: Iterable[str]) -> str:
    """One key for a batch, derived from its messages' keys in order, so sending the same
    batch again (same messages, same order) is deduplicated by Resend."""
    digest = sha256("\n".join(keys).encode("utf-8")).hexdigest()
    return f"batch/{digest}"


def _number(name: str, value: object, *, minimum: float, allow_equal: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number, not {value!r}.")
    if value < minimum or (not allow_equal and value == minimum):
        bound = f">= {minimum}" if allow_equal else f"> {minimum}"
        raise ConfigurationError(f"{name} must be {bound}, not {value!r}.")
    return float(value)


# --------------------------------------------------------------------------- mailer


class ResendMailer(BaseMailer):
    """Sends through the Resend API with the ``resend`` SDK.

    ``api_key`` is the Resend key (``re_...``); ``api_url`` defaults to the
    ``RESEND_API_URL`` environment variable, then ``https://api.resend.com``. ``timeout``
    bounds each HTTP request (seconds). 429, 5xx and network failures are retried up to
    ``max_retries`` times with exponential backoff and jitter (``backoff`` is the base in
    seconds, ``max_backoff`` the cap); a ``Retry-After`` answer is waited out exactly,
    unless it asks for more than ``max_retry_after`` seconds, which gives up at once with
    :class:`~kit_mail.exceptions.ProviderUnavailable`. Other 4xx answers raise
    :class:`~kit_mail.exceptions.ProviderRejected` quoting Resend's error name and message.
    ``http_client`` replaces the SDK's HTTP client for this mailer (any
    ``resend.HTTPClient``); by default a ``resend.RequestsClient`` with ``timeout``.

    :meth:`send_many` sends messages without attachments in ``POST /emails/batch`` calls of
    up to 100 (the batch API takes no attachments, so those go one by one through
    ``POST /emails``) and keeps the input order. Each batch's ``Idempotency-Key`` is
    derived from its messages' keys (generated when missing and returned in each result):
    after a :class:`~kit_mail.exceptions.BatchDeliveryError`, retry with the same messages
    (same keys, same order) or with only the failed ones; nothing is sent twice.

    Example::

        >>> from kit_mail._message import Message
        >>> mailer = ResendMailer("re_123", default_sender="App <app@example.com>",
        ...                       api_url="http://127.0.0.1:9")
        >>> mailer.name, mailer.api_url
        ('resend', 'http://127.0.0.1:9')
        >>> params = mailer.params(Message(to="ada@example.com", subject="Hi",
        ...                                html="<p>Hello</p>", tags={"kind": "welcome"}))
        >>> params["from"], params["to"], params["text"], params["tags"]
        ('App <app@example.com>', ['ada@example.com'], 'Hello', [{'name': 'kind', 'value': 'welcome'}])
        >>> ResendMailer("")
        Traceback (most recent call last):
        ...
        kit_mail.exceptions.ConfigurationError: api_key must be your Resend API key (a non-empty string such as 're_...'), from the Resend dashboard.
    """

    name = _PROVIDER

    def __init__(
        self,
        api_key: str,
        *,
        default_sender: str | Address | None = None,
        api_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        http_client: HTTPClient | None = None,
    ) -> None:
        super().__init__(default_sender=default_sender)
        if not isinstance(api_key, str) or not api_key.strip() or any(c.isspace() for c in api_key):
            raise ConfigurationError(
                "api_key must be your Resend API key (a non-empty string such as 're_...'), "
                "from the Resend dashboard."
            )
        url: object = api_url if api_url is not None else os.environ.get("RESEND_API_URL")
        if url is None or (isinstance(url, str) and not url.strip()):
            url = DEFAULT_API_URL
        if not isinstance(url, str) or not re.fullmatch(
            r"https?://[^\s/?#]+(/[^\s?#]*)?", url.strip()
        ):
            raise ConfigurationError(
                f"api_url {url!r} must be an http(s) URL such as {DEFAULT_API_URL!r}."
            )
        self.timeout = _number("timeout", timeout, minimum=0, allow_equal=False)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"max_retries must be an integer >= 0, not {max_retries!r}.")
        if http_client is not None and not isinstance(http_client, HTTPClient):
            raise ConfigurationError(
                "http_client must be a resend.HTTPClient (e.g. resend.RequestsClient(timeout=10))."
            )
        self.api_url = url.strip().rstrip("/")
        self.max_retries = max_retries
        self.backoff = _number("backoff", backoff, minimum=0)
        self.max_backoff = _number("max_backoff", max_backoff, minimum=0)
        self.max_retry_after = _number("max_retry_after", max_retry_after, minimum=0)
        self._api_key = api_key
        self._own_client = http_client is None
        # requests takes a float timeout; the SDK annotates it as int.
        self._client: HTTPClient = http_client or resend.RequestsClient(
            timeout=cast(int, self.timeout)
        )
        self._backoff_wait = wait_random_exponential(multiplier=self.backoff, max=self.max_backoff)

    def __repr__(self) -> str:
        sender = str(self.default_sender) if self.default_sender else None
        return f"ResendMailer(api_url={self.api_url!r}, default_sender={sender!r})"

    # ---------------------------------------------------------------- health

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if Resend answers an authenticated ``GET /domains`` within
        ``timeout`` seconds, once, without retries.

        A ``2xx`` is healthy, and so is ``401 restricted_api_key``: a sending-only key
        may not list domains, but Resend recognized it. Anything else (a refused or
        unknown key, 429, 5xx, no answer in time, no connection) is False, never an
        exception. Nothing is sent. With the default HTTP client the request uses
        ``timeout`` as its own; a custom ``http_client`` keeps its timeout, and the
        answer still comes within ``timeout``.

        Example (nothing listens on port 9)::

            >>> ResendMailer("re_123", api_url="http://127.0.0.1:9").ping(timeout=1)
            False
        """
        timeout = check_timeout(timeout)
        client = (
            resend.RequestsClient(timeout=cast(int, timeout)) if self._own_client else self._client
        )
        headers = {
            "Accept": "application/json",
            "Authorization": f"Bearer {self._api_key}",
            "User-Agent": f"kit-mail/{__version__}",
        }

        def probe() -> bool:
            content, status, _ = client.request(
                method="get", url=f"{self.api_url}/domains", headers=headers, json=None
            )
            if 200 <= status < 300:
                return True
            if status != 401:
                return False
            try:
                body = json.loads(content)
            except ValueError:
                return False
            return isinstance(body, Mapping) and body.get("name") == "restricted_api_key"

        return within(probe, timeout)

    # ---------------------------------------------------------------- params

    def params(self, message: Message) -> dict[str, Any]:
        """The Resend send parameters (the JSON body of ``POST /emails``) for ``message``,
        its sender defaulted; raises :class:`~kit_mail.exceptions.InvalidMessage` for tags
        Resend would refuse or an attachment that cannot be read."""
        message = self._prepare(message)
        assert message.sender is not None
        if not message.to:
            raise InvalidMessage(
                "Resend needs at least one 'to' recipient; move one from cc or bcc to to."
            )
        if len(message.to) > _MAX_TO:
            raise InvalidMessage(
                f"to has {len(message.to)} addresses but Resend takes at most {_MAX_TO}; split "
                "the message or use bcc."
            )
        params: dict[str, Any] = {
            "from": str(message.sender),
            "to": [str(a) for a in message.to],
            "subject": message.subject,
            "text": message.text_body,
        }
        if message.html:
            params["html"] = message.html
        if message.cc:
            params["cc"] = [str(a) for a in message.cc]
        if message.bcc:
            params["bcc"] = [str(a) for a in message.bcc]
        if message.reply_to:
            params["reply_to"] = [str(a) for a in message.reply_to]
        if message.headers:
            params["headers"] = dict(message.headers)
        if message.tags:
            params["tags"] = _tags(message.tags)
        if message.attachments:
            params["attachments"] = [
                {
                    "filename": a.filename,
                    "content": base64.b64encode(a.read()).decode("ascii"),
                    "content_type": a.content_type,
                }
                for a in message.attachments
            ]
        return params

    # ---------------------------------------------------------------- sending

    def _send(self, message: Message) -> SendResult:
        key = message.idempotency_key or _new_key()
        answer = self._request(_EMAILS, self.params(message), key)
        return self._result(message, answer, key)

    def send_many(self, messages: Iterable[Message]) -> list[SendResult]:
        """Send ``messages``: batches of up to 100 through ``POST /emails/batch``, those
        with attachments one by one. Returns the results in input order; raises
        :class:`~kit_mail.exceptions.BatchDeliveryError` (``sent`` and ``failed`` by index)
        after trying every message when some were not accepted."""
        prepared = [self._prepare(m) for m in messages]
        results: dict[int, SendResult] = {}
        failed: list[tuple[int, KitMailError]] = []
        singles: list[tuple[int, Message, dict[str, Any]]] = []
        batchable: list[tuple[int, Message, dict[str, Any]]] = []
        for index, message in enumerate(prepared):
            if message.idempotency_key is None:
                message = message.replace(idempotency_key=_new_key())
            try:
                params = self.params(message)
            except KitMailError as exc:
                failed.append((index, exc))
                continue
            (singles if message.attachments else batchable).append((index, message, params))
        for start in range(0, len(batchable), MAX_BATCH):
            chunk = batchable[start : start + MAX_BATCH]
            if len(chunk) == 1:
                singles.append(chunk[0])
                continue
            keys = [cast(str, m.idempotency_key) for _, m, _ in chunk]
            try:
                answer = self._request(_BATCH, [p for _, _, p in chunk], _batch_key(keys))
                ids = self._batch_ids(answer, len(chunk))
            except KitMailError as exc:
                failed.extend((index, exc) for index, _, _ in chunk)
                continue
            for (index, message, _), message_id in zip(chunk, ids, strict=True):
                results[index] = self._make_result(message, message_id)
        for index, message, params in singles:
            key = cast(str, message.idempotency_key)
            try:
                results[index] = self._result(message, self._request(_EMAILS, params, key), key)
            except KitMailError as exc:
                failed.append((index, exc))
        failed.sort(key=lambda item: item[0])
        sent = sorted(results.items())
        raise_for_batch(self.name, sent, failed, len(prepared))
        return [result for _, result in sent]

    # ---------------------------------------------------------------- internals

    def _make_result(self, message: Message, message_id: str) -> SendResult:
        return SendResult(
            message_id=message_id,
            provider=self.name,
            accepted=tuple(a.email for a in message.recipients),
            idempotency_key=message.idempotency_key,
        )

    def _result(self, message: Message, answer: Any, key: str) -> SendResult:
        message_id = answer.get("id") if isinstance(answer, Mapping) else None
        if not isinstance(message_id, str) or not message_id:
            raise DeliveryError(
                f"Resend accepted the request but answered without an email id ({_short(answer, 200)}).",
                provider=self.name,
            )
        return SendResult(
            message_id=message_id,
            provider=self.name,
            accepted=tuple(a.email for a in message.recipients),
            idempotency_key=key,
        )

    def _batch_ids(self, answer: Any, expected: int) -> list[str]:
        data = answer.get("data") if isinstance(answer, Mapping) else None
        ids = (
            [item.get("id") for item in data or () if isinstance(item, Mapping)]
            if isinstance(data, list)
            else []
        )
        if len(ids) != expected or not all(isinstance(i, str) and i for i in ids):
            raise DeliveryError(
                f"Resend answered a batch of {expected} without {expected} email ids "
                f"({_short(answer, 200)}).",
                provider=self.name,
            )
        return cast(list[str], ids)

    def _attempt(self, path: str, payload: Any, key: str) -> Any:
        """One SDK call, routed to this mailer; raises :class:`_Failure`."""
        _install_router()
        route = _Route(api_key=self._api_key, api_url=self.api_url, path=path, client=self._client)
        token = _route.set(route)
        try:
            options: dict[str, str] = {"idempotency_key": key}
            if path == _BATCH:
                answer: Any = resend.Batch.send(cast(Any, payload), cast(Any, options))
            else:
                answer = resend.Emails.send(cast(Any, payload), cast(Any, options))
        except Exception as exc:
            raise _classify(exc, route) from exc
        finally:
            _route.reset(token)
        if route.status is not None and route.status >= 400:
            # An SDK that reads the error from the body only let an error answer through.
            raise _classify(ResendError(route.status, "error", _short(answer), ""), route)
        return answer

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, _Failure) and failure.retry_after is not None:
            return failure.retry_after
        return float(self._backoff_wait(state))

    def _should_retry(self, exc: BaseException) -> bool:
        return (
            isinstance(exc, _Failure)
            and exc.retryable
            and (exc.retry_after is None or exc.retry_after <= self.max_retry_after)
        )

    def _request(self, path: str, payload: Any, key: str) -> Any:
        """POST ``payload`` to ``path`` with retries; raises a :class:`KitMailError`."""
        if len(key) > _MAX_KEY:
            raise InvalidMessage(f"idempotency key must be at most {_MAX_KEY} characters.")
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            return self._attempt(path, payload, key)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(self._should_retry),
            reraise=True,
            sleep=time.sleep,
        )
        try:
            return retrying(attempt)
        except _Failure as failure:
            raise self._error(failure, attempts) from None

    def _error(self, failure: _Failure, attempts: int) -> DeliveryError:
        code: int | str | None = failure.status if failure.status is not None else "network"
        common: dict[str, Any] = {
            "provider": self.name,
            "provider_code": code,
            "provider_message": f"{failure.name}: {failure.text}",
        }
        if not failure.retryable:
            if failure.status == 429:  # a quota: later, not now
                return ProviderUnavailable(
                    f"{failure.describe()}; the quota resets later, so send again then.",
                    **common,
                )
            return ProviderRejected(
                f"{failure.describe()}. Sending the same request again will fail the same "
                "way: fix the message or the API key.",
                **common,
            )
        if failure.retry_after is not None and failure.retry_after > self.max_retry_after:
            return ProviderUnavailable(
                f"{failure.describe()}; it asked to retry after {failure.retry_after:.0f} s, "
                f"more than max_retry_after ({self.max_retry_after:.0f} s), so kit-mail gave "
                "up. Send again later with the same idempotency key.",
                **common,
            )
        tries = "attempt" if attempts == 1 else "attempts"
        return ProviderUnavailable(
            f"{failure.describe()} (after {attempts} {tries}). Send again later with the same "
            "idempotency key; nothing will be sent twice.",
            **common,
        )
