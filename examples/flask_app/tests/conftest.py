"""Fixtures for the team board's tests: the development OIDC provider over real HTTP and
boards built by the app factory on a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from board_helpers import CLIENT_ID, CLIENT_SECRET, AppFactory, add_user, board_env, signed_in
from flask import Flask
from flask.testing import FlaskClient
from teamboard import create_app
from teamboard.dev_oidc import DevOIDCProvider


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[DevOIDCProvider]:
    """The development provider, served on a free loopback port."""
    provider = DevOIDCProvider(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def make_app(tmp_path: Path, oidc_provider: DevOIDCProvider) -> AppFactory:
    """``make_app(config=None, **env)``: a board on a fresh directory (SQLite, local
    files, thread jobs, memory cache); ``env`` switches pieces to servers."""

    def factory(config: dict[str, Any] | None = None, **env: str) -> Flask:
        return create_app(board_env(tmp_path, oidc_provider.issuer, **env), config=config)

    return factory


@pytest.fixture
def admin(make_app: AppFactory) -> tuple[Flask, FlaskClient, dict[str, str]]:
    """A board with a signed-in admin: the app, its client, and JSON headers with CSRF."""
    app = make_app()
    client, headers = signed_in(app, add_user(app, "ann@example.com", role="admin"))
    return app, client, headers
