"""Settings from environment variables: embedded defaults, servers by configuration only.

Every variable is optional. Unset, the board runs on one machine with nothing else
installed: SQLite, a thread pool for jobs, an in-process cache, files under ``VAR_DIR``
and mail printed on the console. Setting a variable switches one piece to a server:

==========================  =========================================================
``DATABASE_URL``            ``postgresql://...`` (or ``mysql://``); default SQLite file
``REDIS_URL``               Redis for the cache, the RQ job queue and rate limits
``JOBS_BACKEND``            ``thread`` / ``rq`` / ``sync``; default ``rq`` with
                            ``REDIS_URL``, else ``thread``
``CACHE_URL``               a kit-cache URL; default ``REDIS_URL`` or ``memory://``
``STORAGE_URL``             ``gs://bucket`` (Google Cloud Storage) or ``file:///path``;
                            default ``VAR_DIR/files``
``RESEND_API_KEY``          send mail through Resend instead of printing it
==========================  =========================================================

The README lists the rest (secrets, OIDC, cookies). A bad value raises
:class:`SettingsError` naming the variable, at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["DEFAULT_VAR_DIR", "Settings", "SettingsError"]

#: Where the board keeps its SQLite file, uploaded files and its generated secret.
DEFAULT_VAR_DIR = Path(__file__).resolve().parent.parent / "var"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """An environment variable has a value the board cannot use; the message names it."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r}: use true or false")


def _text(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    return raw.strip()


@dataclass(frozen=True)
class Settings:
    """The board's configuration, read once by :meth:`from_env`."""

    var_dir: Path
    secret_key: bytes
    database_url: str
    redis_url: str | None
    jobs_backend: str
    cache_url: str
    gcs_bucket: str | None
    gcs_signing_email: str | None
    storage_root: Path
    resend_api_key: str | None
    mail_from: str
    oidc_name: str
    oidc_issuer: str
    oidc_client_id: str
    oidc_client_secret: str
    cookie_secure: bool
    base_url: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read the settings from ``env`` (``os.environ``, or a dict in tests)."""
        var_dir = Path(_text(env, "VAR_DIR") or DEFAULT_VAR_DIR).resolve()
        redis_url = _text(env, "REDIS_URL")
        if redis_url is not None and urlsplit(redis_url).scheme not in (
            "redis",
            "rediss",
            "unix",
        ):
            raise SettingsError(f"REDIS_URL={redis_url!r}: give a redis://host:port/db URL")
        database_url = _text(env, "DATABASE_URL") or f"sqlite:///{var_dir / 'board.db'}"
        jobs_backend = (_text(env, "JOBS_BACKEND") or ("rq" if redis_url else "thread")).lower()
        if jobs_backend not in ("thread", "rq", "sync"):
            raise SettingsError(f"JOBS_BACKEND={jobs_backend!r}: use thread, rq or sync")
        if jobs_backend == "rq" and redis_url is None:
            raise SettingsError("JOBS_BACKEND=rq needs REDIS_URL (the queue lives in Redis)")
        storage_url = _text(env, "STORAGE_URL")
        storage_root = var_dir / "files"
        gcs_bucket = None
        if storage_url is not None:
            parts = urlsplit(storage_url)
            if parts.scheme == "file" and parts.path.startswith("/") and not parts.netloc:
                storage_root = Path(parts.path)
            elif parts.scheme == "gs" and parts.netloc and parts.path in ("", "/"):
                gcs_bucket = parts.netloc
            else:
                raise SettingsError(
                    f"STORAGE_URL={storage_url!r}: use gs://bucket (Google Cloud Storage) or "
                    "file:///absolute/path"
                )
        issuer = _text(env, "OIDC_ISSUER")
        if issuer is None:
            # the development provider: python -m teamboard.dev_oidc
            issuer = "http://127.0.0.1:5001"
            client_id = _text(env, "OIDC_CLIENT_ID") or "team-board"
            client_secret = _text(env, "OIDC_CLIENT_SECRET") or "dev-secret"
        else:
            client_id = _text(env, "OIDC_CLIENT_ID") or ""
            client_secret = _text(env, "OIDC_CLIENT_SECRET") or ""
            if not client_id or not client_secret:
                raise SettingsError(
                    "OIDC_ISSUER is set: set OIDC_CLIENT_ID and OIDC_CLIENT_SECRET to the "
                    "client the provider registered for this app"
                )
        return cls(
            var_dir=var_dir,
            secret_key=_secret_key(env, var_dir),
            database_url=database_url,
            redis_url=redis_url,
            jobs_backend=jobs_backend,
            cache_url=_text(env, "CACHE_URL") or redis_url or "memory://",
            gcs_bucket=gcs_bucket,
            gcs_signing_email=_text(env, "GCS_SIGNING_EMAIL"),
            storage_root=storage_root,
            resend_api_key=_text(env, "RESEND_API_KEY"),
            mail_from=_text(env, "MAIL_FROM") or "Team Board <board@example.com>",
            oidc_name=_text(env, "OIDC_PROVIDER_NAME") or "dev",
            oidc_issuer=issuer,
            oidc_client_id=client_id,
            oidc_client_secret=client_secret,
            cookie_secure=_flag(env, "COOKIE_SECURE", default=False),
            base_url=_text(env, "BASE_URL"),
        )

    def derived_key(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose (signed links, OIDC state), derived from
        ``SECRET_KEY`` so that one secret configures them all."""
        return hmac.new(self.secret_key, purpose.encode(), hashlib.sha256).digest()


def _secret_key(env: Mapping[str, str], var_dir: Path) -> bytes:
    """``SECRET_KEY``, else one generated once and kept in ``VAR_DIR/secret_key`` so that
    sessions and signed links survive a restart of the development server."""
    value = _text(env, "SECRET_KEY")
    if value is not None:
        if len(value.encode()) < 32:
            raise SettingsError("SECRET_KEY must be at least 32 bytes (secrets.token_hex(32))")
        return value.encode()
    path = var_dir / "secret_key"
    if path.is_file():
        return path.read_bytes().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    path.touch(mode=0o600)
    path.write_bytes(key)
    return key
