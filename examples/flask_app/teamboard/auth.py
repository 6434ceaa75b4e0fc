"""Sign-in through an OIDC provider, the browser session, and the guards.

- kit-auth's ``oauth_blueprint`` runs the OIDC login (PKCE, state and nonce checked, the
  ID token verified against the provider's keys). Its ``on_login`` callback is
  :func:`sign_in`: the first user ever becomes the admin, later ones wait as ``pending``
  until an admin approves them.
- The browser keeps Flask's signed session cookie (HttpOnly, SameSite=Lax) with the user
  id. kit-auth's Flask adapter authenticates ``Authorization`` headers only, so the
  session is read here and the user handed to kit-auth's guards: ``require_active``
  answers a pending user with 403 and ``reason: "pending"``, ``require_roles`` keeps the
  admin pages to admins. Their errors are kit-auth's, rendered as problem+json by
  ``KitAuth``.
- Every state-changing request carries a CSRF token (a form field or the
  ``X-CSRF-Token`` header) that matches the session's.
"""

from __future__ import annotations

import functools
import secrets
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select, text

from kit_auth import (
    EmailPolicy,
    Identity,
    NotAuthenticated,
    OIDCClient,
    OIDCProvider,
    require_active,
    require_roles,
)
from kit_auth.flask import oauth_blueprint
from kit_mail import Message

from .extensions import db, mail
from .models import User
from .problems import CSRFFailed, wants_html
from .settings import Settings

__all__ = [
    "admin_required",
    "csrf_token",
    "current_user",
    "install",
    "login_required",
    "login_url",
]

F = TypeVar("F", bound=Callable[..., Any])

CSRF_EXEMPT_BLUEPRINTS = frozenset({"kit_storage"})  # signed PUT links carry their own proof
_SIGNUP_LOCK = 0x7EA3B0A4D  # pg_advisory_xact_lock key: one first-user decision at a time


def install(app: Flask, settings: Settings) -> None:
    """Mount the OIDC login and the CSRF check on ``app``."""
    provider = OIDCProvider(
        settings.oidc_name,
        settings.oidc_client_id,
        settings.oidc_client_secret,
        issuer=settings.oidc_issuer,
    )
    client = OIDCClient(
        provider, state_secret=settings.derived_key("oidc-state"), email_policy=EmailPolicy()
    )
    redirect_uri = None
    if settings.base_url:
        redirect_uri = f"{settings.base_url.rstrip('/')}/auth/{settings.oidc_name}/callback"
    app.register_blueprint(
        oauth_blueprint(
            client,
            on_login=sign_in,
            cookie_secure=settings.cookie_secure,
            redirect_uri=redirect_uri,
        )
    )
    app.extensions["teamboard.login_endpoint"] = f"kit_auth_oidc_{settings.oidc_name}.login"
    app.before_request(_check_csrf)
    app.context_processor(lambda: {"csrf_token": csrf_token, "current_user": current_user()})


def login_url() -> str:
    return url_for(current_app.extensions["teamboard.login_endpoint"])


# -- session -----------------------------------------------------------------------------


def sign_in(identity: Identity) -> ResponseReturnValue:
    """``on_login``: find or create the user, start the session, go to the board."""
    subject = f"{identity.provider}|{identity.subject}"
    user = db.session.scalars(select(User).where(User.subject == subject)).one_or_none()
    if user is None:
        user = _sign_up(identity, subject)
    else:
        user.email = identity.email or user.email
        user.name = identity.name or user.name
        db.session.commit()
    session.clear()
    session["uid"] = str(user.id)
    session["csrf"] = secrets.token_urlsafe(32)
    return redirect(url_for("board.index"))


def _sign_up(identity: Identity, subject: str) -> User:
    if db.database.dialect == "postgresql":
        # two first sign-ins at once must not both become admin. On SQLite the second
        # writer's read is stale by the time it writes, and SQLite refuses it (a 503
        # DatabaseUnavailable) rather than letting both in. MySQL would need GET_LOCK.
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SIGNUP_LOCK})
    first = db.session.scalar(select(func.count()).select_from(User)) == 0
    user = User(
        subject=subject,
        email=identity.email or "",
        name=identity.name,
        role="admin" if first else "user",
        status="active" if first else "pending",
    )
    db.session.add(user)
    db.session.commit()
    if not first:
        _tell_admins(user)
    return user


def _tell_admins(user: User) -> None:
    admins = db.session.scalars(
        select(User.email).where(User.role == "admin", User.status == "active")
    ).all()
    if admins:
        mail.send(
            Message(
                to=list(admins),
                subject=f"{user.name or user.email} is waiting for approval",
                text=f"{user.email} signed in to the team board. Approve them on the admin page.",
            )
        )


def current_user() -> User | None:
    """The signed-in user, or None (cached for the request)."""
    if "teamboard_user" not in g:
        user = None
        raw = session.get("uid")
        if isinstance(raw, str):
            try:
                user = db.session.get(User, uuid.UUID(raw))
            except ValueError:
                user = None
        g.teamboard_user = user
    found: User | None = g.teamboard_user
    return found


def sign_out() -> None:
    session.clear()


# -- guards ------------------------------------------------------------------------------


def _signed_in() -> User:
    user = current_user()
    if user is None:
        raise NotAuthenticated("Sign in first: this page needs a signed-in team member.")
    return user


def login_required(view: F) -> F:
    """An active user: anonymous browsers are sent to sign in, others get 401; a pending
    user gets kit-auth's 403 with ``reason: "pending"``."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None and request.method == "GET" and wants_html():
            return redirect(url_for("board.signin"))
        require_active(_signed_in().principal())
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def admin_required(view: F) -> F:
    """An active admin (kit-auth ``require_roles``: 403 ``missing-role`` otherwise)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None and request.method == "GET" and wants_html():
            return redirect(url_for("board.signin"))
        require_roles(_signed_in().principal(), "admin")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# -- CSRF --------------------------------------------------------------------------------


def csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _check_csrf() -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.blueprint in CSRF_EXEMPT_BLUEPRINTS:
        return
    expected = session.get("csrf")
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token")
    if not isinstance(expected, str) or not sent or not secrets.compare_digest(sent, expected):
        raise CSRFFailed(
            "The form is missing its CSRF token or the token is stale: reload the page "
            "and try again (API clients send the X-CSRF-Token header)."
        )
