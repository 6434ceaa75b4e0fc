"""A small HTTP client for the tests: sign in through the dev provider, call the API."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import httpx
from demo_servers import Servers

__all__ = ["Api", "User", "eventually"]

T = TypeVar("T")
_people = itertools.count(1)


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns something truthy (background work, logs)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {timeout:.0f} s")
        time.sleep(0.05)


class User:
    """Someone signed in: their token pair and the app's view of them."""

    def __init__(self, api: Api, body: dict[str, Any], request_id: str) -> None:
        self.api = api
        self.body = body
        self.request_id = request_id
        self.token: str = body["access_token"]
        self.refresh_token: str = body["refresh_token"]
        self.id: str = body["user"]["id"]
        self.email: str = body["user"]["email"]
        self.tenant: str = body["user"]["tenant_id"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.api.http.get(
            path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs
        )

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.api.http.post(
            path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs
        )

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.api.http.delete(
            path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs
        )


class Api:
    def __init__(self, servers: Servers, *, address: str) -> None:
        self.servers = servers
        self.address = address
        self.http = httpx.Client(
            base_url=servers.app_url, headers={"X-Forwarded-For": address}, timeout=30
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.http.close()

    def new_person(self, domain: str | None = None, name: str = "Test Person") -> str:
        """A user the provider knows, in a tenant of their own unless ``domain`` is given."""
        n = next(_people)
        email = f"person{n}@{domain or f'team{n}-{time.time_ns()}.example'}"
        self.servers.provider.add_user(email, name)
        return email

    def sign_in(self, email: str) -> User:
        """The browser's round trip, with a cookie jar: the app's login redirects to the
        provider, whose sign-in form is submitted for ``email``; the provider redirects
        to the app's callback, which answers with tokens."""
        with httpx.Client(
            base_url=self.servers.app_url,
            headers={"X-Forwarded-For": self.address},
            follow_redirects=True,
            timeout=30,
        ) as browser:
            start = browser.get("/auth/dev/login", follow_redirects=False)
            assert start.status_code == 302, start.text
            authorize = start.headers["location"]
            assert authorize.startswith(self.servers.issuer + "/authorize?")
            answer = browser.post(authorize, data={"user": email})
        assert answer.status_code == 200, answer.text
        return User(self, answer.json(), answer.headers["x-request-id"])
