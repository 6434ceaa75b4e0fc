"""Helpers shared by the team board's tests (the fixtures are in ``conftest.py``)."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

EXAMPLE_DIR = Path(__file__).resolve().parent.parent
if str(EXAMPLE_DIR) not in sys.path:  # the example is not installed: import it from here
    sys.path.insert(0, str(EXAMPLE_DIR))

from teamboard.extensions import db  # noqa: E402
from teamboard.models import User  # noqa: E402

AppFactory = Callable[..., Flask]

CLIENT_ID = "team-board-tests"
CLIENT_SECRET = secrets.token_urlsafe(24)


def board_env(var_dir: Path, issuer: str, **extra: str) -> dict[str, str]:
    """The environment of one board: embedded defaults under ``var_dir``, the test
    provider, mail kept in memory; ``extra`` switches pieces to servers."""
    return {
        "VAR_DIR": str(var_dir),
        "SECRET_KEY": secrets.token_hex(32),
        "OIDC_ISSUER": issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "KIT_MAIL_BACKEND": "memory",
        **extra,
    }


def add_user(app: Flask, email: str, *, role: str = "user", status: str = "active") -> str:
    """A user row, as the OIDC sign-in would have made it; returns its id."""
    with app.app_context():
        user = User(subject=f"test|{email}", email=email, name=email.split("@")[0])
        user.role, user.status = role, status
        db.session.add(user)
        db.session.commit()
        return str(user.id)


def signed_in(app: Flask, user_id: str) -> tuple[FlaskClient, dict[str, str]]:
    """A test client whose session is ``user_id``'s, and JSON headers with its CSRF token."""
    client = app.test_client()
    token = secrets.token_urlsafe(16)
    with client.session_transaction() as session:
        session["uid"] = user_id
        session["csrf"] = token
    return client, {"Accept": "application/json", "X-CSRF-Token": token}
