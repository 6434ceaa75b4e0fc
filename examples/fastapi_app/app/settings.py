"""Settings, read once from environment variables (the README lists them all).

Every backend switch is an environment variable: ``DATABASE_URL`` (SQLite or PostgreSQL),
``REDIS_URL`` (cache, auth stores, rate limits and RQ jobs), ``STORAGE_URL`` (a folder or
``gs://bucket``), ``RESEND_API_KEY`` or ``KIT_MAIL_*`` (mail), ``NETCORE_IFACE`` (the XDP
shield). Unset, everything runs in this process with files under ``VAR_DIR``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kit_auth import RateLimit

__all__ = ["Settings", "SettingsError"]

_ENVIRONMENTS = ("development", "production")
_DEV_CLIENT_ID = "kit-demo"
_DEV_CLIENT_SECRET = "kit-demo-secret"  # noqa: S105 - the dev provider's well-known secret
_DEV_ISSUER = "http://127.0.0.1:9000"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r}: use 1/true/yes/on or 0/false/no/off")


def _number(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: give a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r}: give a number >= {minimum}")
    return value


def _items(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def _mapping(env: Mapping[str, str], name: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in _items(env, name):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SettingsError(f"{name}: {item!r} is not domain=tenant")
        mapping[key.strip().lower()] = value.strip()
    return mapping


@dataclass(frozen=True)
class Settings:
    """What the app, its jobs and its worker are configured with."""

    environment: str
    secret_key: bytes
    var_dir: Path
    database_url: str
    redis_url: str | None
    jobs_backend: str
    jobs_redis_url: str | None
    storage_url: str
    mail_from: str
    resend_api_key: str | None
    oidc_issuer: str
    oidc_client_id: str
    oidc_client_secret: str
    oidc_provider_name: str
    tenant_domains: dict[str, str]
    admin_emails: frozenset[str]
    rate_limit: str
    ban_seconds: int
    trusted_proxies: tuple[str, ...]
    netcore_iface: str | None
    cache_ttl: int
    log_level: str
    generated_secret: bool = field(default=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings; a bad or missing value raises :class:`SettingsError`."""
        env = os.environ if env is None else env
        environment = env.get("APP_ENV", "development").strip().lower()
        if environment not in _ENVIRONMENTS:
            raise SettingsError(f"APP_ENV={environment!r}: use development or production")
        production = environment == "production"

        raw_secret = env.get("SECRET_KEY", "")
        generated = not raw_secret
        if generated:
            if production:
                raise SettingsError(
                    "SECRET_KEY is required when APP_ENV=production: 32+ random bytes, e.g. "
                    'python -c "import secrets; print(secrets.token_urlsafe(48))"'
                )
            raw_secret = secrets.token_urlsafe(48)
        if len(raw_secret.encode()) < 32:
            raise SettingsError("SECRET_KEY must be at least 32 bytes long")

        var_dir = Path(env.get("VAR_DIR") or Path(tempfile.gettempdir()) / "kit-fastapi-demo")
        redis_url = env.get("REDIS_URL") or None
        jobs_backend = (env.get("KIT_JOBS_BACKEND") or ("rq" if redis_url else "thread")).lower()
        if jobs_backend not in ("sync", "thread", "rq"):
            raise SettingsError(f"KIT_JOBS_BACKEND={jobs_backend!r}: use sync, thread or rq")
        jobs_redis_url = env.get("KIT_JOBS_REDIS_URL") or redis_url
        if jobs_backend == "rq" and not jobs_redis_url:
            raise SettingsError("KIT_JOBS_BACKEND=rq needs REDIS_URL (or KIT_JOBS_REDIS_URL)")

        issuer = env.get("OIDC_ISSUER", "")
        client_id = env.get("OIDC_CLIENT_ID", "")
        client_secret = env.get("OIDC_CLIENT_SECRET", "")
        if production and not (issuer and client_id and client_secret):
            raise SettingsError(
                "OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are required when "
                "APP_ENV=production (the development defaults point at dev_oidc.py)"
            )

        rate_limit = env.get("RATE_LIMIT", "120/minute")
        try:
            RateLimit.parse(rate_limit)
        except ValueError as exc:
            raise SettingsError(f"RATE_LIMIT={rate_limit!r}: {exc}") from None

        log_level = env.get("LOG_LEVEL", "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"LOG_LEVEL={log_level!r}: use DEBUG, INFO, WARNING or ERROR")

        return cls(
            environment=environment,
            secret_key=raw_secret.encode(),
            var_dir=var_dir,
            database_url=env.get("DATABASE_URL") or f"sqlite:///{var_dir / 'app.db'}",
            redis_url=redis_url,
            jobs_backend=jobs_backend,
            jobs_redis_url=jobs_redis_url,
            storage_url=env.get("STORAGE_URL") or str(var_dir / "files"),
            mail_from=env.get("MAIL_FROM", "Kit Demo <no-reply@kit-demo.example>"),
            resend_api_key=env.get("RESEND_API_KEY") or None,
            oidc_issuer=issuer or _DEV_ISSUER,
            oidc_client_id=client_id or _DEV_CLIENT_ID,
            oidc_client_secret=client_secret or _DEV_CLIENT_SECRET,
            oidc_provider_name=env.get("OIDC_PROVIDER_NAME", "dev"),
            tenant_domains=_mapping(env, "TENANT_DOMAINS"),
            admin_emails=frozenset(e.lower() for e in _items(env, "ADMIN_EMAILS")),
            rate_limit=rate_limit,
            ban_seconds=_number(env, "BAN_SECONDS", 600),
            trusted_proxies=_items(env, "TRUSTED_PROXIES"),
            netcore_iface=env.get("NETCORE_IFACE") or None,
            cache_ttl=_number(env, "CACHE_TTL", 30),
            log_level=log_level,
            generated_secret=generated,
        )

    @property
    def production(self) -> bool:
        return self.environment == "production"

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose (JWTs, API keys, cursors...), from SECRET_KEY."""
        return hmac.new(self.secret_key, purpose.encode(), hashlib.sha256).digest()
